"""--executor ray on a real two-node Ray cluster on this machine (both nodes on loopback, each
with a cache folder of its own, so nothing reaches a node but through Ray), the real Docker
engine and real git: experiments run on both nodes, a node killed mid-experiment costs a rerun
and no crash, and closing the night leaves no container behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import committed_repo, copy_quickstart, events, results, run_cli, write_script

from harness.backends import image_for, make_sandbox
from harness.config import resolve_settings
from harness.errors import InfrastructureFault
from harness.experiment import Experimenter
from harness.overrides import Overrides
from harness.seams import RunStatus, Verdict
from harness.setup_archive import Archive, pack, unpack
from harness.task import load_task
from sandbox.image import DEFAULT_IMAGE
from sandbox.labels import LABEL, LABEL_PID, LABEL_RUN, alive

RAY = Path(sys.executable).with_name("ray")
HEAD_IP, SECOND_IP = "127.0.0.2", "127.0.0.3"  # loopback; ray turns 127.0.0.1 into eth0's address

PREPARE = """
import os

METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = 30


def evaluate(output_dir):
    with open(os.path.join(output_dir, "value.txt")) as handle:
        return {"loss": float(handle.read())}
"""


def train(value: float, sleep: float = 0.0) -> str:
    return f"""import os, time

time.sleep({sleep})
with open(os.path.join(os.environ["OVERNIGHT_OUTPUT_DIR"], "value.txt"), "w") as handle:
    handle.write("{value}")
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HEAD_IP, 0))
        return int(probe.getsockname()[1])


def processes_under(folder: Path) -> list[int]:
    """The pids whose command line names `folder` (our cluster's processes, and only ours)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(folder).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class LocalCluster:
    """A head node and a second node, each a `ray start --block` of ours in a session of its own
    with its own temp folder; stopped by signalling them, never by `ray stop` (which would stop
    every Ray on the machine)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.address = f"{HEAD_IP}:{self.port}"
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}

    def cache(self, name: str) -> Path:
        return self.root / f"cache-{name}"

    def start(self, name: str) -> None:
        temp = self.root / name
        env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            "OVERNIGHT_RAY_CACHE": str(self.cache(name)),
        }
        common = [
            "--block",
            "--num-cpus=1",
            f"--resources={json.dumps({f'{name}_node': 1})}",
            f"--temp-dir={temp}",
            "--object-store-memory=100000000",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--disable-usage-stats",
        ]
        if name == "head":
            args = [
                "--head",
                f"--node-ip-address={HEAD_IP}",
                f"--port={self.port}",
                "--include-dashboard=false",
            ]
        else:
            args = [f"--address={self.address}", f"--node-ip-address={SECOND_IP}"]
        log = (self.root / f"{name}.log").open("wb")
        self.nodes[name] = subprocess.Popen(
            [str(RAY), "start", *args, *common],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        script = (
            "import ray, sys; ray.init(address=sys.argv[1], logging_level='error'); "
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        end, seen = time.monotonic() + timeout, ""
        while time.monotonic() < end:
            ended = [name for name, process in self.nodes.items() if process.poll() is not None]
            assert not ended, (self.root / f"{ended[0]}.log").read_text()[-3000:]
            try:
                asked = subprocess.run(
                    [sys.executable, "-c", script, self.address],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
            except subprocess.TimeoutExpired:
                continue
            seen = asked.stdout.strip() + asked.stderr[-500:]
            if asked.returncode == 0 and asked.stdout.strip() == str(count):
                return
            time.sleep(1)
        raise AssertionError(f"the cluster has not {count} alive nodes: {seen}")

    def ensure_second(self) -> None:
        if self.nodes["second"].poll() is not None:
            self.start("second")
            self.wait_for(2)

    def kill_second_raylet(self) -> None:
        raylets = [
            pid
            for pid in processes_under(self.root / "second")
            if b"/raylet" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        ]
        assert len(raylets) == 1, raylets
        os.kill(raylets[0], signal.SIGKILL)

    def stop(self) -> None:
        for process in self.nodes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.nodes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for pid in processes_under(self.root):  # a worker that outlived its raylet
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="ovr-", dir="/tmp"))  # short: Ray's socket paths
    local = LocalCluster(root)
    try:
        local.start("head")
        local.wait_for(1)
        local.start("second")
        local.wait_for(2)
        yield local
    finally:
        local.stop()
        shutil.rmtree(root, ignore_errors=True)


def replace_value(old: str, new: str) -> dict:
    return {"command": "str_replace", "old_str": f'write("{old}")', "new_str": f'write("{new}")'}


def committed_repo_again(folder: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qam", "sleep"],
        cwd=folder,
        check=True,
    )


def value_task(tmp_path: Path) -> Path:
    folder = tmp_path / "task"
    folder.mkdir()
    (folder / "program.md").write_text("Make loss small.\n")
    (folder / "prepare.py").write_text(PREPARE)
    (folder / "train.py").write_text(train(5.0))
    (folder / "overnight.toml").write_text('[sandbox]\nmemory = "512m"\ncpus = 1\n')
    return committed_repo(folder)


@pytest.fixture
def head(tmp_path, cluster):
    """An Experimenter on this machine with its setup done, as a night has it before its first
    measurement, for a RayMeasurer on the cluster."""
    task = load_task(value_task(tmp_path))
    settings = resolve_settings(task, Overrides(executor="ray", ray_address=cluster.address))
    said: list[str] = []
    sandbox = make_sandbox(settings, f"head-{os.getpid()}", said.append)
    sandbox.open()
    image = image_for(sandbox, settings, task, said.append)
    sandbox.prepare(image)
    experimenter = Experimenter(task, settings, sandbox, image, tmp_path / "cache", said.append)
    experimenter.setup()
    yield experimenter
    sandbox.close()


def run_containers(client, run_id: str) -> list:
    labels = {"label": [f"{LABEL_RUN}={run_id}"]}
    return client.containers.list(all=True, ignore_removed=True, filters=labels)


def node_ids() -> dict[str, str]:
    """The node id of each of our nodes, by name (head, second), from a connected driver."""
    import ray

    return {
        name: node["NodeID"]
        for node in ray.nodes()
        if node["Alive"]
        for name in ("head", "second")
        if f"{name}_node" in node["Resources"]
    }


def measure_in_threads(measurer, sources: list[str]) -> tuple[list, list, list[threading.Thread]]:
    measurements: list = [None] * len(sources)
    errors: list = [None] * len(sources)

    def run(index: int) -> None:
        try:
            measurements[index] = measurer.measure(sources[index], Path("/nonexistent/head"))
        except BaseException as err:
            errors[index] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sources))]
    for thread in threads:
        thread.start()
    return measurements, errors, threads


