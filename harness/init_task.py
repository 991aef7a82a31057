"""`overnight init FOLDER`: write what overnight found into the folder's overnight.toml for review.

The metric and its direction (declared, or inferred from train.py's print calls or evaluate's
returned keys and program.md), the scoring mode and the hard timeout, each with the reason as a
comment; suggestions (a GPU, the network for training) as commented lines. Keys the file
already has are kept as they are, and nothing else in it changes. Nothing is run.
"""

from __future__ import annotations

import ast
import datetime
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import TaskError

if TYPE_CHECKING:
    from harness.overrides import Overrides


def init_task(task_dir: Path, overrides: Overrides, out: Callable[[str], None] = print) -> int:
    from harness.config import resolve_settings
    from harness.metric_choice import infer_metric
    from harness.task import CONFIG, load_task

    task = load_task(task_dir)
    settings = resolve_settings(task, overrides)
    metric, direction, why = settings.metric, settings.direction, settings.metric_source
    if metric is None or direction is None:
        names = list(task.returned_keys if settings.protected else task.inline_names)
        if not names:
            raise TaskError(
                f'{task.root / "train.py"}: no `print(f"name: {{value}}")` line names a metric, '
                "so init cannot choose one; pass --metric NAME --direction minimize|maximize"
            )
        where = "evaluate()'s returned keys" if settings.protected else task.printed_where
        choice = infer_metric(names, task.program, metric, direction, where)
        metric, direction, why = choice.metric, choice.direction, f"inferred: {choice.reason}"
    path = task.root / CONFIG
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    present = tomllib.loads(existing) if existing else {}
    lines = [f"# overnight init, {datetime.date.today()}: review, then commit it with the task"]
    wanted = {
        "metric": (f'"{metric}"', why),
        "direction": (f'"{direction.value}"', ""),
        "mode": ('"protected"' if settings.protected else '"inline"', settings.mode_reason),
        "timeout": (f"{settings.timeout:g}", _timeout_note(settings)),
    }
    for key, (value, note) in wanted.items():
        if key in present:
            continue
        lines.append(f"{key} = {value}" + (f"  # {_one_line(note)}" if note else ""))
    lines += _suggestions(task, settings)
    text = "\n".join(lines) + "\n" + (("\n" + existing) if existing else "")
    tomllib.loads(text)  # what we write must read back
    path.write_text(text, encoding="utf-8")
    out(f"wrote {path}:")
    for line in lines:
        out(f"  {line}")
    out("review it, commit it with the task, then: overnight run " + str(task_dir))
    return 0


def _timeout_note(settings: Any) -> str:
    if settings.time_budget_note:
        return settings.time_budget_note
    return f"2 x the time budget ({settings.time_budget:g}s) + 60"


def _suggestions(task: Any, settings: Any) -> list[str]:
    from harness.task_facts import gpu_requirement, network_modules

    lines = []
    gpu = gpu_requirement(task.train_source)
    fetches = network_modules(ast.parse(task.train_source))
    if gpu and not settings.sandbox.gpus:
        lines.append(f'# [sandbox] gpus = "all"  # train.py {gpu}')
    if fetches and not settings.sandbox.train_network:
        lines.append(
            f"# [sandbox] train_network = true  # train.py imports {', '.join(fetches)}; "
            "weaker isolation"
        )
    return lines


def _one_line(text: str) -> str:
    return " ".join(text.split())
