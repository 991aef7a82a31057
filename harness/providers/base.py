"""The model seam: plain records for a conversation with one tool, and the Protocol behind them.

A provider adapter translates these records to its SDK and back, and turns the SDK's errors into
`ProviderError` (retryable or not). It does nothing else: retries, metering and logging happen
once, in `resilient.py`. This module imports nothing from the project.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Text:
    """A piece of text. `cache` ends a cacheable prefix (a cache breakpoint where supported)."""

    text: str
    cache: bool = False


@dataclass(frozen=True)
class ToolUse:
    """A tool call the model made. `error` says why its arguments could not be read, if so;
    then `raw` holds them as the model wrote them, to be sent back unchanged."""

    id: str
    name: str
    input: dict[str, Any]
    error: str = ""
    raw: str | None = None


@dataclass(frozen=True)
class ToolResult:
    """What a tool answered, sent back to the model."""

    id: str
    output: str
    is_error: bool = False


Block = Text | ToolUse | ToolResult


@dataclass(frozen=True)
class Message:
    """One turn of the conversation. `echo` is the adapter's own copy of an assistant turn
    (thinking blocks, reasoning items) that must go back to the provider unchanged;
    `thinking` is the readable part of that reasoning, kept for the transcript only."""

    role: Literal["user", "assistant"]
    content: tuple[Block, ...]
    echo: Any = None
    thinking: str = ""

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, Text))

    @property
    def tool_uses(self) -> list[ToolUse]:
        return [b for b in self.content if isinstance(b, ToolUse)]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ModelRequest:
    """One call: the system prompt, the conversation so far, and the tools on offer."""

    system: str
    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    max_output_tokens: int = 4096
    deadline: float | None = None  # time.monotonic() by which it must be answered, if any

    def timeout(self, configured: float) -> float:
        """Seconds this request may take: the configured timeout, or less before a deadline."""
        if self.deadline is None:
            return configured
        return max(0.001, min(configured, self.deadline - time.monotonic()))


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one call. `input_tokens` counts the whole prompt, cached parts included."""

    input_tokens: int = 0
    cached_input_tokens: int = 0  # read from the provider's prompt cache
    cache_write_tokens: int = 0  # written to it (billed at a premium by some providers)
    cache_write_1h_tokens: int = 0  # the part of those written with a 1-hour lifetime
    output_tokens: int = 0


# "refusal": the model declined (Anthropic's stop_reason, OpenAI's refusal or content filter).
Stop = Literal["end", "tool_use", "max_tokens", "refusal", "other"]


@dataclass(frozen=True)
class ModelTurn:
    """The model's answer to one request. The metering wrapper fills in the last three."""

    message: Message
    stop: Stop
    usage: TokenUsage
    model: str = ""
    cost_usd: float = 0.0
    attempts: int = 1
    seconds: float = 0.0


class ProviderError(Exception):
    """A failed call, classified by the adapter. Retryable ones may carry the server's
    `retry-after` in seconds; the message is one line a user can act on."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class DeadlineReached(Exception):
    """The request's deadline passed before the model answered (the proposal's time is up)."""


class Model(Protocol):
    """A chat model that can call tools."""

    name: str

    def complete(self, request: ModelRequest) -> ModelTurn: ...


# Helpers the adapters share for classifying HTTP errors the same way.

_SPEND = re.compile(
    r"insufficient_quota|spend[_ ]limit|credit balance|billing|payment required|"
    r"exceeded your current quota|out of credits",
    re.IGNORECASE,
)
RETRYABLE_STATUS = frozenset({408, 409, 429})


def classify_status(
    provider: str, status: int, detail: str, headers: Any, key_env: str | None
) -> ProviderError:
    """The ProviderError for an HTTP error response, by status code and the error's text."""
    detail = one_line(detail)
    if status == 402 or _SPEND.search(detail):
        return ProviderError(
            f"{provider}: spend limit or quota reached ({status}: {detail}); raise the limit or add "
            "credit, then run the same command again to continue",
            retryable=False,
        )
    if status in RETRYABLE_STATUS or status >= 500:
        return ProviderError(
            f"{provider}: {status} {detail}", retryable=True, retry_after=retry_after(headers)
        )
    if status == 401:
        where = f"check {key_env}" if key_env else "check the provider's credentials"
        return ProviderError(
            f"{provider}: the API key was rejected (401: {detail}); {where}", retryable=False
        )
    if status == 403:
        return ProviderError(
            f"{provider}: permission denied (403: {detail}); check that the key may use this model",
            retryable=False,
        )
    if status == 404:
        return ProviderError(
            f"{provider}: not found (404: {detail}); check `model` and `base_url` in [agent]",
            retryable=False,
        )
    return ProviderError(
        f"{provider}: the request was refused ({status}: {detail}); check the [agent] settings",
        retryable=False,
    )


def retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds; an HTTP date is ignored)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except (TypeError, ValueError):
            continue
        if seconds >= 0:
            return seconds
    return None


def error_detail(body: Any, fallback: str) -> str:
    """The error's code or type and its message from a JSON error body: {"error": {"type",
    "message"}}, or that inner object alone (as the openai SDK keeps it)."""
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind = error.get("code") or error.get("type") or ""
        message = error.get("message") or ""
        return f"{kind}: {message}" if kind and message else str(kind or message or fallback)
    if isinstance(error, str):
        return error
    return fallback


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def tool_use(call_id: str, name: str, arguments: str | None) -> ToolUse:
    """A tool call from JSON arguments; unreadable ones keep their text and say why."""
    tool_input, error = parse_arguments(arguments)
    return ToolUse(call_id, name, tool_input, error, arguments if error else None)


def parse_arguments(raw: str | None) -> tuple[dict[str, Any], str]:
    """Tool arguments from a JSON string: (input, "") or ({}, why they could not be read)."""
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as err:
        return {}, f"the arguments are not valid JSON ({err.msg} at character {err.pos})"
    except RecursionError:
        return {}, "the arguments nest too deeply to read; send a flat object"
    except ValueError as err:  # an integer too long to convert, say
        return {}, f"the arguments could not be read ({one_line(str(err), 100)})"
    if not isinstance(value, dict):
        return {}, "the arguments must be a JSON object"
    return value, ""
