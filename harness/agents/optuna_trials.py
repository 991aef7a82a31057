"""How the `optuna` agent records a trial in the ledger, and reads it back: every value of the
trial in its description, "optuna: LEARNING_RATE=0.01->0.0231 EPOCHS=4->6 HIDDEN=32" (`old->`
only for the values it changed, and dropped when the line would pass the description cap).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.agents.constants import Constant, find_constants, format_number
from harness.agents.search_space import Range
from harness.seams import ExperimentRecord, StopNight, Verdict
from harness.untrusted import DESCRIPTION_CAP

PREFIX = "optuna:"
# One value of a trial: NAME=new, or NAME=old->new where the trial changed it.
_TOKEN = re.compile(r"([A-Za-z_]\w*)=(?:(\S+?)->)?(\S+)")
_FAILED = (Verdict.CRASH, Verdict.INVALID, Verdict.TIMEOUT)
_MEASURED = (Verdict.KEEP, Verdict.DISCARD)
_TRIALS = _MEASURED + _FAILED  # skipped rows were never run; re-measurements are not trials


@dataclass(frozen=True)
class Trial:
    """One optuna row of the ledger and the values it ran."""

    params: dict[str, float]
    record: ExperimentRecord


def parse_trials(history: list[ExperimentRecord]) -> list[Trial]:
    """The optuna rows of the ledger that ran, in order, with the values each ran."""
    trials = []
    for record in history:
        text = record.description
        if not text.startswith(PREFIX) or record.status not in _TRIALS or text.endswith("[...]"):
            continue  # a description cut short has lost values: not a trial it can tell
        params = {}
        for token in text[len(PREFIX) :].split():
            match = _TOKEN.fullmatch(token)
            if match is None:
                break  # the ledger's own note after the description, say
            try:
                params[match[1]] = _number(match[3])
            except ValueError:
                break
        if params:
            trials.append(Trial(params, record))
    return trials


def describe(constants: list[Constant], params: dict[str, float], spaces: dict[str, Range]) -> str:
    """Every value of the trial, so its row alone says what ran: `NAME=old->new` for a changed
    one, `NAME=value` for the others; without the old values where that is too long."""
    for with_old in (True, False):
        tokens = []
        for c in constants:
            new = literal(params[c.name], spaces[c.name])
            moved = params[c.name] != c.value
            tokens.append(f"{c.name}={_exact(c.value) + '->' if moved and with_old else ''}{new}")
        text = f"{PREFIX} " + " ".join(tokens)
        if len(text) <= DESCRIPTION_CAP:
            return text
    raise StopNight(
        f"optuna: the values of {len(constants)} constants do not fit in a description "
        f"({DESCRIPTION_CAP} characters), where each trial is recorded; pin some in "
        "overnight.toml ([agent] pinned = [...])"
    )


def baseline_values(source: str, best_diff: str) -> dict[str, float]:
    """The constants of the baseline's train.py: the best's, with the lines the diff from the
    baseline to the best removed put back."""
    values = {c.name: c.value for c in find_constants(source)}
    for line in best_diff.splitlines():
        if line.startswith("-") and not line.startswith("---"):
            values.update((c.name, c.value) for c in find_constants(line[1:]))
    return values


def literal(value: float, space: Range) -> str:
    if space.is_int:
        return str(int(value))
    text = format_number(value)
    return text if float(text) == value else repr(float(value))


def _exact(value: float) -> str:
    """A value of train.py as it parses back exactly: an int as an int, a float by repr."""
    return str(value) if isinstance(value, int) else repr(float(value))


def result(record: ExperimentRecord) -> float | None:
    """A trial's result: its metric, or None for a failure."""
    if record.status in _MEASURED and record.metric is not None:
        return record.metric
    return None


def _number(text: str) -> float:
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
