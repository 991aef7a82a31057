"""One strict config tree: `overnight.toml` wins over `prepare.py`'s constants; CLI flags win over both.

Every field has a docstring and a default; unknown keys are errors. The resolved settings are
written next to the run's results as `config.json`.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from harness.errors import TaskError
from harness.model_config import MODEL_AGENTS, ModelAgentConfig, ModelAgentConfigs
from harness.noise import DEFAULT_SIGMAS, Threshold, parse_threshold
from harness.overrides import Overrides
from harness.providers.registry import model_provider_list
from harness.seams import Direction
from harness.sizes import ByteSize
from harness.strict import Strict
from harness.task import CONFIG, PREPARE, TRAIN, NotLiteral, Task
from harness.task_facts import BudgetSource, budget_seconds
from harness.workers import Machine, PlanError, WorkerPlan, gpu_slots, plan_workers

DEFAULT_TIME_BUDGET = 300.0


class SandboxConfig(Strict):
    image: str | None = Field(
        None,
        description="Docker image for every step. Default: the task's Dockerfile if it has one, "
        "else overnight's own image (`overnight image build`).",
    )
    memory: ByteSize = Field(
        ByteSize.parse("4g"), description="Memory limit per container, swap included."
    )
    cpus: float = Field(
        default_factory=lambda: float(min(os.cpu_count() or 1, 2)),
        description="CPUs per container.",
    )
    pids: int = Field(512, description="Most processes and threads a container may have.")
    tmpfs: ByteSize = Field(
        ByteSize.parse("512m"), description="Size of the scratch /tmp in each container."
    )
    output_cap: ByteSize = Field(
        ByteSize.parse("1m"), description="How much of a step's output tail is kept."
    )
    setup_timeout: float = Field(1800.0, description="Seconds `python prepare.py` may take.")
    eval_timeout: float = Field(600.0, description="Seconds `evaluate(output_dir)` may take.")
    api_timeout: float = Field(
        60.0,
        description="Seconds any one call to the Docker engine may take before it counts as hung.",
    )
    backend: Literal["docker", "local"] = Field(
        "docker",
        description="docker: a fresh locked-down container per step. local: a process on this "
        "machine with a temporary copy of the files and resource limits; much weaker isolation.",
    )
    output_dir_size: ByteSize = Field(
        ByteSize.parse("1g"),
        description="Size of the training's output directory (a tmpfs counted in its memory); "
        "no file in it may be larger.",
    )
    runtime: str | None = Field(
        None, description='Docker runtime for every container, e.g. "runsc" (gVisor), if installed.'
    )
    gpus: Literal["all"] | list[str] | None = Field(
        None,
        description='GPUs: "all" or a list of device ids (0, 1, ... or UUIDs). Without '
        "gpus_per_experiment every container gets all of them.",
    )
    gpus_per_experiment: int | None = Field(
        None,
        ge=1,
        description="Make `gpus` a pool: each running experiment gets this many devices of its "
        "own, never shared with another running one; --workers defaults to the pool's slots.",
    )

    @field_validator("gpus", mode="before")
    @classmethod
    def _device_ids(cls, value: object) -> object:
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value

    setup_network: str = Field(
        "bridge",
        description='Docker network of `python prepare.py` (downloads): "bridge" (the engine\'s '
        'default), another network\'s name, or "none".',
    )
    train_network: bool = Field(
        False,
        description="Give training the setup network too (a train.py that downloads at start). "
        "Weaker isolation: the training could send out anything it can read.",
    )


_DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(:[a-z0-9]+)?(=[A-Za-z0-9.+~:\-]+)?$")


class ImageConfig(Strict):
    """The `[image]` table: what the task's image adds to overnight's base image."""

    packages: tuple[str, ...] = Field(
        (),
        description="Debian packages to install with apt (from the base image's own sources), "
        'e.g. ["python3-requests", "libgomp1"].',
    )
    pip: tuple[str, ...] = Field(
        (),
        description='pip requirement strings, e.g. ["torch==2.9.1", "tqdm>=4"], installed with '
        "pyproject.toml's [project].dependencies and requirements.txt.",
    )
    build_timeout: float = Field(
        3600.0, gt=0, description="Seconds building the task's image may take."
    )

    @field_validator("packages")
    @classmethod
    def _are_debian_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _DEBIAN_PACKAGE.match(name):
                raise ValueError(f"{name!r} is not a Debian package name (like python3-requests)")
        return value

    @field_validator("pip")
    @classmethod
    def _are_requirements(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for requirement in value:
            if not requirement.strip() or requirement.lstrip().startswith("-"):
                raise ValueError(
                    f"{requirement!r} is not a requirement string (like tqdm>=4); pip options "
                    "are not allowed here"
                )
        return value


_OFFLINE_PROPOSAL_TIMEOUT = 60.0


class MutateAgentConfig(Strict):
    provider: Literal["mutate"] = "mutate"
    seed: int = Field(0, description="Seed of the mutation agent; the same seed, the same night.")
    proposal_timeout: float = Field(
        _OFFLINE_PROPOSAL_TIMEOUT,
        gt=0,
        description="Seconds one proposal may take; then it is recorded as skipped.",
    )


class OptunaAgentConfig(Strict):
    provider: Literal["optuna"]
    seed: int = Field(
        0, description="Seed of the sampler; the same seed and ledger, the same trials."
    )
    sampler: Literal["tpe", "cmaes", "random"] = Field(
        "tpe",
        description="Optuna's sampler: tpe, cmaes (needs the cmaes package), or random (a baseline).",
    )
    bounds: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="NAME = [low, high]: the range of a constant, never widened.",
    )
    pinned: list[str] = Field(
        default_factory=list, description="Constants the study leaves at their value."
    )
    proposal_timeout: float = Field(
        _OFFLINE_PROPOSAL_TIMEOUT,
        gt=0,
        description="Seconds one proposal may take; then it is recorded as skipped.",
    )

    @field_validator("bounds")
    @classmethod
    def _are_ranges(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, (low, high) in value.items():
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"{name} = [{low}, {high}]: need finite numbers, low < high")
        return value


class ReplayAgentConfig(Strict):
    provider: Literal["replay"]
    script: Path = Field(description="JSONL file, one proposal per line.")
    proposal_timeout: float = Field(
        _OFFLINE_PROPOSAL_TIMEOUT,
        gt=0,
        description="Seconds one proposal may take; then it is recorded as skipped.",
    )


AgentConfig = Annotated[
    MutateAgentConfig | OptunaAgentConfig | ReplayAgentConfig | ModelAgentConfigs,
    Field(discriminator="provider"),
]


class EditConfig(Strict):
    max_calls: int = Field(40, description="Most `edit` calls in one proposal.")
    max_bytes: int = Field(1_000_000, description="Largest `train.py` the edit tool will write.")


class NightConfig(Strict):
    max_consecutive_crashes: int = Field(
        10, description="Stop after this many crashes or timeouts in a row (0: never)."
    )
    min_free_disk: ByteSize = Field(
        ByteSize.parse("1g"), description="Pause before an experiment when less is free."
    )
    max_pause_minutes: float = Field(
        60.0, description="Longest pause on an infrastructure fault before the night stops."
    )
    pause_first_delay: float = Field(5.0, description="Seconds before the first retry.")
    pause_max_delay: float = Field(300.0, description="Longest wait between two retries.")


class ExecutorConfig(Strict):
    """The `[executor]` table: how many experiments run at once, and where."""

    kind: Literal["local", "ray"] = Field(
        "local",
        description="local: this machine's engine. ray: each experiment is a Ray task on "
        "whichever node of the cluster has its resources, on that node's Docker engine.",
    )
    address: str = Field(
        "auto",
        description='The Ray cluster for kind = "ray": "auto" (the one `ray start` began on this '
        'machine), "host:port", or "ray://host:10001".',
    )
    workers: int | None = Field(
        None,
        ge=1,
        description="Experiments running at the same time. Default: the GPU pool's slots when "
        "sandbox.gpus_per_experiment is set, else 1.",
    )


class TaskConfig(Strict):
    """The keys of `overnight.toml`."""

    metric: str | None = Field(None, description="Name of the metric, e.g. val_bpb.")
    direction: Direction | None = Field(None, description="minimize or maximize.")
    time_budget: float | None = Field(None, description="Seconds the training may use.")
    timeout: float | None = Field(None, description="Hard limit; default 2 x time_budget + 60.")
    mode: Literal["inline", "protected"] | None = Field(
        None,
        description="protected: the metric is what prepare.py's evaluate(output_dir) returns; "
        "inline: the last `<metric>: <number>` line train.py prints. Default: protected exactly "
        "when prepare.py defines evaluate(output_dir) and train.py does not call it itself.",
    )
    confirm_runs: int = Field(
        0,
        ge=0,
        description="Re-run a new best this many times before keeping it; it is kept only if "
        "every run beats the previous best, with its worst run as its metric.",
    )
    noise_runs: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="Run the baseline this many times; the spread (sample standard deviation) "
        "of its runs is the metric's noise. Default 1: no noise measured.",
    )
    min_improvement: str | None = Field(
        None,
        description='How much better than the best a keep must be: 0.01 (absolute), "0.5%" '
        '(of the best) or "2sigma" (times the measured noise). Default: strictly better, or '
        '"2sigma" when noise_runs > 1.',
    )
    remeasure_best_every: int = Field(
        0,
        ge=0,
        strict=True,
        description="Every N experiments, run the best again; its value becomes the mean of all "
        "its runs, so a lucky best sinks back to its true level. 0: never.",
    )
    show_evaluator_output: bool = Field(
        False,
        strict=True,
        description="Show the agent the evaluator's own output (its prints, tracebacks, "
        "exception messages and what call_train's workers printed) with a failure. Off: it may "
        "quote the held-out data; the agent gets only the status, the metric and the kind of "
        "failure, and the output is kept for you in evaluate.txt.",
    )
    metric_digits: int | None = Field(
        None,
        ge=1,
        le=17,
        strict=True,
        description="Round the metric to this many significant digits for the agent, the "
        "ledger and the decision (events.jsonl keeps the full value), so that repeated "
        "experiments learn less about the held-out data from it. Default: not rounded.",
    )
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    agent: AgentConfig = Field(default_factory=MutateAgentConfig)

    @field_validator("min_improvement", mode="before")
    @classmethod
    def _is_threshold(cls, value: object) -> str | None:
        return None if value is None else str(parse_threshold(value))

    edit: EditConfig = Field(default_factory=EditConfig)
    night: NightConfig = Field(default_factory=NightConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)


class Settings(Strict):
    """Everything a run uses, resolved; written to `config.json`.

    `metric` and `direction` are None until known: a folder that declares neither has them
    inferred from what its baseline printed (see `harness/metric_choice.py`)."""

    metric: str | None
    direction: Direction | None
    metric_source: str = ""
    time_budget: float
    timeout: float
    time_budget_note: str = ""
    protected: bool
    mode_reason: str = ""
    image: str | None
    sandbox: SandboxConfig
    agent: AgentConfig
    edit: EditConfig
    night: NightConfig
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    # Resolved by harness/workers.py: how many run at once, their GPU slots, and why.
    workers: int = 1
    gpu_slots: list[list[str]] | None = None
    workers_note: str = ""
    confirm_runs: int = 0
    noise_runs: int = Field(1, description="Runs of the baseline; their spread is the noise.")
    min_improvement: str | None = Field(
        None, description="How much better than the best a keep must be (None: strictly)."
    )
    min_improvement_source: str = ""
    remeasure_best_every: int = Field(0, description="Run the best again every N experiments.")
    show_evaluator_output: bool = Field(
        False, description="Whether the agent sees the evaluator's own output with a failure."
    )
    metric_digits: int | None = Field(
        None, description="Significant digits the metric is rounded to before anyone sees it."
    )
    image_build: ImageConfig = Field(default_factory=ImageConfig)

    def threshold(self) -> Threshold | None:
        return None if self.min_improvement is None else parse_threshold(self.min_improvement)

    def with_metric(self, metric: str, direction: Direction, source: str) -> Settings:
        return Settings.model_validate(
            {**self.model_dump(), "metric": metric, "direction": direction, "metric_source": source}
        )


_DIRECTION_WORDS = {
    "minimize": Direction.MINIMIZE,
    "minimise": Direction.MINIMIZE,
    "min": Direction.MINIMIZE,
    "lower": Direction.MINIMIZE,
    "maximize": Direction.MAXIMIZE,
    "maximise": Direction.MAXIMIZE,
    "max": Direction.MAXIMIZE,
    "higher": Direction.MAXIMIZE,
}


def resolve_settings(
    task: Task, overrides: Overrides | None = None, saved: dict[str, Any] | None = None
) -> Settings:
    """Merge prepare.py constants < overnight.toml < CLI flags, or fail with one line per problem.

    `saved` is the tag's own config.json settings: a resumed tag keeps the metric it measured.
    """
    config = _parse_toml(task)
    overrides = overrides or Overrides()
    problems: list[str] = []
    metric, direction, source = _metric(task, config, overrides, saved or {}, problems)
    time_budget, timeout, note = _budget(task, config, overrides, problems)
    protected, mode_reason = scoring_mode(task, config.mode, problems)
    noise_runs, threshold, threshold_from = _noise(task, config, overrides, saved or {}, problems)
    if problems:
        raise TaskError("\n".join(problems))
    agent = _agent(config.agent, overrides, task, problems)
    if problems:
        raise TaskError("\n".join(problems))
    executor = config.executor.changed(
        kind=overrides.executor or config.executor.kind,
        address=overrides.ray_address or config.executor.address,
        workers=overrides.workers or config.executor.workers,
    )
    plan = _workers(task, config.sandbox, executor)
    return Settings(
        metric=metric,
        direction=direction,
        metric_source=source,
        time_budget=time_budget,
        timeout=timeout,
        time_budget_note=note,
        protected=protected,
        mode_reason=mode_reason,
        image=overrides.image or config.sandbox.image,
        confirm_runs=config.confirm_runs,
        noise_runs=noise_runs,
        min_improvement=threshold,
        min_improvement_source=threshold_from,
        remeasure_best_every=config.remeasure_best_every,
        show_evaluator_output=config.show_evaluator_output,
        metric_digits=config.metric_digits,
        sandbox=config.sandbox.changed(
            backend=overrides.sandbox or config.sandbox.backend,
            cpus=plan.cpus,
            memory=plan.memory,
        ),
        workers=plan.workers,
        gpu_slots=None if plan.slots is None else [list(slot) for slot in plan.slots],
        workers_note=plan.note,
        agent=agent,
        edit=config.edit,
        night=config.night,
        executor=executor,
        image_build=config.image,
    )


def _workers(task: Task, sandbox: SandboxConfig, executor: ExecutorConfig) -> WorkerPlan:
    """N workers, their GPU slots, and each container's share of the machine."""
    try:
        # On a Ray cluster each experiment asks Ray for its GPUs (num_gpus), on whichever node.
        ray = executor.kind == "ray"
        slots = None if ray else gpu_slots(sandbox.gpus, sandbox.gpus_per_experiment)
        return plan_workers(
            executor.workers,
            slots,
            sandbox.cpus,
            sandbox.memory,
            frozenset(sandbox.model_fields_set),
            None if ray else Machine.this(),
        )
    except PlanError as err:
        raise TaskError(f"{task.root / CONFIG}: {err}") from None


