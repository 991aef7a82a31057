"""--workers N: several experiments at once on one machine, as a user with more GPUs runs them.

A task whose training sleeps (so 2 CPU cores are not what limits it) shows the overlap; every
promise of a one-worker night is checked with N running: a linear branch of measured train.py
files, numbers without gaps, budgets that count started experiments, a first Ctrl-C that lets
the running ones finish, and a `kill -9` after which a rerun ends as an uninterrupted night.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import committed_repo, events, git, results, write_script, write_task

from harness.config import resolve_settings
from harness.errors import TaskError
from harness.overrides import Overrides
from harness.sizes import ByteSize
from harness.status import format_status, status_report
from harness.task import load_task
from harness.workers import DevicePool, Machine, PlanError, gpu_slots, plan_workers

PREPARE = """
import os

METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = 10


def evaluate(output_dir):
    with open(os.path.join(output_dir, "value.txt")) as handle:
        text = handle.read()
    if len(text) > 64:
        raise ValueError("value.txt is not one number")
    return {"loss": float(text)}
"""

TRAIN = """import os
import time

VALUE = 10.0
SLEEP = 1.0

time.sleep(SLEEP)
with open(os.path.join(os.environ["OVERNIGHT_OUTPUT_DIR"], "value.txt"), "w") as handle:
    handle.write(str(VALUE))
"""

CONFIG = """
[sandbox]
memory = "256m"
output_dir_size = "16m"
tmpfs = "16m"
"""


def sleeping_task(folder: Path, config: str = CONFIG) -> Path:
    files = {
        "program.md": "Make loss small. Lower is better.\n",
        "prepare.py": PREPARE,
        "train.py": TRAIN,
        "overnight.toml": config,
    }
    return committed_repo(write_task(folder, files))


def version(value: float, sleep: float) -> dict:
    """A proposal that writes the whole train.py: the same file whatever it was proposed from."""
    source = TRAIN.replace("VALUE = 10.0", f"VALUE = {value}").replace(
        "SLEEP = 1.0", f"SLEEP = {sleep}"
    )
    return {
        "description": f"value {value}, sleep {sleep}",
        "calls": [{"command": "write", "content": source}],
    }


# #1 is slow (20 s, room for three short ones on a loaded machine), so #2, #3 and #4 are decided
# before it: completion order 2, 3, 4, 1.
SCRIPT = [version(1.0, 20.0), version(5.0, 0.5), version(7.0, 0.5), version(3.0, 0.5)]


def overnight(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def our_containers(docker_client, tag: str) -> list:
    every = docker_client.containers.list(
        ignore_removed=True, all=True, filters={"label": ["org.overnight"]}
    )
    return [c for c in every if c.labels.get("org.overnight.run", "").startswith(f"{tag}-")]


def state(task: Path, tag: str) -> dict:
    """What a user checks in the morning, independent of the order rows were written in."""
    rows = sorted(
        (r.experiment, r.metric, r.status.value, r.description) for r in results(task, tag)
    )
    branch = git(task, "rev-list", f"overnight/{tag}").split()
    return {
        "rows": rows,
        "train.py": git(task, "show", f"overnight/{tag}:train.py"),
        "kept commits": len(branch),
    }


def assert_linear_and_measured(task: Path, tag: str) -> None:
    """Every commit on the branch above the user's is a kept, measured train.py."""
    rows = results(task, tag)
    kept = {r.commit[:7] for r in rows if r.status.value == "keep"}
    branch = git(task, "rev-list", "--abbrev-commit", "--abbrev=7", f"overnight/{tag}").split()
    assert set(branch[:-1]) <= kept, (branch, kept)
    assert git(task, "rev-list", "--merges", "--count", f"overnight/{tag}") == "0"


