"""The seams of overnight: the records that cross module boundaries and the Protocols behind them.

Read this first. It imports nothing else from the project, so every other module can depend on
it. Data flows one way: task -> config -> agent -> sandbox -> evaluator -> decision -> git -> ledger.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class RunStatus(StrEnum):
    """How one container ended, as the sandbox saw it."""

    OK = "ok"
    TIMEOUT = "timeout"
    OOM = "oom"
    CRASH = "crash"


class Verdict(StrEnum):
    """An experiment's status in the ledger."""

    KEEP = "keep"
    DISCARD = "discard"
    CRASH = "crash"
    TIMEOUT = "timeout"
    INVALID = "invalid"
    SKIPPED = "skipped"
    REMEASURE = "remeasure"  # the best (or the baseline) run again: never a candidate


class Direction(StrEnum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


@dataclass(frozen=True)
class Mount:
    """A host path bound into a container."""

    host: Path
    container: str
    read_only: bool = True


@dataclass(frozen=True)
class Scratch:
    """A size-capped writable area made by `Sandbox.scratch`: it outlives one run (training writes
    it, the evaluator reads it) but not the experiment."""

    name: str
    size_bytes: int


@dataclass(frozen=True)
class ScratchMount:
    """A scratch area mounted into a run."""

    scratch: Scratch
    container: str
    read_only: bool = True


@dataclass(frozen=True)
class Tmpfs:
    """An empty writable folder of at most `size_bytes`, owned by the run's user, that lives as
    long as the run. Mounts below it (read-only ones, say) are laid on top of it."""

    container: str
    size_bytes: int


@dataclass(frozen=True)
class RunSpec:
    """One command in one fresh container."""

    image: str
    command: list[str]
    mounts: list[Mount | ScratchMount | Tmpfs]
    env: dict[str, str]
    timeout_s: float
    workdir: str = "/tmp"
    purpose: str = "run"  # setup | train | evaluate: a label for cleanup and logs
    network: str = "none"  # a Docker network name: "none" (loopback only) unless a task needs one
    # Start as root holding only CAP_SETUID and CAP_SETGID, for a runner of ours that drops to
    # unprivileged uids at once (the evaluator of a task that calls train.py through call_train).
    user_switching: bool = False
    # The GPUs of this run alone (a worker's share of the pool); None: the sandbox's own setting.
    devices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RunResult:
    """What happened to one container. `output_tail` is capped to the configured size."""

    status: RunStatus
    exit_code: int | None
    wall_s: float
    output_tail: str
    peak_memory_bytes: int = 0


class Sandbox(Protocol):
    """Runs commands in disposable, locked-down environments and always cleans them up.

    Its lifecycle, as a night uses it (inspect_ai's task_init and cleanup, in our words): `open`
    until the engine answers, `prepare` once the image is known, any number of `run` and
    `scratch`, then `close`, after a fault as well. harness/backends.py builds one from the
    settings; sandbox/docker_sandbox.py and sandbox/local_sandbox.py implement it.
    """

    def open(self) -> None:
        """Reach the engine; an InfrastructureFault while it is unreachable (the night waits and
        calls again). Calling it again once it answered does nothing."""
        ...

    def prepare(self, image: str) -> None:
        """Before the first run: remove what a harness that died left behind, and refuse, in one
        line, what the night needs that the engine cannot give (a runtime, GPUs for `image`)."""
        ...

    def run(self, spec: RunSpec) -> RunResult: ...

    def scratch(
        self, size_bytes: int, lifetime_s: float = 3600.0
    ) -> AbstractContextManager[Scratch]:
        """A fresh scratch area of at most `size_bytes`, removed when the context ends, and kept
        no longer than `lifetime_s` even if the harness dies."""
        ...

    def remove_leftovers(self) -> int:
        """Remove what this sandbox's runs left (a harness killed mid-run leaves containers);
        best effort, an engine that is gone leaves it to the next `prepare`. How many went."""
        ...

    def close(self) -> None:
        """The end of the night: this sandbox's leftovers removed, its connections closed."""
        ...


@dataclass(frozen=True)
class ToolCall:
    """One call of the `edit` tool, as the agent made it."""

    id: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolOutcome:
    """What the `edit` tool answered to one call."""

    call: ToolCall
    output: str
    is_error: bool


@dataclass(frozen=True)
class ExperimentRecord:
    """One row of the ledger, as the agent sees the history."""

    experiment: int
    commit: str
    metric: float | None
    status: Verdict
    description: str
    seconds: float = 0.0
    memory_gb: float = 0.0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class RunningExperiment:
    """An experiment still being measured while another is proposed (--workers > 1)."""

    experiment: int
    description: str
    proposed_from: int  # the number of the best it was proposed from


@dataclass(frozen=True)
class ProposalContext:
    """Everything an agent may know when it proposes the next experiment."""

    experiment: int
    program: str
    prepare_source: str
    train_source: str
    metric: str
    direction: Direction
    history: list[ExperimentRecord]
    best: ExperimentRecord | None
    # The end of the output of the best run, the latest runs and the latest failures, by number.
    output_tails: dict[int, str] = field(default_factory=dict)
    # `git diff` of train.py from the baseline to the best (empty while the baseline is the best).
    best_diff: str = ""
    # time.monotonic() by which the proposal must end (`proposal_timeout`); None: no limit.
    deadline: float | None = None
    # The night's resolved settings (after overnight.toml and the command line), in lines such as
    # "time budget: 60s (train.py reads TIME_BUDGET from prepare.py)"; the same all night.
    settings: tuple[str, ...] = ()
    # What is left of the night's budgets ("7 of 10 experiments", "2.5 hours", "$1.20").
    remaining: str = ""
    # The other numbers each experiment's evaluation returned (or its training printed), by number.
    numbers: dict[int, dict[str, float]] = field(default_factory=dict)
    # What each recent discarded or failed experiment changed: its diff against the best of its
    # time, by number.
    diffs: dict[int, str] = field(default_factory=dict)
    # The agent's own notes so far (a model's reply after its first line), carried across proposals.
    notes: str = ""
    # The metric's noise (standard deviation of the baseline's runs) and how many runs gave it.
    noise: float | None = None
    noise_runs: int = 1
    # How much better than the best a keep must be (0: strictly better), and the setting's text.
    margin: float = 0.0
    min_improvement: str = ""
    # The experiments running while this one is proposed: not to be proposed again.
    running: tuple[RunningExperiment, ...] = ()


@dataclass(frozen=True)
class Usage:
    """What model calls cost: tokens and dollars (all zero for offline agents)."""

    calls: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )

    def __sub__(self, other: Usage) -> Usage:
        return self + Usage(
            -other.calls,
            -other.input_tokens,
            -other.cached_input_tokens,
            -other.output_tokens,
            -other.cost_usd,
        )


