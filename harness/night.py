"""One night, wired: task -> config -> agent -> sandbox -> evaluator -> decision -> git -> ledger.

The CLI parses arguments and calls `run_night`; `harness/loop.py` holds the loop itself.
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.agents import make_agent
from harness.backends import image_for, isolation, make_sandbox
from harness.budget import Budget, until_deadline
from harness.config import Settings, resolve_settings
from harness.errors import GitError, InfrastructureFault, TaskError
from harness.gitops import RepoPlace, Worktree, locate_repo, uncommitted_task_files
from harness.ledger import RunDir
from harness.live import View
from harness.loop import Night
from harness.noise import current_best
from harness.overrides import Overrides
from harness.parallel import ParallelNight, has_unfinished
from harness.pauses import with_pauses
from harness.report import Refresher, at_the_end
from harness.runstate import RunLock, atomic_write, read_state, write_state
from harness.seams import ExperimentRecord, Sandbox, Stop, StopNight, Verdict
from harness.task import Task, load_task


@dataclass
class RunOptions:
    task_dir: Path
    tag: str
    overrides: Overrides = field(default_factory=Overrides)
    max_experiments: int | None = None
    max_hours: float | None = None
    until: str | None = None
    max_consecutive_crashes: int | None = None
    report_every: int = 0  # rewrite the report after every N experiments (0: only at the end)


@dataclass
class NightSummary:
    tag: str
    run_dir: Path
    stop_reason: str
    rows: list[ExperimentRecord]
    failed: bool = False  # stopped by a fault (the engine stayed down, say), not by a budget
    confirm_runs: int = 0

    @property
    def best(self) -> ExperimentRecord | None:
        """The last keep, valued at the mean of all its runs."""
        return current_best(self.rows, self.confirm_runs)

    @property
    def baseline(self) -> ExperimentRecord | None:
        """The kept baseline (a tag may hold failed baselines before it)."""
        return next((r for r in self.rows if r.experiment == 0 and r.status is Verdict.KEEP), None)


def run_night(options: RunOptions, view: View) -> NightSummary:
    task = load_task(options.task_dir)
    saved = _saved_settings(RunDir(task.root, options.tag))
    settings = resolve_settings(task, options.overrides, saved)
    _check_same_metric(saved, settings, options.tag)
    agent = make_agent(settings.agent, log=view.message)
    budget = _budget(options, settings)
    sandbox = make_sandbox(settings, f"{options.tag}-{os.getpid()}", view.message)
    image = image_for(sandbox, settings, task, view.message) if _opened(sandbox) else None
    place = _clean_repo(task, view)
    run_dir = RunDir(task.root, options.tag)
    run_dir.create()
    with RunLock(run_dir.root), at_the_end(run_dir.root, lambda: view.log, view.message):
        log = view.log = _harness_log(run_dir)
        unclean = read_state(run_dir.root).get("state") in ("running", "paused")
        write_state(run_dir.root, "running")
        try:
            if image is None:
                _wait_for_engine(sandbox, settings, run_dir, view)
                image = image_for(sandbox, settings, task, view.message)
            stop = _run(
                task, settings, agent, sandbox, image, place, run_dir, view, budget, unclean,
                options.report_every,
            )  # fmt: skip
        except StopNight as raised:  # before the loop: the engine stayed down past its limit
            stop = raised.stop
        except BaseException as err:
            write_state(run_dir.root, "stopped", reason=f"{type(err).__name__}: {err}")
            raise
        ended = "stopped" if stop.failed else "finished"
        write_state(run_dir.root, ended, reason=stop.reason)
        log.info("%s: %s", ended, stop.reason)
    return NightSummary(
        options.tag,
        run_dir.root,
        stop.reason,
        run_dir.rows(),
        failed=stop.failed,
        confirm_runs=settings.confirm_runs,
    )


def _run(
    task: Any, settings: Any, agent: Any, sandbox: Sandbox, image: Any, place: Any, run_dir: Any, view: Any, budget: Any, unclean: Any,
    report_every: Any,
) -> Stop:  # fmt: skip
    _check_same_evaluator(run_dir, task, settings, image)
    worktree = Worktree(place, run_dir.tag, run_dir.worktree)
    worktree.open()
    worktree.clear_stale_locks()
    if unclean:
        worktree.check_integrity()
    if not any(r.status is Verdict.KEEP for r in run_dir.rows()) and worktree.restart():
        view.message(f"{worktree.branch}: no baseline kept yet, so it starts again from your HEAD")
    _announce(settings, view)
    sandbox.prepare(image)
    from harness.experiment import Experimenter

    experimenter = Experimenter(task, settings, sandbox, image, run_dir.cache, say=view.message)

    def save(resolved: Settings) -> None:
        _write_config(run_dir, task, resolved, image)

    measurer = None
    if settings.executor.kind == "ray":  # setup stays here; the measurer ships it to the nodes
        from harness.ray_executor import RayMeasurer

        measurer = RayMeasurer(experimenter, run_dir.tag, say=view.message)
    kind = ParallelNight if settings.workers > 1 or has_unfinished(run_dir) else Night
    parts = (task, settings, agent, experimenter, worktree, run_dir, view, budget, save)
    night = kind(*parts, measurer=measurer)
    if report_every:
        night.on_record = Refresher(run_dir.root, report_every, view.log, view.message)
    try:
        return night.run()
    finally:
        if measurer is not None:
            measurer.close()  # cancels its tasks and removes their containers on every node
        sandbox.close()  # if the engine is gone, the next night's `prepare` removes what is left


def _budget(options: RunOptions, settings: Settings) -> Budget:
    deadline, flag = None, ""
    if options.max_hours is not None:
        deadline, flag = (
            time.time() + options.max_hours * 3600,
            f"--max-hours {options.max_hours:g}",
        )
    if options.until is not None:
        try:
            moment = until_deadline(options.until, datetime.datetime.now())
        except ValueError as err:
            raise TaskError(str(err)) from None
        if deadline is None or moment.timestamp() < deadline:
            deadline, flag = moment.timestamp(), f"--until {options.until}"
    crashes = options.max_consecutive_crashes
    return Budget(
        max_experiments=options.max_experiments,
        deadline=deadline,
        deadline_flag=flag,
        max_consecutive_crashes=settings.night.max_consecutive_crashes
        if crashes is None
        else crashes,
    )


def _opened(sandbox: Sandbox) -> bool:
    """Whether the engine answers now (if not, the night waits for it once its run folder is
    locked)."""
    try:
        sandbox.open()
    except InfrastructureFault:
        return False
    return True


def _wait_for_engine(sandbox: Sandbox, settings: Settings, run_dir: RunDir, view: View) -> None:
    from harness.pauses import PausePolicy

    night = settings.night
    policy = PausePolicy(
        night.pause_first_delay, night.pause_max_delay, night.max_pause_minutes * 60
    )

    def on_pause(reason: str, delay: float) -> None:
        run_dir.event("pause", reason=reason, retry_in_s=delay)
        write_state(run_dir.root, "paused", reason=reason)
        view.message(f"paused: {reason}; retrying in {delay:.0f}s")

    def on_resume(paused: float) -> None:
        run_dir.event("resume", paused_s=paused)
        write_state(run_dir.root, "running")

    with_pauses(sandbox.open, policy, on_pause, on_resume)


def _harness_log(run_dir: RunDir) -> logging.Logger:
    """overnight.log in the run folder, rotated so it never fills the disk."""
    log = logging.getLogger(f"overnight.{run_dir.tag}")
    log.setLevel(logging.INFO)
    log.propagate = False
    path = run_dir.root / "overnight.log"
    if not any(getattr(h, "baseFilename", None) == str(path) for h in log.handlers):
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=5 * 2**20, backupCount=2)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
    return log


def _clean_repo(task: Task, view: View) -> RepoPlace:
    place = locate_repo(task.root)
    if place.created:
        view.message(f"{task.root} was not in a git repository: created one with the task files")
    dirty = uncommitted_task_files(place)
    if dirty:
        raise GitError(
            f"{place.top}: uncommitted changes to {', '.join(dirty)}; commit or stash them, "
            "then run again (overnight works from the committed versions)"
        )
    return place


def _check_same_evaluator(run_dir: RunDir, task: Task, settings: Settings, image: str) -> None:
    """A tag's metrics are only comparable under one prepare.py; refuse a changed one."""
    if run_dir.config.exists():
        before = json.loads(run_dir.config.read_text())
        if before.get("prepare_sha256") != task.prepare_hash:
            raise TaskError(
                f"{task.root / 'prepare.py'}: changed since tag {run_dir.tag!r} started, so its "
                "metrics are not comparable; start a new tag with --tag"
            )
    _write_config(run_dir, task, settings, image)


