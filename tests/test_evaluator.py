"""The evaluator as a user meets it: call_train from the hostile side, a prepare.py that changes
during the night, confirmation runs of a new best, and engines that lack what the task asks for."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, committed_repo, events, git, results, run_cli, write_script, write_task
from test_night import PREPARE, TRAIN, value_task

from harness.experiment import uses_call_train

CALL_PREPARE = """
import json
import os
import sys

from overnight_eval import TrainCallError, call_train

METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = 1


def evaluate(output_dir):
    report = call_train("attack", os.getpid())
    print("ATTACK", json.dumps(report, sort_keys=True), flush=True)
    for name in ("sleep_forever", "return_object", "return_raw_pickle", "raise_error"):
        try:
            call_train(name, timeout=2)
            print("CALL", name, "returned", flush=True)
        except TrainCallError as err:
            print("CALL", name, "failed:", err, flush=True)
    print("TRAIN IMPORTED HERE", "train" in sys.modules, flush=True)
    return {"loss": float(call_train("value", [1.5, 2.5], scale=2.0))}


if __name__ == "__main__":
    with open(os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "answers.txt"), "w") as handle:
        handle.write("the held-out answers\\n")
"""

HONEST_TRAIN = """
def value(numbers, scale):
    return sum(numbers) * scale


def attack(evaluator_pid):
    return {}


def sleep_forever():
    return None


def return_object():
    return None


def return_raw_pickle():
    return None


def raise_error():
    return None
"""

HOSTILE_TRAIN = """
import os
import pickle
import subprocess
import sys
import time


def value(numbers, scale):
    return sum(numbers) * scale  # the honest answer: 8.0, the baseline's


def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as err:
        return type(err).__name__


def evaluator_pids(given):
    pids = {given}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if b"evaluate_runner" in open(f"/proc/{entry}/cmdline", "rb").read():
                    pids.add(int(entry))
            except OSError:
                pass
    return sorted(pids - {os.getpid()})


def attack(evaluator_pid):
    # /overnight/... in a container; the same layout under a temporary root with --sandbox local
    root = os.environ["OVERNIGHT_OUTPUT_DIR"][: -len("/overnight/output")]
    private = root + "/overnight/private/answers.txt"
    result = root + "/overnight/result/result.json"
    lower = "open('/proc/self/oom_score_adj', 'w').write('0')"
    child = subprocess.run([sys.executable, "-c", lower], capture_output=True, text=True)
    report = {
        "private data": attempt(lambda: open(private).read()),
        "private env": "OVERNIGHT_PRIVATE_DIR" in os.environ,
        "result file": attempt(lambda: open(result, "w").write("{}")),
        "lower oom_score_adj": attempt(lambda: open("/proc/self/oom_score_adj", "w").write("0")),
        "a child lowers it": child.stderr.strip().splitlines()[-1:],
        "oom_score_adj": open("/proc/self/oom_score_adj").read().strip(),
    }
    for pid in evaluator_pids(evaluator_pid):
        for name, mode in (("environ", "r"), ("mem", "rb")):
            outcome = attempt(lambda: open(f"/proc/{pid}/{name}", mode).read(1))
            if outcome not in ("FileNotFoundError", "ProcessLookupError"):  # gone meanwhile
                report[f"{name} of {pid}"] = outcome
    return report


def sleep_forever():
    while True:
        time.sleep(1)


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo PWNED-" + "RAN",))


def return_object():
    return Exploit()


def return_raw_pickle():
    fd = int(__import__("sys").argv[3])  # the reply channel, written over with a pickle
    os.pwrite(fd, pickle.dumps(Exploit()), 0)
    os._exit(0)


def raise_error():
    raise RuntimeError("train.py failed on purpose")
