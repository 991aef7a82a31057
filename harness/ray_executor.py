"""--executor ray: each experiment (training, then evaluation) is a Ray task on whichever node of
the cluster has the CPUs and GPUs it needs, run by that node's own Docker engine with the same
hardening. The git repository, the ledger and every decision stay on the head (the machine the
night runs on): train.py goes out, a Measurement comes back.

The head runs setup as always. Its folders then travel once through Ray's object store
(harness/setup_archive.py) and are unpacked once per node under OVERNIGHT_RAY_CACHE (default
~/.cache/overnight/ray), where that node's containers mount them. A node needs a Docker engine,
the night's image and the same overnight[ray] as the head.

Faults: a node that dies mid-experiment is Ray's to retry elsewhere (MAX_RETRIES times); when the
cluster cannot run it anywhere, `measure` raises InfrastructureFault and the night pauses. `close`
cancels what still runs and removes the run's containers on every alive node, since Ray kills
workers, not the containers they started.

The owner label of a node's containers (sandbox/labels.py) is the pid of the Ray worker that runs
them: while it runs, another night's cleanup on that engine leaves them alone; once Ray killed it
(a cancel, its node's raylet gone), that cleanup removes them, and so does the next task a fresh
worker of this night starts there.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import secrets
import signal
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.backends import make_sandbox
from harness.config import Settings
from harness.errors import InfrastructureFault, OvernightError, TaskError
from harness.experiment import EvaluatorChanged, Experimenter, Measurement, uses_call_train
from harness.seams import Sandbox
from harness.setup_archive import Archive, pack, unpack
from harness.task import PREPARE, Task
from sandbox import tree

MAX_RETRIES = 3  # reruns of an experiment whose node or worker died (never of one that failed)
WAIT_S = 0.5  # how often a waiting measurement looks whether the measurer was closed
FIT_CHECK_S = 30.0  # how often a measurement still waiting checks that some node can run it
CANCEL_WAIT_S = 30.0
CLEAN_WAIT_S = 60.0
CACHE_ENV = "OVERNIGHT_RAY_CACHE"
CLOSED = "the Ray executor was closed: the night is ending"

Say = Callable[[str], None]


@dataclass(frozen=True)
class NodeJob:
    """Everything a node needs for one measurement."""

    run_id: str
    settings: Settings
    task: Task
    image: str
    setup: Archive
    source: str


@dataclass
class NodeOutcome:
    """What a node answers: a measurement, or a fault (the night pauses), or a problem the user
    must fix (the night stops); and the lines its sandbox said meanwhile."""

    where: str
    measurement: Measurement | None = None
    fault: str = ""
    stop: str = ""
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0  # the measurement itself, on the node


@dataclass(frozen=True)
class Dispatch:
    """One measurement through Ray, timed from the head's call to its result."""

    measurement: Measurement
    node_s: float
    total_s: float

    @property
    def overhead_s(self) -> float:
        return self.total_s - self.node_s


