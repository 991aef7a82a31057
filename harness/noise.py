"""Is that keep real? The metric's noise, the keep threshold, and the best's value over its runs.

Everything here is a pure function of the ledger's rows (and a few settings), so the loop,
`status`, the report and a resumed night all read the same numbers from the same file:

- the noise is the sample standard deviation of the baseline's runs (experiment 0: its `keep`
  row and the `remeasure` rows after it, `noise_runs` in all);
- the best's value is the mean of all its runs: its `keep` row (standing for 1 + confirm_runs
  runs of a confirmed candidate, 1 for the baseline) and every `remeasure` row of it since;
- `min_improvement` is how much better than that a candidate must be: absolute (0.01),
  relative ("0.5%" of the best) or in units of the noise ("2sigma").
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, replace
from typing import Literal

from harness.seams import ExperimentRecord, Verdict

DEFAULT_SIGMAS = "2sigma"
_THRESHOLD = re.compile(r"^\s*(\d+(?:\.\d*)?(?:e[+-]?\d+)?)\s*(%|sigma)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Threshold:
    """`min_improvement`: a candidate must beat the best by more than `margin(...)`."""

    amount: float
    unit: Literal["absolute", "relative", "sigma"]

    def margin(self, best: float, noise: float | None) -> float:
        if self.unit == "relative":
            return self.amount / 100 * abs(best)
        if self.unit == "sigma":
            return self.amount * (noise or 0.0)
        return self.amount

    def __str__(self) -> str:
        suffix = {"absolute": "", "relative": "%", "sigma": "sigma"}[self.unit]
        return f"{self.amount:g}{suffix}"


def parse_threshold(value: object) -> Threshold:
    """0.01, "0.01", "0.5%" or "2sigma"; never negative, never NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f'{value!r} is not a threshold; write it like 0.01, "0.5%" or "2sigma"')
    if isinstance(value, int | float):
        amount, unit = float(value), "absolute"
    else:
        match = _THRESHOLD.match(value)
        if not match:
            raise ValueError(
                f'{value!r} is not a threshold; write it like 0.01, "0.5%" or "2sigma"'
            )
        amount = float(match.group(1))
        suffix = (match.group(2) or "").lower()
        unit = "relative" if suffix == "%" else "sigma" if suffix else "absolute"
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"{value!r}: a threshold is a finite amount of 0 or more")
    return Threshold(amount, unit)  # type: ignore[arg-type]


def baseline_runs(rows: list[ExperimentRecord]) -> list[ExperimentRecord]:
    """The kept baseline's row and the baseline runs recorded after it (valid or not)."""
    start = next(
        (i for i, r in enumerate(rows) if r.experiment == 0 and r.status is Verdict.KEEP), None
    )
    if start is None:
        return []
    return [rows[start]] + [
        r for r in rows[start + 1 :] if r.experiment == 0 and r.status is Verdict.REMEASURE
    ]


def noise_estimate(rows: list[ExperimentRecord]) -> float | None:
    """The sample standard deviation of the baseline's valid runs; None with fewer than two.
    A deterministic metric gives 0.0."""
    values = [r.metric for r in baseline_runs(rows) if r.metric is not None]
    if len(values) < 2:
        return None
    return 0.0 if len(set(values)) == 1 else statistics.stdev(values)


def current_best(rows: list[ExperimentRecord], confirm_runs: int = 0) -> ExperimentRecord | None:
    """The last kept row, its metric replaced by the mean of all its runs: the keep row weighs
    as many runs as it stood for (1 + confirm_runs for a confirmed candidate, 1 for the
    baseline), each `remeasure` row of it since as one. Without remeasures the row as recorded."""
    index = next((i for i in range(len(rows) - 1, -1, -1) if rows[i].status is Verdict.KEEP), None)
    if index is None:
        return None
    keep = rows[index]
    again = [
        r.metric
        for r in rows[index + 1 :]
        if r.status is Verdict.REMEASURE
        and r.experiment == keep.experiment
        and r.metric is not None
    ]
    if not again or keep.metric is None:
        return keep
    weight = 1 if keep.experiment == 0 else 1 + confirm_runs
    mean = (weight * keep.metric + sum(again)) / (weight + len(again))
    return replace(keep, metric=mean)


def runs_of_best(rows: list[ExperimentRecord], confirm_runs: int = 0) -> int:
    """How many valid runs the best's value is the mean of."""
    best = current_best(rows, confirm_runs)
    if best is None:
        return 0
    index = max(i for i, r in enumerate(rows) if r.status is Verdict.KEEP)
    again = [
        r
        for r in rows[index + 1 :]
        if r.status is Verdict.REMEASURE
        and r.experiment == best.experiment
        and r.metric is not None
    ]
    return (1 if best.experiment == 0 else 1 + confirm_runs) + len(again)


def remeasure_due(rows: list[ExperimentRecord], every: int) -> bool:
    """Whether the best is run again now: after every `every`-th experiment, once (a resumed
    night finds the remeasure row, or its absence, in the ledger)."""
    if every <= 0 or not rows:
        return False
    last = rows[-1]
    return (
        last.status is not Verdict.REMEASURE
        and last.experiment > 0
        and last.experiment % every == 0
    )


def proposals(rows: list[ExperimentRecord]) -> list[ExperimentRecord]:
    """The rows of proposed experiments: neither the baseline nor a remeasure."""
    return [r for r in rows if r.experiment > 0 and r.status is not Verdict.REMEASURE]


def next_number(rows: list[ExperimentRecord]) -> int:
    return max((r.experiment for r in rows), default=-1) + 1
