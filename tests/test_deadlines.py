"""The hard deadline holds whatever train.py does to the processes it can see, even with the
harness killed: nights through the real CLI, killed with SIGKILL mid-experiment, then resumed."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import committed_repo, results, write_script, write_task

from sandbox.deadline import GRACE_S

TIMEOUT, EVAL_TIMEOUT, API_TIMEOUT = 4, 6, 3
SETTINGS = (
    f"timeout = {TIMEOUT}\n[sandbox]\neval_timeout = {EVAL_TIMEOUT}\napi_timeout = {API_TIMEOUT}\n"
)
# The keeper of the output volume lives as long as the experiment may (Experimenter.lifetime).
KEEPER_LIFETIME = TIMEOUT + EVAL_TIMEOUT + 2 * GRACE_S + 4 * API_TIMEOUT
SLACK = 4  # for the engine to stop and remove a container on a loaded machine

# Everything a hostile train.py might try on the processes it can see. NAME is a token the test
# finds in the host's /proc/*/comm, so it can tell whether the heartbeat still runs.
ATTACKS = """
import ctypes, os, signal, time

libc = ctypes.CDLL(None, use_errno=True)


def stop_everyone():
    me = os.getpid()
    for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        if pid == me:
            continue
        try:
            os.kill(pid, signal.SIGSTOP)
            print("sent SIGSTOP to", pid, flush=True)
        except OSError as err:
            print("could not stop", pid, err, flush=True)


def trace_everyone():
    me = os.getpid()
    for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        if pid != me:
            attached = libc.ptrace(16, pid, 0, 0) == 0  # PTRACE_ATTACH
            print("ptrace", pid, "attached" if attached else "refused", flush=True)
            if attached:
                libc.ptrace(17, pid, 0, 0)  # PTRACE_DETACH


def leave_heartbeat():
    if os.fork():
        time.sleep(0.5)
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    libc.prctl(15, NAME.encode(), 0, 0, 0)  # PR_SET_NAME: what the host's /proc shows
    while True:
        print("heartbeat", flush=True)
        time.sleep(0.2)


def attack():
    stop_everyone()
    trace_everyone()
    leave_heartbeat()
    time.sleep(600)
"""

PREPARE = """
import os

METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = 1


def evaluate(output_dir):
    with open(os.path.join(output_dir, "value.txt")) as handle:
        return {"loss": float(handle.read())}
"""

PREPARE_CALLING_TRAIN = """
import os

from overnight_eval import call_train

METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = 1


def evaluate(output_dir):
    return {"loss": float(call_train("solve", timeout=600))}
"""

TRAIN = """import os
{attacks}
ATTACK_IN_TRAINING = False
ATTACK_IN_SOLVE = False


def solve():
    if ATTACK_IN_SOLVE:
        attack()
    return 5.0


if __name__ == "__main__":
    if ATTACK_IN_TRAINING:
        attack()
    with open(os.path.join(os.environ["OVERNIGHT_OUTPUT_DIR"], "value.txt"), "w") as handle:
        handle.write("5.0")
