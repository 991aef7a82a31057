"""One night, wired: task -> config -> agent -> sandbox -> evaluator -> decision -> git -> ledger.

The CLI parses arguments and calls `run_night`; everything a run does is visible from here.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness.agents import make_agent
from harness.config import Settings, parse_size, resolve_settings
from harness.decision import decide
from harness.edit_tool import TrainEditor
from harness.errors import GitError, OvernightError, TaskError
from harness.experiment import Experimenter, Measurement
from harness.gitops import RepoPlace, Worktree, locate_repo, uncommitted_task_files
from harness.ledger import RunDir
from harness.live import View
from harness.seams import (
    Agent,
    ExperimentRecord,
    Proposal,
    ProposalContext,
    StopNight,
    Usage,
    Verdict,
)
from harness.task import Task, load_task


@dataclass
class RunOptions:
    task_dir: Path
    tag: str
    overrides: dict[str, Any] = field(default_factory=dict)
    max_experiments: int | None = None
    max_hours: float | None = None


@dataclass
class NightSummary:
    tag: str
    run_dir: Path
    stop_reason: str
    rows: list[ExperimentRecord]

    @property
    def best(self) -> ExperimentRecord | None:
        keeps = [r for r in self.rows if r.status is Verdict.KEEP]
        return keeps[-1] if keeps else None


def run_night(options: RunOptions, view: View) -> NightSummary:
    task = load_task(options.task_dir)
    settings = resolve_settings(task, options.overrides)
    agent = make_agent(settings.agent)
    from sandbox.docker_sandbox import DockerSandbox, Limits, connect, remove_leftovers
    from sandbox.image import resolve_image

    client = connect()
    image = resolve_image(client, settings.image, task.root, task.has_dockerfile, log=view.message)
    place = _clean_repo(task, view)
    run_dir = RunDir(task.root, options.tag)
    run_dir.create()
    with _exclusive(run_dir):
        _check_same_evaluator(run_dir, task, settings, image)
        worktree = Worktree(place, options.tag, run_dir.worktree)
        worktree.open()
        remove_leftovers(client)
        sandbox_limits = Limits(
            memory_bytes=parse_size(settings.sandbox.memory),
            cpus=settings.sandbox.cpus,
            pids=settings.sandbox.pids,
            tmpfs_bytes=parse_size(settings.sandbox.tmpfs),
            output_cap_bytes=parse_size(settings.sandbox.output_cap),
        )
        sandbox = DockerSandbox(
            sandbox_limits, run_id=f"{options.tag}-{os.getpid()}", client=client
        )
        experimenter = Experimenter(task, settings, sandbox, image, run_dir.cache)
        night = Night(task, settings, agent, experimenter, worktree, run_dir, view)
        try:
            reason = night.run(options.max_experiments, options.max_hours)
        finally:
            remove_leftovers(client, run_id=sandbox.run_id)
    return NightSummary(options.tag, run_dir.root, reason, run_dir.rows())


class Night:
    """The loop over experiments, from the baseline until a budget ends."""

    def __init__(
        self,
        task: Task,
        settings: Settings,
        agent: Agent,
        experimenter: Experimenter,
        worktree: Worktree,
        run_dir: RunDir,
        view: View,
    ) -> None:
        self.task = task
        self.settings = settings
        self.agent = agent
        self.experimenter = experimenter
        self.worktree = worktree
        self.run_dir = run_dir
        self.view = view
        self.rows = run_dir.rows()
        self.best_commit = ""
        self.usage = Usage()  # of the proposal being run

    @property
    def best(self) -> ExperimentRecord | None:
        keeps = [r for r in self.rows if r.status is Verdict.KEEP]
        return keeps[-1] if keeps else None

    def run(self, max_experiments: int | None, max_hours: float | None) -> str:
        started = time.monotonic()
        self.view.phase(0, "setup", self.settings.sandbox.setup_timeout)
        if self.experimenter.setup():
            self.run_dir.event("setup", prepare_sha256=self.task.prepare_hash)
        self._reconcile()
        if self.best is None:
            self._baseline()
        longest = 0.0
        while True:
            proposals = sum(1 for r in self.rows if r.experiment > 0)
            if max_experiments is not None and proposals >= max_experiments:
                return f"reached --max-experiments {max_experiments}"
            if max_hours is not None:
                left = max_hours * 3600 - (time.monotonic() - started)
                if left < max(longest, 1.0):
                    return f"reached --max-hours {max_hours:g}"
            begun = time.monotonic()
            stop = self._experiment(self.rows[-1].experiment + 1)
            if stop:
                return stop
            longest = max(longest, time.monotonic() - begun)

    def _reconcile(self) -> None:
        """Bring the branch back to the best kept commit (after a crash or a kill mid-experiment)."""
        best = self.best
        if best is None:
            return
        self.best_commit = self.worktree.resolve(best.commit)
        head = self.worktree.head()
        if head != self.best_commit:
            last = self.rows[-1].experiment
            self.worktree.keep_ref(head, last + 1)
            self.worktree.reset_to(self.best_commit)
            self.run_dir.event("reconciled", head=head, best=self.best_commit)
            self.view.message(
                f"moved {self.worktree.branch} back to the best commit {self.best_commit[:7]}"
            )

    def _baseline(self) -> None:
        self.view.phase(0, "baseline", self.settings.timeout)
        source = self.worktree.read_train()
        measurement = self._measure(0, source)
        verdict = decide(
            measurement.train.status, measurement.metric, None, self.settings.direction
        )
        if verdict is not Verdict.KEEP:
            raise TaskError(
                f"{self.task.root / 'train.py'}: the unmodified baseline gave no valid metric "
                f"({verdict.value}{': ' + measurement.note if measurement.note else ''}); fix it and run "
                f"again. Output: {self.run_dir.experiment_dir(0) / 'output.txt'}"
            )
        self.best_commit = self.worktree.head()
        self._record(0, self.best_commit, measurement, verdict, "baseline")

    def _experiment(self, number: int) -> str | None:
        """Propose, run, decide and record one experiment; returns why the night stops, if it does."""
        best = self.best
        assert best is not None
        base_source = self.worktree.read_train()
        self.view.phase(number, "proposing")
        editor = TrainEditor(
            base_source, self.settings.edit.max_calls, self.settings.edit.max_bytes
        )
        try:
            proposal = self.agent.propose(self._context(number, base_source), editor)
        except StopNight as stop:
            self.run_dir.event("stop", experiment=number, reason=str(stop))
            return str(stop)
        if proposal is None:
            return "the agent has no more proposals"
        self.usage = proposal.usage
        description = self._log_proposal(number, proposal, editor)
        problem = _unrunnable(base_source, editor.source)
        if problem:
            self._skip(number, description, problem)
            return None
        commit = self.worktree.commit_candidate(editor.source, description)
        diff = self.worktree.diff(self.best_commit, commit)
        self.run_dir.write_artifact(number, "diff.patch", diff)
        try:
            measurement = self._measure(number, editor.source)
        except BaseException:
            # Interrupted (Ctrl-C) or a fault of the harness: never leave a candidate as the head.
            self.worktree.discard(commit, self.best_commit, number)
            self.run_dir.event("interrupted", experiment=number, commit=commit)
            raise
        status, metric = measurement.train.status, measurement.metric
        verdict = decide(status, metric, best.metric, self.settings.direction)
        if verdict is Verdict.KEEP:
            self.best_commit = commit
        else:
            self.worktree.discard(commit, self.best_commit, number)
        self._record(number, commit, measurement, verdict, description)
        return None

    def _log_proposal(self, number: int, proposal: Proposal, editor: TrainEditor) -> str:
        """Write the transcript and the proposal event; returns the one-line description."""
        description = (proposal.description.strip().splitlines() or ["(no description)"])[0]
        calls = [
            {"input": o.call.input, "output": o.output, "is_error": o.is_error}
            for o in editor.outcomes
        ]
        transcript = {
            "description": proposal.description,
            "calls": calls,
            "messages": proposal.transcript,
        }
        self.run_dir.write_artifact(number, "transcript.json", json.dumps(transcript, indent=1))
        self.run_dir.event(
            "proposal",
            experiment=number,
            description=description,
            calls=calls,
            usage=asdict(proposal.usage),
        )
        return description

    def _context(self, number: int, source: str) -> ProposalContext:
        return ProposalContext(
            experiment=number,
            program=self.task.program,
            prepare_source=self.task.prepare_source,
            train_source=source,
            metric=self.settings.metric,
            direction=self.settings.direction,
            history=list(self.rows),
            best=self.best,
        )

    def _measure(self, number: int, source: str) -> Measurement:
        self.view.phase(number, "training", self.settings.timeout)
        measurement = self.experimenter.measure(source, self.run_dir.scratch_dir(number))
        output = (
            f"# train.py ({measurement.train.status.value}, exit {measurement.train.exit_code}, "
            f"{measurement.train.wall_s:.1f}s)\n{measurement.train.output_tail}"
        )
        if measurement.evaluation is not None:
            ev = measurement.evaluation
            output += f"\n# evaluate ({ev.status.value}, exit {ev.exit_code}, {ev.wall_s:.1f}s)\n{ev.output_tail}"
        self.run_dir.write_artifact(number, "output.txt", output)
        self.run_dir.event(
            "run",
            experiment=number,
            train_status=measurement.train.status.value,
            exit_code=measurement.train.exit_code,
            train_seconds=measurement.train.wall_s,
            eval_status=measurement.evaluation.status.value if measurement.evaluation else None,
            metric=measurement.metric,
            metrics=measurement.metrics,
            note=measurement.note,
            protected=self.settings.protected,
            peak_memory_bytes=measurement.train.peak_memory_bytes,
        )
        return measurement

    def _record(
        self, number: int, commit: str, measurement: Measurement, verdict: Verdict, description: str
    ) -> None:
        seconds = measurement.train.wall_s + (
            measurement.evaluation.wall_s if measurement.evaluation else 0
        )
        row = ExperimentRecord(
            experiment=number,
            commit=commit,
            metric=measurement.metric,
            status=verdict,
            description=description,
            seconds=seconds,
            memory_gb=measurement.train.peak_memory_bytes / 1024**3,
            cost_usd=self.usage.cost_usd,
        )
        self.run_dir.record(row)
        self.run_dir.event(
            "decision",
            experiment=number,
            commit=commit,
            status=verdict.value,
            metric=measurement.metric,
            best_commit=self.best_commit,
        )
        self.rows.append(row)
        self.view.result(row, self.best)

    def _skip(self, number: int, description: str, problem: str) -> None:
        row = ExperimentRecord(
            number,
            "-",
            None,
            Verdict.SKIPPED,
            f"{description} [{problem}]",
            cost_usd=self.usage.cost_usd,
        )
        self.run_dir.record(row)
        self.run_dir.event("decision", experiment=number, status="skipped", reason=problem)
        self.rows.append(row)
        self.view.result(row, self.best)


def _unrunnable(base: str, source: str) -> str:
    if source == base:
        return "train.py unchanged"
    try:
        compile(source, "train.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as err:
        return f"does not compile: {err}"
    return ""


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
    resolved = {
        "settings": settings.model_dump(mode="json"),
        "image": image,
        "prepare_sha256": task.prepare_hash,
    }
    if run_dir.config.exists():
        before = json.loads(run_dir.config.read_text())
        if before.get("prepare_sha256") != task.prepare_hash:
            raise TaskError(
                f"{task.root / 'prepare.py'}: changed since tag {run_dir.tag!r} started, so its "
                "metrics are not comparable; start a new tag with --tag"
            )
    tmp = run_dir.config.with_suffix(".tmp")
    tmp.write_text(json.dumps(resolved, indent=2) + "\n")
    os.replace(tmp, run_dir.config)


class _exclusive:
    """One live run per tag: a lock file holding the owner's pid."""

    def __init__(self, run_dir: RunDir) -> None:
        self.path = run_dir.root / "lock"
        self.handle: TextIO | None = None

    def __enter__(self) -> None:
        self.handle = handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            self.handle = None
            raise OvernightError(
                f"{self.path}: tag {self.path.parent.name!r} is already running (pid {owner}); "
                "wait for it or use another --tag"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.close()