def wait_until(condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_a_night_with_executor_ray_keeps_a_better_train_py_measured_on_both_nodes(
    tmp_path, capsys, cluster
):
    task = copy_quickstart(tmp_path)
    (task / "overnight.toml").write_text('[sandbox]\nmemory = "1g"\ncpus = 1\n')
    script = write_script(
        tmp_path / "script.jsonl",
        [
            {
                "description": "more epochs",
                "calls": [
                    {"command": "str_replace", "old_str": "EPOCHS = 4", "new_str": "EPOCHS = 40"}
                ],
            },
            {
                "description": "a tiny hidden layer",
                "calls": [
                    {"command": "str_replace", "old_str": "HIDDEN = 32", "new_str": "HIDDEN = 1"}
                ],
            },
            {
                "description": "larger steps",
                "calls": [
                    {
                        "command": "str_replace",
                        "old_str": "LEARNING_RATE = 0.01",
                        "new_str": "LEARNING_RATE = 0.03",
                    }
                ],
            },
        ],
    )
    started = time.monotonic()
    code, out = run_cli(
        "run", str(task), "--tag", "ray1", "--provider", "replay", "--script", str(script),
        "--executor", "ray", "--ray-address", cluster.address, "--workers", "2", capsys=capsys,
    )  # fmt: skip
    took = time.monotonic() - started
    assert code == 0, out
    assert "node(s) can run an experiment (1 CPUs, 0 GPUs each)" in out
    rows = results(task, "ray1")
    status = {r.description.split(" [")[0]: r for r in rows}
    assert len(rows) == 4 and status["baseline"].status is Verdict.KEEP
    assert status["more epochs"].status is Verdict.KEEP
    assert status["more epochs"].metric < status["baseline"].metric
    assert status["a tiny hidden layer"].status is Verdict.DISCARD
    assert not any(r.status is Verdict.CRASH for r in rows)
    # Every measurement says where it ran, and both nodes ran some (one CPU each, two at once).
    where = [e["where"] for e in events(task, "ray1") if e["event"] == "run"]
    assert len(where) == len(rows) and all(
        w.startswith(("127.0.0.2/", "127.0.0.3/")) for w in where
    )
    assert {w.split("/")[0] for w in where} == {HEAD_IP, SECOND_IP}
    started_with = [len(e["running"]) for e in events(task, "ray1") if e["event"] == "started"]
    assert max(started_with) == 2
    # Each node unpacked the setup into its own cache: nothing went through a shared folder.
    for name in ("head", "second"):
        unpacked = list((cluster.cache(name) / "setups").glob("setup-*"))
        assert len(unpacked) == 1 and (unpacked[0] / "private").stat().st_mode & 0o777 == 0o700
    config = json.loads((task / ".overnight/ray1/config.json").read_text())
    assert config["isolation"] == "docker, on Ray nodes"
    import docker

    left = docker.from_env().containers.list(
        all=True, ignore_removed=True, filters={"label": [LABEL]}
    )
    assert [c.name for c in left if c.labels.get(LABEL_RUN, "").startswith("ray1-")] == []
    print(f"night of {len(rows)} experiments on Ray: {took:.1f}s")


def test_two_measurements_at_once_run_on_the_two_nodes_and_a_later_nights_cleanup_spares_them(
    head, cluster, docker_client
):
    from harness.ray_executor import RayMeasurer

    measurer = RayMeasurer(head, "two")
    try:
        measurements, errors, threads = measure_in_threads(
            measurer, [train(1.0, sleep=4), train(2.0, sleep=4)]
        )
        wait_until(
            lambda: len([c for c in run_containers(docker_client, measurer.run_id)
                         if c.labels.get("org.overnight.purpose") == "train"]) == 2,
            60, "both trainings running",
        )  # fmt: skip
        # Their owner is a live Ray worker: another night's start on this engine keeps them.
        owners = {c.labels[LABEL_PID] for c in run_containers(docker_client, measurer.run_id)}
        assert str(os.getpid()) not in owners
        later = make_sandbox(head.settings, f"later-{os.getpid()}", lambda _: None)
        later.open()
        later.prepare(head.image)
        later.close()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == [None, None]
        assert [m.metric for m in measurements] == [1.0, 2.0]
        assert all(m.train.status is RunStatus.OK for m in measurements)
        nodes = node_ids()
        assert {m.where.split("/")[1] for m in measurements} == {nodes["head"], nodes["second"]}
    finally:
        measurer.close()
    assert run_containers(docker_client, measurer.run_id) == []


def worker_of(container) -> str:
    """Which of our nodes runs the Ray worker that owns a container: its cache folder says."""
    try:
        environ = Path(f"/proc/{container.labels[LABEL_PID]}/environ").read_bytes()
    except OSError:
        return ""
    return next((n for n in ("head", "second") if f"/cache-{n}\0".encode() in environ), "")


def test_a_node_killed_mid_experiment_costs_a_rerun_elsewhere_not_a_crash(
    tmp_path, cluster, docker_client
):
    cluster.ensure_second()
    task = value_task(tmp_path)
    (task / "train.py").write_text(train(5.0, sleep=4))
    committed_repo_again(task)
    script = write_script(
        tmp_path / "script.jsonl",
        [
            {"description": f"value {new}", "calls": [replace_value(old, new)]}
            for old, new in (("5.0", "3.0"), ("3.0", "4.0"), ("3.0", "2.0"))
        ],
    )
    log = (tmp_path / "night.log").open("wb")
    night = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(task), "--tag", "kill",
         "--provider", "replay", "--script", str(script),
         "--executor", "ray", "--ray-address", cluster.address],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        def on_second() -> list:
            return [
                c
                for c in docker_client.containers.list(
                    ignore_removed=True, filters={"label": [LABEL]}
                )
                if c.labels.get(LABEL_RUN, "").startswith("kill-")
                and c.labels.get("org.overnight.purpose") == "train"
                and worker_of(c) == "second"
            ]

        wait_until(lambda: bool(on_second()), 120, "a training on the second node")
        worker = int(on_second()[0].labels[LABEL_PID])
        killed = len([e for e in events(task, "kill") if e["event"] == "run"])
        cluster.kill_second_raylet()
        wait_until(lambda: not alive(worker), 30, "the second node's worker dead")
        # What the dead worker started (its keeper lives as long as the experiment might) is
        # removed by a later night's start on this engine; the night's live containers are not.
        later = make_sandbox(
            resolve_settings(load_task(task)), f"later-{os.getpid()}", lambda _: None
        )
        later.open()
        later.prepare(DEFAULT_IMAGE)
        later.close()
        owned = docker_client.containers.list(
            all=True, ignore_removed=True, filters={"label": [f"{LABEL_PID}={worker}"]}
        )
        assert owned == []
        assert night.wait(timeout=180) == 0, (tmp_path / "night.log").read_text()[-3000:]
    finally:
        if night.poll() is None:
            night.kill()
        cluster.ensure_second()
    rows = results(task, "kill")
    statuses = [(r.description.split(" [")[0], r.status) for r in rows]
    assert statuses == [
        ("baseline", Verdict.KEEP),
        ("value 3.0", Verdict.KEEP),
        ("value 4.0", Verdict.DISCARD),
        ("value 2.0", Verdict.KEEP),
    ]
    runs = [e for e in events(task, "kill") if e["event"] == "run"]
    assert len(runs) == 4  # the killed attempt ran again inside its measurement: one run each
    assert runs[killed]["where"].startswith(f"{HEAD_IP}/")  # the killed one, measured again
    left = docker_client.containers.list(all=True, ignore_removed=True, filters={"label": [LABEL]})
    assert [c.name for c in left if c.labels.get(LABEL_RUN, "").startswith("kill-")] == []


