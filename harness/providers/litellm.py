"""Any other provider through litellm (`ollama/qwen2.5-coder`, `openrouter/...`, `gemini/...`).

litellm speaks the Chat Completions format, so the translation is the OpenAI adapter's. litellm's
own retries are off and its price map is the local copy it ships (never fetched).
"""

from __future__ import annotations

import os
from typing import Any

from harness.providers.base import (
    ModelRequest,
    ModelTurn,
    ProviderError,
    classify_status,
    error_detail,
    one_line,
)
from harness.providers.openai import chat_messages, chat_tools, chat_turn
from harness.providers.registry import ProviderInfo

CREDENTIAL_WORDS = ("KEY", "TOKEN", "SECRET", "AWS_")


def import_litellm() -> Any:
    """litellm, imported so that it never fetches its price map from the network."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def missing_credentials(model: str, base_url: str | None) -> list[str]:
    """The environment variables litellm says this model needs and that are not set."""
    litellm = import_litellm()
    try:
        found = litellm.validate_environment(model=model, api_base=base_url)
    except Exception:  # an unknown provider prefix: litellm itself will say so on the first call
        return []
    missing = found.get("missing_keys") or []
    return [name for name in missing if any(word in name for word in CREDENTIAL_WORDS)]


class LiteLLMModel:
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        timeout: float = 600.0,
        temperature: float | None = None,
        reasoning_effort: str | None = None,
        cache_ttl: str | None = None,
    ) -> None:
        self.name = model
        self._litellm = import_litellm()
        import openai

        self._openai = openai
        self._base_url = base_url
        self._timeout = timeout
        self._temperature = temperature
        self._effort = reasoning_effort
        self._cache = {"type": "ephemeral", "ttl": cache_ttl} if cache_ttl else None

    def complete(self, request: ModelRequest) -> ModelTurn:
        options: dict[str, Any] = {}
        if self._base_url:
            options["api_base"] = self._base_url
        if self._temperature is not None:
            options["temperature"] = self._temperature
        if self._effort:
            options["reasoning_effort"] = self._effort
        if request.tools:
            options["tools"] = chat_tools(request.tools)
        try:
            response = self._litellm.completion(
                model=self.name,
                messages=chat_messages(request.system, request.messages, self._cache),
                max_tokens=request.max_output_tokens,
                timeout=request.timeout(self._timeout),
                num_retries=0,
                max_retries=0,
                **options,
            )
        except self._openai.APIConnectionError as err:  # litellm's timeouts included
            raise ProviderError(f"litellm: {one_line(str(err))}", retryable=True) from err
        except self._openai.APIError as err:  # litellm's errors subclass the openai SDK's
            status = getattr(err, "status_code", None)
            if not isinstance(status, int):
                raise
            headers = getattr(getattr(err, "response", None), "headers", None)
            detail = error_detail(getattr(err, "body", None), getattr(err, "message", str(err)))
            raise classify_status("litellm", status, detail, headers, None) from err
        return chat_turn(response)


def _adapter(config: Any) -> LiteLLMModel:
    return LiteLLMModel(
        config.model,
        base_url=config.base_url,
        timeout=config.timeout,
        temperature=config.temperature,
        reasoning_effort=config.reasoning_effort,
        cache_ttl=config.cache_ttl,
    )


# Its key variables depend on the model: litellm says which (missing_credentials).
PROVIDER = ProviderInfo(
    name="litellm",
    sdk="litellm",
    key_env=(),
    config="LiteLLMAgentConfig",
    adapter=_adapter,
)