def test_two_workers_overlap_decide_in_completion_order_and_keep_a_linear_branch(
    tmp_path, docker_client
):
    task = sleeping_task(tmp_path / "task")
    script = write_script(tmp_path / "script.jsonl", SCRIPT)
    args = ("run", str(task), "--tag", "two", "--provider", "replay", "--script", str(script))
    done = overnight(*args, "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "workers: 2 workers at once" in done.stderr

    rows = results(task, "two")
    assert sorted(r.experiment for r in rows) == [0, 1, 2, 3, 4]  # no gap, no repeat
    assert [r.experiment for r in rows] == [0, 2, 3, 4, 1]  # in the order they completed
    statuses = {r.experiment: r.status.value for r in rows}
    # Each against the best of its moment: 5 beats 10, 7 does not beat 5, 3 beats 5, 1 beats 3.
    assert statuses == {0: "keep", 2: "keep", 3: "discard", 4: "keep", 1: "keep"}
    assert "VALUE = 1.0" in git(task, "show", "overnight/two:train.py")
    assert_linear_and_measured(task, "two")

    log = events(task, "two")
    started = [e for e in log if e["event"] == "started"]
    assert [e["experiment"] for e in started] == [1, 2, 3, 4]
    assert any(len(e["running"]) == 2 for e in started), "two experiments never overlapped"
    decided = [e for e in log if e["event"] == "decision" and e["experiment"] > 0]
    proposed_from = {e["experiment"]: e["proposed_from"] for e in decided}
    assert proposed_from[1] == 0 and proposed_from[2] == 0  # both proposed from the baseline
    assert proposed_from[3] == 2  # proposed once #2 was the best
    assert our_containers(docker_client, "two") == []

    from harness.report_data import load_night
    from harness.report_plot import _decided_at

    night = load_night(task / ".overnight" / "two")
    kept = [r for r in night.rows if r.status.value == "keep"]
    assert [r.experiment for r in kept] == [0, 2, 4, 1]
    assert _decided_at(night, kept) == [0, 2, 4, 4]  # the running best never steps backwards
    assert (task / ".overnight" / "two" / "progress.png").stat().st_size > 10_000
    report = (task / ".overnight" / "two" / "report.html").read_text()
    assert "value 1.0, sleep 20.0" in report


def test_a_model_agent_is_told_what_is_still_running(tmp_path):
    """The prompt's history names the experiments that other workers are measuring."""
    from harness.agents.prompt import history
    from harness.seams import (
        Direction,
        ExperimentRecord,
        ProposalContext,
        RunningExperiment,
        Verdict,
    )

    baseline = ExperimentRecord(0, "abc", 1.0, Verdict.KEEP, "baseline")
    context = ProposalContext(
        experiment=3,
        program="",
        prepare_source="",
        train_source="",
        metric="loss",
        direction=Direction.MINIMIZE,
        history=[baseline],
        best=baseline,
        running=(RunningExperiment(1, "halve the learning rate", 0),),
    )
    text = history(context)
    assert "Running now on other workers" in text
    assert "#1, proposed from #0: halve the learning rate" in text


def test_max_experiments_counts_started_ones_and_the_first_ctrl_c_lets_running_ones_finish(
    tmp_path, docker_client
):
    task = sleeping_task(tmp_path / "task")
    budget = overnight(
        "run", str(task), "--tag", "count", "--workers", "2", "--max-experiments", "3"
    )
    assert budget.returncode == 0, budget.stderr
    assert sorted(r.experiment for r in results(task, "count")) == [0, 1, 2, 3]

    slow = [version(9.0, 4.0), version(8.0, 4.0), version(7.0, 4.0), version(6.0, 4.0)]
    script = write_script(tmp_path / "slow.jsonl", slow)
    night = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(task), "--tag", "ctrl-c",
         "--provider", "replay", "--script", str(script), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    run_dir = task / ".overnight" / "ctrl-c"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (run_dir / "results.tsv").exists() and status_report(task, "ctrl-c").get("running") == [
            1,
            2,
        ]:
            break  # what `overnight status` says while both run
        time.sleep(0.1)
    else:
        night.kill()
        pytest.fail("two experiments never ran at once")
    assert "running now: #1, #2" in format_status(status_report(task, "ctrl-c"))
    night.send_signal(signal.SIGINT)
    _, stderr = night.communicate(timeout=120)
    assert night.returncode == 0, stderr
    assert "finishing the running experiments" in stderr
    rows = results(task, "ctrl-c")
    assert sorted(r.experiment for r in rows) == [0, 1, 2]  # both finished, nothing new began
    assert all(r.status.value in ("keep", "discard") for r in rows)
    assert our_containers(docker_client, "ctrl-c") == []


def test_kill_9_with_two_running_then_a_rerun_ends_as_an_uninterrupted_night(
    tmp_path, docker_client
):
    script = write_script(tmp_path / "script.jsonl", SCRIPT)
    reference = sleeping_task(tmp_path / "reference")
    replay = ("--provider", "replay", "--script", str(script), "--workers", "2")
    done = overnight("run", str(reference), "--tag", "k9", *replay)
    assert done.returncode == 0, done.stderr
    expected = state(reference, "k9")

    task = sleeping_task(tmp_path / "task")
    night = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(task), "--tag", "k9", *replay],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # #2 decided while the slow #1 still runs
        rows = results(task, "k9") if (task / ".overnight" / "k9" / "results.tsv").exists() else []
        if any(r.experiment == 2 for r in rows):
            break
        time.sleep(0.05)
    else:
        night.kill()
        pytest.fail("experiment 2 was never decided")
    night.send_signal(signal.SIGKILL)
    night.wait(timeout=30)
    saved = json.loads((task / ".overnight/k9/experiments/0001/candidate.json").read_text())

    resumed = overnight("run", str(task), "--tag", "k9", *replay)
    assert resumed.returncode == 0, resumed.stderr
    assert "run again from their saved train.py: #1" in resumed.stderr
    assert state(task, "k9") == expected
    started = [e["experiment"] for e in events(task, "k9") if e["event"] == "started"]
    assert set(started) == {1, 2, 3, 4} and started.count(1) == 2  # #1 ran again, from its file
    assert "VALUE = 1.0" in saved["source"]
    assert_linear_and_measured(task, "k9")
    assert git(task, "status", "--porcelain") == ""
    deadline = time.monotonic() + 30
    while our_containers(docker_client, "k9") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert our_containers(docker_client, "k9") == []