def test_close_while_measurements_run_cancels_them_and_leaves_no_container(
    head, cluster, docker_client
):
    from harness.ray_executor import CLOSED, RayMeasurer

    cluster.ensure_second()
    measurer = RayMeasurer(head, "close")
    measurements, errors, threads = measure_in_threads(
        measurer, [train(1.0, sleep=60), train(2.0, sleep=60)]
    )
    wait_until(
        lambda: len([c for c in run_containers(docker_client, measurer.run_id)
                     if c.labels.get("org.overnight.purpose") == "train"]) == 2,
        60, "both trainings running",
    )  # fmt: skip
    started = time.monotonic()
    measurer.close()
    closing_s = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=30)
    assert measurements == [None, None]
    assert all(isinstance(e, InfrastructureFault) and str(e) == CLOSED for e in errors), errors
    assert run_containers(docker_client, measurer.run_id) == []
    assert measurer.removed >= 4  # two trainings and their keepers, on the nodes' engine
    assert closing_s < 30
    assert not list((cluster.cache("head") / "scratch").glob(f"{measurer.run_id}*"))


def test_a_night_on_ray_stops_on_sigterm_like_any_night_and_an_abort_leaves_no_container(
    tmp_path, cluster, docker_client
):
    cluster.ensure_second()
    task = value_task(tmp_path)
    (task / "train.py").write_text(train(5.0, sleep=90))
    committed_repo_again(task)

    def night(tag: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "run", str(task), "--tag", tag,
             "--executor", "ray", "--ray-address", cluster.address, "--timeout", "120"],
            stdout=(tmp_path / f"{tag}.log").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def trainings(tag: str) -> list:
        return [
            c
            for c in docker_client.containers.list(ignore_removed=True, filters={"label": [LABEL]})
            if c.labels.get(LABEL_RUN, "").startswith(f"{tag}-")
            and c.labels.get("org.overnight.purpose") == "train"
        ]

    aborted = night("abort")
    try:
        wait_until(lambda: bool(trainings("abort")), 120, "the baseline training on a node")
        aborted.send_signal(signal.SIGTERM)  # the first: finish the experiment, then stop
        time.sleep(2)
        assert aborted.poll() is None, (tmp_path / "abort.log").read_text()[-2000:]
        aborted.send_signal(signal.SIGTERM)  # the second: abort now
        assert aborted.wait(timeout=60) != 0
    finally:
        if aborted.poll() is None:
            aborted.kill()
    log = (tmp_path / "abort.log").read_text()
    assert "SIGTERM: finishing the current experiment" in log
    left = docker_client.containers.list(all=True, ignore_removed=True, filters={"label": [LABEL]})
    assert [c.name for c in left if c.labels.get(LABEL_RUN, "").startswith("abort-")] == []