class RayMeasurer:
    """The Measurer of --executor ray: one Ray task per measurement, any number at once from
    any threads. It reaches the cluster and ships the setup at its first measurement (after the
    night's setup ran on the head); `close` cancels whatever still runs."""

    def __init__(self, experimenter: Experimenter, run_id: str, say: Say = lambda _: None) -> None:
        if importlib.util.find_spec("ray") is None:
            raise TaskError(
                "--executor ray needs Ray on this machine: pip install 'overnight[ray]'"
            )
        self.experimenter = experimenter
        mounted = [entry for entry in experimenter.host_data if not entry.copied]
        if mounted:
            entry = mounted[0]
            raise TaskError(
                f"{entry.path}: {entry.size / 2**30:.1f} GiB that git ignores and "
                f"{entry.named_by} reads is mounted from this machine, which Ray's other nodes "
                "cannot see; make it smaller than 1 GiB (it then travels with the setup), have "
                "prepare.py fetch it, or run without --executor ray"
            )
        self.address = self.settings.executor.address
        if self.address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
            raise TaskError(
                f"executor.address {self.address!r} goes through Ray Client, which needs "
                "pip install 'ray[client]' (or give the cluster's host:port)"
            )
        # Its own on every node: two heads whose tag and pid agree never touch each other's.
        self.run_id = f"{run_id}-{secrets.token_hex(3)}"
        self.say = say
        self.removed = 0  # containers the cleanup at `close` removed
        self._lock = threading.Lock()  # the running tasks and the closed flag
        self._ready_lock = threading.Lock()  # the connection and the shipped setup
        self._running: set[Any] = set()
        self._closed = False
        self._connected = False  # whether this measurer called ray.init (then `close` ends it)
        self._setup: Archive | None = None
        self._task: Any = None  # the remote function, with one experiment's resources

    @property
    def settings(self) -> Settings:
        """The experimenter's, read at each measurement: a metric chosen after the baseline
        changes them."""
        return self.experimenter.settings

    @property
    def resources(self) -> tuple[float, int]:
        """(CPUs, GPUs) one experiment asks Ray for."""
        return self.settings.sandbox.cpus, self.settings.sandbox.gpus_per_experiment or 0

    def measure(
        self, source: str, scratch: Path, devices: tuple[str, ...] | None = None
    ) -> Measurement:
        """Train and score `source` on a node. `scratch` and `devices` are the head's and not
        used: the node measures in a scratch folder of its own, on the GPUs Ray gave the task."""
        return self.dispatch(source).measurement

    def dispatch(self, source: str) -> Dispatch:
        import ray

        started = time.monotonic()
        self.experimenter.check_evaluator()
        task, setup = self._ready()
        job = NodeJob(
            self.run_id,
            self.settings,
            self.experimenter.task,
            self.experimenter.image,
            setup,
            source,
        )
        with self._lock:  # submitted under the lock, so `close` sees every task to cancel
            if self._closed:
                raise InfrastructureFault(CLOSED)
            ref = task.remote(job)
            self._running.add(ref)
        try:
            outcome = self._wait(ref, ray)
        except BaseException:
            # A fault, or an abort (KeyboardInterrupt): end the task by force, and leave it
            # for `close` to wait for before it removes the run's containers.
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            raise
        with self._lock:
            self._running.discard(ref)
        for line in outcome.messages:
            self.say(f"{_short(outcome.where)}: {line}")
        if outcome.fault:
            raise InfrastructureFault(outcome.fault)
        if outcome.stop or outcome.measurement is None:
            raise TaskError(outcome.stop or f"{_short(outcome.where)} answered no measurement")
        self.experimenter.check_evaluator()
        return Dispatch(outcome.measurement, outcome.seconds, time.monotonic() - started)

    def close(self) -> None:
        """Cancel the tasks still running, remove this run's containers on every alive node,
        and disconnect if this measurer connected. Best effort, and only once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            running = list(self._running)
        if self._task is None and not self._connected:
            return  # it never reached the cluster
        import ray

        if not ray.is_initialized():
            return
        if self._task is not None:
            for ref in running:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if running:  # once their workers are dead, nothing starts another container
                with contextlib.suppress(Exception):
                    ray.wait(running, num_returns=len(running), timeout=CANCEL_WAIT_S)
            try:
                self.removed = self._clean_nodes(ray)
            except Exception as err:  # a cluster going away must not hide the end of the night
                self.say(f"ray: the run's containers on the nodes were not removed: {err}")
        self._setup = None
        if self._connected:
            ray.shutdown()

    def _ready(self) -> tuple[Any, Archive]:
        """The remote function and the shipped setup, made at the first call."""
        with self._ready_lock:
            if self._closed:
                raise InfrastructureFault(CLOSED)
            if self._task is None or self._setup is None:
                try:
                    self._start()
                except Exception as err:
                    if self._closed:  # `close` disconnected meanwhile
                        raise InfrastructureFault(CLOSED) from err
                    raise
            assert self._task is not None and self._setup is not None
            return self._task, self._setup

    def _start(self) -> None:
        """Connect, check that some node can run an experiment, and ship the setup."""
        import ray

        if not (self.experimenter.setup_dir / "done").exists():
            raise RuntimeError("the setup must run on the head before the first measurement")
        self._connect(ray)
        nodes = self._check_fits(ray)
        started = time.monotonic()
        self._setup = pack(self.experimenter.setup_dir, ray.put)
        cpus, gpus = self.resources
        self.say(
            f"ray: {nodes} node(s) can run an experiment ({cpus:g} CPUs, {gpus} GPUs each); "
            f"the setup ({self._setup.size / 2**20:.1f} MiB) is in the object store "
            f"({time.monotonic() - started:.1f}s)"
        )
        self._task = ray.remote(measure_on_node).options(
            num_cpus=cpus,
            num_gpus=gpus,
            max_retries=MAX_RETRIES,
            retry_exceptions=False,
            scheduling_strategy="SPREAD",  # each experiment a node's engine to itself
            name="overnight-measure",
        )

    def _connect(self, ray: Any) -> None:
        if ray.is_initialized():
            return
        main = threading.current_thread() is threading.main_thread()
        sigterm = signal.getsignal(signal.SIGTERM) if main else None
        try:
            _answers(self.address)  # ray.init itself retries an absent cluster for minutes
            ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
        except (OSError, RuntimeError, ValueError) as err:
            raise InfrastructureFault(
                f"cannot reach the Ray cluster at {self.address!r} ({_first_line(err)}): start "
                "it (`ray start --head`), or set executor.address / --ray-address"
            ) from err
        finally:
            if sigterm is not None:  # ray.init makes SIGTERM exit at once: the night's stays
                signal.signal(signal.SIGTERM, sigterm)
        self._connected = True

    def _check_fits(self, ray: Any) -> int:
        """How many alive nodes could run one experiment; InfrastructureFault when none can
        (Ray would wait for one for ever)."""
        cpus, gpus = self.resources
        fits = [
            node
            for node in ray.nodes()
            if node.get("Alive")
            and node["Resources"].get("CPU", 0) >= cpus
            and node["Resources"].get("GPU", 0) >= gpus
        ]
        if not fits:
            raise InfrastructureFault(
                f"no alive node of the Ray cluster at {self.address!r} has {cpus:g} CPUs "
                f"(sandbox.cpus) and {gpus} GPUs (sandbox.gpus_per_experiment) for one "
                "experiment: start such a node, or ask for less"
            )
        return len(fits)

    def _wait(self, ref: Any, ray: Any) -> NodeOutcome:
        """The task's outcome; Ray's own failures (every retry's node died, the task cancelled)
        as InfrastructureFault."""
        checked = time.monotonic()
        try:
            while not ray.wait([ref], timeout=WAIT_S)[0]:
                if self._closed:
                    raise InfrastructureFault(CLOSED)
                if time.monotonic() - checked > FIT_CHECK_S:
                    checked = time.monotonic()
                    try:
                        self._check_fits(ray)
                    except InfrastructureFault:
                        with contextlib.suppress(Exception):
                            ray.cancel(ref, force=True)
                        raise
            outcome: NodeOutcome = ray.get(ref)
            return outcome
        except ray.exceptions.TaskCancelledError as err:
            raise InfrastructureFault(
                CLOSED if self._closed else "the Ray task was cancelled"
            ) from err
        except ray.exceptions.RayTaskError as err:
            if isinstance(err.cause, ImportError):
                raise TaskError(
                    f"a Ray node cannot import overnight ({_first_line(err.cause)}): install "
                    "overnight[ray], the version of the head, on every node"
                ) from err
            raise
        except ray.exceptions.RayError as err:
            raise InfrastructureFault(
                f"the Ray cluster could not run the experiment (retried up to {MAX_RETRIES} "
                f"times when a node or worker died): {type(err).__name__}: {_first_line(err)}"
            ) from err

    def _clean_nodes(self, ray: Any) -> int:
        """One cleanup task pinned to each alive node: how many containers they removed."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        clean = ray.remote(clean_node)
        refs = [
            clean.options(
                num_cpus=0,
                max_retries=0,
                name="overnight-clean",
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
            ).remote(self.settings, self.run_id)
            for node in ray.nodes()
            if node.get("Alive")
        ]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=CLEAN_WAIT_S)
        removed = 0
        for ref in ready:
            with contextlib.suppress(ray.exceptions.RayError):
                removed += ray.get(ref)
        return removed


