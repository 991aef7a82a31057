"""The Anthropic Messages API: our records to `messages.create` and back, and its errors classified.

Cache breakpoints (`Text.cache`) become `cache_control` markers with the configured lifetime, and
the last message gets one too, so each call of a proposal reads what the previous one wrote.
"""

from __future__ import annotations

from typing import Any, Literal

from harness.providers.base import (
    Message,
    ModelRequest,
    ModelTurn,
    ProviderError,
    Stop,
    Text,
    TokenUsage,
    ToolResult,
    ToolUse,
    classify_status,
    error_detail,
)
from harness.providers.registry import ProviderInfo

KEY_ENV = "ANTHROPIC_API_KEY"
_STOPS: dict[str, Stop] = {
    "end_turn": "end",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "refusal": "refusal",
}


class AnthropicModel:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        timeout: float = 600.0,
        temperature: float | None = None,
        thinking: str | int | None = None,
        effort: str | None = None,
        cache_ttl: Literal["5m", "1h"] = "1h",
    ) -> None:
        import anthropic

        self.name = model
        self._sdk = anthropic
        # Retries happen in one place, our wrapper; the SDK's own are off.
        self._client = anthropic.Anthropic(base_url=base_url, timeout=timeout, max_retries=0)
        self._timeout = timeout
        self._temperature = temperature
        self._thinking = thinking
        self._effort = effort
        self._cache = {"type": "ephemeral", "ttl": cache_ttl}  # the stable prefix
        self._tail_cache = {"type": "ephemeral", "ttl": "5m"}  # within one proposal

    def complete(self, request: ModelRequest) -> ModelTurn:
        options: dict[str, Any] = {}
        if self._temperature is not None:
            options["temperature"] = self._temperature
        if self._thinking == "adaptive":
            options["thinking"] = {"type": "adaptive"}
        elif self._thinking:
            options["thinking"] = {"type": "enabled", "budget_tokens": self._thinking}
        if self._effort:
            options["output_config"] = {"effort": self._effort}
        if request.tools:
            options["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema}
                for t in request.tools
            ]
        options |= {
            "model": self.name,
            "max_tokens": request.max_output_tokens,
            "system": request.system,
            "messages": self._messages(request.messages),
            "timeout": request.timeout(self._timeout),
        }
        try:
            response = self._client.messages.create(**options)
        except self._sdk.APIStatusError as err:
            raise classify_status(
                "anthropic",
                err.status_code,
                error_detail(err.body, err.message),
                err.response.headers,
                KEY_ENV,
            ) from err
        except self._sdk.APIConnectionError as err:  # timeouts included
            raise ProviderError(f"anthropic: {err}", retryable=True) from err
        return _turn(response)

    def _messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"role": m.role, "content": m.echo if m.echo is not None else self._blocks(m)}
            for m in messages
        ]
        last: list[dict[str, Any]] | None = out[-1]["content"] if out else None
        if last and "cache_control" not in last[-1]:
            out[-1]["content"] = [*last[:-1], {**last[-1], "cache_control": self._tail_cache}]
        return out

    def _blocks(self, message: Message) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        for block in message.content:
            if isinstance(block, Text):
                if not block.text:
                    continue
                blocks.append({"type": "text", "text": block.text})
                if block.cache:
                    blocks[-1]["cache_control"] = self._cache
            elif isinstance(block, ToolUse):
                blocks.append(
                    {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
                )
            elif isinstance(block, ToolResult):
                blocks.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": block.id,
                        "content": block.output or "(empty)",
                        "is_error": block.is_error,
                    }
                )
        return blocks


def _turn(response: Any) -> ModelTurn:
    content: list[Text | ToolUse] = []
    echo: list[dict[str, Any]] = []
    thinking: list[str] = []
    for block in response.content:
        if block.type == "text":
            content.append(Text(block.text))
            if block.text:
                echo.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            raw = block.input
            tool_input = raw if isinstance(raw, dict) else {}
            error = "" if isinstance(raw, dict) else "the arguments must be a JSON object"
            content.append(ToolUse(block.id, block.name, tool_input, error))
            echo.append({"type": "tool_use", "id": block.id, "name": block.name, "input": raw})
        elif block.type == "thinking":
            thinking.append(block.thinking)
            echo.append(
                {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
            )
        elif block.type == "redacted_thinking":
            thinking.append("(redacted thinking)")
            echo.append({"type": "redacted_thinking", "data": block.data})
    usage = response.usage
    cached = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    split = getattr(usage, "cache_creation", None)
    written_1h = (getattr(split, "ephemeral_1h_input_tokens", 0) or 0) if split else 0
    return ModelTurn(
        message=Message("assistant", tuple(content), echo=echo, thinking="\n\n".join(thinking)),
        stop=_STOPS.get(response.stop_reason or "", "other"),
        usage=TokenUsage(
            input_tokens=usage.input_tokens + cached + written,
            cached_input_tokens=cached,
            cache_write_tokens=written,
            cache_write_1h_tokens=written_1h,
            output_tokens=usage.output_tokens,
        ),
        model=response.model,
    )


def _adapter(config: Any) -> AnthropicModel:
    return AnthropicModel(
        config.model,
        base_url=config.base_url,
        timeout=config.timeout,
        temperature=config.temperature,
        thinking=config.thinking,
        effort=config.effort,
        cache_ttl=config.cache_ttl,
    )


PROVIDER = ProviderInfo(
    name="anthropic",
    sdk="anthropic",
    key_env=(KEY_ENV, "ANTHROPIC_AUTH_TOKEN"),
    config="AnthropicAgentConfig",
    adapter=_adapter,
)
