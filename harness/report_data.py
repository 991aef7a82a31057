"""What a report says about a night, read from its run folder alone (and one `git diff`).

Everything the agent or its programs wrote (descriptions, diffs, output tails) is untrusted:
`clean` strips terminal control sequences and invisible direction marks here, once, and each
renderer escapes for its own format.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.ledger import read_rows
from harness.noise import baseline_runs, current_best, noise_estimate, proposals
from harness.runstate import describe
from harness.seams import ExperimentRecord, Verdict

FAILED = (Verdict.CRASH, Verdict.TIMEOUT, Verdict.INVALID, Verdict.SKIPPED)
PHASES = ("propose", "train", "evaluate")
_DIFF_CAP = 65_536  # characters of one diff in a report
_TAIL_LINES, _TAIL_CAP = 40, 4_000
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks
    r"|\x1b[P^_X][^\x1b]*(?:\x1b\\)?"  # DCS, PM, APC, SOS strings
    r"|\x1b[@-Z\\-_]?"  # the other two-character escapes, and a lone ESC
)
_CONTROLS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_EVENT_KIND = re.compile(r'"event": "(\w+)"')


def clean(text: str) -> str:
    """Text without terminal escapes, control characters or bidirectional overrides."""
    text = _ESCAPES.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub("", text)


@dataclass(frozen=True)
class Kept:
    row: ExperimentRecord
    delta: float  # metric minus the previous best's
    diff: str


@dataclass(frozen=True)
class FailureGroup:
    status: Verdict
    experiments: list[int]
    example: int
    tail: str  # the end of the example's output, or why it was skipped


@dataclass
class NightData:
    task: str
    tag: str
    folder: Path
    state: dict[str, Any]
    config: dict[str, Any]
    rows: list[ExperimentRecord]
    times: dict[int, dict[str, float]]  # experiment -> phase -> seconds
    tokens: dict[str, int]
    first_ts: float | None = None
    last_ts: float | None = None
    noise: float | None = None  # the metric's standard deviation, when measured (0: identical runs)
    noise_runs: int = 1  # the baseline's runs it was measured from
    kept: list[Kept] = field(default_factory=list)
    best_diff: str = ""
    failures: list[FailureGroup] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, Any]:
        return self.config.get("settings", {})

    @property
    def metric(self) -> str:
        return str(self.settings.get("metric") or "metric")

    @property
    def maximize(self) -> bool:
        return self.settings.get("direction") == "maximize"

    @property
    def baseline(self) -> ExperimentRecord | None:
        """The kept baseline valued at the mean of its runs, or the first baseline row."""
        runs = baseline_runs(self.rows)
        values = [r.metric for r in runs if r.metric is not None]
        if len(values) > 1:
            return replace(runs[0], metric=sum(values) / len(values))
        return next((r for r in self.rows if r.experiment == 0), None)

    @property
    def best(self) -> ExperimentRecord | None:
        """The last keep, valued at the mean of all its runs."""
        return current_best(self.rows, self.settings.get("confirm_runs") or 0)

    @property
    def proposals(self) -> int:
        return len(proposals(self.rows))

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.rows)


def load_night(folder: Path) -> NightData:
    """Everything the report shows, from `TASK/.overnight/<tag>/`."""
    rows = [_cleaned(r) for r in read_rows(folder / "results.tsv")]
    config = _read_json(folder / "config.json")
    data = NightData(
        task=folder.parent.parent.name,
        tag=folder.name,
        folder=folder,
        state=describe(folder),
        config=config,
        rows=rows,
        times={},
        tokens=dict.fromkeys(("calls", "input", "cached_input", "output"), 0),
    )
    noise_events = _read_events(folder / "events.jsonl", data)
    measured = noise_estimate(rows)  # noise_runs > 1: the baseline's own rows say it
    data.noise = measured if measured is not None else _noise(config, noise_events)
    data.noise_runs = len([r for r in baseline_runs(rows) if r.metric is not None])
    _fill_missing_times(data)
    data.kept = _kept(data)
    data.best_diff = _best_diff(data)
    data.failures = _failures(data)
    return data


def _cleaned(row: ExperimentRecord) -> ExperimentRecord:
    return replace(row, description=clean(row.description))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_events(path: Path, data: NightData) -> list[dict[str, Any]]:
    """Phase times and tokens per experiment; returns the noise events, if any."""
    noise: list[dict[str, Any]] = []
    if not path.exists():
        return noise
    previous_ts = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            kind = _EVENT_KIND.search(line, 0, 80)
            if kind is None:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a torn last line
            ts = event.get("ts")
            if isinstance(ts, int | float):
                data.first_ts = ts if data.first_ts is None else data.first_ts
                data.last_ts = ts
            _take_event(kind.group(1), event, previous_ts, data, noise)
            previous_ts = ts if isinstance(ts, int | float) else previous_ts
    return noise


def _take_event(
    kind: str, event: dict[str, Any], previous_ts: Any, data: NightData, noise: Any
) -> None:
    number = event.get("experiment")
    if kind == "noise":
        noise.append(event)
    if not isinstance(number, int):
        return
    times = data.times.setdefault(number, {})
    if kind == "proposal":
        seconds = event.get("seconds")
        if not isinstance(seconds, int | float) and isinstance(previous_ts, int | float):
            seconds = event["ts"] - previous_ts  # older ledgers: since the event before it
        if isinstance(seconds, int | float):
            times["propose"] = float(seconds)
        usage = event.get("usage") or {}
        for key, name in (
            ("calls", "calls"),
            ("input", "input_tokens"),
            ("output", "output_tokens"),
        ):
            data.tokens[key] += _int(usage.get(name))
        data.tokens["cached_input"] += _int(usage.get("cached_input_tokens"))
    elif kind == "run" and not event.get("remeasure"):  # a run again of a kept train.py
        for phase, key in (("train", "train_seconds"), ("evaluate", "eval_seconds")):
            value = event.get(key)
            if isinstance(value, int | float):
                times[phase] = times.get(phase, 0.0) + float(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _fill_missing_times(data: NightData) -> None:
    """Runs recorded before events held the evaluation's seconds: the row's total minus training."""
    for row in data.rows:
        times = data.times.get(row.experiment)
        if times and "train" in times and "evaluate" not in times:
            times["evaluate"] = max(0.0, row.seconds - times["train"])


def _noise(config: dict[str, Any], events: list[dict[str, Any]]) -> float | None:
    """The metric's measured noise (a standard deviation), when something measured it."""
    for source in [*reversed(events), config]:
        value = source.get("noise") if source is config else source
        if isinstance(value, dict):
            value = next((value[k] for k in ("std", "stdev", "sigma") if k in value), None)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def _kept(data: NightData) -> list[Kept]:
    kept, previous = [], None
    for row in data.rows:
        if row.status is not Verdict.KEEP or row.metric is None:
            continue
        if previous is not None and row.experiment > 0:
            diff = _read_capped(
                data.folder / "experiments" / f"{row.experiment:04d}" / "diff.patch"
            )
            kept.append(Kept(row, row.metric - previous, diff))
        previous = row.metric
    return kept