def _declared(
    key: str, constant: str, task: Task, config: TaskConfig, overrides: Overrides
) -> tuple[Any, str]:
    """A setting's value and where it came from: the flag, overnight.toml, or prepare.py (a
    computed constant counts with the literal default visible in it), else (None, "")."""
    if getattr(overrides, key) is not None:
        return getattr(overrides, key), overrides.flag(key)
    if getattr(config, key) is not None:
        return getattr(config, key), CONFIG
    value = task.prepare_constants.get(constant)
    if isinstance(value, NotLiteral):
        if value.default is None:
            return None, ""
        return value.default, f"{PREPARE} ({constant} = {value.expression}, its default)"
    return value, (PREPARE if value is not None else "")


def _metric(
    task: Task,
    config: TaskConfig,
    overrides: Overrides,
    saved: dict[str, Any],
    problems: list[str],
) -> tuple[str | None, Direction | None, str]:
    metric, metric_from = _declared("metric", "METRIC", task, config, overrides)
    raw, direction_from = _declared("direction", "DIRECTION", task, config, overrides)
    if metric is None and saved.get("metric"):
        metric, metric_from = saved["metric"], "this tag's config.json"
    if raw is None and saved.get("direction"):
        raw, direction_from = saved["direction"], "this tag's config.json"
    if metric is not None and (
        not isinstance(metric, str) or not re.fullmatch(r"[A-Za-z_][\w./@\-]*", metric)
    ):
        problems.append(
            f"{task.root / (PREPARE if metric_from == PREPARE else CONFIG)}: {metric!r} is not a "
            'usable metric name; write it like METRIC = "val_loss" (or metric in overnight.toml)'
        )
    direction = None
    if raw is not None:
        direction = _DIRECTION_WORDS.get(str(getattr(raw, "value", raw)).strip().lower())
        if direction is None:
            problems.append(
                f'{task.root / PREPARE}: DIRECTION must be "minimize" or "maximize" (got '
                f"{raw!r}); set it in prepare.py or direction in {CONFIG}"
            )
    if metric_from == direction_from:
        source = f"from {metric_from}" if metric_from else ""
    else:
        named = [("metric", metric_from), ("direction", direction_from)]
        source = "; ".join(f"{what} from {where}" for what, where in named if where)
    return metric, direction, source


