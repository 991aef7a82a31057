"""Turns a `train.py` into a measurement: setup once, then train and evaluate, each in a fresh container.

Container layout (the same in every container that has each part):
  /overnight/task      the task folder, the working directory: writable in setup (a copy, cached
                       afterwards); in training and evaluation setup's result read-only, entry by
                       entry, over a writable folder that vanishes with the container. It holds
                       prepare.py and, for training only, the candidate's train.py.
  /overnight/home      HOME: writable in setup and cached; read-only afterwards, its shared
                       folders (~/.cache, ~/.config, ~/.local) writable around setup's entries
  /overnight/data      OVERNIGHT_DATA_DIR: public data, read-only after setup
  /overnight/private   OVERNIGHT_PRIVATE_DIR: held-out data, setup and evaluator only
  /overnight/output    OVERNIGHT_OUTPUT_DIR: what train.py leaves for the evaluator (a size-capped
                       scratch area of the sandbox); read-only to the evaluator
  /overnight/train/train.py  the candidate, for the workers of a task that uses call_train
  /overnight/harness   our evaluator runner and `overnight_eval` (on PYTHONPATH)
Protected mode takes the metric only from `evaluate(output_dir)` run in a container whose own
process never runs train.py. Inline mode takes the last `<metric>: <number>` line train.py printed.
prepare.py is hashed when the night starts and checked before every scoring: a change stops it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import sandbox
from harness.config import Settings
from harness.errors import TaskError
from harness.host_data import HostEntry, host_entries
from harness.host_data import fingerprint as host_data_fingerprint
from harness.metric_choice import printed_metric, printed_metrics
from harness.seams import (
    Mount,
    RunResult,
    RunSpec,
    RunStatus,
    Sandbox,
    Scratch,
    ScratchMount,
    Tmpfs,
)
from harness.setup_cache import (
    SHARED_HOME_FOLDERS,
    copy_task,
    files_fingerprint,
    layered,
    snapshot,
    task_files,
)
from harness.task import PREPARE, TRAIN, Task
from sandbox import tree
from sandbox.deadline import GRACE_S
from sandbox.users import own_for_runs, run_ids, worker_ids

TASK_DIR = "/overnight/task"
HOME_DIR = "/overnight/home"
DATA_DIR = "/overnight/data"
PRIVATE_DIR = "/overnight/private"
OUTPUT_DIR = "/overnight/output"
TRAIN_DIR = "/overnight/train"
HARNESS_DIR = "/overnight/harness"
RESULT_DIR = "/overnight/result"
_RESULT_LIMIT = 1_000_000
_BASE_ENV = {"HOME": HOME_DIR, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
_SANDBOX = Path(sandbox.__file__).resolve().parent
_RUNNER = _SANDBOX / "evaluate_runner.py"
# Mounted at HARNESS_DIR: the runner, the helper prepare.py imports, and call_train's worker.
_RUNNER_FILES = (
    "evaluate_runner.py",
    "evaluator_checks.py",
    "overnight_eval.py",
    "train_worker.py",
)


@dataclass(frozen=True)
class Measurement:
    """One experiment's runs and the metric they produced (None when there is no valid one)."""

    train: RunResult
    evaluation: RunResult | None
    metric: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    # Why there is no valid metric, in the harness's own words: the agent may see it.
    note: str = ""
    # The evaluator's own account (an exception's message, the end of its output): for the human
    # only, since it may quote the private data.
    detail: str = ""
    # Where it ran, when more than one place could have run it (a Ray node's id); "" locally.
    where: str = ""


class Measurer(Protocol):
    """Measures one train.py: a fresh training container, then a fresh evaluator container.

    `Experimenter` does it on this machine's sandbox; harness/ray_executor.py on a Ray node's.
    Called from several threads at once when the night runs more than one worker."""

    def measure(
        self, source: str, scratch: Path, devices: tuple[str, ...] | None = None
    ) -> Measurement: ...


def combine_runs(runs: list[Measurement], metric: float | None, note: str) -> Measurement:
    """One measurement standing for a run and its confirmations: their total time, the largest
    peak memory, and the metric the decision settled on."""
    first = runs[0]
    train = replace(
        first.train,
        wall_s=sum(r.train.wall_s for r in runs),
        peak_memory_bytes=max(r.train.peak_memory_bytes for r in runs),
    )
    evaluation = first.evaluation
    if evaluation is not None:
        wall = sum(r.evaluation.wall_s for r in runs if r.evaluation is not None)
        evaluation = replace(evaluation, wall_s=wall)
    return Measurement(train, evaluation, metric, first.metrics, note)


