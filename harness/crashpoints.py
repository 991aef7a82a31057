"""Fault injection for crash-safety tests: `OVERNIGHT_CRASH_AT=N` makes the harness exit abruptly
(as `kill -9` would leave it) at the N-th step boundary of a process's life. Off unless set."""

from __future__ import annotations

import os

EXIT_CODE = 86
_counter = 0


def crashpoint(label: str) -> None:
    global _counter
    target = os.environ.get("OVERNIGHT_CRASH_AT")
    if not target:
        return
    _counter += 1
    if _counter == int(target):
        os.write(2, f"overnight: injected crash at step {_counter} ({label})\n".encode())
        os._exit(EXIT_CODE)
