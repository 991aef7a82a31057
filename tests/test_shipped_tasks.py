"""The shipped example tasks, run as a user runs them: baseline, a real improvement, and the
cheats their evaluators must refuse, through the real loop, Docker and git."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import events, results, run_cli, write_script

TASKS = Path(__file__).resolve().parent.parent / "tasks"


def copy_task(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(TASKS / name, target, ignore=shutil.ignore_patterns(".overnight"))
    return target


def replay(task: Path, tmp_path: Path, proposals: list[dict], capsys) -> list:
    script = write_script(tmp_path / "script.jsonl", proposals)
    code, out = run_cli(
        *("run", str(task), "--tag", "t", "--provider", "replay", "--script", str(script)),
        capsys=capsys,
    )
    assert code == 0, out
    assert (task / ".overnight/t/report.md").exists()
    return results(task, "t")


def output(task: Path, experiment: int) -> str:
    """What the agent may read of an experiment: the training's output and the harness's words."""
    return (task / f".overnight/t/experiments/{experiment:04d}/output.txt").read_text()


def evaluator_said(task: Path, experiment: int) -> str:
    """The evaluator's own output, for the human only (it may quote the hidden data)."""
    return (task / f".overnight/t/experiments/{experiment:04d}/evaluate.txt").read_text()


def edit(old: str, new: str) -> dict:
    return {"command": "str_replace", "old_str": old, "new_str": new}


def test_trading_keeps_a_regime_filter_and_refuses_look_ahead_and_kept_state(
    tmp_path, capsys, no_leftover_containers
):
    task = copy_task("trading", tmp_path)
    rows = replay(
        task,
        tmp_path,
        [
            {
                "description": "regime filter: stand aside when hourly volatility is above 1%",
                "calls": [edit("VOL_LIMIT = 0.03", "VOL_LIMIT = 0.01")],
            },
            {
                "description": "peek at the next bar",
                "calls": [
                    edit(
                        "        out[t] = side * size\n",
                        "        out[t] = side * size\n"
                        "    out[:-1] = np.sign(np.diff(prices)) * POSITION_SIZE\n",
                    )
                ],
            },
            {
                "description": "remember the prices between calls",
                "calls": [
                    edit(
                        "        out[t] = side * size\n",
                        "        out[t] = side * size\n"
                        "    import os, tempfile\n"
                        "    np.save(os.path.join(tempfile.gettempdir(), 'seen.npy'), prices)\n",
                    )
                ],
            },
        ],
        capsys,
    )
    assert [r.status.value for r in rows] == ["keep", "keep", "invalid", "invalid"]
    baseline, better = rows[0].metric, rows[1].metric
    assert baseline is not None and better is not None and better > baseline + 0.3
    assert "public history (in sample):" in output(task, 1) and "sharpe:" in output(task, 1)
    assert "positions() looks ahead: its position at bar" in evaluator_said(task, 2)
    assert "positions() left" in evaluator_said(task, 3) and "seen.npy" in evaluator_said(task, 3)
    for number in (2, 3):  # the agent learns the kind of failure, not the evaluator's message
        assert output(task, number).endswith("no valid metric: evaluate() raised ValueError\n")
        assert "looks ahead" not in output(task, number)
        assert "positions() left" not in output(task, number)
    run = next(e for e in events(task, "t") if e["event"] == "run" and e["experiment"] == 1)
    assert set(run["metrics"]) >= {"sharpe", "total_return", "max_drawdown", "exposure"}
    assert "sharpe (maximize)" in (task / ".overnight/t/report.md").read_text()


def test_speedup_keeps_a_vectorised_version_and_refuses_a_wrong_answer(
    tmp_path, capsys, no_leftover_containers
):
    task = copy_task("speedup", tmp_path)
    source = (task / "train.py").read_text()
    body = source[source.index("def rolling_zscore") : source.index("\nif __name__")]
    vectorised = '''def rolling_zscore(values, window):
    """For each full window of `values`, (last - mean) / sample std of that window (0 if flat)."""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(np.asarray(values, dtype=np.float64), window)
    spread = windows.std(axis=1, ddof=1)
    centred = windows[:, -1] - windows.mean(axis=1)
    return np.where(spread > 0, centred / np.where(spread > 0, spread, 1.0), 0.0)

'''
    rows = replay(
        task,
        tmp_path,
        [
            {"description": "numpy: every window at once", "calls": [edit(body, vectorised)]},
            {
                "description": "the window is always 64 anyway",
                "calls": [
                    edit("    import numpy as np\n", "    import numpy as np\n\n    window = 64\n")
                ],
            },
        ],
        capsys,
    )
    assert [r.status.value for r in rows] == ["keep", "keep", "invalid"]
    baseline, faster = rows[0].metric, rows[1].metric
    # Kept because it is faster; how much faster is a timing goal for bench/, not this test
    # (on a loaded 2-core machine the ratio was 1.77x once, 2x and more otherwise).
    assert baseline is not None and faster is not None and faster < baseline
    assert "correct on the public sample" in output(task, 1)
    assert "correct on the public sample" in output(task, 2)  # its window is 64
    assert "case 0: rolling_zscore returned float64 of shape" in evaluator_said(task, 2)
    assert "rolling_zscore returned" not in output(task, 2)
    assert output(task, 2).endswith("no valid metric: evaluate() raised ValueError\n")
