"""Pausing through infrastructure faults: retry with backoff, say why, stop cleanly at a limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from harness.errors import InfrastructureFault
from harness.seams import StopNight

T = TypeVar("T")


@dataclass(frozen=True)
class PausePolicy:
    first_delay_s: float = 5.0
    max_delay_s: float = 300.0
    max_pause_s: float = 3600.0


def with_pauses(
    action: Callable[[], T],
    policy: PausePolicy,
    on_pause: Callable[[str, float], None],
    on_resume: Callable[[float], None],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `action`; while it fails with an InfrastructureFault, wait and try again."""
    paused = 0.0
    delay = policy.first_delay_s
    while True:
        try:
            result = action()
        except InfrastructureFault as fault:
            if paused + delay > policy.max_pause_s:
                raise StopNight(
                    f"paused {paused:.0f}s on an infrastructure fault, the limit is "
                    f"{policy.max_pause_s:.0f}s: {fault}. Fix it and run the same tag again"
                ) from fault
            on_pause(str(fault), delay)
            sleep(delay)
            paused += delay
            delay = min(delay * 2, policy.max_delay_s)
            continue
        if paused:
            on_resume(paused)
        return result