"""


def call_train_task(tmp_path: Path, backend: str) -> Path:
    return committed_repo(
        write_task(
            tmp_path / f"call-{backend}",
            {
                "program.md": "x\n",
                "prepare.py": CALL_PREPARE,
                "train.py": HONEST_TRAIN,
                "overnight.toml": f'timeout = 5\n[sandbox]\nbackend = "{backend}"\n',
            },
        )
    )


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_call_train_runs_train_code_isolated_from_the_evaluator(tmp_path, capsys, backend, request):
    if backend == "docker":
        request.getfixturevalue("no_leftover_containers")
    task = call_train_task(tmp_path, backend)
    script = write_script(
        tmp_path / "s.jsonl",
        [{"description": "hostile", "calls": [{"command": "write", "content": HOSTILE_TRAIN}]}],
    )
    code, out = run_cli(
        "run", str(task), "--tag", "c", "--provider", "replay", "--script", str(script),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, out
    rows = results(task, "c")
    assert [(r.status.value, r.metric) for r in rows] == [("keep", 8.0), ("discard", 8.0)]
    # What the evaluator printed is the human's, in evaluate.txt; the agent's output.txt lacks it.
    agent_output = (task / ".overnight/c/experiments/0001/output.txt").read_text()
    assert "ATTACK" not in agent_output and "CALL" not in agent_output
    output = (task / ".overnight/c/experiments/0001/evaluate.txt").read_text()
    report = json.loads(re.search(r"^ATTACK (.*)$", output, re.MULTILINE).group(1))
    assert report["private data"] == "PermissionError"
    assert report["private env"] is False
    assert report["result file"] == "PermissionError"
    # The worker is the first the kernel kills when memory runs out, and cannot change that.
    assert report["lower oom_score_adj"] == "PermissionError"
    assert "PermissionError" in report["a child lowers it"][0]
    assert report["oom_score_adj"] == "1000"
    probes = [k for k in report if k.startswith(("environ of", "mem of"))]
    assert len(probes) >= 4  # the supervisor and the evaluator, at least
    assert all(report[k] == "PermissionError" for k in probes), report
    calls = dict(re.findall(r"^CALL (\w+) (.*)$", output, re.MULTILINE))
    assert "ran past its time limit of 2s" in calls["sleep_forever"]
    assert "plain data only" in calls["return_object"]
    assert "no plain data" in calls["return_raw_pickle"]
    assert "RuntimeError: train.py failed on purpose" in calls["raise_error"]
    assert "PWNED-RAN" not in output
    assert "TRAIN IMPORTED HERE False" in output


def test_call_train_is_only_for_tasks_that_import_it():
    assert uses_call_train(CALL_PREPARE)
    assert uses_call_train("import overnight_eval\n")
    assert not uses_call_train(PREPARE)


def test_the_predict_example_task_scores_through_call_train(
    tmp_path, capsys, no_leftover_containers
):
    task = tmp_path / "predict"
    shutil.copytree(REPO / "tasks" / "predict", task)
    code, out = run_cli("run", str(task), "--tag", "p", "--max-experiments", "1", capsys=capsys)
    assert code == 0, out
    rows = results(task, "p")
    assert rows[0].status.value == "keep" and 0 < rows[0].metric < 0.5


def test_a_prepare_py_changed_during_the_night_stops_it(tmp_path, capsys, no_leftover_containers):
    task = value_task(tmp_path, **{"overnight.toml": "timeout = 10\n"})
    slow = {"command": "insert", "insert_line": 0, "new_str": "import time\ntime.sleep(1.5)"}
    script = write_script(tmp_path / "s.jsonl", [{"description": "slow", "calls": [slow]}])

    def tamper():  # while the candidate trains, someone edits the evaluator
        deadline = time.monotonic() + 60
        while not (task / ".overnight/e/experiments/0001/diff.patch").exists():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        with open(task / "prepare.py", "a") as handle:
            handle.write("\n# edited during the night\n")

    thread = threading.Thread(target=tamper)
    thread.start()
    code, out = run_cli(
        "run", str(task), "--tag", "e", "--provider", "replay", "--script", str(script),
        capsys=capsys,
    )  # fmt: skip
    thread.join()
    assert code == 2
    message = [line for line in out.splitlines() if line.startswith("overnight:")]
    assert len(message) == 1 and "prepare.py: changed while the night ran" in message[0]
    assert [r.experiment for r in results(task, "e")] == [0]
    assert git(task, "rev-parse", "--short=7", "overnight/e") == results(task, "e")[0].commit
    assert not any(e["event"] == "run" and e["experiment"] == 1 for e in events(task, "e"))


def test_a_new_best_is_kept_only_when_its_confirmation_runs_also_beat_the_best(tmp_path, capsys):
    # --sandbox local can reach a host folder, so a flaky train.py can count its runs there.
    counter = Path(tempfile.mkdtemp(prefix="overnight-confirm-"))
    os.chmod(counter, 0o777)
    flaky = f"""import glob, os
runs = len(glob.glob({str(counter)!r} + "/run-*"))
open({str(counter)!r} + f"/run-{{runs}}", "w").close()
with open(os.path.join(os.environ["OVERNIGHT_OUTPUT_DIR"], "value.txt"), "w") as handle:
    handle.write("1.0" if runs == 0 else "9.0")  # lucky the first time only