def with_metric(measurement: Measurement, metric: str) -> Measurement:
    """The measurement judged by `metric`, once it is known (a metric inferred after the baseline)."""
    value = measurement.metrics.get(metric)
    if value is not None and not math.isfinite(value):
        value = None
    note = measurement.note
    if value is None and not note and measurement.train.status is RunStatus.OK:
        note = missing_metric_note(metric, measurement.metrics)
    return replace(measurement, metric=value, note=note)


def missing_metric_note(metric: str, found: dict[str, float]) -> str:
    names = ", ".join(found) or "none"
    return f"no `{metric}: <number>` line (the `name: number` lines printed: {names})"


class SetupFailed(TaskError):
    pass


class EvaluatorChanged(TaskError):
    """prepare.py (the task's, or the copy the containers use) changed during the night."""


def uses_call_train(prepare_source: str) -> bool:
    """Whether prepare.py imports overnight_eval (then its evaluator gets call_train workers)."""
    for node in ast.walk(ast.parse(prepare_source)):
        if isinstance(node, ast.Import) and any(a.name == "overnight_eval" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "overnight_eval":
            return True
    return False


class Experimenter:
    def __init__(
        self,
        task: Task,
        settings: Settings,
        sandbox: Sandbox,
        image: str,
        cache: Path,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.task = task
        self.settings = settings
        self.sandbox = sandbox
        self.image = image
        self.say = say
        self.files = task_files(task.root)
        self.host_data = host_entries(task.root)
        fingerprint = files_fingerprint(task.root, self.files)
        if self.host_data:
            fingerprint += host_data_fingerprint(self.host_data)
        digest = hashlib.sha256(f"{task.prepare_hash}{fingerprint}".encode()).hexdigest()
        key = f"{digest[:16]}-{re.sub(r'[^A-Za-z0-9]+', '_', image)}"
        self.setup_dir = cache / f"setup-{key}"
        self.call_train = uses_call_train(task.prepare_source)

    @property
    def task_dir(self) -> Path:
        return self.setup_dir / "task"

    @property
    def home_dir(self) -> Path:
        return self.setup_dir / "home"

    @property
    def data_dir(self) -> Path:
        return self.setup_dir / "data"

    @property
    def private_dir(self) -> Path:
        return self.setup_dir / "private"

    @property
    def runner_dir(self) -> Path:
        return self.setup_dir / "runner"

    def setup(self) -> bool:
        """Run `python prepare.py` once per (prepare.py, task files, image); False when cached."""
        done = self.setup_dir / "done"
        if done.exists():
            self._install_runner()
            self._lock_private()
            return False
        if self.setup_dir.exists():
            shutil.rmtree(self.setup_dir)
        self.runner_dir.mkdir(parents=True)
        copied = [name for entry in self.host_data if entry.copied for name in entry.files()]
        copy_task(self.task.root, [*self.files, *copied], self.task_dir)
        for entry in self._mounted_host_data():  # where the read-only view of it goes
            placeholder = self.task_dir / entry.name
            placeholder.parent.mkdir(parents=True, exist_ok=True)
            if entry.is_dir:
                placeholder.mkdir()
            else:
                placeholder.touch()
        (self.task_dir / PREPARE).write_text(self.task.prepare_source, encoding="utf-8")
        (self.task_dir / TRAIN).write_text(self.task.train_source, encoding="utf-8")
        for folder in (self.home_dir, self.data_dir, self.private_dir):
            folder.mkdir()
            own_for_runs(folder, 0o755)
        before = snapshot(self.task_dir)
        self._install_runner()
        result = self.sandbox.run(self._setup_spec())
        (self.setup_dir / "setup.log").write_text(result.output_tail, encoding="utf-8")
        if result.status is not RunStatus.OK:
            raise SetupFailed(
                f"{self.task.root / PREPARE}: `python prepare.py` ended with {result.status.value} "
                f"(exit {result.exit_code}) in setup{_setup_failure(result.output_tail, self.settings)}"
                ". Its output ends:\n" + _last_lines(result.output_tail, 15)
            )
        if snapshot(self.task_dir) == before and not any(
            any(folder.iterdir()) for folder in (self.home_dir, self.data_dir, self.private_dir)
        ):
            self.say(
                "setup: `python prepare.py` wrote no file (not next to itself, not under ~, not "
                "in OVERNIGHT_DATA_DIR or OVERNIGHT_PRIVATE_DIR); if train.py expects data, check "
                "where prepare.py writes it (only those places are kept)"
            )
        self._lock_private()
        done.write_text(self.task.prepare_hash + "\n")
        return True

    def _setup_spec(self) -> RunSpec:
        return RunSpec(
            image=self.image,
            command=["python3", f"{TASK_DIR}/{PREPARE}"],
            mounts=[
                Mount(self.task_dir, TASK_DIR, read_only=False),
                Mount(self.home_dir, HOME_DIR, read_only=False),
                Mount(self.runner_dir, HARNESS_DIR),
                Mount(self.data_dir, DATA_DIR, read_only=False),
                Mount(self.private_dir, PRIVATE_DIR, read_only=False),
                *self._host_data_mounts(),
            ],
            env={
                **_BASE_ENV,
                "PYTHONPATH": HARNESS_DIR,
                "OVERNIGHT_DATA_DIR": DATA_DIR,
                "OVERNIGHT_PRIVATE_DIR": PRIVATE_DIR,
            },
            timeout_s=self.settings.sandbox.setup_timeout,
            workdir=TASK_DIR,
            purpose="setup",
            network=self.settings.sandbox.setup_network,
        )

    def _install_runner(self) -> None:
        """Our evaluator files, fresh from this version of overnight (replaced atomically)."""
        self.runner_dir.mkdir(parents=True, exist_ok=True)
        for name in _RUNNER_FILES:
            source, target = (_SANDBOX / name).read_bytes(), self.runner_dir / name
            if not target.exists() or target.read_bytes() != source:
                tmp = target.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(source)
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)

    def _lock_private(self) -> None:
        """Only the evaluator's uid may enter the private data (call_train workers may not)."""
        own_for_runs(self.private_dir, 0o700)

    def check_evaluator(self) -> None:
        """Stop the night if prepare.py changed since it started, in the task or in the cache."""
        for path in (self.task.root / PREPARE, self.task_dir / PREPARE):
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest = "missing"
            if digest != self.task.prepare_hash:
                raise EvaluatorChanged(
                    f"{path}: changed while the night ran (sha256 {digest[:12]}, expected "
                    f"{self.task.prepare_hash[:12]}), so its scores would not be comparable; "
                    "restore it, or start a new tag with --tag"
                )

    def measure(
        self, source: str, scratch: Path, devices: tuple[str, ...] | None = None
    ) -> Measurement:
        """Train `source` and score it; the scratch folder and output area are removed afterwards.
        `devices`: the GPUs of this measurement alone (None: the sandbox's `gpus` setting)."""
        self.check_evaluator()
        tree.remove(scratch)
        code, result = scratch / "code", scratch / "result"
        code.mkdir(parents=True)
        (code / TRAIN).write_text(source, encoding="utf-8")
        result.mkdir()
        own_for_runs(result, 0o700)
        size = self.settings.sandbox.output_dir_size.bytes
        try:
            with self.sandbox.scratch(size, self.lifetime()) as output:
                return self._train_and_score(code, output, result, devices)
        finally:
            tree.remove(scratch)

    def lifetime(self) -> float:
        """How long one experiment's containers may live in all: its training and evaluation
        deadlines, their in-container grace, and time for the engine to create and remove them."""
        sandbox = self.settings.sandbox
        evaluation = sandbox.eval_timeout if self.settings.protected else 0.0
        return self.settings.timeout + evaluation + 2 * GRACE_S + 4 * sandbox.api_timeout

    def _train_and_score(
        self, code: Path, output: Scratch, result: Path, devices: tuple[str, ...] | None = None
    ) -> Measurement:
        train = self._train(code, output, devices)
        if train.status is not RunStatus.OK:
            return Measurement(train=train, evaluation=None, metric=None)
        self.check_evaluator()
        metric = self.settings.metric
        if not self.settings.protected:
            printed = printed_metrics(train.output_tail)
            if metric is None:
                return Measurement(train, None, None, printed)
            value = printed_metric(train.output_tail, metric)
            note = "" if value is not None else missing_metric_note(metric, printed)
            return Measurement(train, None, value, printed, note)
        evaluation = self._evaluate(code, output, result, devices)
        metrics, note, detail = read_result(result / "result.json", evaluation, metric or "")
        value = metrics.get(metric) if metric else None
        return Measurement(train, evaluation, value, metrics, note, detail)

    def _task_view(self, size: int, with_train: Path | None) -> list[Mount | ScratchMount | Tmpfs]:
        """The task folder and HOME as setup left them, read-only over writable folders."""
        own = tuple(e.name for e in self._mounted_host_data() if "/" not in e.name)
        mounts: list[Mount | ScratchMount | Tmpfs] = [
            *layered(self.task_dir, TASK_DIR, size, exclude=(TRAIN, *own)),
            *self._host_data_mounts(),
            *layered(self.home_dir, HOME_DIR, size, shared=SHARED_HOME_FOLDERS),
        ]
        if with_train is not None:
            mounts.append(Mount(with_train / TRAIN, f"{TASK_DIR}/{TRAIN}"))
        return mounts

    def _mounted_host_data(self) -> list[HostEntry]:
        return [entry for entry in self.host_data if not entry.copied]

    def _host_data_mounts(self) -> list[Mount]:
        """The author's ignored data that the task's code names and that is too large to copy,
        read-only where it lies in the checkout (see harness/host_data.py)."""
        return [Mount(e.path, f"{TASK_DIR}/{e.name}") for e in self._mounted_host_data()]

    def _train(
        self, code: Path, output: Scratch, devices: tuple[str, ...] | None = None
    ) -> RunResult:
        sandbox = self.settings.sandbox
        network = sandbox.setup_network if sandbox.train_network else "none"
        return self.sandbox.run(
            RunSpec(
                image=self.image,
                command=["python3", f"{TASK_DIR}/{TRAIN}"],
                mounts=[
                    *self._task_view(sandbox.tmpfs.bytes, with_train=code),
                    Mount(self.runner_dir, HARNESS_DIR),
                    Mount(self.data_dir, DATA_DIR),
                    ScratchMount(output, OUTPUT_DIR, read_only=False),
                ],
                env={
                    **_BASE_ENV,
                    "PYTHONPATH": f"{TASK_DIR}:{HARNESS_DIR}",
                    "OVERNIGHT_DATA_DIR": DATA_DIR,
                    "OVERNIGHT_OUTPUT_DIR": OUTPUT_DIR,
                    "OVERNIGHT_TIME_BUDGET": f"{self.settings.time_budget:g}",
                },
                timeout_s=self.settings.timeout,
                workdir=TASK_DIR,
                purpose="train",
                network=network,
                devices=devices,
            )
        )

    def _evaluate(
        self, code: Path, output: Scratch, result: Path, devices: tuple[str, ...] | None = None
    ) -> RunResult:
        command = [
            "python3",
            "-I",
            f"{HARNESS_DIR}/{_RUNNER.name}",
            TASK_DIR,
            OUTPUT_DIR,
            f"{RESULT_DIR}/result.json",
            self.settings.metric or "",
            "--output-limit",
            str(output.size_bytes),
        ]
        mounts: list[Mount | ScratchMount | Tmpfs] = [
            *self._task_view(self.settings.sandbox.tmpfs.bytes, with_train=None),
            Mount(self.runner_dir, HARNESS_DIR),
            Mount(self.data_dir, DATA_DIR),
            Mount(self.private_dir, PRIVATE_DIR),
            ScratchMount(output, OUTPUT_DIR),
            Mount(result, RESULT_DIR, read_only=False),
        ]
        if self.call_train:  # workers import train.py; the evaluator's own process never does
            users = ",".join(":".join(map(str, ids)) for ids in (run_ids(), worker_ids()))
            command += ["--train-file", f"{TRAIN_DIR}/{TRAIN}", "--users", users]
            mounts.append(Mount(code, TRAIN_DIR))
        return self.sandbox.run(
            RunSpec(
                image=self.image,
                command=command,
                mounts=mounts,
                env={
                    **_BASE_ENV,
                    "OVERNIGHT_DATA_DIR": DATA_DIR,
                    "OVERNIGHT_PRIVATE_DIR": PRIVATE_DIR,
                    "OVERNIGHT_OUTPUT_DIR": OUTPUT_DIR,
                },
                timeout_s=self.settings.sandbox.eval_timeout,
                workdir=TASK_DIR,
                purpose="evaluate",
                user_switching=self.call_train,
                devices=devices,
            )
        )


def inline_metric(output: str, metric: str) -> float | None:
    """The last `<metric>: <number>` line of the output (autoresearch's summary block)."""
    return printed_metric(output, metric)


def read_result(
    path: Path, evaluation: RunResult, metric: str
) -> tuple[dict[str, float], str, str]:
    """The evaluator's metrics, or none, with a note and a detail saying why. The note is in the
    harness's own words, so the agent may see it: a container status, a refusal of the output, or
    a failure kind the runner names in a fixed vocabulary (checked here again). The detail is the
    evaluator's own account, for the human only. Every value must be a JSON number (a JSON `true`
    is not 1.0), finite."""
    if evaluation.status in (RunStatus.TIMEOUT, RunStatus.OOM):
        return {}, _ended(evaluation), _last_lines(evaluation.output_tail, 5)
    payload, problem = _load_result(path)
    if problem or not isinstance(payload, dict):
        if evaluation.status is not RunStatus.OK:
            problem = f"{_ended(evaluation)} without a result"
        return {}, problem or "the evaluator's result is not a JSON object", ""
    if "refused" in payload:
        return {}, f"the output directory was refused: {str(payload['refused'])[:500]}", ""
    if "invalid" in payload or evaluation.status is not RunStatus.OK:
        kind, detail = payload.get("invalid"), str(payload.get("detail", ""))[:2000]
        if isinstance(kind, str) and agent_safe(kind, metric):
            return {}, kind, detail
        return {}, "evaluate() failed", f"{_ended(evaluation)}; {str(kind)[:200]}: {detail}"
    raw = payload.get("metrics")
    if not isinstance(raw, dict):
        return {}, "the evaluator's result holds no metrics", ""
    metrics = {}
    for key, value in raw.items():
        where = key if key == (metric or "metric") else "another value"
        if type(value) not in (int, float):
            note = f"evaluate() returned {type(value).__name__} for {where}, not a real number"
            return {}, note, f"{key!r}: {value!r:.200}"
        number = _finite(value)
        if number is None:
            return {}, f"evaluate() gave {where}: not a finite number", f"{key!r} = {value!r:.200}"
        metrics[str(key)] = number
    if metric and metric not in metrics:
        return {}, f"evaluate() returned no {metric}", ""
    return metrics, "", ""


_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,59}"