@dataclass
class Proposal:
    """An agent's finished proposal. The editor keeps the tool calls; `transcript` holds the
    agent's own messages, where it has any."""

    description: str
    transcript: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    # Why the proposal ended, when not by the agent's own reply ("edit-call limit of 40 reached").
    ended: str = ""
    # Why it must not be run at all (the model refused, or said nothing): recorded as skipped.
    not_run: str = ""
    # The agent's notes to itself, replacing the earlier ones; None: keep them as they are.
    notes: str | None = None


@dataclass(frozen=True)
class RepairRequest:
    """A candidate crashed: what the agent is shown to fix it in the same conversation."""

    experiment: int
    status: str  # "crash" (timeouts and OOMs are results, never repaired)
    output_tail: str
    spent: float  # this tag's spend so far, for --max-cost
    deadline: float | None = None  # time.monotonic() by which the repair must end


@dataclass(frozen=True)
class Stop:
    """Why a night ended. `failed`: a fault ended it (a pause past its limit), not a budget,
    the agent or the user."""

    reason: str
    failed: bool = False


class StopNight(Exception):
    """The one way a night ends, from wherever it is decided (a budget, the agent, a signal, a
    pause past its limit): `Night.run` turns it into the `Stop` it returns.

    The message is the stop reason shown to the user; nothing is committed or discarded for it.
    """

    def __init__(self, reason: str, *, failed: bool = False) -> None:
        super().__init__(reason)
        self.stop = Stop(reason, failed)


class Editor(Protocol):
    """The `edit` tool bound to one copy of `train.py`. There is no path to name."""

    @property
    def source(self) -> str: ...

    @property
    def calls_left(self) -> int: ...

    def call(self, call: ToolCall) -> ToolOutcome: ...

    def restart(self) -> None:
        """Back to the `train.py` it started from (a fresh attempt at the same proposal)."""


class Agent(Protocol):
    """Proposes one experiment by editing `train.py` through the editor only.

    Returns None when it has nothing more to propose (a replay script that ended).
    """

    def propose(self, context: ProposalContext, editor: Editor) -> Proposal | None: ...


@runtime_checkable
class Repairer(Protocol):
    """An agent that can fix its own crashed candidate in the conversation that proposed it.

    The editor holds the crashed `train.py`; None means it cannot (its conversation ended)."""

    def repair(self, request: RepairRequest, editor: Editor) -> Proposal | None: ...
