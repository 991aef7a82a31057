"""The image a task runs in, and whether it has what prepare.py and train.py import.

The image is, in order: `sandbox.image` (or --image) when set, the task's Dockerfile when it has
one, overnight's base with the task's declared dependencies when it declares any, else the base.
Before a night (and in `validate`, `doctor` and `image build TASK`) the top-level imports of
prepare.py and train.py are looked up inside that image; a missing one stops the night with the
setting to add.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import Settings
from harness.dependencies import PYPROJECT, REQUIREMENTS, declared_sources, task_recipe
from harness.errors import OvernightError, TaskError
from harness.imports import Import, task_imports
from harness.overrides import Overrides
from harness.task import PREPARE, TRAIN, Task

Say = Callable[[str], None]


@dataclass(frozen=True)
class Choice:
    """Which kind of image a task gets, and what it declares."""

    kind: str  # configured | dockerfile | dependencies | base
    declared: tuple[str, ...]  # where dependencies are declared, e.g. ("requirements.txt",)


def choose(task: Task, settings: Settings) -> Choice:
    declared = tuple(declared_sources(task.root, settings.image_build))
    if settings.image:
        return Choice("configured", declared)
    if task.has_dockerfile:
        return Choice("dockerfile", declared)
    return Choice("dependencies" if declared else "base", declared)


def night_image(client: Any, settings: Settings, task: Task, say: Say, force: bool = False) -> str:
    """The night's image, built if it must be; TaskError when it lacks a module the task needs."""
    choice = choose(task, settings)
    ignored = _ignored(choice, task, settings)
    if ignored:
        say(ignored)
    name = _resolve(client, settings, task, choice, say, force)
    problems, notes = _probe(client, settings, task, name, choice)
    for note in notes:
        say(note)
    if problems:
        raise TaskError("\n".join(problems))
    return name


def _resolve(
    client: Any, settings: Settings, task: Task, choice: Choice, say: Say, force: bool
) -> str:
    from sandbox.image import base_image, configured_image

    if choice.kind == "configured":
        return configured_image(client, str(settings.image), task.root)
    if choice.kind == "base":
        return base_image(client)
    options = {"keep": _live_images(task), "force": force, "log_dir": _log_dir(task)}
    timeout = settings.image_build.build_timeout
    if choice.kind == "dockerfile":
        from sandbox.dockerfile_image import dockerfile_image

        return dockerfile_image(client, task.root, say, timeout, **options)
    base = base_image(client)
    from sandbox.task_image import build_task_image

    recipe = task_recipe(task.root, settings.image_build)
    return build_task_image(client, recipe, base, task.root, say, timeout, **options)


def image_lines(task: Task, settings: Settings, client: Any, problems: list[str]) -> list[str]:
    """`validate`'s lines about the task's dependencies and imports; problems are appended."""
    if settings.sandbox.backend == "local" or client is None:
        return []
    choice = choose(task, settings)
    lines = [f"dependencies: {line}" for line in _declared_lines(task, settings, choice)]
    ignored = _ignored(choice, task, settings)
    if ignored:
        lines.append(f"dependencies: {ignored}")
    name, built, state = _known(client, task, settings, choice)
    if state:
        lines.append(f"dependencies: {state}")
    if name is None or not built:
        return lines
    try:
        found, notes = _probe(client, settings, task, name, choice)
    except OvernightError as err:
        problems.append(str(err))
        return lines
    problems += found
    lines += [f"imports: {note}" for note in notes]
    if not found:
        imported = sorted({i.module for i in _imports(task)})
        lines.append(f"imports: {', '.join(imported) or 'none'}: all in {name}")
    return lines


def image_checks(task_dir: Path, overrides: Overrides) -> list[tuple[str | None, str | None]]:
    """`doctor`'s (ok, problem) pairs about the task's dependencies and imports."""
    from harness.backends import docker_client
    from harness.config import resolve_settings
    from harness.task import load_task

    try:
        task = load_task(task_dir)
        settings = resolve_settings(task, overrides)
        client = docker_client(settings.sandbox.api_timeout)
    except (OvernightError, ValueError):
        return []  # the settings or the engine check says why
    problems: list[str] = []
    try:
        lines = image_lines(task, settings, client, problems)
    except OvernightError as err:
        return [(None, str(err))]
    return [(line, None) for line in lines] + [(None, p) for p in problems]


def build_for_task(task_dir: Path, force: bool, say: Say = print) -> str:
    """`overnight image build TASK`: the task's image now, then the same check as a night's."""
    from harness.backends import docker_client
    from harness.config import resolve_settings
    from harness.task import load_task
    from sandbox.image import build_default_image

    task = load_task(task_dir)
    settings = resolve_settings(task)
    client = docker_client(settings.sandbox.api_timeout)
    if choose(task, settings).kind == "base":
        build_default_image(client, log=say, force=force)
    name = night_image(client, settings, task, say, force=force)
    say(f"image {name} is ready for {task.root}")
    return name


