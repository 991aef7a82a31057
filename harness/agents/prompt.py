"""The prompt of one proposal, from the templates in `harness/prompts/` (package data, so a
wheel has them; `prompts/` at the top of the checkout links there).

Three parts: the system prompt (role and rules) and the task (program.md, prepare.py) never
change during a night, so they come first and are byte-identical across proposals: providers
cache them. The experiment part (history, what changed, the best train.py) comes last and is
kept under `max_bytes` by summarising older history, never by cutting the code.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from importlib.resources import files
from string import Template

from harness import untrusted
from harness.noise import baseline_runs, proposals
from harness.seams import Direction, ExperimentRecord, ProposalContext, Verdict

PROMPTS = files("harness") / "prompts"
FAILED = (Verdict.CRASH, Verdict.TIMEOUT, Verdict.INVALID)
_DESCRIPTION_CAP = 160
NUMBERS_SHOWN = 8  # other numbers of one experiment, besides the metric


@dataclass(frozen=True)
class Prompt:
    system: str
    task: str  # the stable, cacheable part of the first message
    experiment: str  # what changes from one proposal to the next

    @property
    def stable_bytes(self) -> int:
        return _size(self.system) + _size(self.task)

    @property
    def size(self) -> int:
        return self.stable_bytes + _size(self.experiment)


@dataclass(frozen=True)
class _Shape:
    """How much history to show; shrunk step by step until the prompt fits."""

    recent: int = 40
    keeps: int = 20
    failures: int = 3
    tail_bytes: int = 3000
    diff_bytes: int = 12_000
    tried: int = 5  # diffs of the latest discarded and failed experiments
    tried_bytes: int = 1500  # each
    notes_bytes: int = 4000

    def smaller(self) -> _Shape | None:
        if self.recent <= 1 and self.failures == 0 and self.diff_bytes <= 500:
            return None
        return _Shape(
            recent=max(self.recent // 2, 1),
            keeps=max(self.keeps // 2, 1),
            failures=self.failures - 1 if self.tail_bytes <= 500 else self.failures,
            tail_bytes=max(self.tail_bytes // 2, 500),
            diff_bytes=max(self.diff_bytes // 2, 500),
            tried=self.tried // 2,
            tried_bytes=max(self.tried_bytes // 2, 300),
            notes_bytes=max(self.notes_bytes // 2, 500),
        )


def build_prompt(context: ProposalContext, max_bytes: int) -> Prompt:
    """The prompt for this proposal, at most `max_bytes` unless the fixed parts alone are larger."""
    better, better_than = _better(context.direction)
    system = _template("system.md").substitute(
        metric=context.metric, better=better, better_than=better_than
    )
    task = _template("task.md").substitute(
        program=context.program.strip(),
        prepare=context.prepare_source.rstrip(),
        settings="\n".join(f"- {line}" for line in context.settings) or "- (none given)",
    )
    shape: _Shape | None = _Shape()
    prompt = Prompt(system, task, "")
    while shape is not None:
        prompt = Prompt(system, task, _experiment(context, shape))
        if prompt.size <= max_bytes:
            break
        shape = shape.smaller()
    return prompt


def _experiment(context: ProposalContext, shape: _Shape) -> str:
    return _template("experiment.md").substitute(
        experiment=context.experiment,
        history=history(context, shape),
        remaining=context.remaining or "no limit but the night's end",
        changes=_capped(context.best_diff.strip(), shape.diff_bytes, "diff")
        or "Nothing yet: the best is still the baseline.",
        notes=_capped(context.notes.strip(), shape.notes_bytes, "notes")
        or "None yet: write them after the first line of your final reply.",
        train=numbered(context.train_source),
    )


def numbered(source: str) -> str:
    """train.py as the edit tool's `view` shows it: every line with its number."""
    lines = source.splitlines()
    if not lines:
        return "(train.py is empty)"
    return "\n".join(f"{number:6}\t{line}" for number, line in enumerate(lines, start=1))


def history(context: ProposalContext, shape: _Shape = _Shape()) -> str:
    """A bounded summary of the ledger: totals, the kept changes, the latest experiments and the
    output of the latest failures."""
    rows = proposals(context.history)
    if not rows:
        return "\n".join(
            ["No experiments yet besides the baseline.", *_noise(context), *_running(context)]
        )
    baseline = next((r for r in reversed(context.history) if r.experiment == 0), None)
    counts = Counter(r.status.value for r in rows)
    lines = [
        f"{len(rows)} experiments so far: "
        + ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
        + "."
    ]
    if baseline is not None and context.noise is None:
        lines.append(f"Baseline: {context.metric} = {_metric(baseline)}.")
    lines += _noise(context)
    if context.best is not None and context.best.experiment > 0:
        again = sum(
            1
            for r in context.history
            if r.status is Verdict.REMEASURE and r.experiment == context.best.experiment
        )
        runs = f", the mean of its runs (run again {again} times)" if again else ""
        lines.append(
            f"Best: {context.metric} = {_metric(context.best)}{runs} at experiment "
            f"{context.best.experiment} ({_describe(context.best)})."
        )
    keeps = [r for r in rows if r.status is Verdict.KEEP]
    if keeps:
        lines += ["", "Kept changes, oldest first (the path from the baseline to the best):"]
        if len(keeps) > shape.keeps:
            lines.append(f"... {len(keeps) - shape.keeps} earlier keeps")
        lines += [_row(r, context) for r in keeps[-shape.keeps :]]
    recent = rows[-shape.recent :]
    older = rows[: -shape.recent] if len(rows) > shape.recent else []
    if older:
        older_counts = Counter(r.status.value for r in older)
        lines += [
            "",
            f"Experiments 1-{older[-1].experiment} in short: "
            + ", ".join(f"{status} {n}" for status, n in sorted(older_counts.items()))
            + ".",
        ]
    lines += ["", "Latest experiments, oldest first (status, metric, seconds, lines changed):"]
    lines += [_row(r, context) for r in recent]
    lines += _tried(context, rows, shape)
    lines += _tails(context, rows, shape)
    lines += _running(context)
    return "\n".join(lines)


