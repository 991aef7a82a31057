"""Agents that propose experiments, chosen by `[agent] provider` in config.

mutate.py  the default: a seeded, offline agent that nudges numeric constants
replay.py  proposals read from a JSONL script, for tests and re-runs
"""

from __future__ import annotations

from collections.abc import Callable

from harness.config import AgentConfig, MutateAgentConfig, ReplayAgentConfig
from harness.seams import Agent


def make_agent(config: AgentConfig, log: Callable[[str], None] | None = None) -> Agent:
    """The configured agent; `log` takes one-line messages for the user (model agents use it)."""
    if isinstance(config, MutateAgentConfig):
        from harness.agents.mutate import MutateAgent

        return MutateAgent(seed=config.seed)
    if isinstance(config, ReplayAgentConfig):
        from harness.agents.replay import ReplayAgent

        return ReplayAgent(config.script)
    raise AssertionError(f"no agent for {config!r}")
