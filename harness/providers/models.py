"""The configured model for a night: its SDK and key checked, its adapter built from the
registry, wrapped with retries and metering."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.errors import OvernightError
from harness.model_config import ModelAgentConfig
from harness.providers.base import Model
from harness.providers.pricing import Prices
from harness.providers.registry import model_providers

if TYPE_CHECKING:
    from harness.providers.resilient import ResilientModel


def check_ready(config: ModelAgentConfig) -> None:
    """The SDK is installed and the key is in the environment, or a one-line error saying what to do."""
    info = model_providers()[config.provider]
    if info.name == "litellm":
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch it
    try:
        importlib.import_module(info.sdk)
    except ImportError:
        raise OvernightError(
            f"provider {info.name} needs the {info.sdk} package: pip install "
            f"'overnight[{info.sdk}]' (in a checkout: .venv/bin/pip install -c constraints.txt "
            f"-e '.[{info.sdk}]')"
        ) from None
    if info.key_env:
        if not any(os.environ.get(name) for name in info.key_env):
            raise OvernightError(
                f"{info.key_env[0]} is not set: provider {info.name} reads its key from the "
                f"environment (export {info.key_env[0]}=...)"
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
    return model_providers()[config.provider].adapter(config)


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