def _noise(
    task: Task,
    config: TaskConfig,
    overrides: Overrides,
    saved: dict[str, Any],
    problems: list[str],
) -> tuple[int, str | None, str]:
    """(noise_runs, min_improvement, where it came from). A resumed tag keeps its noise_runs."""
    runs = overrides.noise_runs or config.noise_runs or saved.get("noise_runs") or 1
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        problems.append(f"--noise-runs must be 1 or more (got {runs!r})")
        return 1, None, ""
    threshold = config.min_improvement
    if threshold is None:
        if runs == 1:
            return runs, None, ""
        return runs, DEFAULT_SIGMAS, f"the default with noise_runs = {runs}"
    if parse_threshold(threshold).unit == "sigma" and runs == 1:
        problems.append(
            f'{task.root / CONFIG}: min_improvement = "{threshold}" needs the noise measured: set '
            'noise_runs = 5 (or --noise-runs 5), or give it as 0.01 or "0.5%"'
        )
    return runs, threshold, CONFIG


def _budget(
    task: Task, config: TaskConfig, overrides: Overrides, problems: list[str]
) -> tuple[float, float, str]:
    """(time budget, hard timeout, a note): the budget train.py will really use."""
    declared, declared_from = _declared("time_budget", "TIME_BUDGET", task, config, overrides)
    timeout, _ = _declared("timeout", _timeout_name(task), task, config, overrides)
    declared = _positive(declared, "time_budget", "TIME_BUDGET", task, problems)
    timeout = _positive(timeout, "timeout", _timeout_name(task), task, problems)
    budget, note = declared or DEFAULT_TIME_BUDGET, ""
    facts = task.budget
    if facts.source in (BudgetSource.PREPARE, BudgetSource.TRAIN):
        name, home = facts.name, PREPARE if facts.source is BudgetSource.PREPARE else TRAIN
        constant = task.prepare_constants.get(name) if home == PREPARE else facts.value
        used = constant.default if isinstance(constant, NotLiteral) else constant
        uses = f"imports {name} from {PREPARE}" if home == PREPARE else f"sets its own {name}"
        if not isinstance(used, int | float) or isinstance(used, bool) or used <= 0:
            used = DEFAULT_TIME_BUDGET
            note = (
                f"train.py {uses}, whose value cannot be read without "
                f"running it; assuming {used:g}s (set timeout in {CONFIG} if it is longer)"
            )
        else:
            seconds = budget_seconds(name, float(used))
            unit = "" if seconds == used else f" ({seconds:g}s)"
            used_text = f"{name} = {used:g}{unit}"
            said = f"train.py {uses.replace(name, used_text, 1)}"
            if declared is not None and declared_from != PREPARE and declared != seconds:
                note = (
                    f"{said}, so time_budget = {declared:g} ({declared_from}) cannot reach it; "
                    f"the hard timeout follows {seconds:g}s"
                )
            elif name != "TIME_BUDGET" or home == TRAIN:
                note = f"{said}; the hard timeout follows it"
            used = seconds
        budget = float(used)
    return budget, timeout or 2 * budget + 60, note


