"""`overnight validate`: check a task folder without running anything, and say what a run would do.

It changes nothing: no repository is created, no image is built; the only container is one
locked-down look inside the image for the modules prepare.py and train.py import.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import OvernightError

if TYPE_CHECKING:
    from harness.overrides import Overrides


def validate(task_dir: Path, out: Any = print, overrides: Overrides | None = None) -> int:
    from harness.config import resolve_settings
    from harness.task import load_task
    from harness.task_images import choose, image_lines

    problems: list[str] = []
    try:
        task = load_task(task_dir)
        settings = resolve_settings(task, overrides)
    except OvernightError as err:
        for line in str(err).splitlines():
            out(f"problem: {line}")
        return 2
    git_line, git_problems = _git(task_dir)
    problems += git_problems
    local = settings.sandbox.backend == "local"
    client = None
    if local:
        image = f"none: --sandbox local runs `python3` as {_local_python(problems)}"
    else:
        image, image_problem, client = _image(settings.image, task_dir, task.has_dockerfile)
        if image_problem:
            problems.append(image_problem)
    out(f"task: {task.root}")
    if git_line:
        out(git_line)
    metric_lines, metric = _metric_lines(task, settings, problems)
    for line in metric_lines:
        out(line)
    out(f"scoring: {_scoring(task, settings, metric)}")
    out(
        f"time budget: {settings.time_budget:g}s, hard timeout: {settings.timeout:g}s per training run"
    )
    if settings.time_budget_note:
        out(f"time budget: {settings.time_budget_note}")
    for line in _setup_lines(task, settings):
        out(line)
    for line in _host_data_lines(task, settings.protected, problems):
        out(line)
    for line in _needs(task, settings, problems):
        out(line)
    if not local and choose(task, settings).kind == "dependencies":
        image = f"{image} as the base, with the dependencies the task declares (below)"
    out(f"image: {image}")
    for line in image_lines(task, settings, client, problems):
        out(line)
    out(
        f"limits: memory {settings.sandbox.memory}, cpus {settings.sandbox.cpus:g}, "
        f"pids {settings.sandbox.pids}, /tmp {settings.sandbox.tmpfs}, "
        f"output directory {settings.sandbox.output_dir_size}"
    )
    out(f"workers: {settings.workers_note}")
    if settings.executor.kind == "ray":
        out(
            f"executor: ray at {settings.executor.address}: each experiment is a Ray task on a "
            "node with its CPUs/GPUs free, run on that node's Docker engine (each node needs "
            "Docker, the image and overnight[ray])"
        )
    out(f"agent: {_agent_line(settings.agent)}")
    out(f"evaluator output: {_evaluator_output_line(settings)}")
    if settings.metric_digits is not None:
        out(
            f"metric digits: the agent, the ledger and the decision see {settings.metric_digits} "
            "significant digits (events.jsonl keeps the full value)"
        )
    if settings.confirm_runs:
        out(f"confirmation: a new best is re-run {settings.confirm_runs} more time(s) first")
    from harness.backends import hardening_lines

    for line in hardening_lines(settings, client, problems):
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


def _metric_lines(task: Any, settings: Any, problems: list[str]) -> tuple[list[str], str]:
    """The metric and its direction: declared, or what the sources let us infer before a run."""
    from harness.metric_choice import infer_metric

    if settings.metric and settings.direction:
        source = f", {settings.metric_source}" if settings.metric_source else ""
        return [f"metric: {settings.metric} ({settings.direction.value}){source}"], settings.metric
    names = list(task.returned_keys if settings.protected else task.inline_names)
    where = "evaluate()'s returned keys" if settings.protected else task.printed_where
    if not names:
        return [
            f"metric: not declared, and {where} name none; `overnight run` picks it from the "
            "baseline's output with program.md (or set metric and direction in overnight.toml)"
        ], ""
    try:
        choice = infer_metric(names, task.program, settings.metric, settings.direction, where)
    except OvernightError as err:
        problems.append(str(err))
        return [f"metric: not declared, and {where} ({', '.join(names)}) do not settle it"], ""
    return [
        f"metric: {choice.metric} ({choice.direction.value}), inferred: {choice.reason}",
        "metric: `overnight run` confirms it from the baseline's output; `overnight init` "
        "writes it into overnight.toml",
    ], choice.metric


def _agent_line(agent: Any) -> str:
    parts = [agent.provider]
    if getattr(agent, "model", None):
        parts.append(f"model {agent.model}")
    if getattr(agent, "repair_attempts", None) is not None:
        parts.append(f"repairs a crash {agent.repair_attempts}x in its conversation")
    parts.append(f"proposal_timeout {agent.proposal_timeout:g}s")
    if getattr(agent, "max_cost", None) is not None:
        parts.append(f"max_cost ${agent.max_cost:g}")
    return ", ".join(parts)


def _evaluator_output_line(settings: Any) -> str:
    if not settings.protected:
        return "inline mode: there is no evaluator; the agent sees the training's output"
    if settings.show_evaluator_output:
        return (
            "SHOWN to the agent (show_evaluator_output = true): whatever evaluate() or a "
            "call_train worker prints, private data included, reaches the agent"
        )
    return (
        "kept from the agent (evaluate.txt, for you); it learns only the status, the metric "
        "and the kind of a failure"
    )


def _scoring(task: Any, settings: Any, metric: str) -> str:
    from harness.experiment import uses_call_train

    if settings.protected:
        workers = (
            " (call_train runs it as another user)" if uses_call_train(task.prepare_source) else ""
        )
        return (
            f"protected, because {settings.mode_reason}: evaluate(output_dir) runs in its own "
            f"container, whose own process never runs train.py{workers}"
        )
    metric = metric or "<metric>"
    return (
        f"UNPROTECTED (inline), because {settings.mode_reason}: the last `{metric}: <number>` "
        "line train.py prints counts; add evaluate(output_dir) to prepare.py to protect the metric"
    )


def _setup_lines(task: Any, settings: Any) -> list[str]:
    """Where setup may write and what it may reach, as later runs will see it."""
    import ast

    from harness.task_facts import (
        does_work_when_run,
        network_modules,
        writes_home,
        writes_next_to_itself,
    )

    tree = ast.parse(task.prepare_source)
    network = settings.sandbox.setup_network
    fetches = network_modules(tree)
    reason = f" (prepare.py imports {', '.join(fetches)})" if fetches else ""
    lines = [
        f"setup: `python prepare.py` runs once per version (cached) in the task folder, on "
        f"network {network!r}{reason}"
    ]
    if not does_work_when_run(tree):
        lines.append(
            'setup: prepare.py has no `if __name__ == "__main__":` block and calls nothing at '
            "its top level, so setup only defines its functions; what train.py calls in it runs "
            "during training"
        )
        if fetches and not settings.sandbox.train_network:
            lines.append(
                f"warning: {task.root / 'prepare.py'}: what it fetches with "
                f"{', '.join(fetches)} would run in training, which has no network: download "
                'in an `if __name__ == "__main__":` block (setup has the network), or set '
                "sandbox.train_network = true in overnight.toml (weaker isolation)"
            )
        return lines
    places = []
    if writes_home(task.prepare_source):
        places.append("under ~ (HOME)")
    if writes_next_to_itself(task.prepare_source):
        places.append("next to itself")
    where = (
        " and ".join(places)
        or "where it chooses: next to itself (relative paths), under ~ or in OVERNIGHT_DATA_DIR "
        "/ OVERNIGHT_PRIVATE_DIR is kept, anywhere else is lost"
    )
    lines.append(
        f"setup: it writes {where}; training and evaluation see the task folder and HOME as "
        "setup left them, read-only, at the same paths"
    )
    return lines


def _host_data_lines(task: Any, protected: bool, problems: list[str]) -> list[str]:
    """The checkout's ignored data that the task's code names, brought along as it lies."""
    from harness.host_data import COPY_LIMIT, host_entries, size_text, unreadable

    lines = []
    for entry in host_entries(task.root):
        kind = "/" if entry.is_dir else ""
        link = "" if entry.path == task.root / entry.name else f" (a link to {entry.path})"
        said = f"data: {entry.name}{kind}{link} is ignored by git but {entry.named_by} names it"
        if entry.copied:
            lines.append(
                f"{said}: setup starts with a copy of it ({size_text(entry.size)}), as your "
                "checkout has it"
            )
        else:
            lines.append(
                f"{said}: at {size_text(entry.size)} (over {size_text(COPY_LIMIT)}) it is not "
                "copied; every container sees it read-only at the same path, so setup cannot "
                "write into it"
            )
            blocked = unreadable(entry)
            if blocked is not None:
                problems.append(
                    f"{task.root / blocked}: other users cannot read it, and the containers run "
                    f"as another user: chmod -R o+rX {task.root / entry.name}"
                )
        if protected:
            lines.append(
                f"data: training sees {entry.name}{kind} too; keep held-out data in "
                "OVERNIGHT_PRIVATE_DIR, which only the evaluator reads"
            )
    return lines


def _needs(task: Any, settings: Any, problems: list[str]) -> list[str]:
    """What train.py needs that the sandbox does not give by default: a GPU, the network."""
    import ast

    from harness.task_facts import gpu_requirement, network_modules, runs_docker

    lines = []
    gpu = gpu_requirement(task.train_source)
    if gpu and not settings.sandbox.gpus:
        problems.append(
            f'{task.root / "train.py"}: it {gpu}, so a GPU is required: set sandbox.gpus = "all" in '
            "overnight.toml (the Docker engine needs the NVIDIA Container Toolkit)"
        )
    elif gpu:
        lines.append(f"gpu: train.py {gpu}; sandbox.gpus = {settings.sandbox.gpus!r}")
    for name, source in (("prepare.py", task.prepare_source), ("train.py", task.train_source)):
        if runs_docker(source):
            lines.append(
                f"warning: {name} starts Docker itself; no container of a night can reach a "
                "Docker engine, so that part will fail there"
            )
    fetches = network_modules(ast.parse(task.train_source))
    if fetches and not settings.sandbox.train_network:
        lines.append(
            f"warning: train.py imports {', '.join(fetches)}, which may download at run time; "
            "training has no network unless sandbox.train_network = true (weaker isolation)"
        )
    return lines


def _git(task_dir: Path) -> tuple[str, list[str]]:
    """A line saying what `run` will do about git, and the problems that would stop it."""
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=task_dir, capture_output=True, text=True
        )
    except FileNotFoundError:
        return "", ["git is not installed: install git"]
    if top.returncode != 0:
        return (
            f"git: {task_dir} is not in a git repository; `overnight run` will create one there "
            "with the task files (git init and one commit) and work on branch overnight/<tag>",
            [],
        )
    return "", _git_problems(task_dir)


def _git_problems(task_dir: Path) -> list[str]:
    from harness.task import TASK_FILES

    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=task_dir, capture_output=True, text=True
        )
    except FileNotFoundError:
        return ["git is not installed: install git"]
    if top.returncode != 0:
        return []
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
        from harness.backends import docker_client

        client = docker_client()
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
