"""What calls cost: dollars per token from config, else from litellm's price map read offline.

The map is the copy litellm ships (`model_prices_and_context_window_backup.json`), read as a file
without importing litellm, so pricing an Anthropic or OpenAI model neither needs litellm's import
time nor ever fetches the map from the network.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.providers.base import TokenUsage

PRICE_MAP_FILE = "model_prices_and_context_window_backup.json"
BYTES_PER_TOKEN = 3  # a pessimistic guess (English is ~4 bytes a token, code ~3)


@dataclass(frozen=True)
class Prices:
    """Dollars per token."""

    input: float
    output: float
    cached_input: float
    cache_write: float
    cache_write_1h: float
    source: str = "config"

    @classmethod
    def per_million(
        cls,
        input: float,
        output: float,
        cached_input: float | None = None,
        cache_write: float | None = None,
        cache_write_1h: float | None = None,
    ) -> Prices:
        write = input if cache_write is None else cache_write
        return cls(
            input=input / 1e6,
            output=output / 1e6,
            cached_input=(input if cached_input is None else cached_input) / 1e6,
            cache_write=write / 1e6,
            cache_write_1h=(write if cache_write_1h is None else cache_write_1h) / 1e6,
        )

    def cost(self, usage: TokenUsage) -> float:
        plain = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
        written_5m = usage.cache_write_tokens - usage.cache_write_1h_tokens
        return (
            max(plain, 0) * self.input
            + usage.cached_input_tokens * self.cached_input
            + written_5m * self.cache_write
            + usage.cache_write_1h_tokens * self.cache_write_1h
            + usage.output_tokens * self.output
        )

    def most(self, prompt_bytes: int, max_output_tokens: int) -> float:
        """An upper bound for one call: the whole prompt unread from cache (and written to it at
        the dearest rate), every output token used."""
        tokens = math.ceil(prompt_bytes / BYTES_PER_TOKEN)
        dearest = max(self.input, self.cache_write, self.cache_write_1h)
        return tokens * dearest + max_output_tokens * self.output


def prices_for(model: str) -> Prices | None:
    """litellm's prices for `model` (also tried without a `provider/` prefix), if it knows them."""
    table = price_map()
    entry = table.get(model) or table.get(model.split("/", 1)[-1])
    if not isinstance(entry, dict) or "input_cost_per_token" not in entry:
        return None
    given = float(entry["input_cost_per_token"])

    def rate(key: str, default: float) -> float:
        value = entry.get(key)
        return float(value) if isinstance(value, int | float) else default

    write = rate("cache_creation_input_token_cost", given)
    return Prices(
        input=given,
        output=rate("output_cost_per_token", 0.0),
        cached_input=rate("cache_read_input_token_cost", given),
        cache_write=write,
        cache_write_1h=rate("cache_creation_input_token_cost_above_1hr", write),
        source="litellm's price map",
    )


@functools.cache
def price_map() -> dict[str, Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # should litellm load later
    spec = importlib.util.find_spec("litellm")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / PRICE_MAP_FILE
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    if spec is None:
        return {}
    import litellm  # a layout without the file: ask litellm itself (offline, as set above)

    return dict(litellm.model_cost)
