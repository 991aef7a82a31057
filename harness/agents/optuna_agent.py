"""The `optuna` agent: an Optuna study over the numeric constants of `train.py`, offline and seeded.

Each proposal is one trial: a value for every tunable constant (the same ones `mutate` tunes),
written into `train.py` through the `edit` tool and run as an ordinary experiment. The study
lives in the ledger, not in memory: each proposal rebuilds it from the history, in order, by
replaying every trial (`enqueue_trial` with its values, `ask`, `tell`), which also lets CMA-ES
rebuild its generations. The ranges start from the baseline's values (read back through the
diff to the best; search_space.py). Every value of a trial is in its description
(optuna_trials.py), so its row alone says what ran; the same seed and the same ledger give the
same proposal, and a resumed night the proposals of an uninterrupted one.
Keeps and discards are told as their metric, crashes, invalid runs and timeouts as failures;
skipped rows and re-measurements are not trials.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from harness.agents.constants import Constant, find_constants, knobs, round_number
from harness.agents.optuna_trials import (
    Trial,
    baseline_values,
    describe,
    literal,
    parse_trials,
    result,
)
from harness.agents.search_space import Range, initial, widened
from harness.errors import OvernightError
from harness.seams import (
    Direction,
    Editor,
    ExperimentRecord,
    Proposal,
    ProposalContext,
    StopNight,
    ToolCall,
    Verdict,
)

if TYPE_CHECKING:
    import optuna

_TRIES = 50  # asks per proposal before giving up on values not tried yet
_INSTALL = (
    "pip install 'overnight[optuna]' (in a checkout: .venv/bin/pip install -c constraints.txt "
    "-e '.[optuna]')"
)


@dataclass(frozen=True)
class Plan:
    """One proposal's study: the constants it tunes, their ranges, the study rebuilt from the
    ledger, and every set of values whose result is known (None: it failed)."""

    constants: list[Constant]
    spaces: dict[str, Range]
    study: Any  # optuna.Study
    known: list[tuple[dict[str, float], float | None]]


class OptunaAgent:
    def __init__(
        self,
        seed: int = 0,
        sampler: str = "tpe",
        bounds: dict[str, tuple[float, float]] | None = None,
        pinned: list[str] | tuple[str, ...] = (),
    ) -> None:
        self.seed = seed
        self.sampler = sampler
        self.bounds = dict(bounds or {})
        self.pinned = set(pinned)
        self.optuna = load_optuna(sampler)

    def propose(self, context: ProposalContext, editor: Editor) -> Proposal | None:
        editor.call(ToolCall(id="view", input={"command": "view"}))
        plan = self.plan(context, editor.source)
        params = self._ask(plan)
        for constant in plan.constants:
            if params[constant.name] == constant.value:
                continue
            text = literal(params[constant.name], plan.spaces[constant.name])
            outcome = editor.call(
                ToolCall(
                    id=f"edit-{constant.name}",
                    input={
                        "command": "str_replace",
                        "old_str": constant.line,
                        "new_str": constant.line.replace(constant.literal, text, 1),
                    },
                )
            )
            if outcome.is_error:  # the edit-call limit, say: the lines themselves are unique
                raise StopNight(f"optuna: its edit of {constant.name} failed: {outcome.output}")
        return Proposal(description=describe(plan.constants, params, plan.spaces))

    def plan(self, context: ProposalContext, source: str) -> Plan:
        """The study as the ledger tells it, over the constants of `source` (the best train.py)."""
        constants = self._tuned(source, context.prepare_source)
        trials = parse_trials(context.history)
        origin = baseline_values(source, context.best_diff)
        spaces = _spaces(constants, origin, self.bounds, trials, context.direction)
        told = list(_told(spaces, origin, trials, context.history))
        study = self._study(context, spaces, told)
        current = {c.name: c.value for c in constants}
        best = context.best.metric if context.best else None
        return Plan(constants, spaces, study, [*told, (current, best)])

    def _tuned(self, source: str, prepare_source: str) -> list[Constant]:
        found = find_constants(source)
        tunable = knobs(found, prepare_source)
        unknown = sorted((set(self.bounds) | self.pinned) - {c.name for c in found})
        if unknown:
            raise StopNight(
                f"optuna: [agent] bounds or pinned name {', '.join(unknown)}, which train.py has "
                "no module-level numeric constant of"
            )
        left_alone = sorted(set(self.bounds) - {c.name for c in tunable})
        if left_alone:
            raise StopNight(
                f"optuna: [agent.bounds] names {', '.join(left_alone)}, which it leaves alone (a "
                "seed, a size of the problem, a count or a setting prepare.py fixes)"
            )
        constants = [c for c in tunable if c.name not in self.pinned]
        if not constants:
            raise StopNight(
                "optuna: train.py has no numeric constant to tune (`NAME = number` at module "
                "level that is not a seed, a size of the problem, a setting prepare.py fixes or "
                "pinned); use a model agent, or move the numbers to tune into such constants"
            )
        return constants

    def _study(
        self,
        context: ProposalContext,
        spaces: dict[str, Range],
        told: list[tuple[dict[str, float], float | None]],
    ) -> optuna.Study:
        optuna = self.optuna
        # A seed per experiment: a fresh sampler with one seed would draw the same first values.
        seed = (self.seed * 1_000_003 + context.experiment) % 2**32
        if self.sampler == "cmaes":
            # It starts at the middle of the ranges: for a positive value v, v itself (log scale).
            sampler: Any = optuna.samplers.CmaEsSampler(seed=seed)
        elif self.sampler == "random":
            sampler = optuna.samplers.RandomSampler(seed=seed)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed)
        study = optuna.create_study(direction=context.direction.value, sampler=sampler)
        for params, value in told:
            study.enqueue_trial(params)
            trial = study.ask(_distributions(optuna, spaces))
            # Optuna samples lazily and skips it for given values; asking for the sampler's own
            # values lets a stateful one (CMA-ES, its generations) advance as in a live study.
            _ = trial.relative_params
            self._tell(study, trial, value)
        return study

    def _ask(self, plan: Plan) -> dict[str, float]:
        """The next trial's values, as they will be written; values run before (or the best's
        own) are told their result again and asked past."""
        known = {_key(params): value for params, value in plan.known}
        distributions = _distributions(self.optuna, plan.spaces)
        for _ in range(_TRIES):
            trial = plan.study.ask(distributions)
            params = {name: _written(trial.params[name], plan.spaces[name]) for name in plan.spaces}
            if _key(params) not in known:
                # The trial stays open: the next proposal rebuilds the study from the ledger.
                return params
            self._tell(plan.study, trial, known[_key(params)])
        raise StopNight(
            f"optuna: {_TRIES} trials in a row asked for values already tried; widen the ranges "
            "([agent.bounds]) or use a model agent to go further"
        )

    def _tell(self, study: optuna.Study, trial: optuna.Trial, value: float | None) -> None:
        if value is None:
            study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)


def load_optuna(sampler: str) -> Any:
    """optuna (and cmaes for that sampler), or a one-line error saying what to install."""
    try:
        import optuna
    except ImportError:
        raise OvernightError(f"provider optuna needs the optuna package: {_INSTALL}") from None
    if sampler == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise OvernightError(
                f'sampler = "cmaes" needs the cmaes package (it comes with {_INSTALL})'
            ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _spaces(
    constants: list[Constant],
    origin: dict[str, float],
    bounds: dict[str, tuple[float, float]],
    trials: list[Trial],
    direction: Direction,
) -> dict[str, Range]:
    """Each constant's range: from its value in the baseline, widened at an edge each
    time a new best lands there (in ledger order, so the ranges only grow)."""
    spaces = {}
    for c in constants:
        start = origin.get(c.name, c.value)
        as_started = replace(c, value=type(c.value)(start))
        spaces[c.name] = initial(as_started, bounds.get(c.name))
    best: float | None = None
    for trial in trials:
        value = result(trial.record)
        if value is None or not _better(value, best, direction):
            continue
        best = value
        for name, space in spaces.items():
            if name in trial.params and space.contains(trial.params[name]):
                spaces[name] = widened(space, trial.params[name])
    return spaces


def _told(
    spaces: dict[str, Range],
    origin: dict[str, float],
    trials: list[Trial],
    history: list[ExperimentRecord],
) -> Iterator[tuple[dict[str, float], float | None]]:
    """What the study is told, in order: the baseline, then every trial whose values fit the
    ranges (values outside them came from other bounds)."""
    baseline = [r for r in history if r.experiment == 0 and r.status is Verdict.KEEP]
    rows: list[tuple[dict[str, float], float | None]] = []
    if baseline and baseline[0].metric is not None:
        rows.append((origin, baseline[0].metric))
    rows += [(t.params, result(t.record)) for t in trials]
    for params, value in rows:
        if all(name in params and space.contains(params[name]) for name, space in spaces.items()):
            yield {name: params[name] for name in spaces}, value


def _distributions(optuna: Any, spaces: dict[str, Range]) -> dict[str, Any]:
    made = optuna.distributions
    return {
        name: made.IntDistribution(int(s.low), int(s.high), log=s.log)
        if s.is_int
        else made.FloatDistribution(s.low, s.high, log=s.log)
        for name, s in spaces.items()
    }


def _written(value: float, space: Range) -> float:
    """The value as train.py will hold it: an int, or a float to four significant digits (more
    where rounding would leave the range)."""
    if space.is_int:
        return int(value)
    rounded = round_number(value)
    return rounded if space.contains(rounded) else float(value)


def _better(value: float, best: float | None, direction: Direction) -> bool:
    if best is None:
        return True
    return value < best if direction is Direction.MINIMIZE else value > best


def _key(params: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((name, float(value)) for name, value in params.items()))
