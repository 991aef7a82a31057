"""The one wrapper around every provider: retries, cost metering and call logging.

Rate limits, overload, 5xx, timeouts and dropped connections are retried with exponential
backoff and jitter, waiting at least what `retry-after` asks. An outage is waited out up to
`max_outage_minutes`; then, as for an error no retry can fix (a rejected key, a spend limit, an
invalid request), the night stops with a one-line message. Nothing has been committed then:
the agent fails before a candidate exists. An answer the SDK cannot read (JSON nested too deeply,
an integer too long) is retried like a dropped one. A request with a deadline (the proposal's
time) is neither sent nor retried past it: `DeadlineReached` ends the proposal instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from harness.errors import OvernightError
from harness.providers.base import (
    DeadlineReached,
    Model,
    ModelRequest,
    ModelTurn,
    ProviderError,
    one_line,
)
from harness.providers.pricing import Prices


class ModelError(OvernightError):
    """The model provider refused the work or stayed unavailable; the night stops."""


@dataclass(frozen=True)
class RetryPolicy:
    max_outage_s: float = 3600.0  # keep retrying one call this long, then stop the night
    initial_s: float = 2.0  # first backoff
    max_s: float = 120.0  # longest backoff (a longer `retry-after` is still honoured)


class ResilientModel:
    """A Model that retries, meters and logs the Model it wraps."""

    def __init__(
        self,
        model: Model,
        policy: RetryPolicy,
        prices: Prices | None,
        log: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model = model
        self.name = model.name
        self.policy = policy
        self.prices = prices
        self.log = log
        self.sleep = sleep
        self._backoff = wait_exponential_jitter(
            multiplier=policy.initial_s, max=policy.max_s, jitter=policy.initial_s
        )

    def complete(self, request: ModelRequest) -> ModelTurn:
        started = time.monotonic()
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and e.retryable),
            stop=stop_after_delay(self.policy.max_outage_s) | _StopAtDeadline(request),
            wait=lambda state: self._wait(state, request),
            before_sleep=self._tell,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            turn = retrying(self._attempt, request)
        except ProviderError as err:
            if not err.retryable:
                raise ModelError(str(err)) from err
            if _late(request):
                raise DeadlineReached(
                    f"{self.name}: no answer before the deadline ({err})"
                ) from err
            raise ModelError(
                f"{self.name}: the model service failed for {time.monotonic() - started:.0f}s "
                f"({retrying.statistics.get('attempt_number', 1)} attempts; last: {err}); "
                "stopped before anything was committed. Run the same command again to continue "
                "(max_outage_minutes in [agent] sets how long to wait)"
            ) from err
        attempts = retrying.statistics.get("attempt_number", 1)
        if attempts > 1:
            self.log(f"model: back after {attempts - 1} failed attempts")
        return replace(
            turn,
            cost_usd=self.prices.cost(turn.usage) if self.prices else 0.0,
            attempts=attempts,
            seconds=time.monotonic() - started,
        )

    def _attempt(self, request: ModelRequest) -> ModelTurn:
        if _late(request):
            raise DeadlineReached(f"{self.name}: the deadline passed before the request was sent")
        try:
            return self.model.complete(request)
        except (RecursionError, ValueError) as err:  # raised while reading the answer
            raise ProviderError(
                f"{self.name}: the answer could not be read ({type(err).__name__}: "
                f"{one_line(str(err), 120)})",
                retryable=True,
            ) from err

    def _wait(self, state: RetryCallState, request: ModelRequest) -> float:
        """Exponential backoff with jitter, at least `retry-after`, never past the outage limit
        nor the request's deadline."""
        error = state.outcome.exception() if state.outcome else None
        backoff = self._backoff(state)
        asked = getattr(error, "retry_after", None) or 0.0
        left = self.policy.max_outage_s - (state.seconds_since_start or 0.0)
        if request.deadline is not None:
            left = min(left, request.deadline - time.monotonic())
        return max(0.0, min(max(backoff, asked), left))

    def _tell(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log(f"model: {error}; retrying in {wait:.1f}s (attempt {state.attempt_number + 1})")


class _StopAtDeadline(stop_base):
    """Stop retrying once the request's deadline has passed."""

    def __init__(self, request: ModelRequest) -> None:
        self.request = request

    def __call__(self, retry_state: RetryCallState) -> bool:
        return _late(self.request)


def _late(request: ModelRequest) -> bool:
    """Whether the request's deadline has passed (or is too close to send anything)."""
    return request.deadline is not None and request.deadline - time.monotonic() < 0.05