def test_an_image_missing_on_a_node_is_a_fault_that_names_it_and_the_build_command(head, cluster):
    from harness.ray_executor import RayMeasurer

    head.image = "overnight/absent:nowhere"
    measurer = RayMeasurer(head, "image")
    try:
        with pytest.raises(InfrastructureFault) as raised:
            measurer.measure(train(1.0), Path("/nonexistent"))
    finally:
        measurer.close()
    message = str(raised.value)
    assert "\n" not in message
    assert "Ray node 127.0.0." in message and "'overnight/absent:nowhere'" in message
    assert "overnight image build" in message


def test_an_unreachable_cluster_is_an_infrastructure_fault(head):
    from harness.ray_executor import RayMeasurer

    head.settings = head.settings.model_copy(
        update={"executor": head.settings.executor.model_copy(update={"address": "127.0.0.2:1"})}
    )
    measurer = RayMeasurer(head, "gone")
    try:
        with pytest.raises(
            InfrastructureFault, match=r"cannot reach the Ray cluster at '127\.0\.0\.2:1'"
        ):
            measurer.measure(train(1.0), Path("/nonexistent"))
    finally:
        measurer.close()


@pytest.mark.engine_free
@pytest.mark.skipif(os.getuid() != 0, reason="giving files to another uid needs root")
def test_a_shipped_setup_keeps_modes_and_gives_the_heads_run_files_to_this_machines_runs(
    tmp_path,
):
    setup = tmp_path / "setup-x"
    (setup / "private").mkdir(parents=True)
    (setup / "task").mkdir()
    (setup / "private" / "val.npz").write_bytes(b"held out")
    (setup / "task" / "tool.sh").write_text("#!/bin/sh\n")
    (setup / "task" / "link").symlink_to("/etc/hostname")
    for path in (setup / "private", setup / "private" / "val.npz", setup / "task"):
        os.chown(path, 4321, 4321)  # what runs owned on a head whose harness is uid 4321
    os.chmod(setup / "private", 0o700)
    os.chmod(setup / "task" / "tool.sh", 0o755)
    store: dict[int, bytes] = {}

    def put(chunk: bytes) -> int:
        store[len(store)] = chunk
        return len(store) - 1

    archive = replace(pack(setup, put), owner=(4321, 4321))
    fetched: list[int] = []
    target = unpack(archive, tmp_path / "node", lambda key: fetched.append(key) or store[key])
    assert unpack(archive, tmp_path / "node", lambda key: store[key]) == target
    assert len(fetched) == len(store)  # fetched once, then found in the node's cache
    private = (target / "private").stat()
    assert (private.st_uid, private.st_mode & 0o777) == (65534, 0o700)  # root's runs: nobody
    assert (target / "private" / "val.npz").stat().st_uid == 65534
    assert (target / "task" / "tool.sh").stat().st_mode & 0o777 == 0o755
    assert os.readlink(target / "task" / "link") == "/etc/hostname"
    damaged = Archive(archive.name, "0" * 64, archive.size, archive.owner, archive.chunks)
    with pytest.raises(InfrastructureFault, match="arrived damaged"):
        unpack(damaged, tmp_path / "other", lambda key: store[key])
    assert list((tmp_path / "other").iterdir()) == []