class _RecordingProxy:
    """Between the harness and the real engine: records the GPUs each container asks for and
    removes the request, so the containers run on a machine without GPUs."""

    def __init__(self, path: Path) -> None:
        import socket
        import threading

        self.path = path
        self.requests: list[tuple[str, list[str]]] = []  # (purpose, device ids)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        self._threading = threading
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client) -> None:
        import select
        import socket

        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        engine.connect("/var/run/docker.sock")
        pending = b""
        try:
            while True:
                readable, _, _ = select.select([client, engine], [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is engine:
                        client.sendall(data)
                        continue
                    pending += data
                    pending = self._forward_requests(pending, engine)
        except OSError:
            return
        finally:
            client.close()
            engine.close()

    def _forward_requests(self, pending: bytes, engine) -> bytes:
        """Send every complete request in `pending`; creates rewritten. Returns the rest."""
        while b"\r\n\r\n" in pending:
            head, _, rest = pending.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(rest) < length:
                return pending
            body, pending = rest[:length], rest[length:]
            if b"/containers/create" in lines[0] and body:
                body = self._strip_devices(body)
                lines = [
                    line for line in lines if not line.lower().startswith(b"content-length")
                ] + [b"Content-Length: " + str(len(body)).encode()]
            engine.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        return pending

    def _strip_devices(self, body: bytes) -> bytes:
        created = json.loads(body)
        requests = (created.get("HostConfig") or {}).pop("DeviceRequests", None) or []
        purpose = (created.get("Labels") or {}).get("org.overnight.purpose", "")
        ids = [i for r in requests for i in (r.get("DeviceIDs") or [])]
        self.requests.append((purpose, ids))
        return json.dumps(created).encode()

    def close(self) -> None:
        self._server.close()


def test_a_gpu_pool_gives_each_running_experiment_its_own_device_as_the_engine_sees_it(
    tmp_path, docker_client, monkeypatch
):
    config = CONFIG + "gpus = [0, 1]\ngpus_per_experiment = 1\n"
    task = sleeping_task(tmp_path / "task", config)
    settings = resolve_settings(load_task(task), Overrides())
    assert settings.workers == 2  # the default: one worker per slot of the pool
    assert settings.gpu_slots == [["0"], ["1"]]

    proxy = _RecordingProxy(tmp_path / "engine.sock")
    try:
        env = {**os.environ, "DOCKER_HOST": f"unix://{proxy.path}"}
        done = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", str(task), "--tag", "gpus",
             "--max-experiments", "4"],
            capture_output=True, text=True, timeout=240, env=env,
        )  # fmt: skip
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr
    trains = [ids for purpose, ids in proxy.requests if purpose == "train"]
    assert len(trains) == 5  # the baseline and four experiments
    assert all(ids in (["0"], ["1"]) for ids in trains[1:]), trains
    log = events(task, "gpus")
    devices = {e["experiment"]: e["devices"] for e in log if e["event"] == "started"}
    assert sorted(devices) == [1, 2, 3, 4]
    for entry in (e for e in log if e["event"] == "started"):
        at_once = [n for n in entry["running"] if n in devices]
        held = [tuple(devices[n]) for n in at_once]
        assert len(held) == len(set(held)), f"two running experiments shared a GPU: {entry}"
    assert sorted(map(tuple, trains[1:])) == sorted(tuple(d) for d in devices.values())


