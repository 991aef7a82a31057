"""Model providers behind one seam, chosen by `[agent] provider`; each SDK is imported only when chosen.

base.py       the records of a conversation with one tool, and the Model Protocol
anthropic.py  the Anthropic Messages API
openai.py     OpenAI Chat Completions and Responses
litellm.py    any other provider through litellm
pricing.py    dollars per token: config, else litellm's price map read offline
resilient.py  the one wrapper: retries, metering, call logging
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.errors import OvernightError
from harness.model_config import (
    AnthropicAgentConfig,
    LiteLLMAgentConfig,
    ModelAgentConfig,
    OpenAIAgentConfig,
)
from harness.providers.base import Model
from harness.providers.pricing import Prices

if TYPE_CHECKING:
    from harness.providers.resilient import ResilientModel

KEY_ENVS = {
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"),
    "openai": ("OPENAI_API_KEY",),
}
SDKS = {"anthropic": "anthropic", "openai": "openai", "litellm": "litellm"}


def check_ready(config: ModelAgentConfig) -> None:
    """The SDK is installed and the key is in the environment, or a one-line error saying what to do."""
    provider = config.provider
    if provider == "litellm":
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch it
    try:
        importlib.import_module(SDKS[provider])
    except ImportError:
        raise OvernightError(
            f"provider {provider} needs the {SDKS[provider]} package: pip install "
            f"'overnight[{provider}]' (in a checkout: .venv/bin/pip install -c constraints.txt "
            f"-e '.[{provider}]')"
        ) from None
    if provider in KEY_ENVS:
        names = KEY_ENVS[provider]
        if not any(os.environ.get(name) for name in names):
            raise OvernightError(
                f"{names[0]} is not set: provider {provider} reads its key from the environment "
                f"(export {names[0]}=...)"
            )
        return
    from harness.providers.litellm import missing_credentials

    missing = missing_credentials(config.model, config.base_url)
    if missing:
        raise OvernightError(
            f"{' or '.join(missing)} is not set: litellm needs it for {config.model} "
            f"(export {missing[0]}=...)"
        )


def make_adapter(config: ModelAgentConfig) -> Model:
    """The provider's adapter, without retries or metering."""
    url, timeout, temperature = config.base_url, config.timeout, config.temperature
    if isinstance(config, AnthropicAgentConfig):
        from harness.providers.anthropic import AnthropicModel

        return AnthropicModel(
            config.model,
            base_url=url,
            timeout=timeout,
            temperature=temperature,
            thinking=config.thinking,
            effort=config.effort,
            cache_ttl=config.cache_ttl,
        )
    if isinstance(config, OpenAIAgentConfig):
        from harness.providers.openai import OpenAIModel

        return OpenAIModel(
            config.model,
            api=config.api,
            base_url=url,
            timeout=timeout,
            temperature=temperature,
            reasoning_effort=config.reasoning_effort,
        )
    if isinstance(config, LiteLLMAgentConfig):
        from harness.providers.litellm import LiteLLMModel

        return LiteLLMModel(
            config.model,
            base_url=url,
            timeout=timeout,
            temperature=temperature,
            reasoning_effort=config.reasoning_effort,
            cache_ttl=config.cache_ttl,
        )
    raise AssertionError(f"no provider for {config!r}")


def prices(config: ModelAgentConfig) -> Prices | None:
    """Config's prices, else litellm's for the model, else None (cost unknown)."""
    from harness.providers.pricing import prices_for

    if config.prices is not None:
        p = config.prices
        return Prices.per_million(
            p.input, p.output, p.cached_input, p.cache_write, p.cache_write_1h
        )
    return prices_for(config.model)


def make_model(config: ModelAgentConfig, log: Callable[[str], None]) -> ResilientModel:
    """The configured model, ready for a night: checked, wrapped with retries and metering."""
    from harness.providers.resilient import ResilientModel, RetryPolicy

    check_ready(config)
    known = prices(config)
    if known is None and config.max_cost is not None:
        raise OvernightError(
            f"max_cost needs prices, and litellm's price map does not know {config.model}: set "
            "[agent.prices] input and output (dollars per million tokens) in overnight.toml"
        )
    if known is None:
        log(f"no prices known for {config.model}: its cost is recorded as 0 (set [agent.prices])")
    policy = RetryPolicy(
        max_outage_s=config.max_outage_minutes * 60,
        initial_s=config.retry_initial_seconds,
        max_s=config.retry_max_seconds,
    )
    return ResilientModel(make_adapter(config), policy, known, log=log)
