"""What the command line sets over overnight.toml and prepare.py. None means the flag was not given."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from harness.strict import Strict


class Overrides(Strict):
    metric: str | None = None
    direction: str | None = None
    time_budget: float | None = None
    timeout: float | None = None
    image: str | None = None
    sandbox: Literal["docker", "local"] | None = None
    provider: str | None = None
    script: Path | None = None
    seed: int | None = None
    model: str | None = None
    max_cost: float | None = None
    noise_runs: int | None = None
    workers: int | None = None
    executor: Literal["local", "ray"] | None = None
    ray_address: str | None = None

    def flag(self, key: str) -> str:
        """The command-line flag that sets `key`."""
        return f"--{key.replace('_', '-')}"