@pytest.mark.engine_free
def test_limits_are_divided_between_workers_and_counts_that_cannot_fit_are_refused():
    machine = Machine(cpus=2, memory_bytes=24 * 2**30)
    default = ByteSize.parse("4g")
    plan = plan_workers(8, None, 2.0, default, frozenset(), machine)
    assert plan.workers == 8 and plan.cpus == 0.25
    assert plan.memory.bytes <= 0.8 * 24 * 2**30 / 8
    assert "8 workers at once" in plan.note and "0.25 CPUs" in plan.note

    kept = plan_workers(2, None, 1.0, ByteSize.parse("2g"), frozenset({"cpus", "memory"}), machine)
    assert (kept.cpus, str(kept.memory)) == (1.0, "2g")  # set by hand and it fits: kept
    with pytest.raises(PlanError, match=r"8 workers x sandbox.memory 4g .* lower --workers"):
        plan_workers(8, None, 2.0, default, frozenset({"memory"}), machine)
    with pytest.raises(PlanError, match="lower --workers"):
        plan_workers(200, None, 2.0, default, frozenset(), machine)

    slots = gpu_slots(["0", "1", "2", "3"], 2)
    assert slots == (("0", "1"), ("2", "3"))
    assert plan_workers(None, slots, 2.0, default, frozenset(), machine).workers == 2
    with pytest.raises(PlanError, match="3 workers but the GPU pool has 2 slot"):
        plan_workers(3, slots, 2.0, default, frozenset(), machine)
    with pytest.raises(PlanError, match="has 1 device"):
        gpu_slots(["0"], 2)

    pool = DevicePool(slots)
    first, second = pool.take(), pool.take()
    assert {first, second} == {("0", "1"), ("2", "3")}
    pool.give_back(first)
    assert pool.take() == first


@pytest.mark.engine_free
def test_a_worker_count_that_does_not_fit_is_refused_in_one_line_naming_the_file(tmp_path):
    task = sleeping_task(tmp_path / "task", CONFIG + "gpus = [0, 1]\ngpus_per_experiment = 1\n")
    with pytest.raises(TaskError) as refused:
        resolve_settings(load_task(task), Overrides(workers=3))
    message = str(refused.value)
    assert message.count("\n") == 0
    assert str(task / "overnight.toml") in message and "lower --workers" in message


