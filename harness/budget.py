"""Budgets that end a night: experiments, wall clock (`--max-hours`, `--until`), consecutive crashes.

A pure check over the ledger's rows: the night asks before each experiment whether to start it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from harness.seams import ExperimentRecord, Verdict

_FAILED = (Verdict.CRASH, Verdict.TIMEOUT)


@dataclass(frozen=True)
class Budget:
    max_experiments: int | None = None
    deadline: float | None = None  # epoch seconds
    deadline_flag: str = ""
    max_consecutive_crashes: int | None = None

    def exhausted(
        self, rows: list[ExperimentRecord], now: float, started: int | None = None
    ) -> str | None:
        """Why the next experiment must not start, or None. `started`: how many experiments
        have started (default: the ledger's proposals; with --workers, the running ones too)."""
        proposals = sum(1 for r in rows if r.experiment > 0 and r.status is not Verdict.REMEASURE)
        proposals = proposals if started is None else started
        if self.max_experiments is not None and proposals >= self.max_experiments:
            return f"reached --max-experiments {self.max_experiments}"
        if self.deadline is not None and now + expected_seconds(rows) > self.deadline:
            return f"reached {self.deadline_flag}: the next experiment would end after it"
        crashes = consecutive_failures(rows)
        if self.max_consecutive_crashes and crashes >= self.max_consecutive_crashes:
            last = rows[-1]
            return (
                f"{crashes} experiments in a row crashed or timed out (the last, #{last.experiment}: "
                f"{last.description}); look at their output.txt, fix the cause, and run again"
            )
        return None


def expected_seconds(rows: list[ExperimentRecord]) -> float:
    """How long the next experiment will likely take: the longest of the last ten, with margin."""
    recent = [r.seconds for r in rows[-10:] if r.status is not Verdict.SKIPPED]
    return 1.1 * max(recent, default=0.0) + 1.0


def consecutive_failures(rows: list[ExperimentRecord]) -> int:
    count = 0
    for row in reversed(rows):
        if row.status in (Verdict.SKIPPED, Verdict.REMEASURE):
            continue
        if row.status not in _FAILED:
            break
        count += 1
    return count


def until_deadline(clock: str, now: datetime.datetime) -> datetime.datetime:
    """The next time the wall clock shows HH:MM (today if still ahead, else tomorrow)."""
    try:
        hour, minute = (int(part) for part in clock.split(":"))
        target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError:
        raise ValueError(
            f"--until takes HH:MM in 24-hour time, e.g. 07:30 (got {clock!r})"
        ) from None
    if target <= now:
        target += datetime.timedelta(days=1)
    return target
