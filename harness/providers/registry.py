"""Every model provider, registered once: its adapter module declares a `PROVIDER` entry (name,
SDK, key variables, `[agent]` config class, adapter factory), and everything else is derived
from it: the CLI's `--provider` choices, the config's table of agent models, `doctor`'s checks
and `make_adapter`. Adding a provider is one module here plus its config class.

Light on purpose: listing the providers imports the adapter modules, which import their SDKs
only when an adapter is built, so `overnight --help` stays fast.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.providers.base import Model

# The offline agents need no registry entry of this kind: no key, no adapter (optuna's optional
# package is checked when its agent is built).
OFFLINE_AGENTS = ("mutate", "optuna", "replay")
ADAPTER_MODULES = (
    "harness.providers.anthropic",
    "harness.providers.openai",
    "harness.providers.litellm",
)


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    sdk: str  # the module to import, also the pip extra: overnight[sdk]
    key_env: tuple[str, ...]  # where its key may be, first the usual one; () : the SDK says
    config: str  # the name of its `[agent]` class in harness.model_config
    adapter: Callable[[Any], Model]  # the adapter for a validated config of that class


@functools.cache
def model_providers() -> dict[str, ProviderInfo]:
    found = {}
    for name in ADAPTER_MODULES:
        info: ProviderInfo = importlib.import_module(name).PROVIDER
        found[info.name] = info
    return found


def provider_names() -> list[str]:
    """Every `--provider` choice, the offline agents first."""
    return [*OFFLINE_AGENTS, *model_providers()]


def model_provider_list() -> str:
    """'anthropic, openai or litellm', for messages."""
    names = list(model_providers())
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
