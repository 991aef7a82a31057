"""Stopping on purpose: the first Ctrl-C or SIGTERM finishes the current experiment, the second aborts.

An abort raises KeyboardInterrupt where the loop is; the loop rolls back the candidate and the
sandbox removes its container on the way out.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


class StopSignals:
    def __init__(self, on_first: Callable[[str], None]) -> None:
        self.requested: str | None = None
        self._on_first = on_first
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested is None:
            self.requested = name
            self._on_first(name)
            return
        raise KeyboardInterrupt(name)