# What prepare.py may call the hard limit per training run, besides TIMEOUT.
TIMEOUT_NAMES = ("TIMEOUT", "HARD_TIMEOUT", "TRAIN_TIMEOUT", "RUN_TIMEOUT", "TIMEOUT_SECONDS")


def _timeout_name(task: Task) -> str:
    return next((n for n in TIMEOUT_NAMES if n in task.prepare_constants), "TIMEOUT")


def scoring_mode(task: Task, configured: str | None, problems: list[str]) -> tuple[bool, str]:
    """(protected?, why): protected only for `evaluate(output_dir)` that train.py does not call."""
    shape = task.evaluate
    if configured == "inline":
        return False, f'mode = "inline" in {CONFIG}'
    if configured == "protected":
        if shape is None or not shape.takes_output_dir:
            found = shape.signature() if shape else "no evaluate"
            problems.append(
                f'{task.root / CONFIG}: mode = "protected" needs def evaluate(output_dir) in '
                f"{PREPARE} (it has {found}); add it, or remove mode"
            )
        return True, f'mode = "protected" in {CONFIG}'
    if shape is None:
        return False, f"{PREPARE} has no evaluate(output_dir)"
    if not shape.takes_output_dir:
        return False, f"{PREPARE}'s {shape.signature()} is not evaluate(output_dir)"
    if task.train_uses_evaluate:
        return False, f"train.py calls {PREPARE}'s evaluate itself"
    return True, f"{PREPARE} defines evaluate(output_dir)"


