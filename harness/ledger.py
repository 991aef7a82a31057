"""The run's records under `TASK/.overnight/<tag>/`: results.tsv, events.jsonl, one folder per experiment.

Rows and events are appended and fsynced as they happen, so what is on disk is always the
truth a resumed night starts from. A torn last line (a write cut by a crash) is skipped.
Whatever reaches a file here is valid UTF-8: a description is one printable line, and an event
is bounded JSON in ASCII, whatever text the agent managed to put into either.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from harness import untrusted
from harness.seams import ExperimentRecord, Verdict

HEADER = (
    "experiment",
    "commit",
    "metric",
    "memory_gb",
    "status",
    "seconds",
    "cost_usd",
    "description",
)
STATE_DIR = ".overnight"
_ROW_DESCRIPTION_CAP = 1000  # the description with its [note] or [reason]


class RunDir:
    """The files of one tagged run."""

    def __init__(self, task_dir: Path, tag: str) -> None:
        self.base = task_dir / STATE_DIR
        self.root = self.base / tag
        self.tag = tag

    @property
    def results(self) -> Path:
        return self.root / "results.tsv"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def worktree(self) -> Path:
        return self.root / "worktree"

    @property
    def cache(self) -> Path:
        return self.base / "cache"

    def experiment_dir(self, experiment: int) -> Path:
        return self.root / "experiments" / f"{experiment:04d}"

    def scratch_dir(self, experiment: int) -> Path:
        return self.root / "scratch" / f"{experiment:04d}"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # Keeps the whole state folder out of git without touching the user's .gitignore.
        ignore = self.base / ".gitignore"
        if not ignore.exists():
            ignore.write_text(
                "# written by overnight: its runs are not part of the repository\n*\n"
            )
        if not self.results.exists():
            _append(self.results, "\t".join(HEADER) + "\n")
        for path in (self.results, self.events):
            _drop_torn_tail(path)

    def record(self, row: ExperimentRecord) -> None:
        _append(self.results, format_row(row))

    def event(self, kind: str, **data: Any) -> None:
        entry = untrusted.plain({"ts": round(time.time(), 3), "event": kind, **data})
        _append(self.events, json.dumps(entry) + "\n")

    def write_artifact(self, experiment: int, name: str, text: str) -> None:
        folder = self.experiment_dir(experiment)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8", errors="replace")

    def rows(self) -> list[ExperimentRecord]:
        return read_rows(self.results)


def format_row(row: ExperimentRecord) -> str:
    metric = "" if row.metric is None else f"{row.metric:.6g}"
    description = untrusted.one_line(row.description, _ROW_DESCRIPTION_CAP)  # no tab or newline
    fields = (
        str(row.experiment),
        row.commit[:7],
        metric,
        f"{row.memory_gb:.1f}",
        row.status.value,
        f"{row.seconds:.1f}",
        f"{row.cost_usd:.4f}",
        description,
    )
    return "\t".join(fields) + "\n"


def read_rows(path: Path) -> list[ExperimentRecord]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    header, *lines = text.split("\n")[:-1]  # the part after the last newline is torn or empty
    columns = header.split("\t")
    rows = []
    for line in lines:
        parsed = _parse_row(columns, line)
        if parsed is not None:
            rows.append(parsed)
    return rows


def _parse_row(columns: list[str], line: str) -> ExperimentRecord | None:
    values = line.split("\t")
    if len(values) != len(columns):
        return None
    field = dict(zip(columns, values, strict=True))
    try:
        metric = float(field["metric"]) if field["metric"] else None
        return ExperimentRecord(
            experiment=int(field["experiment"]),
            commit=field["commit"],
            metric=metric if metric is None or math.isfinite(metric) else None,
            memory_gb=float(field["memory_gb"]),
            status=Verdict(field["status"]),
            seconds=float(field["seconds"]),
            cost_usd=float(field.get("cost_usd") or 0.0),
            description=field["description"],
        )
    except (KeyError, ValueError):
        return None


def _drop_torn_tail(path: Path) -> None:
    """A crash mid-write can leave a last line without its newline: an incomplete record.
    Cut it off, so the next record starts on a line of its own."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)
            handle.flush()
            os.fsync(handle.fileno())


_APPENDING = threading.Lock()  # experiments measured in parallel threads log events at once


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _APPENDING, open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