"""
    steady = TRAIN.replace("VALUE = 5.0", "VALUE = 3.0")
    task = value_task(
        tmp_path, **{"overnight.toml": 'confirm_runs = 2\n[sandbox]\nbackend = "local"\n'}
    )
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {"description": "lucky once", "calls": [{"command": "write", "content": flaky}]},
            {"description": "steady", "calls": [{"command": "write", "content": steady}]},
        ],
    )
    try:
        code, out = run_cli(
            "run", str(task), "--tag", "k", "--provider", "replay", "--script", str(script),
            capsys=capsys,
        )  # fmt: skip
    finally:
        shutil.rmtree(counter)
    assert code == 0, out
    rows = results(task, "k")
    assert [(r.status.value, r.metric) for r in rows] == [
        ("keep", 5.0),
        ("discard", 1.0),
        ("keep", 3.0),
    ]
    assert "not confirmed: run 2 of 3 gave 9" in rows[1].description
    assert "confirmed by 3 runs: 3, 3, 3" in rows[2].description
    runs = [
        (e["experiment"], e["confirmation"], e["metric"])
        for e in events(task, "k")
        if e["event"] == "run"
    ]
    assert runs == [
        (0, 0, 5.0),
        (1, 0, 1.0),
        (1, 1, 9.0),
        (1, 2, 9.0),
        (2, 0, 3.0),
        (2, 1, 3.0),
        (2, 2, 3.0),
    ]
    assert (task / ".overnight/k/experiments/0002/output-confirm-2.txt").exists()
    assert "VALUE = 3.0" in git(task, "show", "overnight/k:train.py")
    # The weaker isolation of --sandbox local is said at the start, in config.json and by status.
    assert "--sandbox local: WEAKER ISOLATION" in out
    config = json.loads((task / ".overnight/k/config.json").read_text())
    assert config["isolation"] == "weaker (--sandbox local)"
    code, out = run_cli("status", str(task), "--tag", "k", capsys=capsys)
    assert "[WEAKER ISOLATION: --sandbox local]" in out.splitlines()[0]


def test_a_runtime_the_engine_lacks_stops_the_run_in_one_line_before_anything_runs(
    tmp_path, capsys, docker_client
):
    task = value_task(tmp_path, **{"overnight.toml": '[sandbox]\nruntime = "runsc"\n'})
    code, out = run_cli("run", str(task), "--tag", "g", capsys=capsys)
    assert code == 2
    errors = [line for line in out.splitlines() if line.startswith("overnight:")]
    assert len(errors) == 1 and "sandbox.runtime = 'runsc' is not installed" in errors[0]
    assert not (task / ".overnight/g/results.tsv").read_text().strip().count("\n")
    mine = {"label": [f"org.overnight.pid={os.getpid()}"]}
    assert docker_client.containers.list(ignore_removed=True, all=True, filters=mine) == []
    code, out = run_cli("validate", str(task), capsys=capsys)
    assert code == 2 and "problem: sandbox.runtime = 'runsc' is not installed" in out
    code, out = run_cli("doctor", str(task), capsys=capsys)
    assert code == 2 and "problem: sandbox.runtime = 'runsc' is not installed" in out
    assert "ok: hardening: the engine applies its default seccomp profile" in out


def test_validate_reports_every_hardening_item_and_a_weaker_local_sandbox(
    tmp_path, capsys, docker_client
):
    task = value_task(tmp_path)
    code, out = run_cli("validate", str(task), capsys=capsys)
    assert code == 0, out
    hardening = [line for line in out.splitlines() if line.startswith("hardening:")]
    for item in (
        "network: none",
        "root filesystem: read-only",
        "/tmp: tmpfs of 512m",
        "output directory: a tmpfs volume of 1g",
        "(non-root)",
        "capabilities: all dropped",
        "no-new-privileges: on",
        "seccomp: the engine's default profile",
        "privileged: never",
        "memory: 4g, swap included",
        "processes: at most 512",
        "PID 1: overnight's deadline enforcer",
        "container logs: json-file capped",
        "no Docker socket, no host paths beyond the mounts, no host environment variables",
        "runtime: the engine default",
    ):
        assert any(item in line for line in hardening), item
    assert not any(w in line for line in hardening for w in ("OFF", "WRITABLE", "SOME KEPT"))
    code, out = run_cli("validate", str(task), "--sandbox", "local", capsys=capsys)
    assert code == 0, out
    assert "isolation: WEAKER ISOLATION" in out and "network: NOT isolated" in out