def _agent(configured: Any, overrides: Overrides, task: Task, problems: list[str]) -> Any:
    """The agent from overnight.toml, switched or adjusted by --provider, --script, --seed,
    --model and --max-cost."""
    provider = overrides.provider or ("replay" if overrides.script is not None else None)
    if provider is None and overrides.seed is not None:
        provider = "optuna" if isinstance(configured, OptunaAgentConfig) else "mutate"
    if provider in MODEL_AGENTS or (provider is None and isinstance(configured, ModelAgentConfig)):
        return _model_agent(provider or configured.provider, configured, overrides, problems)
    if overrides.model is not None or overrides.max_cost is not None:
        problems.append(
            "--model and --max-cost are for a model provider: add --provider "
            f"{model_provider_list()} (or set provider in [agent] of overnight.toml)"
        )
        return configured
    # An offline agent switched by a flag keeps the proposal_timeout overnight.toml gave.
    offline = isinstance(configured, MutateAgentConfig | OptunaAgentConfig | ReplayAgentConfig)
    kept = {"proposal_timeout": configured.proposal_timeout} if offline else {}
    if provider == "replay":
        script = overrides.script or getattr(configured, "script", None)
        if script is None:
            problems.append("--provider replay needs --script FILE (one JSON proposal per line)")
            return configured
        return ReplayAgentConfig(provider="replay", script=Path(script), **kept)
    if provider == "mutate":
        seed = _seed(overrides, configured)
        return MutateAgentConfig(seed=seed, **kept)
    if provider == "optuna":
        # --provider optuna keeps the sampler, bounds and pins of an optuna [agent] table.
        fields = configured.model_dump() if isinstance(configured, OptunaAgentConfig) else kept
        seed = _seed(overrides, configured)
        return OptunaAgentConfig.model_validate({**fields, "provider": "optuna", "seed": seed})
    if isinstance(configured, ReplayAgentConfig) and not configured.script.is_absolute():
        return ReplayAgentConfig(provider="replay", script=task.root / configured.script, **kept)
    return configured


