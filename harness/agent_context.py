"""What an agent is told besides the code: the night's resolved settings, what is left of its
budgets, and from the run folder the numbers, diffs, output tails and notes of past experiments.

Read from files the harness wrote (results.tsv, events.jsonl, each experiment's diff.patch and
output.txt), so a resumed night tells the agent exactly what an uninterrupted one would.
"""

from __future__ import annotations

import json
import math

from harness.budget import Budget
from harness.config import Settings
from harness.ledger import RunDir
from harness.noise import proposals
from harness.seams import ExperimentRecord, Verdict

NOTES = "notes.md"
NOTES_CAP = 20_000  # characters kept of the agent's notes
TAIL_CHARS = 4000  # of one experiment's output
RECENT_TAILS = 2  # the latest runs whose output tail is shown, besides the best and failures
FAILED_TAILS = 3
DIFFS = 8  # the latest experiments whose diff is read
_FAILED = (Verdict.CRASH, Verdict.TIMEOUT, Verdict.INVALID)


def settings_lines(settings: Settings) -> tuple[str, ...]:
    """The night's resolved settings, as the model is told them (the same all night)."""
    lines = [
        f"metric: {settings.metric} ({settings.direction.value if settings.direction else '?'})",
        f"time budget: {settings.time_budget:g}s per training run"
        + (f" ({settings.time_budget_note})" if settings.time_budget_note else ""),
        f"hard timeout: {settings.timeout:g}s (a run still going then is killed: `timeout`)",
        f"edit calls per proposal: at most {settings.edit.max_calls}",
        f"memory per run: {settings.sandbox.memory}",
    ]
    if settings.confirm_runs:
        lines.append(f"a new best is run {settings.confirm_runs} more times and must win each")
    return tuple(lines)


def remaining(
    budget: Budget, rows: list[ExperimentRecord], now: float, max_cost: float | None
) -> str:
    """What is left of the night's budgets, whichever are set ("" when none is)."""
    done = len(proposals(rows))
    parts = [f"{done} experiments so far"]
    if budget.max_experiments is not None:
        parts.append(f"{max(0, budget.max_experiments - done)} of {budget.max_experiments} left")
    if budget.deadline is not None:
        hours = max(0.0, budget.deadline - now) / 3600
        parts.append(f"{hours:.2f} hours left ({budget.deadline_flag})")
    if max_cost is not None:
        spent = sum(r.cost_usd for r in rows)
        parts.append(f"${max(0.0, max_cost - spent):.2f} of ${max_cost:g} left (--max-cost)")
    return "; ".join(parts)


def numbers(run_dir: RunDir) -> dict[int, dict[str, float]]:
    """The numbers each experiment's first run returned, from events.jsonl."""
    found: dict[int, dict[str, float]] = {}
    if not run_dir.events.exists():
        return found
    with run_dir.events.open(encoding="utf-8", errors="replace") as events:
        for line in events:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            if event.get("event") != "run" or event.get("confirmation"):
                continue
            values = event.get("metrics") or {}
            found[int(event["experiment"])] = {
                str(k): float(v)
                for k, v in values.items()
                if isinstance(v, int | float) and math.isfinite(v)
            }
    return found


def diffs(run_dir: RunDir, rows: list[ExperimentRecord]) -> dict[int, str]:
    """The diff.patch of the latest experiments (against the best of their time)."""
    found = {}
    for row in proposals(rows)[-DIFFS:]:
        text = _read(run_dir, row.experiment, "diff.patch", 20_000)
        if text:
            found[row.experiment] = text
    return found


def output_tails(run_dir: RunDir, rows: list[ExperimentRecord]) -> dict[int, str]:
    """The end of the output of the best run, the latest runs and the latest failures."""
    keeps = [r for r in rows if r.status is Verdict.KEEP]
    ran = [r for r in proposals(rows) if r.status is not Verdict.SKIPPED]
    chosen = [r.experiment for r in [r for r in rows if r.status in _FAILED][-FAILED_TAILS:]]
    chosen += [r.experiment for r in ran[-RECENT_TAILS:]]
    if keeps:
        chosen.append(keeps[-1].experiment)
    found = {}
    for number in sorted(set(chosen)):
        text = _read(run_dir, number, "output.txt", TAIL_CHARS, end=True)
        if text:
            found[number] = text
    return found


def read_notes(run_dir: RunDir) -> str:
    path = run_dir.root / NOTES
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def write_notes(run_dir: RunDir, notes: str) -> None:
    """Replace the agent's notes (atomically: a crash leaves the old or the new, whole)."""
    path = run_dir.root / NOTES
    partial = path.with_suffix(".partial")
    partial.write_text(notes[:NOTES_CAP], encoding="utf-8", errors="replace")
    partial.replace(path)


def _read(run_dir: RunDir, number: int, name: str, chars: int, end: bool = False) -> str:
    path = run_dir.experiment_dir(number) / name
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return text[-chars:] if end else text[:chars]
