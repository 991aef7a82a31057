"""OpenAI: Chat Completions tool calls, or the Responses API for models that need it.

Our records to the SDK and back, and its errors classified. OpenAI caches prompt prefixes by
itself; the agent keeps the prefix byte-identical, so `Text.cache` needs no marker here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
    ToolSpec,
    ToolUse,
    classify_status,
    error_detail,
    tool_use,
)
from harness.providers.registry import ProviderInfo

KEY_ENV = "OPENAI_API_KEY"
_STOPS: dict[str, Stop] = {
    "stop": "end",
    "tool_calls": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


def tool_output(result: ToolResult) -> str:
    """OpenAI's tool results have no error flag: an error says so in its first word."""
    return f"error: {result.output}" if result.is_error else result.output


class OpenAIModel:
    def __init__(
        self,
        model: str,
        *,
        api: Literal["chat", "responses"] = "chat",
        base_url: str | None = None,
        timeout: float = 600.0,
        temperature: float | None = None,
        reasoning_effort: str | None = None,
    ) -> None:
        import openai

        self.name = model
        self._sdk = openai
        # Retries happen in one place, our wrapper; the SDK's own are off.
        self._client = openai.OpenAI(base_url=base_url, timeout=timeout, max_retries=0)
        self._timeout = timeout
        self._api = api
        self._temperature = temperature
        self._effort = reasoning_effort

    def complete(self, request: ModelRequest) -> ModelTurn:
        try:
            if self._api == "responses":
                return self._responses(request)
            return self._chat(request)
        except self._sdk.APIStatusError as err:
            raise classify_status(
                "openai",
                err.status_code,
                error_detail(err.body, err.message),
                err.response.headers,
                KEY_ENV,
            ) from err
        except self._sdk.APIConnectionError as err:  # timeouts included
            raise ProviderError(f"openai: {err}", retryable=True) from err

    def _chat(self, request: ModelRequest) -> ModelTurn:
        options: dict[str, Any] = {}
        if self._temperature is not None:
            options["temperature"] = self._temperature
        if self._effort:
            options["reasoning_effort"] = self._effort
        if request.tools:
            options["tools"] = chat_tools(request.tools)
        options |= {
            "model": self.name,
            "messages": chat_messages(request.system, request.messages),
            "max_completion_tokens": request.max_output_tokens,
            "timeout": request.timeout(self._timeout),
        }
        response = self._client.chat.completions.create(**options)
        return chat_turn(response)

    def _responses(self, request: ModelRequest) -> ModelTurn:
        options: dict[str, Any] = {}
        if self._temperature is not None:
            options["temperature"] = self._temperature
        if self._effort:
            options["reasoning"] = {"effort": self._effort}
        if request.tools:
            options["tools"] = [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.input_schema,
                    "strict": False,
                }
                for t in request.tools
            ]
        options |= {
            "model": self.name,
            "instructions": request.system,
            "input": _response_items(request.messages),
            "max_output_tokens": request.max_output_tokens,
            "timeout": request.timeout(self._timeout),
        }
        response = self._client.responses.create(**options)
        return _response_turn(response)


def chat_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Our tool specs as Chat Completions functions (litellm takes the same shape)."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.input_schema,
            },
        }
        for t in tools
    ]


