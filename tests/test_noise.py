"""Is that keep real? The baseline run K times, a threshold in units of its noise, the best
run again: through the real loop, the real engine and git, and as bookkeeping over ledger rows."""

from __future__ import annotations

import shutil

import pytest
from conftest import REPO, committed_repo, events, results, run_cli, write_script
from test_night import replace_value, value_task

from harness.budget import Budget
from harness.noise import current_best, noise_estimate, remeasure_due, runs_of_best
from harness.report_data import load_night
from harness.seams import ExperimentRecord, Verdict
from harness.status import format_status, status_report

KEEP, DISCARD, AGAIN = Verdict.KEEP, Verdict.DISCARD, Verdict.REMEASURE


def row(
    experiment: int, metric: float | None, status: Verdict, commit: str = "c"
) -> ExperimentRecord:
    return ExperimentRecord(experiment, commit, metric, status, "")


def copy_noisy(tmp_path, toml: str | None = None):
    task = tmp_path / "noisy"
    shutil.copytree(REPO / "tasks" / "noisy", task, ignore=shutil.ignore_patterns(".overnight"))
    if toml is not None:
        (task / "overnight.toml").write_text(toml)
    return committed_repo(task)


@pytest.mark.engine_free
def test_the_noise_is_the_spread_of_the_baseline_runs_and_zero_for_a_deterministic_metric():
    rows = [row(0, 1.0, KEEP), row(0, 1.2, AGAIN), row(0, 0.8, AGAIN), row(0, None, AGAIN)]
    assert noise_estimate(rows) == pytest.approx(0.2)  # the failed run is not counted
    assert current_best(rows).metric == pytest.approx(1.0)  # the mean of the three valid runs
    assert noise_estimate([row(0, 1.0, KEEP), row(0, 1.0, AGAIN), row(0, 1.0, AGAIN)]) == 0.0
    assert noise_estimate([row(0, 1.0, KEEP)]) is None  # noise_runs = 1: nothing measured


@pytest.mark.engine_free
def test_a_lucky_best_sinks_back_to_the_mean_of_its_runs():
    rows = [row(0, 1.0, KEEP, "base"), row(1, 1.1, DISCARD), row(2, 0.5, KEEP, "lucky")]
    assert current_best(rows).metric == 0.5
    rows += [row(3, 0.9, DISCARD), row(2, 0.8, AGAIN, "lucky")]
    assert current_best(rows).metric == pytest.approx(0.65)
    rows += [row(4, 0.7, DISCARD), row(2, 0.8, AGAIN, "lucky")]
    assert current_best(rows).metric == pytest.approx(0.7)
    assert runs_of_best(rows) == 3
    # A confirmed keep stands for its 1 + confirm_runs runs.
    assert current_best(rows, confirm_runs=2).metric == pytest.approx((3 * 0.5 + 1.6) / 5)
    # The remeasured best is still the same commit and experiment; a later keep replaces it.
    assert (current_best(rows).experiment, current_best(rows).commit) == (2, "lucky")
    assert current_best([*rows, row(5, 0.6, KEEP, "new")]).metric == 0.6


@pytest.mark.engine_free
def test_a_remeasure_is_due_once_after_every_nth_experiment_and_is_not_a_proposal():
    rows = [row(0, 1.0, KEEP), row(0, 1.0, AGAIN), row(1, 0.9, DISCARD), row(2, 0.9, DISCARD)]
    assert not remeasure_due(rows[:3], 2) and remeasure_due(rows, 2)
    assert not remeasure_due(rows, 0) and not remeasure_due(rows[:2], 1)
    rows.append(row(0, 1.0, AGAIN))
    assert not remeasure_due(rows, 2)  # done: a resumed night finds its row
    assert Budget(max_experiments=2).exhausted(rows, 0.0) == "reached --max-experiments 2"
    assert Budget(max_experiments=3).exhausted(rows, 0.0) is None


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('min_improvement = "2sigma"\n', 'overnight.toml: min_improvement = "2sigma" needs the '
         "noise measured: set noise_runs = 5"),
        ('min_improvement = "lots"\n', "overnight.toml: min_improvement: Value error, 'lots' is "
         "not a threshold"),
        ("noise_runs = 0\n", "overnight.toml: noise_runs"),
    ],
)  # fmt: skip
@pytest.mark.engine_free
def test_a_threshold_in_sigmas_without_measured_noise_is_refused_in_one_line(
    tmp_path, capsys, toml, message
):
    task = value_task(tmp_path, **{"overnight.toml": toml})
    code, out = run_cli("run", str(task), "--tag", "x", capsys=capsys)
    assert code == 2
    assert message in out and len(out.strip().splitlines()) == 1


