"""The decision: a pure function of the best so far, the run's outcome and the metric's direction."""

from __future__ import annotations

import math

from harness.seams import Direction, RunStatus, Verdict


def decide(
    train_status: RunStatus, metric: float | None, best: float | None, direction: Direction
) -> Verdict:
    """Keep only a finite metric strictly better than the best; failures get their own status.

    `metric` is the value the ledger records. With `metric_digits` set it is already rounded to
    that many significant digits (`round_metric`), so the decision is made on the rounded value:
    a candidate that is better only beyond those digits ties with the best, and is discarded.
    """
    if train_status is RunStatus.TIMEOUT:
        return Verdict.TIMEOUT
    if train_status in (RunStatus.CRASH, RunStatus.OOM):
        return Verdict.CRASH
    if metric is None or not math.isfinite(metric):
        return Verdict.INVALID
    if best is None or is_better(metric, best, direction):
        return Verdict.KEEP
    return Verdict.DISCARD


def round_metric(metric: float | None, digits: int | None) -> float | None:
    """`metric` rounded to `digits` significant digits (unchanged without `digits`): what the
    agent, the ledger and the decision see, so that repeated experiments learn less about the
    held-out data from it."""
    return metric if metric is None else round_digits(metric, digits)


def round_digits(value: float, digits: int | None) -> float:
    if digits is None or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def is_better(metric: float, best: float, direction: Direction) -> bool:
    return metric < best if direction is Direction.MINIMIZE else metric > best


def confirm(
    metrics: list[float | None], best: float, direction: Direction
) -> tuple[Verdict, float | None, str]:
    """Judge a new best by its worst run: the first run and every confirmation must give a finite
    metric strictly better than the previous best. The kept metric is the worst run, so later
    candidates are compared with what this train.py reached every time. Returns the verdict, the
    metric for the ledger and a note for the description."""
    runs = len(metrics)
    for index, metric in enumerate(metrics):
        if metric is None or not math.isfinite(metric) or not is_better(metric, best, direction):
            return (
                Verdict.DISCARD,
                metrics[0],
                f"not confirmed: run {index + 1} of {runs} gave {_show(metric)}, "
                f"not better than {best:.6g}",
            )
    finite = [m for m in metrics if m is not None]
    worst = max(finite) if direction is Direction.MINIMIZE else min(finite)
    return Verdict.KEEP, worst, f"confirmed by {runs} runs: {', '.join(map(_show, metrics))}"


def _show(metric: float | None) -> str:
    return "no valid metric" if metric is None else f"{metric:.6g}"
