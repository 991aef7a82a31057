"""The decision: a pure function of the best so far, the run's outcome and the metric's direction."""

from __future__ import annotations

import math

from harness.seams import Direction, RunStatus, Verdict


def decide(
    train_status: RunStatus,
    metric: float | None,
    best: float | None,
    direction: Direction,
    margin: float = 0.0,
) -> Verdict:
    """Keep only a finite metric better than the best by more than `margin`; failures get their
    own status.

    The rule, in full: a run that timed out is `timeout`, one that crashed or ran out of memory
    is `crash`, one without a finite metric is `invalid`. Otherwise it is a `keep` when there is
    no best yet (the baseline), or when it beats the best by more than `margin`: strictly better
    with margin 0 (no `min_improvement`, or zero measured noise with "Nsigma"), else by more than
    0.01 absolute, p% of the best, or N times the measured noise. `best` is the mean of all the
    best's runs (`harness/noise.py`). With `confirm_runs` a keep is then re-run and judged by
    `confirm`: by its worst run without a threshold, by the mean of its runs with one.

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
    if best is None or beats(metric, best, direction, margin):
        return Verdict.KEEP
    return Verdict.DISCARD


def beats(metric: float, best: float, direction: Direction, margin: float) -> bool:
    """Better than `best` by more than `margin` (strictly better for a margin of 0)."""
    if margin <= 0:
        return is_better(metric, best, direction)
    gain = best - metric if direction is Direction.MINIMIZE else metric - best
    return gain > margin


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
    metrics: list[float | None],
    best: float,
    direction: Direction,
    margin: float = 0.0,
    by_mean: bool = False,
) -> tuple[Verdict, float | None, str]:
    """Judge a new best by its runs: every run (the first and each confirmation) must give a
    finite metric. Without a threshold (`by_mean` False) every run must be strictly better than
    the previous best and the kept metric is the worst run, so later candidates are compared with
    what this train.py reached every time. With one (`by_mean`), the mean of the runs must beat
    the best by more than `margin`, and the kept metric is that mean. Returns the verdict, the
    metric for the ledger and a note for the description."""
    runs = len(metrics)
    for index, metric in enumerate(metrics):
        if (
            metric is None
            or not math.isfinite(metric)
            or (not by_mean and not beats(metric, best, direction, margin))
        ):
            return (
                Verdict.DISCARD,
                metrics[0],
                f"not confirmed: run {index + 1} of {runs} gave {_show(metric)}, "
                f"not better than {best:.6g}",
            )
    finite = [m for m in metrics if m is not None]
    shown = ", ".join(map(_show, metrics))
    if by_mean:
        mean = sum(finite) / len(finite)
        if not beats(mean, best, direction, margin):
            return (
                Verdict.DISCARD,
                metrics[0],
                f"not confirmed: the mean of {runs} runs, {mean:.6g} ({shown}), is not better "
                f"than {best:.6g} by more than {margin:.3g}",
            )
        return Verdict.KEEP, mean, f"confirmed by {runs} runs, mean {mean:.6g}: {shown}"
    worst = max(finite) if direction is Direction.MINIMIZE else min(finite)
    return Verdict.KEEP, worst, f"confirmed by {runs} runs: {shown}"


def _show(metric: float | None) -> str:
    return "no valid metric" if metric is None else f"{metric:.6g}"
