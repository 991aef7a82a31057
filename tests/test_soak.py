"""Soak: a thousand experiments in one night, on a task whose experiment is instant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import committed_repo, results, write_task

INSTANT_PREPARE = 'METRIC = "score"\nDIRECTION = "maximize"\nTIME_BUDGET = 5\n'
INSTANT_TRAIN = """A = 1.0
B = 2.0
C = 3
D = 0.5
E = 10
score = -(A - 1.7) ** 2 - (B - 0.3) ** 2 - (C - 7) ** 2 / 10 - (D - 0.9) ** 2 - ((E - 40) / 40) ** 2
print(f"score: {score}")
"""


def instant_task(folder: Path) -> Path:
    """An inline task: one container per experiment, and the experiment itself takes no time."""
    return committed_repo(
        write_task(
            folder,
            {
                "program.md": "Raise the score.\n",
                "prepare.py": INSTANT_PREPARE,
                "train.py": INSTANT_TRAIN,
            },
        )
    )


def sample(pid: int) -> tuple[int, int]:
    """(resident memory in KiB, open file descriptors) of a live process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def test_a_thousand_experiments_keep_memory_flat_and_leak_nothing(tmp_path, docker_client):
    task = instant_task(tmp_path / "instant")
    ledger = task / ".overnight/soak/results.tsv"
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(task),
        "--tag",
        "soak",
        "--max-experiments",
        "1000",
        "--seed",
        "7",
    ]
    night = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # Samples over two windows of 50 experiments; the least of each is what the harness holds
    # between steps (a Docker call in flight holds a socket for a moment, a leak holds it forever).
    windows: dict[int, list[tuple[int, int]]] = {100: [], 850: []}
    while night.poll() is None:
        rows = ledger.read_text().count("\n") - 1 if ledger.exists() else 0
        for start, taken in windows.items():
            if start <= rows < start + 50:
                taken.append(sample(night.pid))
        time.sleep(0.25)
    out = night.stdout.read() if night.stdout else ""
    assert night.returncode == 0, out
    assert "reached --max-experiments 1000" in out

    rows = results(task, "soak")
    assert [r.experiment for r in rows] == list(range(1001))
    assert all(windows.values()), "the night went too fast to sample"
    rss_100, rss_900 = (min(rss for rss, _ in windows[start]) for start in (100, 850))
    fds_100, fds_900 = (min(fds for _, fds in windows[start]) for start in (100, 850))
    assert rss_900 - rss_100 < 30 * 1024, f"memory grew from {rss_100} to {rss_900} KiB"
    assert fds_900 <= fds_100 + 3, f"file descriptors grew from {fds_100} to {fds_900}"
    mine = {"label": [f"org.overnight.pid={night.pid}"]}
    assert docker_client.containers.list(ignore_removed=True, all=True, filters=mine) == []
    status = subprocess.run(
        [sys.executable, "-m", "harness.cli", "status", str(task), "--json"],
        capture_output=True,
        text=True,
    )
    report = json.loads(status.stdout)
    assert report["experiments"] == 1000 and report["state"] == "finished"
    assert sum(report["counts"].values()) == 1001
    assert report["best"]["metric"] > rows[0].metric
