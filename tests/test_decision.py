"""The keep-or-discard decision, as a table of what happened and what the ledger should say."""

from __future__ import annotations

import math

import pytest

from harness.decision import confirm, decide, is_better, round_metric
from harness.seams import Direction, RunStatus, Verdict

MIN, MAX = Direction.MINIMIZE, Direction.MAXIMIZE
OK, TIMEOUT, OOM, CRASH = RunStatus.OK, RunStatus.TIMEOUT, RunStatus.OOM, RunStatus.CRASH
NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("status", "metric", "best", "direction", "expected"),
    [
        # A finite metric strictly better than the best is kept.
        (OK, 0.9, 1.0, MIN, Verdict.KEEP),
        (OK, 1.1, 1.0, MAX, Verdict.KEEP),
        (OK, -2.0, -1.0, MIN, Verdict.KEEP),
        (OK, 0.0, 1e-9, MIN, Verdict.KEEP),
        (OK, math.nextafter(1.0, 0.0), 1.0, MIN, Verdict.KEEP),
        (OK, math.nextafter(1.0, 2.0), 1.0, MAX, Verdict.KEEP),
        # Worse is discarded.
        (OK, 1.1, 1.0, MIN, Verdict.DISCARD),
        (OK, 0.9, 1.0, MAX, Verdict.DISCARD),
        (OK, -2.0, -1.0, MAX, Verdict.DISCARD),
        # Equal is not an improvement.
        (OK, 1.0, 1.0, MIN, Verdict.DISCARD),
        (OK, 1.0, 1.0, MAX, Verdict.DISCARD),
        (OK, 0.0, -0.0, MIN, Verdict.DISCARD),
        (OK, -0.0, 0.0, MAX, Verdict.DISCARD),
        # The baseline: nothing to beat, any valid metric is kept.
        (OK, 5.0, None, MIN, Verdict.KEEP),
        (OK, 5.0, None, MAX, Verdict.KEEP),
        (OK, 0.0, None, MIN, Verdict.KEEP),
        (OK, -3.5, None, MAX, Verdict.KEEP),
        # No finite metric is invalid, however "good" it would look.
        (OK, None, 1.0, MIN, Verdict.INVALID),
        (OK, NAN, 1.0, MIN, Verdict.INVALID),
        (OK, NAN, 1.0, MAX, Verdict.INVALID),
        (OK, -INF, 1.0, MIN, Verdict.INVALID),
        (OK, INF, 1.0, MAX, Verdict.INVALID),
        (OK, INF, 1.0, MIN, Verdict.INVALID),
        (OK, None, None, MIN, Verdict.INVALID),
        (OK, NAN, None, MAX, Verdict.INVALID),
        (OK, -INF, None, MIN, Verdict.INVALID),
        # A run that did not end well gets its own status, even with a good-looking metric.
        (TIMEOUT, 0.5, 1.0, MIN, Verdict.TIMEOUT),
        (TIMEOUT, None, 1.0, MIN, Verdict.TIMEOUT),
        (TIMEOUT, 0.5, None, MAX, Verdict.TIMEOUT),
        (OOM, 0.5, 1.0, MIN, Verdict.CRASH),
        (OOM, None, None, MAX, Verdict.CRASH),
        (CRASH, 0.5, 1.0, MIN, Verdict.CRASH),
        (CRASH, NAN, 1.0, MIN, Verdict.CRASH),
        (CRASH, 2.0, None, MAX, Verdict.CRASH),
    ],
)
def test_decide(status, metric, best, direction, expected) -> None:
    assert decide(status, metric, best, direction) is expected


@pytest.mark.parametrize(
    ("metric", "best", "direction", "expected"),
    [
        (1.0, 2.0, MIN, True),
        (2.0, 1.0, MIN, False),
        (2.0, 1.0, MAX, True),
        (1.0, 2.0, MAX, False),
        (1.5, 1.5, MIN, False),
        (1.5, 1.5, MAX, False),
        (-1.0, 0.0, MIN, True),
        (-1.0, 0.0, MAX, False),
        (1e-300, 0.0, MAX, True),
        (1e-300, 0.0, MIN, False),
    ],
)
def test_is_better(metric, best, direction, expected) -> None:
    assert is_better(metric, best, direction) is expected


@pytest.mark.parametrize("direction", [MIN, MAX])
def test_better_is_strict_and_one_sided(direction) -> None:
    values = [-10.0, -1.0, 0.0, 0.25, 3.0, 1e6]
    for a in values:
        assert not is_better(a, a, direction)
        for b in values:
            if a != b:
                assert is_better(a, b, direction) != is_better(b, a, direction)


@pytest.mark.parametrize(
    ("metrics", "best", "direction", "verdict", "kept_metric", "note"),
    [
        # Every run beats the best: kept, with the worst run as its metric.
        ([0.5, 0.7, 0.6], 1.0, MIN, Verdict.KEEP, 0.7, "confirmed by 3 runs: 0.5, 0.7, 0.6"),
        ([2.0, 1.5], 1.0, MAX, Verdict.KEEP, 1.5, "confirmed by 2 runs"),
        # One confirmation no better than the best: discarded, with the first run's metric.
        ([0.5, 1.0], 1.0, MIN, Verdict.DISCARD, 0.5, "run 2 of 2 gave 1, not better than 1"),
        ([0.5, 0.6, 3.0], 1.0, MIN, Verdict.DISCARD, 0.5, "run 3 of 3 gave 3"),
        ([2.0, 0.9], 1.0, MAX, Verdict.DISCARD, 2.0, "not confirmed"),
        # A confirmation without a valid metric (crash, timeout, NaN) is not a confirmation.
        ([0.5, None], 1.0, MIN, Verdict.DISCARD, 0.5, "run 2 of 2 gave no valid metric"),
        ([0.5, NAN], 1.0, MIN, Verdict.DISCARD, 0.5, "not confirmed"),
        ([0.5, -INF], 1.0, MIN, Verdict.DISCARD, 0.5, "not confirmed"),
    ],
)
def test_a_new_best_is_kept_only_if_every_confirmation_beats_the_best(
    metrics, best, direction, verdict, kept_metric, note
):
    got_verdict, got_metric, got_note = confirm(metrics, best, direction)
    assert (got_verdict, got_metric) == (verdict, kept_metric)
    assert note in got_note