class NodeExperimenter(Experimenter):
    """An Experimenter over a setup unpacked on a node: it never runs setup, and checks
    prepare.py in its own copy (the task folder is on the head, which checks that one)."""

    def __init__(
        self,
        task: Task,
        settings: Settings,
        sandbox: Sandbox,
        image: str,
        setup_dir: Path,
        say: Say,
    ) -> None:
        # Not Experimenter.__init__: it lists the task folder's files, which are on the head.
        self.task, self.settings, self.sandbox, self.image, self.say = (
            task, settings, sandbox, image, say,
        )  # fmt: skip
        self.files = []
        self.host_data = []  # what git ignores came in the setup's copy (the rest is refused)
        self.setup_dir = setup_dir
        self.call_train = uses_call_train(task.prepare_source)

    def setup(self) -> bool:
        raise RuntimeError("setup runs on the head; a node only unpacks its result")

    def check_evaluator(self) -> None:
        path = self.task_dir / PREPARE
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            digest = "missing"
        if digest != self.task.prepare_hash:
            raise EvaluatorChanged(
                f"{path}: the node's copy of prepare.py changed (sha256 {digest[:12]}, expected "
                f"{self.task.prepare_hash[:12]}); remove that folder and run the same tag again"
            )


# The node side: these run in Ray workers. A worker serves one night (Ray's workers belong to
# one job), so what it set up for a run is kept for that run's next task.
_EXPERIMENTERS: dict[tuple[str, str], NodeExperimenter] = {}
_SAID: list[str] = []


