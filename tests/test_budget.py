"""Budgets that end a night, as pure checks over the ledger, and as a user meets them."""

from __future__ import annotations

import datetime

import pytest
from conftest import results, run_cli, write_script
from test_night import value_task

from harness.budget import Budget, consecutive_failures, expected_seconds, until_deadline
from harness.errors import InfrastructureFault
from harness.pauses import PausePolicy, with_pauses
from harness.seams import ExperimentRecord, StopNight, Verdict

K, D, C, T, S, INV = (
    Verdict.KEEP,
    Verdict.DISCARD,
    Verdict.CRASH,
    Verdict.TIMEOUT,
    Verdict.SKIPPED,
    Verdict.INVALID,
)


def rows(*statuses: Verdict, seconds: float = 10.0) -> list[ExperimentRecord]:
    return [
        ExperimentRecord(n, "abc1234", 1.0, status, f"#{n}", seconds=seconds)
        for n, status in enumerate([K, *statuses])
    ]


@pytest.mark.parametrize(
    "statuses, expected",
    [
        ((), 0),
        ((C,), 1),
        ((C, T, C), 3),
        ((C, K, C), 1),
        ((C, S, C), 2),  # a skipped proposal ran nothing: it neither breaks nor extends a streak
        ((C, INV), 0),  # a run that ended but gave no metric is not a crash
        ((D, T), 1),
    ],
)
@pytest.mark.engine_free
def test_consecutive_failures_count_crashes_and_timeouts_from_the_end(statuses, expected):
    assert consecutive_failures(rows(*statuses)) == expected


@pytest.mark.parametrize(
    "budget, ledger, now, stops",
    [
        (Budget(max_experiments=2), rows(D, D), 0.0, "reached --max-experiments 2"),
        (Budget(max_experiments=3), rows(D, D), 0.0, None),
        (Budget(max_experiments=0), rows(), 0.0, "reached --max-experiments 0"),
        # 10-second experiments: one that would end after the deadline is not started.
        (
            Budget(deadline=100.0, deadline_flag="--until 07:00"),
            rows(D),
            95.0,
            "reached --until 07:00",
        ),
        (Budget(deadline=100.0, deadline_flag="--max-hours 1"), rows(D), 80.0, None),
        (Budget(max_consecutive_crashes=2), rows(C, C), 0.0, "2 experiments in a row crashed"),
        (Budget(max_consecutive_crashes=3), rows(C, C), 0.0, None),
        (Budget(max_consecutive_crashes=0), rows(C, C, C), 0.0, None),
    ],
)
@pytest.mark.engine_free
def test_a_budget_says_why_the_next_experiment_must_not_start(budget, ledger, now, stops):
    reason = budget.exhausted(ledger, now)
    if stops is None:
        assert reason is None
    else:
        assert reason is not None and reason.startswith(stops)


@pytest.mark.engine_free
def test_the_expected_length_of_an_experiment_is_the_longest_recent_one_with_margin():
    ledger = rows(D, D, seconds=20.0)
    assert expected_seconds(ledger) == pytest.approx(23.0)
    assert expected_seconds(rows(seconds=0.0)) == 1.0


@pytest.mark.parametrize(
    "clock, now, expected",
    [
        ("07:30", datetime.datetime(2026, 11, 26, 23, 0), datetime.datetime(2026, 11, 27, 7, 30)),
        ("23:30", datetime.datetime(2026, 11, 26, 23, 0), datetime.datetime(2026, 11, 26, 23, 30)),
        ("23:00", datetime.datetime(2026, 11, 26, 23, 0), datetime.datetime(2026, 11, 27, 23, 0)),
    ],
)
@pytest.mark.engine_free
def test_until_means_the_next_time_the_clock_shows_it(clock, now, expected):
    assert until_deadline(clock, now) == expected


@pytest.mark.parametrize("clock", ["7", "25:00", "07:61", "seven"])
@pytest.mark.engine_free
def test_until_rejects_what_is_not_a_time(clock):
    with pytest.raises(ValueError, match="HH:MM"):
        until_deadline(clock, datetime.datetime(2026, 11, 26, 23, 0))


@pytest.mark.engine_free
def test_pauses_back_off_then_stop_at_the_limit_without_calling_it_a_result():
    waits: list[float] = []
    calls = 0

    def engine_down():
        nonlocal calls
        calls += 1
        raise InfrastructureFault("engine gone")

    policy = PausePolicy(first_delay_s=1, max_delay_s=4, max_pause_s=12)
    with pytest.raises(StopNight, match="engine gone") as stopped:
        with_pauses(
            engine_down, policy, lambda reason, delay: None, lambda paused: None, waits.append
        )
    assert stopped.value.stop.failed  # a fault ended the night: `overnight run` exits 3
    assert waits == [1, 2, 4, 4]  # doubling, capped, and stopping before the limit is passed
    assert calls == 5


@pytest.mark.engine_free
def test_pauses_resume_when_the_fault_clears():
    attempts = iter([InfrastructureFault("down"), InfrastructureFault("down"), "result"])
    resumed: list[float] = []

    def flaky():
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    got = with_pauses(
        flaky, PausePolicy(0.5, 1, 60), lambda r, d: None, resumed.append, lambda s: None
    )
    assert got == "result" and resumed == [1.5]


def test_a_run_of_crashes_stops_the_night_with_the_reason(tmp_path, capsys):
    task = value_task(tmp_path)
    crash = {"command": "insert", "insert_line": 0, "new_str": "raise SystemExit(1)"}
    script = write_script(
        tmp_path / "s.jsonl", [{"description": f"crash {n}", "calls": [crash]} for n in range(4)]
    )
    code, out = run_cli(
        "run",
        str(task),
        "--tag",
        "c",
        "--provider",
        "replay",
        "--script",
        str(script),
        "--max-consecutive-crashes",
        "2",
        capsys=capsys,
    )
    assert code == 0, out
    assert "2 experiments in a row crashed" in out and "output.txt" in out
    assert [r.status.value for r in results(task, "c")] == ["keep", "crash", "crash"]


def test_a_bad_until_time_is_a_one_line_error(tmp_path, capsys):
    task = value_task(tmp_path)
    code, out = run_cli("run", str(task), "--tag", "u", "--until", "25:99", capsys=capsys)
    assert code == 2 and "--until takes HH:MM" in out
