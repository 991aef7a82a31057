"""`overnight doctor [TASK]`: is everything a night needs ready? The key, one tiny request to the
configured model, the Docker engine, the image and the modules the task imports. It prints one
line per check and changes nothing (no repository, no run folder, no image build).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import OvernightError
from harness.overrides import Overrides


def doctor(task_dir: Path | None, overrides: Overrides, out: Callable[[str], None] = print) -> int:
    """Returns 0 when everything is ready, 2 otherwise."""
    problems: list[str] = []

    def check(ok: str | None, problem: str | None = None) -> None:
        if problem:
            problems.append(problem)
            out(f"problem: {problem}")
        elif ok:
            out(f"ok: {ok}")

    agent, image, has_dockerfile = _settings(task_dir, overrides, check)
    if agent is not None:
        _check_agent(agent, check)
    _check_docker(image, has_dockerfile, task_dir, check)
    if _executor(task_dir, overrides) == "ray":
        _check_ray(check)
    if task_dir is not None and agent is not None:
        from harness.task_images import image_checks

        for ok, problem in image_checks(task_dir, overrides):
            check(ok, problem)
    out("ready" if not problems else f"not ready: {len(problems)} problem(s)")
    return 2 if problems else 0


def _settings(task_dir: Path | None, overrides: Overrides, check: Any) -> tuple[Any, Any, bool]:
    """The agent config, the configured image and whether the task has a Dockerfile."""
    from harness.config import MutateAgentConfig, OptunaAgentConfig, resolve_settings
    from harness.model_config import MODEL_AGENTS

    try:
        if task_dir is None:
            provider = overrides.provider or "mutate"
            if provider == "optuna":
                return OptunaAgentConfig(provider="optuna"), None, False
            if provider not in MODEL_AGENTS:
                return MutateAgentConfig(), None, False
            fields = overrides.model_dump(include={"model"}, exclude_none=True)
            return (
                MODEL_AGENTS[provider].model_validate({"provider": provider, **fields}),
                None,
                False,
            )
        from harness.task import load_task

        task = load_task(task_dir)
        settings = resolve_settings(task, overrides)
    except OvernightError as err:
        for line in str(err).splitlines():
            check(None, line)
        return None, None, False
    except ValueError as err:  # a flag pydantic refused
        check(None, " ".join(str(err).split()))
        return None, None, False
    check(f"settings of {task.root} are valid")
    return settings.agent, settings.image, task.has_dockerfile


def _executor(task_dir: Path | None, overrides: Overrides) -> str:
    """Where experiments run: --executor, else the task's [executor] kind."""
    if overrides.executor or task_dir is None:
        return overrides.executor or "local"
    from harness.config import resolve_settings
    from harness.task import load_task

    try:
        return resolve_settings(load_task(task_dir), overrides).executor.kind
    except (OvernightError, ValueError):
        return "local"  # the settings check reports it


def _check_ray(check: Any) -> None:
    """Whether Ray is installed (the cluster itself is reached when the night starts)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        check(f"ray {version('ray')} installed (executor ray; every node needs it too)")
    except PackageNotFoundError:
        check(None, "executor ray needs Ray: pip install 'overnight[ray]'")


def _check_agent(config: Any, check: Any) -> None:
    from harness.model_config import ModelAgentConfig

    if config.provider == "optuna":
        from harness.agents.optuna_agent import load_optuna

        try:
            version = load_optuna(config.sampler).__version__
        except OvernightError as err:
            check(None, str(err))
            return
        check(f"agent optuna: offline, needs no key; optuna {version} installed")
        return
    if not isinstance(config, ModelAgentConfig):
        check(f"agent {config.provider}: offline, needs no key")
        return
    from harness.providers.models import check_ready, make_adapter, prices

    name = f"{config.provider} {config.model}"
    try:
        check_ready(config)
    except OvernightError as err:
        check(None, str(err))
        return
    check(f"{name}: SDK installed, credentials in the environment")
    known = prices(config)
    if known is None:
        check(f"{name}: no known prices; cost is recorded as 0 unless [agent.prices] is set")
    else:
        check(
            f"{name}: prices from {known.source}: ${known.input * 1e6:g} input, "
            f"${known.output * 1e6:g} output per million tokens"
        )
    _tiny_request(make_adapter(config), config, name, known, check)


def _tiny_request(model: Any, config: Any, name: str, known: Any, check: Any) -> None:
    from harness.agents.llm import EDIT
    from harness.providers.base import Message, ModelRequest, ProviderError, Text

    request = ModelRequest(
        system="You are checking that the connection works.",
        messages=[Message("user", (Text("Reply with the single word: ready"),))],
        tools=[EDIT],
        max_output_tokens=config.max_output_tokens,
    )
    started = time.monotonic()
    try:
        turn = model.complete(request)
    except ProviderError as err:
        check(None, str(err))
        return
    cost = f", ${known.cost(turn.usage):.6f}" if known else ""
    check(
        f"{name} answered in {time.monotonic() - started:.1f}s ({turn.usage.input_tokens} input, "
        f"{turn.usage.output_tokens} output tokens{cost})"
    )


def _check_docker(
    image: str | None, has_dockerfile: bool, task_dir: Path | None, check: Any
) -> None:
    from harness.backends import docker_client, engine_checks
    from sandbox.image import DEFAULT_IMAGE, image_exists

    try:
        client = docker_client()
    except OvernightError as err:
        check(None, str(err))
        return
    check("Docker engine reachable")
    for ok, problem in engine_checks(client, task_dir):
        check(ok, problem)
    if image is None and has_dockerfile:
        check(
            f"image: built from {task_dir / 'Dockerfile' if task_dir else 'Dockerfile'} at the first run"
        )
        return
    name = image or DEFAULT_IMAGE
    if image_exists(client, name):
        check(f"image {name} is on this machine")
    elif image is None:
        check(None, f"image {name} is not built yet: run `overnight image build`")
    else:
        check(None, f"image {name} is not on this machine; load or build it first")
