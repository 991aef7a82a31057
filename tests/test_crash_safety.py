"""A night that survives anything: killed at every step, an engine that vanishes or hangs, a full disk."""

from __future__ import annotations

import json
import os
import shutil
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
from docker_proxy import DockerProxy
from test_night import PREPARE, TRAIN, value_task

from harness.crashpoints import EXIT_CODE
from harness.status import status_report

QUICK_PAUSES = (
    "[night]\npause_first_delay = 0.3\npause_max_delay = 1\nmax_pause_minutes = 0.1\n"
    "[sandbox]\napi_timeout = 2\n"
)


def overnight(
    *args: str, env: dict | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    """`overnight ARGS` in its own process, as a user (or their crashing laptop) runs it."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def night_state(task, tag: str) -> dict:
    rows = [(r.experiment, r.metric, r.status.value, r.description) for r in results(task, tag)]
    return {
        "rows": rows,
        "train.py": git(task, "show", f"overnight/{tag}:train.py"),
        "kept commits": git(task, "rev-list", "--count", f"overnight/{tag}"),
    }


def test_killed_at_any_step_boundary_a_resumed_night_ends_as_an_uninterrupted_one(
    tmp_path, docker_client
):
    """OVERNIGHT_CRASH_AT=N makes the harness die abruptly at its N-th step; then it is resumed."""
    reference = copy_quickstart(tmp_path / "reference")
    args = ("--max-experiments", "2", "--seed", "0")
    done = overnight("run", str(reference), "--tag", "boundary", *args)
    assert done.returncode == 0, done.stderr
    expected = night_state(reference, "boundary")
    assert [row[2] for row in expected["rows"]] == ["keep", "discard", "keep"]

    boundary = 1
    while True:
        task = copy_quickstart(tmp_path / f"crash-{boundary}")
        crashed = overnight(
            "run", str(task), "--tag", "boundary", *args, env={"OVERNIGHT_CRASH_AT": str(boundary)}
        )
        if crashed.returncode == 0:
            break  # past the last boundary: the whole night ran
        assert crashed.returncode == EXIT_CODE, crashed.stderr
        assert f"injected crash at step {boundary}" in crashed.stderr
        status = status_report(task, "boundary")
        assert status["state"] == "dead" and "resumes it" in status["reason"]
        resumed = overnight("run", str(task), "--tag", "boundary", *args)
        assert resumed.returncode == 0, (boundary, resumed.stderr)
        assert night_state(task, "boundary") == expected, f"crash at step {boundary}"
        assert git(task, "status", "--porcelain") == ""
        boundary += 1
    assert boundary > 12  # setup, baseline and every step of two experiments were crossed
    left = docker_client.containers.list(
        ignore_removed=True, all=True, filters={"label": ["org.overnight"]}
    )
    assert [c for c in left if c.labels.get("org.overnight.run", "").startswith("boundary-")] == []


def test_kill_9_during_a_long_experiment_the_container_dies_on_time_and_the_night_resumes(
    tmp_path, docker_client
):
    task = value_task(tmp_path, **{"overnight.toml": "timeout = 3\n"})
    hang = {"command": "insert", "insert_line": 0, "new_str": "import time\ntime.sleep(600)"}
    script = write_script(tmp_path / "s.jsonl", [{"description": "hang", "calls": [hang]}])
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(task),
        "--tag",
        "k",
        "--provider",
        "replay",
        "--script",
        str(script),
    ]
    night = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    training = {"label": [f"org.overnight.pid={night.pid}", "org.overnight.purpose=train"]}
    deadline = time.monotonic() + 60
    while not (
        task / ".overnight/k/experiments/0001/diff.patch"
    ).exists() or not docker_client.containers.list(ignore_removed=True, filters=training):
        assert time.monotonic() < deadline and night.poll() is None
        time.sleep(0.1)
    killed_at = time.monotonic()
    night.send_signal(signal.SIGKILL)
    night.wait()
    # Nobody is left to enforce the deadline from outside; the container still dies by it.
    while docker_client.containers.list(ignore_removed=True, filters=training):
        assert time.monotonic() - killed_at < 3 + 5 + 5, "the container outlived its deadline"
        time.sleep(0.2)
    assert (
        json.loads(overnight("status", str(task), "--tag", "k", "--json").stdout)["state"] == "dead"
    )

    resumed = overnight(
        "run", str(task), "--tag", "k", "--provider", "replay", "--script", str(script)
    )
    assert resumed.returncode == 0, resumed.stderr
    assert [(r.description, r.status.value) for r in results(task, "k")] == [
        ("baseline", "keep"),
        ("hang", "timeout"),
    ]
    assert "VALUE = 5.0" in git(task, "show", "overnight/k:train.py")
    mine = {"label": [f"org.overnight.pid={night.pid}"]}
    assert (
        docker_client.containers.list(ignore_removed=True, all=True, filters=mine) == []
    )  # removed at the restart
    assert any(e["event"] == "reconciled" for e in events(task, "k"))


def test_a_stale_index_lock_is_removed_but_a_held_one_is_not(tmp_path, capsys):
    task = value_task(tmp_path)
    code, out = run_cli("run", str(task), "--tag", "l", "--max-experiments", "0", capsys=capsys)
    assert code == 0, out
    lock = tmp_path / "task/.git/worktrees/worktree/index.lock"
    assert lock.parent.is_dir()
    lock.write_text("")
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {
                "description": "to 1",
                "calls": [
                    {"command": "str_replace", "old_str": "VALUE = 5.0", "new_str": "VALUE = 1.0"}
                ],
            }
        ],
    )
    args = ("run", str(task), "--tag", "l", "--provider", "replay", "--script", str(script))
    with open(lock, "w"):  # a live process holds it: not ours to remove
        code, out = run_cli(*args, capsys=capsys)
    assert code == 2 and "index.lock" in out
    assert lock.exists()
    code, out = run_cli(*args, capsys=capsys)  # now nobody holds it: stale, removed
    assert code == 0, out
    assert not lock.exists()
    assert [r.status.value for r in results(task, "l")] == ["keep", "keep"]


def test_a_torn_ledger_line_is_dropped_and_its_experiment_run_again(tmp_path, capsys):
    task = copy_quickstart(tmp_path)
    code, out = run_cli("run", str(task), "--tag", "t", "--max-experiments", "2", capsys=capsys)
    assert code == 0, out
    ledger = task / ".overnight/t/results.tsv"
    ledger.write_text(ledger.read_text() + "3\tabc1234\t1.1")  # the power failed mid-write
    code, out = run_cli("run", str(task), "--tag", "t", "--max-experiments", "3", capsys=capsys)
    assert code == 0, out
    assert [r.experiment for r in results(task, "t")] == [0, 1, 2, 3]
    assert all(len(line.split("\t")) == 8 for line in ledger.read_text().splitlines())


def test_an_unreachable_engine_pauses_the_night_then_stops_it_cleanly(tmp_path):
    task = value_task(tmp_path, **{"overnight.toml": QUICK_PAUSES})
    gone = overnight(
        "run", str(task), "--tag", "u", env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    )
    assert gone.returncode == 3, gone.stderr
    assert "paused:" in gone.stderr and "cannot reach the Docker engine" in gone.stderr
    assert "stopped:" in gone.stdout and "Fix it and run the same tag again" in gone.stdout
    assert results(task, "u") == []
    assert git(task, "branch", "--list", "overnight/u") == ""
    report = json.loads(overnight("status", str(task), "--tag", "u", "--json").stdout)
    assert report["state"] == "stopped" and report["experiments"] == 0
    pauses = [e for e in events(task, "u") if e["event"] == "pause"]
    assert len(pauses) >= 2


def test_an_engine_that_hangs_pauses_the_night_and_it_goes_on_when_the_engine_answers(
    tmp_path, docker_client
):
    task = value_task(tmp_path, **{"overnight.toml": QUICK_PAUSES.replace("0.1", "1")})
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {
                "description": "to 1",
                "calls": [
                    {"command": "str_replace", "old_str": "VALUE = 5.0", "new_str": "VALUE = 1.0"}
                ],
            }
        ],
    )
    proxy = DockerProxy(tmp_path / "docker.sock").start()
    try:
        proxy.hang_on_create(5, seconds=5)  # a create call in the middle of the night hangs
        done = overnight(
            "run",
            str(task),
            "--tag",
            "hung-engine",
            "--provider",
            "replay",
            "--script",
            str(script),
            env={"DOCKER_HOST": proxy.url},
        )
    finally:
        proxy.stop()
    assert done.returncode == 0, done.stderr
    assert proxy.creates_seen > 5
    kinds = [e["event"] for e in events(task, "hung-engine")]
    assert "pause" in kinds and "resume" in kinds
    assert [(r.description, r.status.value) for r in results(task, "hung-engine")] == [
        ("baseline", "keep"),
        ("to 1", "keep"),
    ]
    assert "VALUE = 1.0" in git(task, "show", "overnight/hung-engine:train.py")
    left = docker_client.containers.list(
        ignore_removed=True, all=True, filters={"label": ["org.overnight.run"]}
    )
    assert [c.name for c in left if c.labels["org.overnight.run"].startswith("hung-engine-")] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small filesystem needs root")
def test_a_nearly_full_disk_starts_no_experiment_and_leaves_the_state_readable(tmp_path, capsys):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(small)], check=True)
    try:
        settings = QUICK_PAUSES.replace("[night]\n", '[night]\nmin_free_disk = "8m"\n')
        task = committed_repo(
            write_task(
                small / "task",
                {
                    "program.md": "x",
                    "prepare.py": PREPARE,
                    "train.py": TRAIN,
                    "overnight.toml": settings,
                },
            )
        )
        done = overnight("run", str(task), "--tag", "d", "--max-experiments", "0")
        assert done.returncode == 0, done.stderr
        free = shutil.disk_usage(small).free
        (small / "ballast").write_bytes(b"\0" * (free - 4 * 2**20))  # leave 4 MiB, below 8 MiB
        script = write_script(
            tmp_path / "s.jsonl",
            [
                {
                    "description": "to 1",
                    "calls": [
                        {
                            "command": "str_replace",
                            "old_str": "VALUE = 5.0",
                            "new_str": "VALUE = 1.0",
                        }
                    ],
                }
            ],
        )
        full = overnight(
            "run", str(task), "--tag", "d", "--provider", "replay", "--script", str(script)
        )
        assert full.returncode == 3, full.stderr
        assert "min_free_disk" in full.stderr
        assert [r.experiment for r in results(task, "d")] == [0]
        report = json.loads(overnight("status", str(task), "--tag", "d", "--json").stdout)
        assert report["state"] == "stopped" and "free" in report["reason"]
        assert report["experiments"] == 0 and report["best"]["metric"] == 5.0
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_a_damaged_repository_after_an_unclean_stop_is_refused_with_what_to_do(tmp_path, capsys):
    task = value_task(tmp_path)
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {
                "description": "to 1",
                "calls": [
                    {"command": "str_replace", "old_str": "VALUE = 5.0", "new_str": "VALUE = 1.0"}
                ],
            }
        ],
    )
    args = ("run", str(task), "--tag", "f", "--provider", "replay", "--script", str(script))
    code, out = run_cli(*args, "--max-experiments", "1", capsys=capsys)
    assert code == 0, out
    # The power failed: the run never said it stopped, and the kept commit's tree was lost.
    (task / ".overnight/f/state.json").write_text('{"state": "running", "pid": 1}\n')
    tree = git(task, "rev-parse", "overnight/f^{tree}")
    (task / ".git/objects" / tree[:2] / tree[2:]).unlink()
    code, out = run_cli(*args, "--max-experiments", "2", capsys=capsys)
    assert code == 2
    assert "`git fsck` found problems" in out and "repair the repository" in out
    assert [r.experiment for r in results(task, "f")] == [0, 1]