def _seed(overrides: Overrides, configured: Any) -> int:
    return overrides.seed if overrides.seed is not None else getattr(configured, "seed", 0)


def _model_agent(provider: str, configured: Any, overrides: Overrides, problems: list[str]) -> Any:
    """A model provider's config: overnight.toml's if it is the same provider, with the flags."""
    kind = MODEL_AGENTS[provider]
    fields = configured.model_dump(exclude={"provider"}) if isinstance(configured, kind) else {}
    fields.update(overrides.model_dump(include={"model", "max_cost"}, exclude_none=True))
    if kind.model_fields["model"].is_required() and "model" not in fields:
        example = " (e.g. ollama/qwen2.5-coder)" if provider == "litellm" else ""
        problems.append(f"--provider {provider} needs --model{example} or model in [agent]")
        return configured
    try:
        return kind.model_validate({"provider": provider, **fields})
    except ValidationError as err:
        for problem in err.errors():
            where = ".".join(str(part) for part in problem["loc"])
            problems.append(f"--{where.replace('_', '-')}: {problem['msg']}")
        return configured


def _positive(value: Any, key: str, constant: str, task: Task, problems: list[str]) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        problems.append(
            f"{task.root / PREPARE}: {constant} must be a positive number of seconds (got "
            f"{value!r}); fix it there or set {key} in {CONFIG}"
        )
        return None
    return float(value)


