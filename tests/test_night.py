"""Whole nights through the real CLI, the real Docker engine and real git repositories."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import (
    committed_repo,
    copy_quickstart,
    events,
    git,
    results,
    run_cli,
    write_script,
    write_task,
)

from harness.seams import Verdict

PREPARE = """
import os

METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = 1


def evaluate(output_dir):
    with open(os.path.join(output_dir, "value.txt")) as handle:
        return {"loss": float(handle.read()), "extra": 1.5}
"""

TRAIN = """import os

VALUE = 5.0

with open(os.path.join(os.environ["OVERNIGHT_OUTPUT_DIR"], "value.txt"), "w") as handle:
    handle.write(str(VALUE))
"""


def value_task(tmp_path, **extra):
    """A protected task whose metric is the VALUE train.py writes, scored by evaluate()."""
    files = {"program.md": "Make loss small.\n", "prepare.py": PREPARE, "train.py": TRAIN, **extra}
    return committed_repo(write_task(tmp_path / "task", files))


def replace_value(new: str) -> dict:
    return {"command": "str_replace", "old_str": "VALUE = 5.0", "new_str": new}


def test_mutate_beats_the_quickstart_baseline_within_ten_experiments(
    tmp_path, capsys, no_leftover_containers
):
    task = copy_quickstart(tmp_path)
    code, out = run_cli("run", str(task), "--tag", "t", "--max-experiments", "10", capsys=capsys)
    assert code == 0, out
    assert "was not in a git repository: created one" in out
    rows = results(task, "t")
    assert [r.experiment for r in rows] == list(range(11))
    assert rows[0].status is Verdict.KEEP and rows[0].description == "baseline"
    keeps = [r for r in rows[1:] if r.status is Verdict.KEEP]
    assert keeps, "the mutate agent never beat the baseline"
    assert keeps[-1].metric < rows[0].metric
    header = (task / ".overnight/t/results.tsv").read_text().splitlines()[0]
    assert header == "experiment\tcommit\tmetric\tmemory_gb\tstatus\tseconds\tcost_usd\tdescription"
    # Every kept commit on the branch touches train.py and nothing else.
    kept = git(task, "rev-list", f"{rows[0].commit}..overnight/t").split()
    assert len(kept) == len(keeps)
    for commit in kept:
        assert git(task, "diff-tree", "--no-commit-id", "--name-only", "-r", commit) == "train.py"
    # The branch ends at the best commit, and the user's checkout is untouched.
    assert git(task, "rev-parse", "--short=7", "overnight/t") == keeps[-1].commit
    assert (task / "train.py").read_text() == (
        copy_quickstart(tmp_path / "again") / "train.py"
    ).read_text()
    assert git(task, "status", "--porcelain") == ""


def test_replay_keeps_better_resets_worse_and_labels_failures(
    tmp_path, capsys, no_leftover_containers
):
    task = value_task(tmp_path, **{"overnight.toml": "timeout = 3\n"})
    script = write_script(
        tmp_path / "script.jsonl",
        [
            {"description": "better", "calls": [{"command": "view"}, replace_value("VALUE = 3.0")]},
            {
                "description": "worse",
                "calls": [
                    {"command": "str_replace", "old_str": "VALUE = 3.0", "new_str": "VALUE = 9.0"}
                ],
            },
            {
                "description": "crash",
                "calls": [
                    {"command": "insert", "insert_line": 0, "new_str": "raise SystemExit(3)"}
                ],
            },
            {
                "description": "hang",
                "calls": [
                    {"command": "insert", "insert_line": 0, "new_str": "while True:\n    pass"}
                ],
            },
            {
                "description": "no output",
                "calls": [{"command": "write", "content": "print('nothing written')\n"}],
            },
            {
                "description": "nan",
                "calls": [
                    {
                        "command": "str_replace",
                        "old_str": "VALUE = 3.0",
                        "new_str": "VALUE = float('nan')",
                    }
                ],
            },
            {"description": "broken", "calls": [{"command": "write", "content": "def broken(:\n"}]},
            {
                "description": "ambiguous",
                "calls": [
                    {"command": "str_replace", "old_str": "VALUE", "new_str": "X"},
                    {"command": "str_replace", "old_str": "VALUE = 7", "new_str": "X"},
                ],
            },
        ],
    )
    code, out = run_cli(
        "run",
        str(task),
        "--tag",
        "r",
        "--provider",
        "replay",
        "--script",
        str(script),
        capsys=capsys,
    )
    assert code == 0, out
    assert "no more proposals" in out
    rows = results(task, "r")
    statuses = [(r.description.split(" [")[0], r.status.value) for r in rows]
    assert statuses == [
        ("baseline", "keep"),
        ("better", "keep"),
        ("worse", "discard"),
        ("crash", "crash"),
        ("hang", "timeout"),
        ("no output", "invalid"),
        ("nan", "invalid"),
        ("broken", "skipped"),
        ("ambiguous", "skipped"),
    ]
    assert rows[1].metric == 3.0 and rows[2].metric == 9.0
    # The timeout was enforced on time, not after the hang ended by itself.
    assert 2.5 < rows[4].seconds < 10
    # The better change is the branch head; the worse one is reachable only through its ref.
    assert git(task, "show", "overnight/r:train.py").count("VALUE = 3.0") == 1
    discarded = git(task, "for-each-ref", "--format=%(refname)", "refs/overnight/r/discarded")
    assert "refs/overnight/r/discarded/2" in discarded.split()
    assert "VALUE = 9.0" in git(task, "show", "refs/overnight/r/discarded/2:train.py")
    assert "VALUE = 9.0" in (task / ".overnight/r/experiments/0002/diff.patch").read_text()
    # An uncompilable edit never ran: there is no run event for it.
    ran = {e["experiment"] for e in events(task, "r") if e["event"] == "run"}
    assert 7 not in ran and 8 not in ran
    transcript = json.loads((task / ".overnight/r/experiments/0007/transcript.json").read_text())
    assert "would not compile" in transcript["calls"][0]["output"]
    ambiguous = json.loads((task / ".overnight/r/experiments/0008/transcript.json").read_text())
    assert "matches 2 times" in ambiguous["calls"][0]["output"]
    assert "no match for old_str" in ambiguous["calls"][1]["output"]
    assert "VALUE = 3.0" in ambiguous["calls"][1]["output"]  # it shows the nearest line
    crash_output = (task / ".overnight/r/experiments/0003/output.txt").read_text()
    assert "exit 3" in crash_output
    # Other numbers from evaluate() are logged next to the metric.
    better_run = next(e for e in events(task, "r") if e["event"] == "run" and e["experiment"] == 1)
    assert better_run["metrics"] == {"loss": 3.0, "extra": 1.5} and better_run["protected"] is True


def test_printed_metric_and_fake_result_files_do_not_count_in_protected_mode(
    tmp_path, capsys, no_leftover_containers
):
    task = value_task(tmp_path)
    cheat = (
        TRAIN
        + """
