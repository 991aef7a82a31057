"""The live view on the terminal: current experiment and phase, elapsed against the timeout, best so far.

On a terminal one status line is redrawn twice a second; elsewhere (a log file, CI) each phase
and each result is printed once, so logs stay readable. Nothing printed carries a control
character but newline (descriptions are the agent's text): only the view's own redraw codes.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from harness import untrusted
from harness.seams import ExperimentRecord


class View:
    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._lock = threading.Lock()
        self._phase = ""
        self._experiment = 0
        self._timeout: float | None = None
        self._since = time.monotonic()
        self._best = "best: -"
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.log: logging.Logger | None = None  # the run's overnight.log, once there is one
        if self.live:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def message(self, text: str) -> None:
        text = untrusted.printable(text)
        if self.log is not None:
            self.log.info(text)
        with self._lock:
            self._clear()
            print(text, file=self.stream, flush=True)

    def phase(self, experiment: int, phase: str, timeout: float | None = None) -> None:
        with self._lock:
            self._experiment, self._phase, self._timeout = experiment, phase, timeout
            self._since = time.monotonic()
            if self.log is not None:
                self.log.info("#%d %s", experiment, phase)
            if not self.live:
                print(
                    f"[{experiment:>4}] {untrusted.printable(phase)}", file=self.stream, flush=True
                )

    def result(self, row: ExperimentRecord, best: ExperimentRecord | None) -> None:
        metric = "-" if row.metric is None else f"{row.metric:.6g}"
        if best is not None and best.metric is not None:
            self._best = f"best: {best.metric:.6g} (#{best.experiment})"
        self.message(
            f"[{row.experiment:>4}] {row.status.value:<8} {metric:>12}  {row.seconds:6.1f}s  "
            f"{untrusted.one_line(row.description, 80)}"
        )

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        with self._lock:
            self._clear()

    def _status_line(self) -> str:
        elapsed = time.monotonic() - self._since
        limit = f"/{self._timeout:.0f}s" if self._timeout else "s"
        return f"  #{self._experiment} {self._phase} {elapsed:.0f}{limit}  {self._best}"

    def _clear(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                if self._phase:
                    self.stream.write("\r\033[K" + self._status_line())
                    self.stream.flush()
