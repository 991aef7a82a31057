"""`overnight validate`: check a task folder without running anything, and say what a run would do.

It changes nothing: no repository is created, no container is started, no image is built.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.errors import OvernightError


def validate(task_dir: Path, out=print) -> int:
    from harness.config import resolve_settings
    from harness.task import load_task

    problems: list[str] = []
    try:
        task = load_task(task_dir)
        settings = resolve_settings(task)
    except OvernightError as err:
        for line in str(err).splitlines():
            out(f"problem: {line}")
        return 2
    problems += _git_problems(task_dir)
    image, image_problem = _image(settings.image, task_dir, task.has_dockerfile)
    if image_problem:
        problems.append(image_problem)
    mode = (
        "protected: evaluate(output_dir) from prepare.py, in its own container without train.py"
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
    out(
        f"limits: memory {settings.sandbox.memory}, cpus {settings.sandbox.cpus:g}, "
        f"pids {settings.sandbox.pids}, /tmp {settings.sandbox.tmpfs}, no network"
    )
    out(f"agent: {settings.agent.provider}")
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


def _image(configured: str | None, task_dir: Path, has_dockerfile: bool) -> tuple[str, str]:
    from sandbox.image import DEFAULT_IMAGE, image_exists

    name = configured or (
        f"built from {task_dir / 'Dockerfile'}" if has_dockerfile else DEFAULT_IMAGE
    )
    try:
        from sandbox.docker_sandbox import connect

        client = connect()
    except OvernightError as err:
        return name, str(err)
    if has_dockerfile and not configured:
        return name, ""
    if not image_exists(client, configured or DEFAULT_IMAGE):
        fix = "run `overnight image build`" if not configured else "load or build it first"
        return name, f"image {configured or DEFAULT_IMAGE} is not on this machine; {fix}"
    return name, ""
