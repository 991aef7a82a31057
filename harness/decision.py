"""The decision: a pure function of the best so far, the run's outcome and the metric's direction."""

from __future__ import annotations

import math

from harness.seams import Direction, RunStatus, Verdict


def decide(
    train_status: RunStatus, metric: float | None, best: float | None, direction: Direction
) -> Verdict:
    """Keep only a finite metric strictly better than the best; failures get their own status."""
    if train_status is RunStatus.TIMEOUT:
        return Verdict.TIMEOUT
    if train_status in (RunStatus.CRASH, RunStatus.OOM):
        return Verdict.CRASH
    if metric is None or not math.isfinite(metric):
        return Verdict.INVALID
    if best is None or is_better(metric, best, direction):
        return Verdict.KEEP
    return Verdict.DISCARD


def is_better(metric: float, best: float, direction: Direction) -> bool:
    return metric < best if direction is Direction.MINIMIZE else metric > best