def _running(context: ProposalContext) -> list[str]:
    """What other workers measure right now, so the model does not propose it again."""
    if not context.running:
        return []
    lines = ["", "Running now on other workers (their results are not in yet; do not repeat them):"]
    lines += [
        f"- #{r.experiment}, proposed from #{r.proposed_from}: "
        + untrusted.one_line(r.description, 200)
        for r in context.running
    ]
    return lines


def _noise(context: ProposalContext) -> list[str]:
    """The measured noise and the keep threshold, in words."""
    lines = []
    runs = [r.metric for r in baseline_runs(context.history) if r.metric is not None]
    if context.noise is not None and runs:
        mean = sum(runs) / len(runs)
        lines.append(
            f"Baseline: {context.metric} = {mean:.6g}, the mean of {len(runs)} runs of the same "
            f"train.py; they vary by {context.noise:.3g} (standard deviation): the noise."
        )
    if context.min_improvement:
        lines.append(
            f"A change is kept only if {context.metric} beats the best by more than "
            f"{context.margin:.3g} (min_improvement = {context.min_improvement}); a smaller "
            "difference is within the noise and is discarded."
        )
    return lines


def _tried(context: ProposalContext, rows: list[ExperimentRecord], shape: _Shape) -> list[str]:
    """What the latest experiments that were not kept really changed (descriptions can be wrong)."""
    tried = [r for r in rows if r.status is not Verdict.KEEP and context.diffs.get(r.experiment)]
    if not tried or shape.tried <= 0:
        return []
    lines = ["", "What the latest experiments that were not kept changed, most recent first:"]
    for row in reversed(tried[-shape.tried :]):
        diff = context.diffs[row.experiment].strip()
        lines += [
            "",
            f"Experiment {row.experiment} ({row.status.value}): {_describe(row)}",
            "```diff",
            _capped(diff, shape.tried_bytes, "diff"),
            "```",
        ]
    return lines


def _tails(context: ProposalContext, rows: list[ExperimentRecord], shape: _Shape) -> list[str]:
    """The end of the output of the best run, the latest runs and the latest failures."""
    best = context.best.experiment if context.best else None
    failed = [r for r in rows if r.status in FAILED and r.experiment in context.output_tails]
    chosen = {r.experiment for r in failed[-shape.failures :]} if shape.failures > 0 else set()
    chosen |= {
        n for n in context.output_tails if n == best or n not in {r.experiment for r in failed}
    }
    shown: list[ExperimentRecord] = []
    for row in context.history:  # the first row of each: a remeasure repeats the best's number
        if row.experiment in chosen and all(s.experiment != row.experiment for s in shown):
            shown.append(row)
    if not shown:
        return []
    lines = ["", "The end of the output of the best run, the latest runs and the latest failures:"]
    for row in shown:
        tail = context.output_tails[row.experiment]
        label = "the best" if row.experiment == best else row.status.value
        lines += [
            "",
            f"Experiment {row.experiment} ({label}): {_describe(row)}",
            "```",
            _capped(tail.rstrip(), shape.tail_bytes, "output", keep_end=True),
            "```",
        ]
    return lines


def _row(row: ExperimentRecord, context: ProposalContext) -> str:
    seconds = f"{row.seconds:.1f}s" if row.seconds else "-"
    line = (
        f"#{row.experiment:<5} {row.status.value:<8} {_metric(row):>12} {seconds:>8} "
        f"{_stat(context.diffs.get(row.experiment, '')):>9}  {_describe(row)}"
    )
    numbers = context.numbers.get(row.experiment) or {}
    others = [(k, v) for k, v in numbers.items() if k != context.metric][:NUMBERS_SHOWN]
    if others:
        line += "\n" + " " * 7 + ", ".join(f"{k} = {v:.6g}" for k, v in others)
    return line


def _stat(diff: str) -> str:
    """ "+3 -1": the lines a diff adds and removes ("" without one)."""
    if not diff:
        return ""
    lines = diff.splitlines()
    added = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
    removed = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
    return f"+{added} -{removed}"


def _metric(row: ExperimentRecord) -> str:
    return "-" if row.metric is None else f"{row.metric:.6g}"


def _describe(row: ExperimentRecord) -> str:
    text = " ".join(row.description.split())
    return text if len(text) <= _DESCRIPTION_CAP else text[: _DESCRIPTION_CAP - 3] + "..."


def _capped(text: str, limit: int, what: str, keep_end: bool = False) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    kept = data[-limit:] if keep_end else data[:limit]
    cut = kept.decode("utf-8", errors="ignore")
    note = f"[... {len(data) - limit} more bytes of {what} not shown ...]"
    return f"{note}\n{cut}" if keep_end else f"{cut}\n{note}"


def _better(direction: Direction) -> tuple[str, str]:
    if direction is Direction.MINIMIZE:
        return "as low as possible", "lower than"
    return "as high as possible", "higher than"


def _template(name: str) -> Template:
    return Template((PROMPTS / name).read_text(encoding="utf-8"))


def _size(text: str) -> int:
    return len(text.encode("utf-8"))