def agent_safe(kind: str, metric: str) -> bool:
    """Whether a failure kind from the evaluator is in the runner's fixed vocabulary: a type
    name, a kind of call_train failure, an exit code; never free text such as a message."""
    name = re.escape(metric or "metric")
    where = rf"(?:{name}|another value)"
    patterns = (
        rf"evaluate\(\) raised (?:an exception|{_NAME})"
        r"(?: \(a value was narrowed; overnight makes that an error\))?",
        r"call_train worker (?:timed out|exited with code \d{1,3}|was killed by signal \d{1,2}"
        r"|answered with too much data|answered with no plain data)",
        rf"call_train: train\.py's {_NAME}\(\) raised (?:an exception|{_NAME})",
        r"call_train failed",
        rf"evaluate\(\) returned no {name}",
        rf"evaluate\(\) returned (?:an object|{_NAME}) for {where}, not a real number",
        rf"evaluate\(\) gave {where}: not a finite number",
    )
    return any(re.fullmatch(pattern, kind) for pattern in patterns)


def _load_result(path: Path) -> tuple[object, str]:
    try:
        if path.is_symlink() or path.stat().st_size > _RESULT_LIMIT:
            return None, "the evaluator's result file is not a plain file of sane size"
        return json.loads(path.read_text(encoding="utf-8")), ""
    except (OSError, ValueError) as err:
        return None, f"no result from evaluate() ({type(err).__name__})"


