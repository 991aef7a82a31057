"""Agents that propose experiments, chosen by `[agent] provider` in config.

mutate.py  the default: a seeded, offline agent that nudges numeric constants
optuna_agent.py  an Optuna study over the same constants (the optional optuna extra), with
                 its ranges in search_space.py and its ledger format in optuna_trials.py
constants.py  which numeric constants of train.py the offline agents tune
replay.py  proposals read from a JSONL script, for tests and re-runs
llm.py     a model (anthropic, openai, litellm) driving the edit tool
prompt.py  the model's prompt, from the templates in prompts/
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from harness.config import AgentConfig, MutateAgentConfig, OptunaAgentConfig, ReplayAgentConfig
from harness.model_config import ModelAgentConfig
from harness.seams import Agent


def make_agent(config: AgentConfig, log: Callable[[str], None] | None = None) -> Agent:
    """The configured agent. For a model provider this checks its SDK and key first, so a
    missing one is a one-line error before anything runs."""
    if isinstance(config, MutateAgentConfig):
        from harness.agents.mutate import MutateAgent

        return MutateAgent(seed=config.seed)
    if isinstance(config, OptunaAgentConfig):
        from harness.agents.optuna_agent import OptunaAgent

        return OptunaAgent(config.seed, config.sampler, config.bounds, config.pinned)
    if isinstance(config, ReplayAgentConfig):
        from harness.agents.replay import ReplayAgent

        return ReplayAgent(config.script)
    if isinstance(config, ModelAgentConfig):
        from harness.agents.llm import LLMAgent
        from harness.providers.models import make_model

        say = log or _to_stderr
        model = make_model(config, say)
        return LLMAgent(model, config, model.prices, log=say)
    raise AssertionError(f"no agent for {config!r}")


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