_AGENTS: dict[str, type[BaseModel]] = {
    "mutate": MutateAgentConfig,
    "optuna": OptunaAgentConfig,
    "replay": ReplayAgentConfig,
    **MODEL_AGENTS,
}


def _parse_toml(task: Task) -> TaskConfig:
    raw = dict(task.toml)
    if isinstance(raw.get("agent"), dict) and "provider" not in raw["agent"]:
        raw["agent"] = {"provider": "mutate", **raw["agent"]}
    try:
        return TaskConfig.model_validate(raw)
    except ValidationError as err:
        lines = []
        for problem in err.errors():
            loc = _readable_loc(problem["loc"])
            where = ".".join(str(part) for part in loc) or "(top level)"
            hint = (
                f"remove it (known keys: {', '.join(_known_keys(loc))})"
                if problem["type"] == "extra_forbidden"
                else problem["msg"]
            )
            lines.append(f"{task.root / CONFIG}: {where}: {hint}")
        raise TaskError("\n".join(lines)) from err


def _readable_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts the provider into the location of agent errors: agent.mutate.seed -> agent.seed."""
    if len(loc) >= 2 and loc[0] == "agent" and loc[1] in _AGENTS:
        return (loc[0], *loc[2:])
    return loc


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = TaskConfig
    for part in loc[:-1]:
        if model is TaskConfig and part == "agent":
            return sorted({key for agent in _AGENTS.values() for key in agent.model_fields})
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return sorted(model.model_fields)
