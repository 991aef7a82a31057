"""`overnight report`: report.html, report.md and progress.png in the run folder.

Written at the end of every night and, with `--report-every N`, after every N experiments. Each
file is replaced atomically, so a browser left open on report.html shows the progress on reload.
A report that cannot be written is logged and never stops or fails a night.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import TaskError
from harness.ledger import STATE_DIR
from harness.seams import ExperimentRecord

HTML, MARKDOWN, PLOT = "report.html", "report.md", "progress.png"


@dataclass(frozen=True)
class Written:
    html: Path
    markdown: Path
    plot: Path | None
    note: str = ""  # why there is no plot, when there is none


def write_report(folder: Path) -> Written:
    """Read the run folder `TASK/.overnight/<tag>/` and write the three files into it."""
    from harness.report_data import load_night
    from harness.report_html import render_html
    from harness.report_md import render_markdown
    from harness.report_plot import PlotUnavailable, render_progress

    data = load_night(folder)
    png, note = None, ""
    try:
        png = render_progress(data)
    except PlotUnavailable as err:
        note = str(err)
    if png is not None:
        _replace(folder / PLOT, png)
    _replace(folder / HTML, render_html(data, png, note).encode("utf-8"))
    _replace(folder / MARKDOWN, render_markdown(data, png is not None).encode("utf-8"))
    return Written(folder / HTML, folder / MARKDOWN, folder / PLOT if png else None, note)


def report_folder(task_dir: Path, tag: str | None) -> Path:
    """The run folder of `tag`, or of the most recent run."""
    from harness.status import list_tags

    base = task_dir / STATE_DIR
    tags = list_tags(task_dir)
    if tag is None:
        if not tags:
            raise TaskError(f"{task_dir}: no runs yet; start one with `overnight run {task_dir}`")
        tag = max(tags, key=lambda t: (base / t / "results.tsv").stat().st_mtime)
    if tag not in tags:
        known = ", ".join(tags) or "none"
        raise TaskError(f"{base / tag}: no run tagged {tag!r} (tags here: {known}); check --tag")
    return base / tag


def write_quietly(folder: Path, log: logging.Logger | None, say: Callable[[str], None]) -> bool:
    """write_report for the night: any failure is logged (and said once), never raised."""
    try:
        written = write_report(folder)
    except Exception as err:  # a report must never stop a night
        if log is not None:
            log.exception("report: could not be written")
        say(f"report: could not be written ({type(err).__name__}: {err}); see overnight.log")
        return False
    if written.note and log is not None:
        log.info("report: %s", written.note)
    return True


class Refresher:
    """Called after each ledger row: rewrites the report every `every` experiments."""

    def __init__(self, folder: Path, every: int, log: Any, say: Callable[[str], None]) -> None:
        self.folder, self.every, self.log, self.say = folder, every, log, say
        self.failed = False

    def __call__(self, row: ExperimentRecord) -> None:
        if self.every <= 0 or row.experiment % self.every or self.failed:
            return
        # After one failure, stay quiet for the rest of the night; the final write tries again.
        self.failed = not write_quietly(self.folder, self.log, self.say)


@contextlib.contextmanager
def at_the_end(folder: Path, log: Callable[[], logging.Logger | None], say: Any) -> Iterator[None]:
    """Write the report when the block ends, however it ends (the exception still propagates)."""
    try:
        yield
    finally:
        if (folder / "results.tsv").exists():
            write_quietly(folder, log(), say)


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
