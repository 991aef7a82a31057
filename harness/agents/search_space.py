"""The `optuna` agent's search space: a range for each tunable constant of `train.py`, derived from
its value, bounded or pinned by config, and widened where the best result lands at an edge.

Pure arithmetic, no optuna: `OptunaAgent` turns each `Range` into an optuna distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from harness.agents.constants import Constant, in_unit_interval, round_number

_SPREAD = 4.0  # a positive value v starts in [v / 4, v * 4], and an edge widens by 4 again
_EDGE = 0.05  # the best within 5% of the range's span of an edge: that edge widens
_ZERO_SPAN = 0.1  # a float that is 0.0 starts in [0, 0.1] (it keeps its sign)


@dataclass(frozen=True)
class Range:
    name: str
    low: float
    high: float
    is_int: bool
    log: bool
    configured: bool = False  # from [agent.bounds]: never widened
    unit: bool = False  # a probability or fraction: never past 1

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high and (not self.is_int or value == int(value))


def initial(constant: Constant, bound: tuple[float, float] | None) -> Range:
    """The range a constant starts with: the configured bound, or one derived from its value
    that keeps its sign (and a probability within [0, 1])."""
    value, is_int = constant.value, isinstance(constant.value, int)
    if bound is not None:
        low, high = bound
        if is_int:
            low, high = math.ceil(low), math.floor(high)
        return Range(
            constant.name,
            low,
            high,
            is_int,
            log=low > 0 if not is_int else low >= 1,
            configured=True,
        )
    if is_int:
        if value >= 1:
            return Range(constant.name, max(1, value // 4), max(value * 4, value + 3), True, True)
        if value == 0:
            return Range(constant.name, 0, 4, True, False)
        return Range(constant.name, min(value * 4, value - 3), min(-1, -(-value // 4)), True, False)
    unit = in_unit_interval(constant)
    if value > 0:
        high = round_number(value * _SPREAD)
        return Range(
            constant.name,
            round_number(value / _SPREAD),
            min(high, 1.0) if unit else high,
            False,
            True,
            unit=unit,
        )
    if value == 0:
        return Range(constant.name, 0.0, _ZERO_SPAN, False, False, unit=unit)
    return Range(
        constant.name, round_number(value * _SPREAD), round_number(value / _SPREAD), False, False
    )


def widened(space: Range, best: float) -> Range:
    """The range with the edge the best lies at moved out, keeping the sign (and [0, 1])."""
    if space.configured or space.high <= space.low:
        return space
    position = _position(space, best)
    if position >= 1 - _EDGE:
        return replace(space, high=_out(space, space.high, up=True))
    if position <= _EDGE:
        return replace(space, low=_out(space, space.low, up=False))
    return space


def _position(space: Range, value: float) -> float:
    if space.log:
        return (math.log(value) - math.log(space.low)) / (
            math.log(space.high) - math.log(space.low)
        )
    return (value - space.low) / (space.high - space.low)


def _out(space: Range, edge: float, up: bool) -> float:
    """An edge moved outwards: by a factor of 4 away from zero, or towards zero by 4 without
    crossing it; an edge at zero stays (the sign is kept)."""
    if edge == 0:
        return edge
    if (edge > 0) == up:
        moved = edge * _SPREAD
        if space.unit:
            moved = min(moved, 1.0)
    else:
        moved = edge / _SPREAD
    if space.is_int:
        step = math.ceil(moved) if up else math.floor(moved)
        # An int edge moves by at least one and never crosses zero or one (for a positive count).
        if up:
            step = max(step, int(edge) + 1)
            return min(step, -1) if edge < 0 else step
        step = min(step, int(edge) - 1)
        return max(step, 1) if edge >= 1 else step
    return round_number(moved)
