"""`overnight validate`: check a task folder without running anything, and say what a run would do.

It changes nothing: no repository is created, no image is built; the only container is one
locked-down look inside the image for the modules prepare.py and train.py import.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from harness.errors import OvernightError


def validate(task_dir: Path, out=print, overrides: dict[str, Any] | None = None) -> int:
    from harness.config import resolve_settings
    from harness.experiment import uses_call_train
    from harness.task import load_task
    from harness.task_images import image_lines

    problems: list[str] = []
    try:
        task = load_task(task_dir)
        settings = resolve_settings(task, overrides)
    except OvernightError as err:
        for line in str(err).splitlines():
            out(f"problem: {line}")
        return 2
    problems += _git_problems(task_dir)
    local = settings.sandbox.backend == "local"
    client = None
    if local:
        image = f"none: --sandbox local runs `python3` as {_local_python(problems)}"
    else:
        image, image_problem, client = _image(settings.image, task_dir, task.has_dockerfile)
        if image_problem:
            problems.append(image_problem)
    mode = (
        "protected: evaluate(output_dir) from prepare.py, in its own container, whose own process "
        "never runs train.py"
        + (" (call_train runs it as another user)" if uses_call_train(task.prepare_source) else "")
        if settings.protected
        else f"UNPROTECTED (inline): the last `{settings.metric}: <number>` line train.py prints; "
        "add evaluate(output_dir) to prepare.py to protect the metric"
    )
    out(f"task: {task.root}")
    out(f"metric: {settings.metric} ({settings.direction.value})")
    out(f"scoring: {mode}")
    out(
        f"time budget: {settings.time_budget:g}s, hard timeout: {settings.timeout:g}s per training run"
    )
    out(f"image: {image}")
    for line in image_lines(task, settings, client, problems):
        out(line)
    out(
        f"limits: memory {settings.sandbox.memory}, cpus {settings.sandbox.cpus:g}, "
        f"pids {settings.sandbox.pids}, /tmp {settings.sandbox.tmpfs}, "
        f"output directory {settings.sandbox.output_dir_size}"
    )
    out(f"agent: {settings.agent.provider}")
    if settings.confirm_runs:
        out(f"confirmation: a new best is re-run {settings.confirm_runs} more time(s) first")
    for line in _hardening(settings, client, problems):
        out(line)
    out(
        "a run would: run `python prepare.py` once (cached), measure the unmodified baseline, "
        "then let the agent edit train.py, keeping each change that beats the best"
    )
    for problem in problems:
        out(f"problem: {problem}")
    if not problems:
        out("ok: ready to run")
    return 2 if problems else 0


def _git_problems(task_dir: Path) -> list[str]:
    from harness.task import TASK_FILES

    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=task_dir, capture_output=True, text=True
        )
    except FileNotFoundError:
        return ["git is not installed: install git"]
    if top.returncode != 0:
        return []  # a run will create a repository with the task files, and says so
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", *TASK_FILES],
        cwd=task_dir,
        capture_output=True,
        text=True,
    ).stdout
    dirty = [line[3:] for line in status.splitlines() if line.strip()]
    if dirty:
        return [f"{task_dir}: uncommitted changes to {', '.join(dirty)}; commit them before a run"]
    return []


def _image(configured: str | None, task_dir: Path, has_dockerfile: bool) -> tuple[str, str, Any]:
    """(the image's name, a problem or "", a Docker client or None)."""
    from sandbox.image import DEFAULT_IMAGE, image_exists

    name = configured or (
        f"built from {task_dir / 'Dockerfile'}" if has_dockerfile else DEFAULT_IMAGE
    )
    try:
        from sandbox.docker_sandbox import connect

        client = connect()
    except OvernightError as err:
        return name, str(err), None
    if has_dockerfile and not configured:
        return name, "", client
    if not image_exists(client, configured or DEFAULT_IMAGE):
        fix = "run `overnight image build`" if not configured else "load or build it first"
        return name, f"image {configured or DEFAULT_IMAGE} is not on this machine; {fix}", client
    return name, "", client


def _local_python(problems: list[str]) -> str:
    from sandbox.local_sandbox import LocalSandboxError, python_for
    from sandbox.users import run_ids

    try:
        return python_for(run_ids()[0])
    except LocalSandboxError as err:
        problems.append(str(err))
        return "(none usable)"


def _hardening(settings: Any, client: Any, problems: list[str]) -> list[str]:
    """One line per isolation item a run would have; a runtime the engine lacks is a problem."""
    from harness.backends import limits_for
    from harness.config import parse_size

    limits = limits_for(settings)
    output = parse_size(settings.sandbox.output_dir_size)
    if settings.sandbox.backend == "local":
        from sandbox.local_sandbox import local_report

        return [f"isolation: {line}" for line in local_report(limits, output)]
    from sandbox.hardening import hardening_report

    info = None
    if client is not None:
        info = client.info()
        runtimes = sorted((info.get("Runtimes") or {}).keys())
        if limits.runtime and limits.runtime not in runtimes:
            problems.append(
                f"sandbox.runtime = {limits.runtime!r} is not installed in the Docker engine "
                f"(it has: {', '.join(runtimes)}); install it or remove sandbox.runtime"
            )
    lines = [f"hardening: {line}" for line in hardening_report(limits, output, info)]
    if limits.gpus:
        lines.append("hardening: (GPU support is checked when a run starts)")
    return lines