def _finite(value: int | float) -> float | None:
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _ended(evaluation: RunResult) -> str:
    return f"the evaluator ended with {evaluation.status.value} (exit {evaluation.exit_code})"


# What a failed download says, in the words of urllib, requests, curl and the resolver.
_NETWORK_FAILURE = re.compile(
    r"Could not resolve host|Temporary failure in name resolution|Name or service not known|"
    r"nodename nor servname|getaddrinfo failed|Network is unreachable|No route to host|"
    r"Connection refused|Connection timed out|Failed to establish a new connection|"
    r"Max retries exceeded|URLError|ConnectTimeout|ConnectionError|DNSError|"
    r"Could not connect to|SSL: CERTIFICATE_VERIFY_FAILED",
    re.IGNORECASE,
)
_RAISED = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Exit)\b.*", re.M)


def _setup_failure(output: str, settings: Settings) -> str:
    """What failed in setup, said after its status: the exception, and whether it was the
    network (then the fix is the network, not prepare.py)."""
    raised = _RAISED.findall(output)
    said = f": {' '.join(raised[-1].split())[:240].rstrip('.')}" if raised else ""
    if _NETWORK_FAILURE.search(output):
        network = settings.sandbox.setup_network
        return (
            f"{said}; a download failed: setup runs on Docker network {network!r}, so check "
            "that containers there reach that host (or set sandbox.setup_network)"
        )
    return f"{said}; fix prepare.py"


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-count:])