"""


def hostile_task(tmp_path: Path, prepare: str) -> tuple[Path, str]:
    name = f"hb{uuid.uuid4().hex[:8]}"
    train = TRAIN.format(attacks=f"NAME = {name!r}\n" + ATTACKS)
    files = {"program.md": "Make loss small.\n", "prepare.py": prepare, "train.py": train}
    files["overnight.toml"] = SETTINGS
    return committed_repo(write_task(tmp_path / "task", files)), name


def night_command(task: Path, script: Path) -> list[str]:
    night = [sys.executable, "-m", "harness.cli", "run", str(task), "--tag", "d"]
    return [*night, "--provider", "replay", "--script", str(script)]


def heartbeats(name: str) -> list[int]:
    """The processes of this machine named `name` (container processes are the host's too)."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == name:
                found.append(int(comm.parent.name))
        except OSError:
            continue
    return found


def containers_of(docker_client, pid: int, running_only: bool = False):
    filters = {"label": [f"org.overnight.pid={pid}"]}
    return docker_client.containers.list(all=not running_only, ignore_removed=True, filters=filters)


class EngineEvents:
    """The engine's container events from now on, collected as they happen (the engine keeps
    only its last few hundred for a later query, and other nights share it)."""

    def __init__(self, docker_client) -> None:
        self.seen: list[dict] = []
        self._stream = docker_client.events(filters={"type": "container"}, decode=True)
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        with contextlib.suppress(Exception):  # closed by close()
            for event in self._stream:
                self.seen.append(event)

    def of(self, pid: int, purpose: str) -> list[tuple[str, str, str | None]]:
        """(container id, action, exit code) for the containers of `purpose` the night made."""
        wanted = {"org.overnight.pid": str(pid), "org.overnight.purpose": purpose}
        return [
            (e["id"], e["Action"], e["Actor"]["Attributes"].get("exitCode"))
            for e in self.seen
            if wanted.items() <= e["Actor"]["Attributes"].items()
        ]

    def close(self) -> None:
        self._stream.close()


def kill_night_when(docker_client, night: subprocess.Popen, purpose: str, name: str) -> float:
    """SIGKILL the harness once a container of `purpose` runs and the attack's heartbeat beats."""
    wanted = {"label": [f"org.overnight.pid={night.pid}", f"org.overnight.purpose={purpose}"]}
    give_up = time.monotonic() + 120
    while not (docker_client.containers.list(filters=wanted) and heartbeats(name)):
        assert night.poll() is None, "the night ended before the attack ran"
        assert time.monotonic() < give_up, "the attack never started"
        time.sleep(0.1)
    night.send_signal(signal.SIGKILL)
    # Not reaped yet: a zombie holds its pid, so the sweep for leftovers that any other night on
    # this engine makes at its start takes the harness for alive and leaves its containers to
    # their own deadlines, which is what this test watches.
    while Path(f"/proc/{night.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    return time.monotonic()


def assert_all_gone_in_time(docker_client, pid: int, name: str, killed_at: float, limit: float):
    """Nothing of the run is left: no heartbeat, no container running or stopped."""
    while heartbeats(name) or containers_of(docker_client, pid, running_only=True):
        assert time.monotonic() - killed_at < limit, (
            f"still there {limit:.0f}s after the harness died: heartbeats {heartbeats(name)}, "
            f"containers {[c.labels.get('org.overnight.purpose') for c in containers_of(docker_client, pid)]}"
        )
        time.sleep(0.2)
    # A container's deadline is its end: the engine removes it then, nobody else has to.
    while containers_of(docker_client, pid):
        assert time.monotonic() - killed_at < limit + SLACK, "an ended container was left"
        time.sleep(0.2)


@pytest.mark.parametrize(
    "flag, purpose",
    [("ATTACK_IN_TRAINING", "train"), ("ATTACK_IN_SOLVE", "evaluate")],
    ids=["in-training", "in-a-call_train-worker"],
)
def test_a_hostile_run_cannot_switch_off_the_deadline_even_with_the_harness_killed(
    tmp_path, docker_client, flag, purpose
):
    prepare = PREPARE if purpose == "train" else PREPARE_CALLING_TRAIN
    task, name = hostile_task(tmp_path, prepare)
    flip = {"command": "str_replace", "old_str": f"{flag} = False", "new_str": f"{flag} = True"}
    script = write_script(tmp_path / "s.jsonl", [{"description": "fight", "calls": [flip]}])

    engine = EngineEvents(docker_client)
    night = subprocess.Popen(
        night_command(task, script), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    killed_at = kill_night_when(docker_client, night, purpose, name)
    # The run's own container ends by its inner deadline; the output volume's keeper by the
    # experiment's lifetime, both counted from before the kill.
    deadline = TIMEOUT if purpose == "train" else EVAL_TIMEOUT
    assert_all_gone_in_time(
        docker_client, night.pid, name, killed_at, max(deadline + GRACE_S, KEEPER_LIFETIME) + SLACK
    )
    night.wait()
    # It ended by itself, at its inner deadline: nobody killed it through the engine.
    seen = engine.of(night.pid, purpose)
    engine.close()
    attacked = seen[-1][0]  # the last one the night made, where the attack ran
    ends = [(action, code) for container, action, code in seen if container == attacked]
    assert ("die", "124") in ends and not any(action == "kill" for action, _ in ends), ends

    resumed = subprocess.run(
        night_command(task, script), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    rows = [(r.description, r.status.value) for r in results(task, "d")]
    expected = "timeout" if purpose == "train" else "invalid"
    assert rows == [("baseline", "keep"), ("fight", expected)]
    assert heartbeats(name) == [] and containers_of(docker_client, night.pid) == []


def test_ptrace_and_sigstop_of_pid_1_fail_and_the_deadline_holds_with_the_harness_alive(
    tmp_path, docker_client, no_leftover_containers
):
    task, name = hostile_task(tmp_path, PREPARE)
    flip = {
        "command": "str_replace",
        "old_str": "ATTACK_IN_TRAINING = False",
        "new_str": "ATTACK_IN_TRAINING = True",
    }
    script = write_script(tmp_path / "s.jsonl", [{"description": "fight", "calls": [flip]}])
    started = time.monotonic()
    night = subprocess.run(night_command(task, script), capture_output=True, text=True, timeout=300)
    assert night.returncode == 0, night.stderr
    assert [r.status.value for r in results(task, "d")] == ["keep", "timeout"]
    output = (task / ".overnight/d/experiments/0001/output.txt").read_text()
    assert "ptrace 1 refused" in output and "ptrace 1 attached" not in output
    assert "sent SIGSTOP to 1" in output  # the kernel takes it, and PID 1 ignores it
    assert "heartbeat" in output
    assert heartbeats(name) == []
    assert time.monotonic() - started < 120


def test_memory_gb_in_the_ledger_is_the_peak_of_the_training_run(tmp_path, no_leftover_containers):
    train = """import os, time

block = b"x" * (200 << 20)  # 200 MB, every page touched
time.sleep(0.5)
with open(os.path.join(os.environ["OVERNIGHT_OUTPUT_DIR"], "value.txt"), "w") as handle:
    handle.write("5.0")
"""
    files = {"program.md": "Small loss.\n", "prepare.py": PREPARE, "train.py": train}
    files["overnight.toml"] = '[sandbox]\nmemory = "1g"\n'
    task = committed_repo(write_task(tmp_path / "task", files))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            str(task),
            "--tag",
            "m",
            "--max-experiments",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (baseline,) = results(task, "m")
    assert 0.15 <= baseline.memory_gb < 1.0
    line = (task / ".overnight/m/results.tsv").read_text().splitlines()[1]
    assert line.split("\t")[3] == f"{baseline.memory_gb:.1f}"
    report = (task / ".overnight/m/report.md").read_text()
    assert f"peak memory**: {baseline.memory_gb:.1f} GB" in report