def test_null_edits_are_not_kept_and_a_real_improvement_is(
    tmp_path, capsys, no_leftover_containers
):
    """tasks/noisy: SGD seeded from os.urandom, so every run of the same train.py scores a little
    differently. With noise_runs = 5 and the default 2sigma, six edits that change nothing are
    discarded and fitting x0's square, many times the noise better, is kept. (Chance alone keeps
    a null edit in about 1% of such nights: 5 baseline runs can underestimate the noise.)"""
    task = copy_noisy(tmp_path)
    rename = [
        {"command": "str_replace", "old_str": "order = rng", "new_str": "perm = rng"},
        {"command": "str_replace", "old_str": "batch = order[", "new_str": "batch = perm["},
    ]
    null_edits = [
        ("a comment", [{"command": "insert", "insert_line": 0, "new_str": "# a comment"}]),
        ("rename order to perm", rename),
        ("spell 16 as 0x10", [{"command": "str_replace", "old_str": "= 16", "new_str": "= 0x10"}]),
        (
            "spell 0.1 as 1e-1",
            [{"command": "str_replace", "old_str": "* 0.1", "new_str": "* 1e-1"}],
        ),
        ("a docstring line", [{"command": "insert", "insert_line": 1, "new_str": "Noisy."}]),
        ("another comment", [{"command": "insert", "insert_line": 0, "new_str": "# again"}]),
    ]
    improvement = {
        "command": "str_replace",
        "old_str": "USE_SQUARE = False",
        "new_str": "USE_SQUARE = True",
    }
    script = write_script(
        tmp_path / "s.jsonl",
        [{"description": d, "calls": c} for d, c in null_edits]
        + [{"description": "fit the square of x0", "calls": [improvement]}],
    )
    code, out = run_cli(
        "run", str(task), "--tag", "n", "--provider", "replay", "--script", str(script),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, out
    assert (
        "keep rule: the baseline runs 5 times to measure the noise; a keep must beat the "
        "best by more than 2sigma (min_improvement, the default with noise_runs = 5)" in out
    )
    rows = results(task, "n")
    assert [(r.experiment, r.status) for r in rows[:5]] == [(0, KEEP)] + [(0, AGAIN)] * 4
    noise = noise_estimate(rows)
    assert noise is not None and noise > 0
    assert [r.status for r in rows[5:11]] == [DISCARD] * 6, [r.description for r in rows]
    assert rows[11].status is KEEP and rows[11].description == "fit the square of x0"
    mean = sum(r.metric for r in rows[:5]) / 5
    assert mean - rows[11].metric > 5 * noise  # a real improvement, far beyond the noise
    # status, the report's data and the events say what was measured.
    report = status_report(task, "n")
    assert report["noise"]["runs"] == 5 and report["noise"]["std"] == pytest.approx(noise)
    assert report["experiments"] == 7
    text = format_status(report)
    assert (
        f"noise: {noise:.3g} (standard deviation of the baseline's runs); a keep must beat "
        "the best by more than 2sigma" in text
    )
    assert load_night(task / ".overnight" / "n").noise == pytest.approx(noise)
    noise_event = next(e for e in events(task, "n") if e["event"] == "noise")
    assert noise_event["runs"] == 5 and noise_event["std"] == pytest.approx(noise, rel=1e-4)


def test_the_best_is_remeasured_every_n_experiments_and_a_resumed_night_counts_each_run_once(
    tmp_path, capsys, no_leftover_containers
):
    task = value_task(tmp_path, **{"overnight.toml": "remeasure_best_every = 2\n"})
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {"description": "better", "calls": [replace_value("VALUE = 3.0")]},
            {"description": "comment", "calls": [{"command": "insert", "insert_line": 0, "new_str": "# c"}]},
            {"description": "worse", "calls": [{"command": "str_replace", "old_str": "VALUE = 3.0", "new_str": "VALUE = 4.0"}]},
        ],
    )  # fmt: skip
    args = ("run", str(task), "--tag", "m", "--provider", "replay", "--script", str(script))
    code, out = run_cli(*args, "--max-experiments", "2", capsys=capsys)
    assert code == 0, out
    rows = results(task, "m")
    assert [(r.experiment, r.status.value) for r in rows] == [
        (0, "keep"), (1, "keep"), (2, "discard"),
    ]  # fmt: skip
    # Resumed after the 2nd experiment: its remeasure is due first, exactly once.
    code, out = run_cli(*args, "--max-experiments", "3", capsys=capsys)
    assert code == 0, out
    rows = results(task, "m")
    assert [(r.experiment, r.status.value) for r in rows] == [
        (0, "keep"), (1, "keep"), (2, "discard"), (1, "remeasure"), (3, "discard"),
    ]  # fmt: skip
    again = rows[3]
    assert again.metric == 3.0 and again.commit == rows[1].commit and again.cost_usd == 0
    assert "remeasure of #1 (mean of 1 runs was 3)" in again.description
    assert current_best(rows).metric == 3.0  # deterministic: the mean is the value, as today
    assert (task / ".overnight/m/experiments/0001/output-remeasure-1.txt").exists()
    report = status_report(task, "m")
    assert report["experiments"] == 3 and report["counts"]["remeasure"] == 1
    assert "best: 3 (mean of 2 runs) at experiment 1" in format_status(report)


