"""An image build's log as a plain file: terminal escape codes dropped, progress bars collapsed.

A line redrawn with carriage returns keeps only what a terminal would show last.
"""

from __future__ import annotations

import re
from pathlib import Path

_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_line(raw: str) -> str:
    """One line as a terminal would leave it, without escapes or control characters."""
    text = _ESCAPES.sub("", raw).rstrip("\r")
    text = text.rsplit("\r", 1)[-1]
    return _CONTROLS.sub("", text)


class BuildLog:
    """Appends a build's output to `path`, cleaned line by line, as it arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._partial = ""

    def write(self, chunk: str | bytes) -> None:
        if isinstance(chunk, bytes):
            chunk = chunk.decode("utf-8", errors="replace")
        *lines, self._partial = (self._partial + chunk).split("\n")
        for line in lines:
            self._handle.write(clean_line(line) + "\n")
        self._handle.flush()

    def line(self, text: str) -> None:
        self.write(text + "\n")

    def close(self) -> None:
        if self._partial:
            self._handle.write(clean_line(self._partial) + "\n")
            self._partial = ""
        self._handle.close()

    def __enter__(self) -> BuildLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tail(path: Path, lines: int = 15) -> str:
    """The last non-empty lines of a log, for an error message."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])