def test_a_model_agent_with_two_workers_is_told_what_runs_and_repairs_its_own_crash(
    tmp_path, monkeypatch, docker_client
):
    """The real anthropic client against a model on 127.0.0.1: #1 crashes on a typo while #2
    is proposed (and told #1 is running); the model fixes #1 in #1's own conversation."""
    from fake_llm_server import FakeLLM, guard_network, text, tool

    typo = "\nundefined_name"

    def model(request) -> object:
        messages = request.body["messages"]
        first = json.dumps(messages[0]["content"])
        number = int(first.split("# Experiment ")[1].split("\\n")[0])
        said = json.dumps(messages[-1]["content"])
        if "Your change crashed" in said:
            return tool({"command": "str_replace", "old_str": typo, "new_str": ""})
        if len(messages) > 1:
            return text(f"value {number} via the model")
        if number > 2:
            return text("Nothing more to try.")
        new = f"VALUE = {number}.0" + (typo if number == 1 else "")
        return tool({"command": "str_replace", "old_str": "VALUE = 10.0", "new_str": new})

    config = CONFIG + (
        '\n[agent]\nprovider = "anthropic"\nmodel = "claude-test"\n'
        "retry_initial_seconds = 0.02\nretry_max_seconds = 0.05\ntimeout = 20\n"
    )
    task = sleeping_task(tmp_path / "task", config)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    with guard_network(), FakeLLM(responder=model) as llm:
        env = {**os.environ, "ANTHROPIC_BASE_URL": llm.url}
        done = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", str(task), "--tag", "model",
             "--workers", "2", "--max-experiments", "3"],
            capture_output=True, text=True, timeout=240, env=env,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {r.experiment: r for r in results(task, "model")}
    assert rows[1].status.value == "keep" and "[repaired 1x]" in rows[1].description
    assert rows[1].metric == 1.0
    # #2 finished while #1 was repaired and run again: 2 beat 10, then 1 beat 2.
    measured = [r.experiment for r in results(task, "model") if r.status.value != "skipped"]
    assert measured == [0, 2, 1]
    assert rows[3].status.value == "skipped"  # the model had nothing more
    assert rows[2].status.value == "keep"
    assert "VALUE = 1.0" in git(task, "show", "overnight/model:train.py")
    first_of_two = next(
        r for r in llm.requests if "# Experiment 2" in json.dumps(r.body["messages"][0])
    )
    prompt = json.dumps(first_of_two.body["messages"][0]["content"])
    assert "Running now on other workers" in prompt and "#1, proposed from #0: value 1" in prompt
    repair = next(
        r for r in llm.requests if "Your change crashed" in json.dumps(r.body["messages"])
    )
    assert "# Experiment 1" in json.dumps(repair.body["messages"][0])  # #1's own conversation
    assert "undefined_name" in json.dumps(repair.body["messages"][-1])  # it saw the traceback
    assert (
        git(task, "for-each-ref", "--format=%(refname)", "refs/overnight/model/").count("crashed/1")
        == 1
    )


def test_a_candidate_proposed_ahead_when_ctrl_c_comes_runs_first_in_the_next_night(
    tmp_path, monkeypatch, docker_client
):
    """A model agent proposes one candidate ahead of the free workers. Ctrl-C lets the two
    running finish; the one proposed ahead never started, and the next night runs it first."""
    from fake_llm_server import FakeLLM, guard_network, text, tool

    def model(request) -> object:
        messages = request.body["messages"]
        number = int(json.dumps(messages[0]["content"]).split("# Experiment ")[1].split("\\n")[0])
        if len(messages) > 1:
            return text(f"value {number}")
        source = TRAIN.replace("VALUE = 10.0", f"VALUE = {10 - number}.0").replace(
            "SLEEP = 1.0", "SLEEP = 4.0"
        )
        return tool({"command": "write", "content": source})

    config = CONFIG + (
        '\n[agent]\nprovider = "anthropic"\nmodel = "claude-test"\n'
        "retry_initial_seconds = 0.02\nretry_max_seconds = 0.05\ntimeout = 20\n"
    )
    task = sleeping_task(tmp_path / "task", config)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    command = [sys.executable, "-m", "harness.cli", "run", str(task), "--tag", "ahead"]
    with guard_network(), FakeLLM(responder=model) as llm:
        env = {**os.environ, "ANTHROPIC_BASE_URL": llm.url}
        night = subprocess.Popen(
            [*command, "--workers", "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        candidate = task / ".overnight" / "ahead" / "experiments" / "0003" / "candidate.json"
        deadline = time.monotonic() + 120
        while not candidate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert candidate.exists(), "no candidate was proposed ahead"
        night.send_signal(signal.SIGINT)
        _, stderr = night.communicate(timeout=120)
        assert night.returncode == 0, stderr
        first = results(task, "ahead")
        assert sorted(r.experiment for r in first) == [0, 1, 2]  # #3 was ready, not started

        again = subprocess.run(
            [*command, "--workers", "2", "--max-experiments", "3"],
            capture_output=True, text=True, timeout=240, env=env,
        )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "run again from their saved train.py: #3" in again.stderr
    rows = {r.experiment: r for r in results(task, "ahead")}
    assert sorted(rows) == [0, 1, 2, 3] and rows[3].metric == 7.0
    assert rows[3].description == "value 3"
