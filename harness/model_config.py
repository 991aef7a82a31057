"""The `[agent]` settings of the model providers (anthropic, openai, litellm).

Keys never live here: each provider reads its own from the environment. Every field has a
description and a default; unknown keys are errors.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.providers.registry import model_providers
from harness.strict import Strict

CacheTTL = Literal["5m", "1h"]


class PricesConfig(Strict):
    """Dollars per million tokens, for a model litellm's price map does not know."""

    input: float = Field(ge=0, description="Dollars per million input tokens.")
    output: float = Field(ge=0, description="Dollars per million output tokens.")
    cached_input: float | None = Field(
        None, ge=0, description="Per million input tokens read from the cache (default: input)."
    )
    cache_write: float | None = Field(
        None, ge=0, description="Per million tokens written to the cache (default: input)."
    )
    cache_write_1h: float | None = Field(
        None,
        ge=0,
        description="Per million written with the 1-hour lifetime (default: cache_write).",
    )


class ModelAgentConfig(Strict):
    """What every model provider has."""

    provider: str = Field(description="anthropic, openai or litellm.")
    model: str = Field(min_length=1, description="The model's name, as the provider spells it.")
    base_url: str | None = Field(
        None,
        description="API endpoint. Default: the SDK's own, which honours ANTHROPIC_BASE_URL / "
        "OPENAI_BASE_URL.",
    )
    temperature: float | None = Field(
        None, ge=0, description="Sampling temperature (default: the model's)."
    )
    max_output_tokens: int = Field(8192, gt=0, description="Most tokens in one reply.")
    timeout: float = Field(
        600.0,
        gt=0,
        description="Seconds one request may take; then it is retried (never past the "
        "proposal's proposal_timeout).",
    )
    proposal_timeout: float = Field(
        600.0,
        gt=0,
        description="Seconds one proposal (all its calls and edits) may take; then it is "
        "recorded as skipped and the night goes on.",
    )
    max_cost: float | None = Field(
        None,
        ge=0,
        description="Dollars: the night stops before a call that could take this tag's spend past it.",
    )
    prices: PricesConfig | None = Field(
        None, description="Prices for a model litellm's price map lacks (they win over the map)."
    )
    max_outage_minutes: float = Field(
        60.0,
        ge=0,
        description="How long to keep retrying a failing service before the night stops.",
    )
    retry_initial_seconds: float = Field(
        2.0, gt=0, description="First backoff after a failed call."
    )
    retry_max_seconds: float = Field(
        120.0,
        gt=0,
        description="Longest backoff (a longer retry-after from the server still counts).",
    )
    repair_attempts: int = Field(
        1,
        ge=0,
        description="When a candidate crashes, how many times the model may fix it in the same "
        "conversation before the experiment is recorded (0: never). Timeouts and OOMs are not "
        "repaired.",
    )
    max_tool_errors: int = Field(
        5, ge=1, description="A proposal ends after this many failed tool calls in a row."
    )
    max_prompt_bytes: int = Field(
        120_000,
        ge=8_000,
        description="Largest prompt a proposal starts with; older history is summarised to fit.",
    )


class AnthropicAgentConfig(ModelAgentConfig):
    provider: Literal["anthropic"]
    model: str = Field("claude-sonnet-5-5", min_length=1, description="Anthropic model name.")
    cache_ttl: CacheTTL = Field(
        "1h",
        description="Lifetime of the cached prompt prefix. 1h: an experiment longer than 5 minutes "
        "would expire a 5m cache before every proposal.",
    )
    thinking: Literal["adaptive"] | int | None = Field(
        None,
        description='Extended thinking: "adaptive" (the model decides), or a token budget for '
        "models that take one (at least 1024, below max_output_tokens). Default: off.",
    )
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = Field(
        None,
        description="How much effort the model puts in, where supported (default: the model's).",
    )

    @model_validator(mode="after")
    def _thinking_fits(self) -> AnthropicAgentConfig:
        budget = self.thinking
        if isinstance(budget, int) and not 1024 <= budget < self.max_output_tokens:
            raise ValueError("a thinking budget must be at least 1024 and below max_output_tokens")
        return self


class OpenAIAgentConfig(ModelAgentConfig):
    provider: Literal["openai"]
    model: str = Field("gpt-5.5", min_length=1, description="OpenAI model name.")
    api: Literal["chat", "responses"] = Field(
        "chat",
        description="chat: Chat Completions; responses: for models that need the Responses API.",
    )
    reasoning_effort: str | None = Field(
        None,
        description="For reasoning models: minimal, low, medium or high (default: the model's).",
    )


class LiteLLMAgentConfig(ModelAgentConfig):
    provider: Literal["litellm"]
    reasoning_effort: str | None = Field(
        None,
        description="Reasoning effort, where litellm maps it for the model (low, medium, high).",
    )
    cache_ttl: CacheTTL | None = Field(
        None,
        description="Mark the stable prompt prefix for caching with this lifetime (for providers "
        "that cache explicitly, e.g. anthropic/ or bedrock/ models); default: no marker.",
    )


# The `[agent]` tables of the model providers, for the config's union (discriminated by provider).
ModelAgentConfigs = AnthropicAgentConfig | OpenAIAgentConfig | LiteLLMAgentConfig

# Each registered provider's config class, by provider name (the registry names the class).
MODEL_AGENTS: dict[str, type[ModelAgentConfig]] = {
    name: globals()[info.config] for name, info in model_providers().items()
}