def test_killed_at_any_step_of_baseline_runs_and_remeasures_a_resumed_night_counts_each_once(
    tmp_path,
):
    """OVERNIGHT_CRASH_AT=N kills the harness at its N-th step; the resumed night's ledger is the
    uninterrupted one's: no baseline run or remeasure twice, none skipped."""
    from test_crash_safety import night_state, overnight

    toml = "noise_runs = 2\nremeasure_best_every = 1\n"
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {"description": "better", "calls": [replace_value("VALUE = 3.0")]},
            {"description": "nothing", "calls": []},  # skipped: no run
        ],
    )  # fmt: skip
    args = ("--tag", "k", "--provider", "replay", "--script", str(script), "--max-experiments", "2")
    reference = value_task(tmp_path / "reference", **{"overnight.toml": toml})
    done = overnight("run", str(reference), *args)
    assert done.returncode == 0, done.stderr
    expected = night_state(reference, "k")
    assert [(row[0], row[2]) for row in expected["rows"]] == [
        (0, "keep"), (0, "remeasure"), (1, "keep"), (1, "remeasure"), (2, "skipped"),
    ]  # fmt: skip
    boundary = 1
    while True:
        task = value_task(tmp_path / f"crash-{boundary}", **{"overnight.toml": toml})
        crashed = overnight("run", str(task), *args, env={"OVERNIGHT_CRASH_AT": str(boundary)})
        if crashed.returncode == 0:
            break
        resumed = overnight("run", str(task), *args)
        assert resumed.returncode == 0, (boundary, resumed.stderr)
        assert night_state(task, "k") == expected, f"crash at step {boundary}"
        boundary += 1
    assert boundary > 8  # setup, the baseline's runs, an experiment, its remeasure, a skip