print("loss: 0.0")
print("---\\nloss: -100")
with open(os.path.join(os.environ["OVERNIGHT_OUTPUT_DIR"], "result.json"), "w") as handle:
    handle.write('{"metrics": {"loss": -1000}}')
try:
    open("/overnight/result/result.json", "w").write('{"metrics": {"loss": -1000}}')
except OSError as err:
    print("cannot write the result channel:", err)
"""
    )
    script = write_script(
        tmp_path / "s.jsonl",
        [{"description": "cheat", "calls": [{"command": "write", "content": cheat}]}],
    )
    code, out = run_cli(
        "run",
        str(task),
        "--tag",
        "c",
        "--provider",
        "replay",
        "--script",
        str(script),
        capsys=capsys,
    )
    assert code == 0, out
    rows = results(task, "c")
    assert rows[1].metric == 5.0
    assert rows[1].status is Verdict.DISCARD


def test_inline_mode_reads_the_last_metric_line_and_is_marked_unprotected(
    tmp_path, capsys, no_leftover_containers
):
    prepare = 'METRIC = "val_bpb"\nDIRECTION = "minimize"\nTIME_BUDGET = 5\n'
    train = 'import prepare\nprint("val_bpb: 9.0")\nprint("---")\nprint("val_bpb:          1.25")\nprint("peak_vram_mb: 0.0")\n'
    task = committed_repo(
        write_task(
            tmp_path / "inline", {"program.md": "x", "prepare.py": prepare, "train.py": train}
        )
    )
    code, out = run_cli("run", str(task), "--tag", "i", "--max-experiments", "0", capsys=capsys)
    assert code == 0, out
    assert results(task, "i")[0].metric == 1.25
    code, out = run_cli("status", str(task), "--tag", "i", "--json", capsys=capsys)
    report = json.loads(out)
    assert report["protected"] is False
    code, out = run_cli("status", str(task), "--tag", "i", capsys=capsys)
    assert "UNPROTECTED" in out


def test_a_dirty_task_folder_is_refused_and_left_as_it_was(
    tmp_path, capsys, no_leftover_containers
):
    task = value_task(tmp_path)
    (task / "train.py").write_text(TRAIN + "# work in progress\n")
    (task / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in task.iterdir() if p.is_file()}
    code, out = run_cli("run", str(task), "--tag", "d", capsys=capsys)
    assert code == 2
    assert "uncommitted changes to train.py" in out and "commit or stash" in out
    assert {p.name: p.read_bytes() for p in task.iterdir() if p.is_file()} == before
    assert git(task, "branch", "--list", "overnight/*") == ""
    assert not (task / ".overnight").exists()
    assert git(task, "status", "--porcelain") == " M train.py\n?? notes.txt".strip()


def test_running_the_same_tag_again_continues_numbering_and_keeps_the_best(
    tmp_path, capsys, no_leftover_containers
):
    task = value_task(tmp_path)
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {"description": "to 4", "calls": [replace_value("VALUE = 4.0")]},
            {
                "description": "to 6",
                "calls": [
                    {"command": "str_replace", "old_str": "VALUE = 4.0", "new_str": "VALUE = 6.0"}
                ],
            },
            {
                "description": "to 2",
                "calls": [
                    {"command": "str_replace", "old_str": "VALUE = 4.0", "new_str": "VALUE = 2.0"}
                ],
            },
            {
                "description": "to 1",
                "calls": [
                    {"command": "str_replace", "old_str": "VALUE = 2.0", "new_str": "VALUE = 1.0"}
                ],
            },
        ],
    )
    args = ("run", str(task), "--tag", "twice", "--provider", "replay", "--script", str(script))
    code, out = run_cli(*args, "--max-experiments", "2", capsys=capsys)
    assert code == 0, out
    assert [r.experiment for r in results(task, "twice")] == [0, 1, 2]
    code, out = run_cli(*args, "--max-experiments", "4", capsys=capsys)
    assert code == 0, out
    rows = results(task, "twice")
    assert [r.experiment for r in rows] == [0, 1, 2, 3, 4]
    assert [r.description for r in rows] == ["baseline", "to 4", "to 6", "to 2", "to 1"]
    assert (
        sum(1 for e in events(task, "twice") if e["event"] == "run" and e["experiment"] == 0) == 1
    )
    assert [r.status.value for r in rows] == ["keep", "keep", "discard", "keep", "keep"]
    assert "VALUE = 1.0" in git(task, "show", "overnight/twice:train.py")
    code, out = run_cli("status", str(task), "--tag", "twice", "--json", capsys=capsys)
    report = json.loads(out)
    assert report["experiments"] == 4
    assert report["counts"] == {"keep": 4, "discard": 1}
    assert report["baseline"]["metric"] == 5.0
    assert report["best"] | {} == report["best"] and report["best"]["metric"] == 1.0
    assert report["best"]["experiment"] == 4 and report["protected"] is True


def test_a_baseline_without_a_metric_stops_with_the_path_to_its_output(
    tmp_path, capsys, no_leftover_containers
):
    task = value_task(tmp_path)
    (task / "train.py").write_text("raise RuntimeError('boom')\n")
    git(task, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qam", "broken")
    code, out = run_cli("run", str(task), "--tag", "b", capsys=capsys)
    assert code == 2
    assert "baseline gave no valid metric" in out and "output.txt" in out
    assert "RuntimeError: boom" in (task / ".overnight/b/experiments/0000/output.txt").read_text()
    assert [r.status for r in results(task, "b")] == [Verdict.CRASH]


@pytest.mark.parametrize(
    "toml, message",
    [
        ("colour = 'red'\n", "overnight.toml: colour: remove it"),
        ("[sandbox]\nmemory = 'lots'\n", "overnight.toml: sandbox.memory"),
        ("direction = 'sideways'\n", "overnight.toml: direction"),
    ],
)
def test_bad_settings_get_one_line_naming_the_file(tmp_path, capsys, toml, message):
    task = value_task(tmp_path, **{"overnight.toml": toml})
    code, out = run_cli("validate", str(task), capsys=capsys)
    assert code == 2
    assert message in out


def test_validate_says_what_a_run_would_do(tmp_path, capsys, docker_client):
    task = value_task(tmp_path)
    code, out = run_cli("validate", str(task), capsys=capsys)
    assert code == 0, out
    assert "metric: loss (minimize)" in out
    assert "scoring: protected" in out
    assert "hard timeout: 62s" in out
    assert "evaluator output: kept from the agent" in out
    assert "ok: ready to run" in out
    assert not (task / ".overnight").exists()
    # What the agent and the ledger see, when a task author changes it.
    (task / "overnight.toml").write_text(
        "show_evaluator_output = true\nmetric_digits = 3\n"
        '[agent]\nprovider = "anthropic"\nmodel = "claude-x"\nrepair_attempts = 2\n'
    )
    git(task, "add", "overnight.toml")
    git(task, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "settings")
    code, out = run_cli("validate", str(task), capsys=capsys)
    assert "evaluator output: SHOWN to the agent" in out
    assert "metric digits: the agent, the ledger and the decision see 3 significant" in out
    assert "agent: anthropic, model claude-x, repairs a crash 2x" in out


def test_repository_hooks_never_run(tmp_path, capsys, no_leftover_containers):
    task = value_task(tmp_path)
    marker = tmp_path / "hook-ran"
    hooks = task / ".git" / "hooks"
    for hook in (
        "pre-commit",
        "commit-msg",
        "post-commit",
        "post-checkout",
        "reference-transaction",
    ):
        (hooks / hook).write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        (hooks / hook).chmod(0o755)
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {"description": "keep", "calls": [replace_value("VALUE = 1.0")]},
            {
                "description": "discard",
                "calls": [
                    {"command": "str_replace", "old_str": "VALUE = 1.0", "new_str": "VALUE = 8.0"}
                ],
            },
        ],
    )
    code, out = run_cli(
        "run",
        str(task),
        "--tag",
        "h",
        "--provider",
        "replay",
        "--script",
        str(script),
        capsys=capsys,
    )
    assert code == 0, out
    assert [r.status.value for r in results(task, "h")] == ["keep", "keep", "discard"]
    assert not marker.exists()


def start_night(task, script):
    """`overnight run` in its own process, as a user starts it from a terminal."""
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(task),
        "--tag",
        "sig",
        "--provider",
        "replay",
        "--script",
        str(script),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_training(night, task, docker_client, experiment: int) -> None:
    """Until the candidate of `experiment` is committed and its training container runs."""
    deadline = time.monotonic() + 60
    diff = task / f".overnight/sig/experiments/{experiment:04d}/diff.patch"
    while not diff.exists():
        assert time.monotonic() < deadline and night.poll() is None, "the candidate never started"
        time.sleep(0.1)
    training = {"label": [f"org.overnight.pid={night.pid}", "org.overnight.purpose=train"]}
    while not docker_client.containers.list(ignore_removed=True, filters=training):
        assert time.monotonic() < deadline, "no training container for the candidate"
        time.sleep(0.1)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_one_signal_finishes_the_current_experiment_then_stops(tmp_path, docker_client, signum):
    task = value_task(tmp_path)
    slow_better = {
        "command": "write",
        "content": TRAIN.replace("VALUE = 5.0", "import time\ntime.sleep(3)\nVALUE = 2.0"),
    }
    never = {"command": "str_replace", "old_str": "VALUE = 2.0", "new_str": "VALUE = 1.0"}
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {"description": "slow but better", "calls": [slow_better]},
            {"description": "never proposed", "calls": [never]},
        ],
    )
    night = start_night(task, script)
    wait_for_training(night, task, docker_client, 1)
    night.send_signal(signum)
    out, _ = night.communicate(timeout=60)
    assert night.returncode == 0, out
    assert f"stopped by {signum.name}" in out
    rows = results(task, "sig")
    assert [(r.description, r.status.value) for r in rows] == [
        ("baseline", "keep"),
        ("slow but better", "keep"),
    ]
    assert "VALUE = 2.0" in git(task, "show", "overnight/sig:train.py")
    assert (
        docker_client.containers.list(
            ignore_removed=True, all=True, filters={"label": [f"org.overnight.pid={night.pid}"]}
        )
        == []
    )
    report = json.loads(
        subprocess.run(
            [sys.executable, "-m", "harness.cli", "status", str(task), "--json"],
            capture_output=True,
            text=True,
        ).stdout
    )
    assert report["state"] == "finished" and signum.name in report["reason"]


def test_a_second_ctrl_c_aborts_at_once_leaving_the_best_commit_and_no_container(
    tmp_path, docker_client
):
    task = value_task(tmp_path)
    hang = {"command": "insert", "insert_line": 0, "new_str": "import time\ntime.sleep(600)"}
    script = write_script(tmp_path / "s.jsonl", [{"description": "hang", "calls": [hang]}])
    night = start_night(task, script)
    wait_for_training(night, task, docker_client, 1)
    night.send_signal(signal.SIGINT)
    # The second Ctrl-C goes in once the first one has been heard.
    deadline = time.monotonic() + 30
    log = task / ".overnight/sig/events.jsonl"
    while '"event": "stop_requested"' not in log.read_text():
        assert time.monotonic() < deadline, "the first SIGINT was never heard"
        time.sleep(0.05)
    night.send_signal(signal.SIGINT)
    out, _ = night.communicate(timeout=30)
    assert night.returncode == 130, out
    assert "aborted" in out and "Run the same tag again" in out
    assert (
        docker_client.containers.list(
            ignore_removed=True, all=True, filters={"label": [f"org.overnight.pid={night.pid}"]}
        )
        == []
    )
    baseline = results(task, "sig")[0]
    assert [r.experiment for r in results(task, "sig")] == [0]
    assert git(task, "rev-parse", "--short=7", "overnight/sig") == baseline.commit
    assert "refs/overnight/sig/discarded/1" in git(task, "for-each-ref", "--format=%(refname)")
    assert any(e["event"] == "interrupted" for e in events(task, "sig"))
