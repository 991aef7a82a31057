"""The `mutate` agent: an offline, seeded researcher that nudges numeric constants of `train.py`.

Each proposal changes one or two module-level numeric constants (`LEARNING_RATE = 0.01`), by a
factor for floats and a step for integers, through the `edit` tool like any other agent. It
learns from the ledger which moves helped (a constant and a direction), prefers those, and never
proposes a value it has tried before. Its choices depend only on the seed and the history, so a
resumed night makes the same proposals as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

from harness.agents.constants import (
    Constant,
    find_constants,
    format_number,
    in_unit_interval,
    knobs,
    round_number,
)
from harness.seams import (
    Editor,
    ExperimentRecord,
    Proposal,
    ProposalContext,
    StopNight,
    ToolCall,
    Verdict,
)

PREFIX = "mutate:"
_MOVE = re.compile(r"([A-Za-z_]\w*) ([^\s,]+) -> ([^\s,]+)")
_FLOAT_FACTORS = (0.5, 0.7, 0.85, 1.2, 1.4, 2.0)
_INT_STEPS = (1, 2, 4)
_INT_FACTORS = (0.5, 0.75, 1.5, 2.0)


@dataclass(frozen=True)
class Move:
    name: str
    old: int | float
    new: int | float

    @property
    def up(self) -> bool:
        return self.new > self.old


class MutateAgent:
    def __init__(self, seed: int = 0, max_constants: int = 2) -> None:
        self.seed = seed
        self.max_constants = max_constants

    def propose(self, context: ProposalContext, editor: Editor) -> Proposal | None:
        rng = random.Random(f"{self.seed}:{context.experiment}")
        editor.call(ToolCall(id="view", input={"command": "view"}))
        found = find_constants(editor.source)
        constants = knobs(found, context.prepare_source)
        if not found:
            raise StopNight(
                "mutate: train.py has no numbers to change (module-level `NAME = number` "
                "constants, or `name=number` arguments of calls); use a model agent (--provider "
                "anthropic|openai|litellm), or move the numbers to tune into such constants"
            )
        if not constants:
            raise StopNight(
                f"mutate: train.py's numeric constants ({', '.join(c.name for c in found)}) are "
                "all seeds, sizes of the problem, counts or settings fixed by prepare.py, which it "
                "leaves alone; add constants for the knobs to tune, or use a model agent"
            )
        tried, score = _learn(context.history)
        for running in context.running:  # being measured now: not proposed a second time
            for name, _old, new in _MOVE.findall(running.description):
                try:
                    tried.add((name, _key(float(new))))
                except ValueError:
                    continue
        count = 2 if len(constants) > 1 and self.max_constants > 1 and rng.random() < 0.3 else 1
        moves: list[Move] = []
        for constant in _ranked(constants, score, rng):
            move = _choose_move(constant, tried, score, rng)
            if move is None:
                continue
            outcome = editor.call(
                ToolCall(
                    id=f"edit-{constant.name}",
                    input={
                        "command": "str_replace",
                        "old_str": constant.line,
                        "new_str": constant.line.replace(
                            constant.literal, format_number(move.new), 1
                        ),
                    },
                )
            )
            if not outcome.is_error:
                moves.append(move)
            if len(moves) == count:
                break
        if not moves:
            raise StopNight(
                f"mutate: it has tried every value it would propose for "
                f"{', '.join(c.name for c in constants)}; use a model agent to go further"
            )
        description = f"{PREFIX} " + ", ".join(
            f"{m.name} {format_number(m.old)} -> {format_number(m.new)}" for m in moves
        )
        return Proposal(description=description)


def _learn(
    history: list[ExperimentRecord],
) -> tuple[set[tuple[str, str]], dict[tuple[str, bool], list[int]]]:
    """Values tried per constant, and [wins, tries] per (constant, direction), from our own descriptions."""
    tried: set[tuple[str, str]] = set()
    score: dict[tuple[str, bool], list[int]] = {}
    for record in history:
        if not record.description.startswith(PREFIX):
            continue
        for name, old, new in _MOVE.findall(record.description):
            try:
                move = Move(name, float(old), float(new))
            except ValueError:
                continue
            tried.add((name, _key(move.new)))
            wins_tries = score.setdefault((name, move.up), [0, 0])
            wins_tries[1] += 1
            wins_tries[0] += record.status is Verdict.KEEP
    return tried, score


def _weight(score: dict[tuple[str, bool], list[int]], name: str, up: bool) -> float:
    wins, tries = score.get((name, up), [0, 0])
    return (wins + 1) / (tries + 2)  # Laplace: untried moves stay worth a look


def _ranked(constants: list[Constant], score: Any, rng: random.Random) -> list[Constant]:
    """Constants in a random order that favours those whose moves have helped."""
    keyed = [
        (rng.random() ** (1 / max(_weight(score, c.name, True), _weight(score, c.name, False))), c)
        for c in constants
    ]
    return [c for _, c in sorted(keyed, key=lambda pair: pair[0], reverse=True)]


def _allowed(constant: Constant, value: int | float) -> bool:
    """A move keeps the sign (a rate never goes negative) and a probability within [0, 1]."""
    old = constant.value
    if (old >= 0) != (value >= 0):
        return False
    if in_unit_interval(constant):
        return 0.0 <= value <= 1.0
    return True


def _choose_move(constant: Constant, tried: Any, score: Any, rng: random.Random) -> Move | None:
    up_weight = _weight(score, constant.name, True)
    down_weight = _weight(score, constant.name, False)
    first_up = rng.random() < up_weight / (up_weight + down_weight)
    for up in (first_up, not first_up):
        candidates = [
            v
            for v in _candidates(constant.value, up)
            if (constant.name, _key(v)) not in tried
            and v != constant.value
            and _allowed(constant, v)
        ]
        if candidates:
            # Small moves first, so a helpful direction is followed step by step.
            candidates.sort(key=lambda v: abs(v - constant.value))
            pick = candidates[min(int(rng.expovariate(1.0)), len(candidates) - 1)]
            return Move(constant.name, constant.value, pick)
    far = _far_value(constant, tried, rng)
    return None if far is None else Move(constant.name, constant.value, far)


def _far_value(constant: Constant, tried: Any, rng: random.Random) -> int | float | None:
    """When every near value has been tried: a random one further out, never tried before."""
    value, name = constant.value, constant.name
    for attempt in range(100):
        spread = 1 + attempt / 10  # widen slowly while the values drawn are taken
        if isinstance(value, int):
            step = rng.randint(1, max(3, abs(value))) + int(attempt * spread)
            new: int | float = value + step if rng.random() < 0.5 else value - step
            if value >= 1 and new < 1:
                continue
        else:
            base = value if value != 0.0 else 1e-3
            new = round_number(base * math.exp(rng.gauss(0.0, 0.5 * spread)))
        if new != value and (name, _key(new)) not in tried and _allowed(constant, new):
            return new
    return None


def _candidates(value: int | float, up: bool) -> list[int | float]:
    if isinstance(value, int):
        steps = [value + s if up else value - s for s in _INT_STEPS]
        scaled = [round(value * f) for f in _INT_FACTORS if (f > 1) == up]
        ints: set[int | float] = {
            v for v in steps + scaled if (value <= 0 or v >= 1) and v != value
        }
        return sorted(ints)
    if value == 0.0:
        return [1e-3, 1e-2, 0.1] if up else [-1e-3, -1e-2, -0.1]
    factors = [f for f in _FLOAT_FACTORS if (f > 1) == (up == (value > 0))]
    values: set[int | float] = {round_number(value * f) for f in factors}
    # Further out in the same direction, for when the near values are used up.
    for power in range(2, 6):
        values |= {round_number(value * f**power) for f in factors}
    return sorted(values)


def _key(value: float | int) -> str:
    return f"{float(value):.6g}"