def chat_messages(
    system: str, messages: list[Message], cache_control: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Chat Completions messages; shared with the litellm adapter, which speaks the same format.

    With `cache_control`, user text goes as parts and each cache breakpoint gets the marker
    (litellm passes it on to providers that cache explicitly); otherwise it is one string.
    """
    out: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for message in messages:
        if message.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": message.text or None}
            calls = [
                {
                    "id": use.id,
                    "type": "function",
                    "function": {"name": use.name, "arguments": _arguments(use)},
                }
                for use in message.tool_uses
            ]
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
            continue
        for block in message.content:
            if isinstance(block, ToolResult):
                out.append(
                    {"role": "tool", "tool_call_id": block.id, "content": tool_output(block)}
                )
        texts = [b for b in message.content if isinstance(b, Text) and b.text]
        if texts and cache_control:
            parts = [
                {
                    "type": "text",
                    "text": b.text,
                    **({"cache_control": cache_control} if b.cache else {}),
                }
                for b in texts
            ]
            out.append({"role": "user", "content": parts})
        elif texts:
            out.append({"role": "user", "content": "".join(b.text for b in texts)})
    return out


def chat_turn(response: Any) -> ModelTurn:
    """Our turn from a Chat Completions response (the SDK's object or litellm's)."""
    choice = response.choices[0]
    message = choice.message
    content: list[Text | ToolUse] = []
    if message.content:
        content.append(Text(message.content))
    for call in message.tool_calls or []:
        content.append(tool_use(call.id, call.function.name, call.function.arguments))
    refusal = getattr(message, "refusal", None)
    stop: Stop = "refusal" if refusal else _STOPS.get(choice.finish_reason or "", "other")
    if refusal:
        content.append(Text(str(refusal)))
    # litellm (and some OpenAI-compatible servers) return the model's reasoning as text.
    thinking = getattr(message, "reasoning_content", None)
    usage = response.usage
    details = getattr(usage, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", 0) or 0) if details else 0
    return ModelTurn(
        message=Message("assistant", tuple(content), thinking=str(thinking or "")),
        stop=stop,
        usage=TokenUsage(
            input_tokens=usage.prompt_tokens or 0,
            cached_input_tokens=cached,
            output_tokens=usage.completion_tokens or 0,
        ),
        model=response.model or "",
    )


def _arguments(use: ToolUse) -> str:
    """The arguments as the model wrote them when they could not be read (it sees its own
    mistake next to the error), else our JSON of them."""
    return use.raw if use.raw is not None else json.dumps(use.input)


def _response_items(messages: list[Message]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant":
            items.extend(message.echo or [])
            continue
        for block in message.content:
            if isinstance(block, ToolResult):
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": block.id,
                        "output": tool_output(block),
                    }
                )
        text = "".join(b.text for b in message.content if isinstance(b, Text))
        if text:
            items.append({"role": "user", "content": text})
    return items


def _response_turn(response: Any) -> ModelTurn:
    content: list[Text | ToolUse] = []
    thinking: list[str] = []
    refused = False
    for item in response.output:
        if item.type == "message":
            parts = list(item.content)
            text = "".join(getattr(p, "text", "") for p in parts if p.type == "output_text")
            refusals = [str(getattr(p, "refusal", "")) for p in parts if p.type == "refusal"]
            refused = refused or bool(refusals)
            text += "".join(refusals)
            if text:
                content.append(Text(text))
        elif item.type == "function_call":
            content.append(tool_use(item.call_id, item.name, item.arguments))
        elif item.type == "reasoning":
            thinking.extend(getattr(s, "text", "") for s in getattr(item, "summary", None) or [])
    # Reasoning items and calls go back as they came (the documented way to continue a turn).
    echo = [item.model_dump(exclude_none=True) for item in response.output]
    usage = response.usage
    details = getattr(usage, "input_tokens_details", None)
    cached = (getattr(details, "cached_tokens", 0) or 0) if details else 0
    if refused:
        stop: Stop = "refusal"
    elif response.status == "incomplete":
        stop = "max_tokens"
    elif any(isinstance(b, ToolUse) for b in content):
        stop = "tool_use"
    else:
        stop = "end"
    return ModelTurn(
        message=Message("assistant", tuple(content), echo=echo, thinking="\n\n".join(thinking)),
        stop=stop,
        usage=TokenUsage(
            input_tokens=usage.input_tokens if usage else 0,
            cached_input_tokens=cached,
            output_tokens=usage.output_tokens if usage else 0,
        ),
        model=response.model or "",
    )


def _adapter(config: Any) -> OpenAIModel:
    return OpenAIModel(
        config.model,
        api=config.api,
        base_url=config.base_url,
        timeout=config.timeout,
        temperature=config.temperature,
        reasoning_effort=config.reasoning_effort,
    )


PROVIDER = ProviderInfo(
    name="openai",
    sdk="openai",
    key_env=(KEY_ENV,),
    config="OpenAIAgentConfig",
    adapter=_adapter,
)