def _known(
    client: Any, task: Task, settings: Settings, choice: Choice
) -> tuple[str | None, bool, str]:
    """(the image's name if it can be known, whether it is built, a line about it)."""
    from sandbox.image import DEFAULT_IMAGE, image_exists

    if choice.kind == "configured":
        return settings.image, image_exists(client, str(settings.image)), ""
    later = f"the first run builds it (or `overnight image build {task.root}`)"
    if choice.kind == "dockerfile":
        from sandbox.dockerfile_image import dockerfile_image_name

        name = dockerfile_image_name(client, task.root)
        built = image_exists(client, name)
        return name, built, "" if built else f"{name} from the Dockerfile is not built yet; {later}"
    if not image_exists(client, DEFAULT_IMAGE):
        return None, False, ""  # validate names the missing base image
    if choice.kind == "base":
        return DEFAULT_IMAGE, True, ""
    from sandbox.task_image import task_image_name

    name = task_image_name(
        client, task_recipe(task.root, settings.image_build), DEFAULT_IMAGE, task.root
    )
    if image_exists(client, name):
        return name, True, f"installed in {name} ({DEFAULT_IMAGE} with them)"
    return name, False, f"{name} ({DEFAULT_IMAGE} with them) is not built yet; {later}"


def _declared_lines(task: Task, settings: Settings, choice: Choice) -> list[str]:
    if choice.kind != "dependencies":
        return []
    return list(task_recipe(task.root, settings.image_build).declared)


def _ignored(choice: Choice, task: Task, settings: Settings) -> str:
    """What a Dockerfile or a configured image wins over, said once."""
    if not choice.declared or choice.kind not in ("configured", "dockerfile"):
        return ""
    winner = (
        f"image {settings.image} ([sandbox] image)"
        if choice.kind == "configured"
        else f"{task.root / 'Dockerfile'}"
    )
    return (
        f"{winner} wins over {', '.join(choice.declared)}: overnight does not install them; "
        "install them in that image"
    )


def _imports(task: Task) -> list[Import]:
    return task_imports(task.root, {PREPARE: task.prepare_source, TRAIN: task.train_source})


def _probe(client: Any, settings: Settings, task: Task, image: str, choice: Choice) -> Any:
    """(problems, notes): required modules the image lacks, and optional ones."""
    from harness.backends import probe_sandbox
    from sandbox.module_probe import missing_modules

    imports = _imports(task)
    sandbox = probe_sandbox(settings, client)
    missing = missing_modules(sandbox, image, sorted({i.module for i in imports}))
    problems, notes = [], []
    for item in imports:
        if item.module not in missing:
            continue
        if item.optional:
            notes.append(
                f"{item.file} imports {item.module} only if it is there (try/except "
                f"ImportError); image {image} lacks it"
            )
        else:
            problems.append(
                f"{task.root / item.file} imports {item.module}, which image {image} lacks: "
                + _fix(choice, task, item.package)
            )
    return problems, notes


def _fix(choice: Choice, task: Task, package: str) -> str:
    if choice.kind == "dockerfile":
        return f"install it in the Dockerfile (RUN pip install {package})"
    if choice.kind == "configured":
        return "install it in that image, or choose another as [sandbox] image in overnight.toml"
    if (task.root / REQUIREMENTS).is_file():
        return f"add {package} to {REQUIREMENTS}"
    if PYPROJECT in " ".join(choice.declared):
        return f'add "{package}" to [project].dependencies in {PYPROJECT}'
    return (
        f"add {package} to {REQUIREMENTS}, {PYPROJECT} [project].dependencies or "
        f'[image] pip = ["{package}"] in overnight.toml'
    )


def _live_images(task: Task) -> tuple[str, ...]:
    """Images of this task's nights that are running now (never removed under them)."""
    from harness.runstate import is_locked

    names = []
    for config in (task.root / ".overnight").glob("*/config.json"):
        if is_locked(config.parent):
            with contextlib.suppress(OSError, ValueError):
                names.append(str(json.loads(config.read_text()).get("image")))
    return tuple(names)


def _log_dir(task: Task) -> Path:
    """TASK/.overnight/images, kept out of git as the runs are."""
    base = task.root / ".overnight"
    (base / "images").mkdir(parents=True, exist_ok=True)
    ignore = base / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# written by overnight: its runs are not part of the repository\n*\n")
    return base / "images"
