"""Under --sandbox local there is no pid namespace: killing a call_train worker must kill what
the worker started, even in a session of its own, and nothing else of its uid on the machine
(another night's workers, or a container's processes that share the uid)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import committed_repo, results, run_cli, write_task

from harness.seams import Verdict
from sandbox.users import worker_ids

PREPARE = """
from overnight_eval import call_train

METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = 1


def evaluate(output_dir):
    call_train("spawn")
    return {"loss": 1.0}
"""

TRAIN = """
import os


def spawn():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", "MARKER"])
        os._exit(0)
    return None
"""


def sleepers(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", marker.encode()]:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(os.getuid() != 0, reason="workers get their own uid only when run as root")
def test_a_local_worker_is_killed_with_what_it_started_and_no_other_process_of_its_uid(tmp_path):
    marker, bystander_marker = "3601.25", "3602.75"
    task = committed_repo(
        write_task(
            tmp_path / "task",
            {
                "program.md": "x\n",
                "prepare.py": PREPARE,
                "train.py": TRAIN.replace("MARKER", marker),
            },
        )
    )
    uid, gid = worker_ids()
    bystander = subprocess.Popen(["sleep", bystander_marker], user=uid, group=gid, extra_groups=[])
    try:
        code = run_cli(
            "run", str(task), "--tag", "w", "--sandbox", "local", "--max-experiments", "0"
        )[0]
        assert code == 0
        assert results(task, "w")[0].status is Verdict.KEEP
        give_up = time.monotonic() + 10
        while sleepers(marker) and time.monotonic() < give_up:  # a SIGKILLed process may linger
            time.sleep(0.05)
        assert sleepers(marker) == []  # what the worker started, in its own session: gone
        assert bystander.poll() is None  # the same uid, not ours: alive
    finally:
        bystander.kill()
        bystander.wait()
        for pid in sleepers(marker):
            os.kill(pid, 9)