def _read_capped(path: Path, cap: int = _DIFF_CAP) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(cap + 1)
    except OSError:
        return ""
    if len(text) > cap:
        text = text[:cap] + "\n... (cut; the whole file is in the run folder)\n"
    return clean(text)


def _best_diff(data: NightData) -> str:
    base, best = data.baseline, data.best
    if base is None or best is None or best.experiment == 0:
        return ""
    worktree = data.folder / "worktree"
    if not worktree.is_dir():
        return ""  # a run folder copied away from its repository
    command = ["git", "-C", str(worktree), "diff", "--no-color", "--no-ext-diff", "--no-textconv"]
    try:
        done = subprocess.run(
            [*command, base.commit, best.commit, "--"],
            capture_output=True,
            timeout=30,
            check=True,
        )
    except subprocess.CalledProcessError as err:
        reason = err.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:]
        return f"(not available: git diff {base.commit} {best.commit} failed: {''.join(reason)})"
    except (OSError, subprocess.SubprocessError) as err:
        return f"(not available: git diff {base.commit} {best.commit} failed: {err})"
    text = done.stdout.decode("utf-8", errors="replace")
    if len(text) > _DIFF_CAP:
        text = text[:_DIFF_CAP] + "\n... (cut)\n"
    return clean(text)


def _failures(data: NightData) -> list[FailureGroup]:
    groups = []
    for status in FAILED:
        rows = [r for r in data.rows if r.status is status]
        if not rows:
            continue
        example = rows[-1]
        if status is Verdict.SKIPPED:
            tail = example.description
        else:
            path = data.folder / "experiments" / f"{example.experiment:04d}" / "output.txt"
            tail = _tail(path)
        groups.append(FailureGroup(status, [r.experiment for r in rows], example.experiment, tail))
    return groups


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 4 * _TAIL_CAP))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no output was recorded)"
    lines = clean(text).splitlines()[-_TAIL_LINES:]
    return "\n".join(lines)[-_TAIL_CAP:]


def phase_summary(data: NightData) -> dict[str, dict[str, float]]:
    """Per phase: median, 90th percentile and total seconds over the experiments that had it."""
    summary = {}
    for phase in PHASES:
        values = sorted(t[phase] for t in data.times.values() if phase in t)
        if not values:
            continue
        summary[phase] = {
            "count": len(values),
            "median": statistics.median(values),
            "p90": values[min(len(values) - 1, int(0.9 * len(values)))],
            "total": sum(values),
        }
    return summary