def _write_config(run_dir: RunDir, task: Task, settings: Settings, image: str) -> None:
    resolved = {
        "settings": settings.model_dump(mode="json"),
        "image": image,
        "prepare_sha256": task.prepare_hash,
        "isolation": isolation(settings),
    }
    atomic_write(run_dir.config, json.dumps(resolved, indent=2) + "\n")


def _saved_settings(run_dir: RunDir) -> dict[str, Any]:
    """The settings a tag already ran with (its config.json), or {} for a new tag."""
    try:
        saved = json.loads(run_dir.config.read_text()).get("settings") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    kept = any(r.status is Verdict.KEEP for r in run_dir.rows())
    return saved if isinstance(saved, dict) and kept else {}


def _check_same_metric(saved: dict[str, Any], settings: Settings, tag: str) -> None:
    """A tag's rows were measured with one metric: another one would not be comparable."""
    for key in ("metric", "direction"):
        before, now = saved.get(key), getattr(settings, key)
        now = getattr(now, "value", now)
        if before and now and before != now:
            raise TaskError(
                f"tag {tag!r} measured {key} {before!r}, and now it would be {now!r}, which is not "
                "comparable; start a new tag with --tag, or set it back"
            )


def _announce(settings: Settings, view: View) -> None:
    """The choices a user must be able to check, in one line each, at the start of the night."""
    if settings.metric and settings.direction:
        source = f", {settings.metric_source}" if settings.metric_source else ""
        view.message(f"metric: {settings.metric} ({settings.direction.value}){source}")
    else:
        view.message(
            "metric: not declared; it will be chosen from what the baseline prints, with "
            "program.md (set metric and direction in overnight.toml to choose it yourself)"
        )
    if settings.workers > 1:
        view.message(f"workers: {settings.workers_note}")
    scoring = "protected" if settings.protected else "inline (UNPROTECTED)"
    view.message(f"scoring: {scoring}, because {settings.mode_reason}")
    if settings.time_budget_note:
        view.message(f"time budget: {settings.time_budget_note}")
    keep_rule = _keep_rule(settings)
    if keep_rule:
        view.message(keep_rule)


def _keep_rule(settings: Settings) -> str:
    """One line on what a keep must beat, when it is more than "strictly better"."""
    parts = []
    if settings.noise_runs > 1:
        parts.append(f"the baseline runs {settings.noise_runs} times to measure the noise")
    if settings.min_improvement is not None:
        parts.append(
            f"a keep must beat the best by more than {settings.min_improvement} "
            f"(min_improvement, {settings.min_improvement_source})"
        )
    if settings.remeasure_best_every:
        parts.append(
            f"the best runs again every {settings.remeasure_best_every} experiments, valued at "
            "the mean of its runs"
        )
    return ("keep rule: " + "; ".join(parts)) if parts else ""