def test_a_cluster_without_a_node_big_enough_is_a_fault_not_a_wait_for_ever(head):
    from harness.ray_executor import RayMeasurer

    sandbox = head.settings.sandbox.model_copy(update={"cpus": 2.0})
    head.settings = head.settings.model_copy(update={"sandbox": sandbox})
    measurer = RayMeasurer(head, "big")
    try:
        with pytest.raises(InfrastructureFault, match=r"has 2 CPUs \(sandbox\.cpus\)"):
            measurer.measure(train(1.0), Path("/nonexistent"))
    finally:
        measurer.close()


def test_a_metric_chosen_after_the_baseline_judges_the_experiments_on_the_nodes(
    tmp_path, capsys, cluster
):
    task = value_task(tmp_path)
    undeclared = PREPARE.replace('METRIC = "loss"\n', "").replace('DIRECTION = "minimize"\n', "")
    (task / "prepare.py").write_text(undeclared)
    committed_repo_again(task)
    script = write_script(
        tmp_path / "script.jsonl",
        [{"description": "smaller", "calls": [replace_value("5.0", "3.0")]}],
    )
    code, out = run_cli(
        "run", str(task), "--tag", "chosen", "--provider", "replay", "--script", str(script),
        "--executor", "ray", "--ray-address", cluster.address, capsys=capsys,
    )  # fmt: skip
    assert code == 0, out
    rows = results(task, "chosen")
    assert [(r.metric, r.status) for r in rows] == [(5.0, Verdict.KEEP), (3.0, Verdict.KEEP)]


@pytest.mark.engine_free
def test_a_killed_owner_counts_as_alive_until_its_living_parent_waits_for_it():
    """A harness killed by the shell or test that started it is a zombie of a living parent
    until waited for: what it owns is left alone meanwhile (that parent may still look at it);
    once reaped, or orphaned to a PID 1 that never reaps, it is dead."""
    import subprocess

    child = subprocess.Popen(["sleep", "60"])
    assert alive(child.pid)
    child.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the kernel has made it a zombie
        with open(f"/proc/{child.pid}/stat", "rb") as stat:
            if stat.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                break
        time.sleep(0.01)
    assert alive(child.pid), "a zombie whose parent lives was counted dead"
    child.wait()
    assert not alive(child.pid)