@pytest.mark.parametrize(
    ("metric", "digits", "rounded"),
    [
        (1.2574391, 3, 1.26),
        (1.2574391, 1, 1.0),
        (-98.7123, 2, -99.0),
        (0.000123456, 2, 0.00012),
        (123456.0, 3, 123000.0),
        (4.996, 3, 5.0),
        (1.2574391, None, 1.2574391),
        (None, 3, None),
        (NAN, 3, NAN),
        (INF, 3, INF),
    ],
)
def test_the_metric_is_rounded_to_significant_digits(metric, digits, rounded):
    got = round_metric(metric, digits)
    if rounded is None or not math.isfinite(rounded):  # nothing to round
        assert got is metric
    else:
        assert got == rounded


def test_a_change_better_only_beyond_the_rounded_digits_ties_and_is_discarded():
    best = round_metric(1.2574391, 3)
    assert decide(OK, round_metric(1.2551, 3), best, MIN) is Verdict.DISCARD
    assert decide(OK, round_metric(1.2549, 3), best, MIN) is Verdict.KEEP


@pytest.mark.parametrize(
    ("text", "best", "noise", "margin"),
    [
        (0.01, 1.0, None, 0.01),
        ("0.01", 5.0, 0.3, 0.01),
        ("0.5%", 2.0, None, 0.01),
        ("0.5%", -4.0, None, 0.02),  # of the best's size, whatever its sign
        ("2sigma", 1.0, 0.05, 0.1),
        ("2 sigma", 1.0, 0.0, 0.0),  # a deterministic metric: strictly better, as without one
        ("1.5SIGMA", 1.0, 0.2, 0.3),
        (0, 1.0, None, 0.0),
    ],
)
def test_min_improvement_is_absolute_relative_or_in_units_of_noise(text, best, noise, margin):
    from harness.noise import parse_threshold

    assert parse_threshold(text).margin(best, noise) == pytest.approx(margin)


@pytest.mark.parametrize("text", ["-0.1", "2 sigmas", "", "nan", "1e999", True, "0.5 %%", "x%"])
def test_a_threshold_that_means_nothing_is_refused(text):
    from harness.noise import parse_threshold

    with pytest.raises(ValueError, match="threshold"):
        parse_threshold(text)


@pytest.mark.parametrize(
    ("metric", "best", "direction", "margin", "expected"),
    [
        # Better by more than the margin: kept; by the margin or less: within the noise.
        (0.8, 1.0, MIN, 0.1, Verdict.KEEP),
        (0.9, 1.0, MIN, 0.1, Verdict.DISCARD),
        (0.95, 1.0, MIN, 0.1, Verdict.DISCARD),
        (1.2, 1.0, MAX, 0.1, Verdict.KEEP),
        (1.05, 1.0, MAX, 0.1, Verdict.DISCARD),
        (0.8, 1.0, MAX, 0.1, Verdict.DISCARD),
        # A zero margin is today's rule: strictly better.
        (math.nextafter(1.0, 0.0), 1.0, MIN, 0.0, Verdict.KEEP),
        (0.0, -0.0, MIN, 0.0, Verdict.DISCARD),
        # The baseline has nothing to beat; failures keep their own status.
        (5.0, None, MIN, 0.1, Verdict.KEEP),
        (NAN, 1.0, MIN, 0.1, Verdict.INVALID),
    ],
)
def test_a_keep_must_beat_the_best_by_more_than_the_margin(
    metric, best, direction, margin, expected
):
    assert decide(OK, metric, best, direction, margin) is expected


@pytest.mark.parametrize(
    ("metrics", "best", "margin", "verdict", "kept_metric", "note"),
    [
        # With a threshold the mean of the runs must beat the best by more than it...
        ([0.7, 0.9, 0.8], 1.0, 0.1, Verdict.KEEP, 0.8, "confirmed by 3 runs, mean 0.8"),
        # ...even when one run alone would not,
        ([0.7, 1.05, 0.75], 1.0, 0.1, Verdict.KEEP, 0.8333333333333334, "mean 0.833333"),
        # a lucky first run whose confirmations fall back is discarded,
        ([0.7, 1.0, 1.01], 1.0, 0.1, Verdict.DISCARD, 0.7, "the mean of 3 runs, 0.903333"),
        # and every run must still give a valid metric.
        ([0.7, None, 0.7], 1.0, 0.1, Verdict.DISCARD, 0.7, "run 2 of 3 gave no valid metric"),
    ],
)
def test_with_a_threshold_a_confirmed_best_is_judged_and_valued_by_its_mean(
    metrics, best, margin, verdict, kept_metric, note
):
    got_verdict, got_metric, got_note = confirm(metrics, best, MIN, margin, by_mean=True)
    assert (got_verdict, got_metric) == (verdict, pytest.approx(kept_metric))
    assert note in got_note