def node_cache() -> Path:
    """This node's folder for unpacked setups and measurement scratch folders."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "overnight" / "ray"


def measure_on_node(job: NodeJob) -> NodeOutcome:
    """One measurement on this node's engine (the body of the Ray task)."""
    import ray

    where = f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()}"
    outcome = NodeOutcome(where)
    _SAID.clear()
    try:
        experimenter = _experimenter(job, ray.get)
        scratch = node_cache() / "scratch" / job.run_id / uuid.uuid4().hex[:12]
        started = time.monotonic()
        measurement = experimenter.measure(job.source, scratch, _assigned_gpus(job.settings, ray))
        outcome.seconds = time.monotonic() - started
        outcome.measurement = replace(measurement, where=where)
    except InfrastructureFault as fault:
        outcome.fault = f"Ray node {_short(where)}: {fault}"
    except OvernightError as err:
        outcome.stop = f"Ray node {_short(where)}: {err}"
    outcome.messages = list(_SAID)
    return outcome


def clean_node(settings: Settings, run_id: str) -> int:
    """Remove the run's containers, volumes and scratch folders on this node; how many
    containers went (the body of the cleanup task at `close`)."""
    sandbox = make_sandbox(settings, run_id, lambda _: None)
    removed = 0
    try:
        sandbox.open()
        removed = sandbox.remove_leftovers()
    except InfrastructureFault:
        pass  # the engine is gone: the next night's `prepare` on this node removes them
    finally:
        sandbox.close()
    tree.remove(node_cache() / "scratch" / run_id)
    return removed


def _experimenter(job: NodeJob, get: Callable[[Any], bytes]) -> NodeExperimenter:
    """This worker's experimenter for the job's run: the setup unpacked (once per node), the
    sandbox opened and prepared (what dead workers left on this engine removed)."""
    key = (job.run_id, job.setup.digest)
    found = _EXPERIMENTERS.get(key)
    if found is None:
        setup_dir = unpack(job.setup, node_cache() / "setups", get)
        sandbox = make_sandbox(job.settings, job.run_id, _SAID.append)
        sandbox.open()
        sandbox.prepare(job.image)
        found = NodeExperimenter(
            job.task, job.settings, sandbox, job.image, setup_dir, _SAID.append
        )
        _EXPERIMENTERS[key] = found
    found.settings = job.settings  # the metric may have been chosen since (after the baseline)
    return found


def _assigned_gpus(settings: Settings, ray: Any) -> tuple[str, ...] | None:
    """The GPUs Ray gave this task, when experiments get GPUs of their own."""
    if not settings.sandbox.gpus_per_experiment:
        return None
    return tuple(str(gpu) for gpu in ray.get_gpu_ids())


def _answers(address: str, timeout_s: float = 5.0) -> None:
    """OSError unless something listens at a "host:port" or "ray://host:port" address ("auto"
    is found, or not, by ray.init at once)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
        pass


def _short(where: str) -> str:
    """A node in a message: its address and the start of its id."""
    address, _, node_id = where.partition("/")
    return f"{address} ({node_id[:8]})"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@dataclass(frozen=True)
class Overhead:
    """What Ray adds to one measurement, in milliseconds (medians)."""

    direct_ms: float  # the measurement through the Experimenter on this machine
    ray_ms: float  # the same through Ray, from the call to the result
    dispatch_ms: float  # of which not the measurement on the node: Ray's own share
    runs: int


def bench_overhead(
    experimenter: Experimenter, measurer: RayMeasurer, source: str, scratch: Path, runs: int = 5
) -> Overhead:
    """The same measurement `runs` times each way, after one Ray measurement per node to warm
    them (a node's first one unpacks the setup and starts a worker)."""
    import ray

    measurer.dispatch(source)
    for _ in range(len([n for n in ray.nodes() if n.get("Alive")]) - 1):
        measurer.dispatch(source)
    direct, through, dispatch = [], [], []
    for _ in range(runs):
        started = time.monotonic()
        experimenter.measure(source, scratch)
        direct.append(time.monotonic() - started)
        sent = measurer.dispatch(source)
        through.append(sent.total_s)
        dispatch.append(sent.overhead_s)
    return Overhead(
        direct_ms=1000 * statistics.median(direct),
        ray_ms=1000 * statistics.median(through),
        dispatch_ms=1000 * statistics.median(dispatch),
        runs=runs,
    )
