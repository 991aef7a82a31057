"""Pausing through infrastructure faults: retry with backoff, say why, stop cleanly at a limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

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
                    f"{policy.max_pause_s:.0f}s: {fault}. Fix it and run the same tag again",
                    failed=True,
                ) from fault
            on_pause(str(fault), delay)
            sleep(delay)
            paused += delay
            delay = min(delay * 2, policy.max_delay_s)
            continue
        if paused:
            on_resume(paused)
        return result


class Pauses:
    """A night's pauses, reported one way wherever they happen: an event, the run's state file
    and a line on the live view. `sleep` may end a pause early (a stop requested meanwhile)."""

    def __init__(
        self,
        policy: PausePolicy,
        event: Callable[..., None],
        state: Callable[..., None],
        say: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy, self.event, self.state, self.say, self.sleep = policy, event, state, say, sleep

    def run(self, action: Callable[[], T]) -> T:
        return with_pauses(action, self.policy, self._paused, self._resumed, self.sleep)

    def _paused(self, reason: str, delay: float) -> None:
        self.event("pause", reason=reason, retry_in_s=delay)
        self.state("paused", reason=reason)
        self.say(f"paused: {reason}; retrying in {delay:.0f}s")

    def _resumed(self, paused_s: float) -> None:
        self.event("resume", paused_s=paused_s)
        self.state("running")
        self.say(f"resumed after {paused_s:.0f}s")


def policy_of(night: Any) -> PausePolicy:
    """The pause policy of a `[night]` config."""
    return PausePolicy(
        first_delay_s=night.pause_first_delay,
        max_delay_s=night.pause_max_delay,
        max_pause_s=night.max_pause_minutes * 60,
    )
