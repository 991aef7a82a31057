"""The loop of a night: baseline, then propose -> run -> decide -> git -> ledger until a budget ends.

Everything it does is written down before the next step starts, so a night killed at any point
resumes to the state an uninterrupted one would have reached: `_reconcile` brings git back to
what the ledger says, and an experiment without a ledger row is simply run again.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any, TypeVar

from harness import agent_context, run_files, untrusted
from harness.budget import Budget
from harness.config import Settings
from harness.crashpoints import crashpoint
from harness.decision import confirm, decide, is_better, round_digits, round_metric
from harness.edit_tool import TrainEditor
from harness.errors import InfrastructureFault, TaskError
from harness.experiment import Experimenter, Measurement, Measurer, combine_runs, with_metric
from harness.gitops import Worktree
from harness.ledger import RunDir
from harness.live import View
from harness.metric_choice import infer_metric
from harness.noise import (
    baseline_runs,
    current_best,
    next_number,
    noise_estimate,
    remeasure_due,
    runs_of_best,
)
from harness.pauses import Pauses, policy_of
from harness.runstate import write_state
from harness.seams import (
    Agent,
    Direction,
    ExperimentRecord,
    Proposal,
    ProposalContext,
    Repairer,
    RepairRequest,
    RunningExperiment,
    RunStatus,
    Stop,
    StopNight,
    Usage,
    Verdict,
)
from harness.signals import StopSignals
from harness.task import Task

T = TypeVar("T")
REPAIR_TAIL_CHARS = 4000  # of a crashed run's output, shown to the agent for a repair


@dataclass
class _Candidate:
    """A proposed train.py committed on the branch; a repair replaces its editor and commit."""

    editor: TrainEditor
    commit: str
    description: str


@dataclass
class AskedRepair:
    """What the agent answered when shown a crash: its proposal (None: it could not go on)."""

    number: int
    source: str  # the crashed train.py
    proposal: Proposal | None
    editor: TrainEditor
    started: float
    deadline: float


class DiskFull(InfrastructureFault):
    pass


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
        budget: Budget,
        save_settings: Callable[[Settings], None] = lambda _: None,
        measurer: Measurer | None = None,
    ) -> None:
        self.task = task
        # Where experiments are measured: the experimenter itself, or a Ray cluster's nodes.
        self.measurer: Measurer = measurer or experimenter
        self.save_settings = save_settings
        self.settings = settings
        self.agent = agent
        self.experimenter = experimenter
        self.worktree = worktree
        self.run_dir = run_dir
        self.view = view
        self.budget = budget
        self.rows = run_dir.rows()
        self.best_commit = ""
        self.usage = Usage()  # of the proposal being run
        self.on_record: Callable[[ExperimentRecord], None] | None = None  # after each ledger row
        self.signals = StopSignals(on_first=self._stop_requested)
        self.pauses = Pauses(
            policy_of(settings.night),
            run_dir.event,
            lambda state, **info: write_state(run_dir.root, state, **info),
            view.message,
            self._sleep,
        )

    @property
    def metric(self) -> str:
        assert self.settings.metric is not None, "the baseline settles the metric"
        return self.settings.metric

    @property
    def direction(self) -> Direction:
        assert self.settings.direction is not None, "the baseline settles the direction"
        return self.settings.direction

    @property
    def best(self) -> ExperimentRecord | None:
        """The last keep, its metric the mean of all its runs (see harness/noise.py)."""
        return current_best(self.rows, self.settings.confirm_runs)

    @property
    def noise(self) -> float | None:
        return noise_estimate(self.rows)

    def margin(self, best: float) -> float:
        """How much better than `best` a keep must be: min_improvement, resolved."""
        threshold = self.settings.threshold()
        return threshold.margin(best, self.noise) if threshold else 0.0

    def run(self) -> Stop:
        """Set up, measure the baseline, then one experiment after another until a StopNight."""
        with self.signals:
            try:
                self._start()
                while True:
                    self._next()
            except StopNight as stop:
                return stop.stop

    def _start(self) -> None:
        self.view.phase(0, "setup", self.settings.sandbox.setup_timeout)
        if self._pausing(self.experimenter.setup):
            self.run_dir.event("setup", prepare_sha256=self.task.prepare_hash)
        crashpoint("setup")
        self._reconcile()
        crashpoint("reconciled")
        if self.best is None:
            self._baseline()
        self._baseline_repeats()

    def _next(self) -> None:
        """A re-measurement of the best or the next experiment, unless the night ends here."""
        if self.signals.requested:
            raise StopNight(
                f"stopped by {self.signals.requested}; run the same tag again to continue"
            )
        reason = self.budget.exhausted(self.rows, time.time())
        if reason:
            raise StopNight(reason)
        self._pausing(self._check_disk)
        if remeasure_due(self.rows, self.settings.remeasure_best_every):
            self._remeasure()
        else:
            self._experiment(next_number(self.rows))

    def _stop_requested(self, name: str) -> None:
        self.run_dir.event("stop_requested", signal=name)
        self.view.message(
            f"{name}: finishing the current experiment, then stopping (again to abort now)"
        )

    def _pausing(self, action: Callable[[], T]) -> T:
        return self.pauses.run(action)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.signals.requested:
                # Exit code 3 as for any stop during a pause: the night was held up by a fault.
                raise StopNight(f"stopped by {self.signals.requested} while paused", failed=True)
            time.sleep(min(0.2, end - time.monotonic()))

    def _check_disk(self) -> None:
        minimum = self.settings.night.min_free_disk.bytes
        free = shutil.disk_usage(self.run_dir.root).free
        if free < minimum:
            raise DiskFull(
                f"only {free / 2**20:.0f} MiB free on the disk of {self.run_dir.root}, below "
                f"min_free_disk = {self.settings.night.min_free_disk}; free some space"
            )

    def _reconcile(self) -> None:
        """Make git agree with the ledger: the branch at the best kept commit, nothing uncommitted."""
        best = self.best
        if best is None:
            return
        self.best_commit = self.worktree.resolve(best.commit)
        head = self.worktree.head()
        if head != self.best_commit:
            # A candidate without a ledger row: it is run again, so only keep a ref to it.
            self.worktree.keep_ref(head, next_number(self.rows))
        if head != self.best_commit or self.worktree.is_dirty():
            self.worktree.reset_to(self.best_commit)
            self.run_dir.event("reconciled", head=head, best=self.best_commit)
            self.view.message(
                f"resumed: {self.worktree.branch} is back at the best commit {self.best_commit[:7]}"
            )

    def _baseline(self) -> None:
        self.view.phase(0, "baseline", self.settings.timeout)
        source = self.worktree.read_train()
        measurement = self._pausing(lambda: self._measure(0, source))
        crashpoint("baseline measured")
        commit = self.worktree.head()
        problem = ""
        if measurement.train.status is RunStatus.OK and (
            self.settings.metric is None or self.settings.direction is None
        ):
            try:
                measurement = self._infer_metric(measurement)
            except TaskError as err:
                problem = str(err)
        direction = self.settings.direction or Direction.MINIMIZE
        verdict = decide(measurement.train.status, measurement.metric, None, direction)
        if problem or verdict is not Verdict.KEEP:
            self._record(0, commit, measurement, verdict, "baseline")
            raise TaskError(self._baseline_failure(verdict, measurement, problem))
        self.best_commit = commit
        self._record(0, commit, measurement, verdict, "baseline")
        crashpoint("baseline recorded")

    def _baseline_repeats(self) -> None:
        """Run the kept baseline until `noise_runs` runs of it are in the ledger, each its own
        `remeasure` row of experiment 0; their spread is the noise. Resumable: the ledger says
        how many ran. A tag whose experiments have started is not re-measured."""
        wanted, done = self.settings.noise_runs, len(baseline_runs(self.rows))
        if done >= wanted or any(r.experiment > 0 for r in self.rows):
            return
        source = self.worktree.read_train()
        for run in range(done + 1, wanted + 1):
            self._run_again(0, source, run - 1, f"baseline run {run} of {wanted}")
        values = [r.metric for r in baseline_runs(self.rows) if r.metric is not None]
        noise = self.noise
        self.run_dir.event("noise", runs=len(values), std=noise, values=values)
        if noise is None:
            self.view.message(f"noise: not measured ({len(values)} valid baseline runs)")
            return
        threshold, best = self.settings.threshold(), self.best
        rule = (
            f"; a keep must beat the best by more than {threshold} = {self.margin(best.metric):.3g}"
            if threshold and best is not None and best.metric is not None
            else ""
        )
        self.view.message(
            f"noise: {self.metric} varies by {noise:.3g} (standard deviation of {len(values)} "
            f"baseline runs){rule}"
        )

    def _remeasure(self) -> None:
        """Run the best again; its value becomes the mean of all its runs."""
        best = self.best
        assert best is not None
        before, runs = best.metric, runs_of_best(self.rows, self.settings.confirm_runs)
        index = sum(
            1
            for r in self.rows
            if r.status is Verdict.REMEASURE and r.experiment == best.experiment
        )
        what = "the baseline" if best.experiment == 0 else f"#{best.experiment}"
        self._run_again(
            best.experiment,
            self.worktree.read_train(),
            index + 1,
            f"remeasure of {what} (mean of {runs} runs was {_show(before)})",
        )
        after = self.best
        self.view.message(
            f"remeasured {what}: its value is now {_show(after.metric if after else None)}, "
            f"the mean of {runs_of_best(self.rows, self.settings.confirm_runs)} runs"
        )

    def _run_again(self, number: int, source: str, index: int, description: str) -> None:
        """One more run of a kept train.py: a `remeasure` row, never a candidate, no cost."""
        measurement = self._pausing(lambda: self._measure(number, source, remeasure=index))
        crashpoint("remeasured")
        self._record_remeasure(number, index, description, measurement)

    def _record_remeasure(
        self, number: int, index: int, description: str, measurement: Measurement
    ) -> None:
        commit = self.best_commit or self.worktree.head()
        if measurement.train.status is not RunStatus.OK or measurement.metric is None:
            failed = decide(measurement.train.status, measurement.metric, None, self.direction)
            description += f" [{failed.value}, not counted" + (
                f": {measurement.note}]" if measurement.note else "]"
            )
        evaluation = measurement.evaluation.wall_s if measurement.evaluation else 0.0
        row = ExperimentRecord(
            experiment=number,
            commit=commit,
            metric=measurement.metric,
            status=Verdict.REMEASURE,
            description=description,
            seconds=measurement.train.wall_s + evaluation,
            memory_gb=measurement.train.peak_memory_bytes / 1024**3,
        )
        self._append(row, commit=commit, metric=measurement.metric, run=index)
        crashpoint("remeasure recorded")

    def _infer_metric(self, measurement: Measurement) -> Measurement:
        """Settle the metric and its direction from what the baseline printed (or evaluate
        returned) and program.md; say what was chosen and why."""
        where = "evaluate()'s result" if self.settings.protected else "train.py's output"
        choice = infer_metric(
            list(measurement.metrics),
            self.task.program,
            self.settings.metric,
            self.settings.direction,
            where=where,
        )
        self.settings = self.settings.with_metric(choice.metric, choice.direction, choice.reason)
        self.experimenter.settings = self.settings
        self.save_settings(self.settings)
        self.run_dir.event("metric", metric=choice.metric, direction=choice.direction.value)
        self.view.message(f"metric: {choice.metric} ({choice.direction.value}): {choice.reason}")
        return with_metric(measurement, choice.metric)

    def _baseline_failure(self, verdict: Verdict, measurement: Measurement, problem: str) -> str:
        train = measurement.train
        why = problem or (
            f"{verdict.value}, exit {train.exit_code}"
            + (f": {measurement.note}" if measurement.note else "")
        )
        output = self.run_dir.experiment_dir(0) / "output.txt"
        tail = _last_lines(train.output_tail, 15) if train.status is not RunStatus.OK else ""
        said = f"\nThe evaluator said: {measurement.detail}" if measurement.detail else ""
        return (
            f"{self.task.root / 'train.py'}: the unmodified baseline gave no valid metric ({why}); "
            f"fix it, commit, and run again. Output: {output}"
            + (f" and {output.with_name('evaluate.txt')}" if measurement.evaluation else "")
            + (f"\nIts output ends:\n{tail}" if tail else "")
            + said
        )

    def _experiment(self, number: int) -> None:
        """Propose, run, decide and record one experiment."""
        best = self.best
        assert best is not None
        candidate = self._propose(number)
        if candidate is None:
            return  # recorded as skipped
        try:
            measurement, verdict = self._try(number, candidate, best)
        except BaseException:
            # An abort or a stop while paused: never leave a candidate as the branch head.
            self.worktree.discard(candidate.commit, self.best_commit, number)
            self.run_dir.event("interrupted", experiment=number, commit=candidate.commit)
            raise
        if verdict is Verdict.KEEP:
            self.best_commit = candidate.commit
        else:
            self.worktree.discard(candidate.commit, self.best_commit, number)
        crashpoint("git decided")
        self._record(number, candidate.commit, measurement, verdict, candidate.description)
        crashpoint("recorded")

    def _propose(self, number: int) -> _Candidate | None:
        """Ask the agent for a change; a runnable one is committed as the candidate, anything
        else is recorded as skipped (None). StopNight when the agent ends the night."""
        base_source = self.worktree.read_train()
        self.view.phase(number, "proposing")
        started = time.monotonic()
        allowed = self.settings.agent.proposal_timeout
        editor = self._editor(base_source, started + allowed)
        context = replace(self._context(number, base_source), deadline=started + allowed)
        try:
            proposal = self.agent.propose(context, editor)
        except StopNight as stop:
            self.run_dir.event("stop", experiment=number, reason=str(stop))
            raise
        if proposal is None:
            raise StopNight("the agent has no more proposals")
        seconds = time.monotonic() - started
        self.usage = proposal.usage
        description = run_files.log_proposal(self.run_dir, number, proposal, editor, seconds)
        if proposal.notes is not None:
            agent_context.write_notes(self.run_dir, untrusted.valid(proposal.notes))
        crashpoint("proposal logged")
        problem = (
            f"proposal_timeout of {allowed:g}s reached"
            if seconds > allowed
            else proposal.not_run or _unrunnable(base_source, editor.source)
        )
        if problem:
            self._skip(number, description, problem)
            crashpoint("skip recorded")
            return None
        commit = self.worktree.commit_candidate(editor.source, description)
        crashpoint("candidate committed")
        self.run_dir.write_artifact(
            number, "diff.patch", self.worktree.diff(self.best_commit, commit)
        )
        return _Candidate(editor, commit, description)

    def _try(
        self, number: int, candidate: _Candidate, best: ExperimentRecord
    ) -> tuple[Measurement, Verdict]:
        """Measure the candidate (a crash may be repaired by the agent first), then decide; a
        new best is confirmed when confirm_runs asks for it."""
        assert best.metric is not None
        margin = self.margin(best.metric)
        repairs = 0
        while True:
            measurement = self._pausing(partial(self._measure, number, candidate.editor.source))
            crashpoint("measured")
            verdict = decide(
                measurement.train.status, measurement.metric, best.metric, self.direction, margin
            )
            crashed = measurement.train.status is RunStatus.CRASH
            if not crashed or repairs >= self._repairs_allowed:
                break
            if not self._repair(number, candidate, repairs + 1):
                break
            repairs += 1
        if repairs:
            candidate.description += f" [repaired {repairs}x]"
        if verdict is Verdict.DISCARD and _better(measurement.metric, best.metric, self):
            candidate.description += (
                f" [within the noise: {measurement.metric:.6g} is not better than "
                f"{best.metric:.6g} by more than {margin:.3g} ({self.settings.min_improvement})]"
            )
        if verdict is Verdict.KEEP and self.settings.confirm_runs:
            measurement, verdict = self._confirm(number, candidate.editor.source, measurement, best)
            candidate.description += f" [{measurement.note}]"
        return measurement, verdict

    def _editor(self, source: str, deadline: float) -> TrainEditor:
        edit = self.settings.edit
        return TrainEditor(source, edit.max_calls, edit.max_bytes, deadline)

    @property
    def _repairs_allowed(self) -> int:
        if not isinstance(self.agent, Repairer):
            return 0
        return getattr(self.settings.agent, "repair_attempts", 0)

    def _repair(self, number: int, candidate: _Candidate, attempt: int) -> bool:
        """Show the crash to the agent in the conversation that proposed it; if it fixes the
        candidate, the fix takes its place (same tool, scope and sandbox). False: not repaired."""
        self.view.phase(number, "repairing")
        asked = self._ask_repair(number, candidate.editor.source)
        if self._repair_problem(asked, attempt):
            return False
        run_files.set_aside_crashed(self.run_dir, number, attempt)
        self.worktree.keep_ref(candidate.commit, number, kind=f"crashed/{attempt}")
        self.worktree.reset_to(self.best_commit)
        candidate.commit = self.worktree.commit_candidate(
            asked.editor.source, f"{candidate.description} [repair {attempt}]"
        )
        candidate.editor = asked.editor
        crashpoint("repair committed")
        self.run_dir.write_artifact(
            number, "diff.patch", self.worktree.diff(self.best_commit, candidate.commit)
        )
        return True

    def _ask_repair(self, number: int, source: str) -> AskedRepair:
        """The agent's fix of a crashed `source` (the crash's output tail is shown to it). Only
        reads the run folder, so a worker thread may call it while the loop goes on."""
        assert isinstance(self.agent, Repairer)
        started = time.monotonic()
        deadline = started + self.settings.agent.proposal_timeout
        editor = self._editor(source, deadline)
        tail = _last_lines(run_files.read_output(self.run_dir, number), 60)[-REPAIR_TAIL_CHARS:]
        spent = sum(r.cost_usd for r in self.rows)
        proposal = self.agent.repair(RepairRequest(number, "crash", tail, spent, deadline), editor)
        return AskedRepair(number, source, proposal, editor, started, deadline)

    def _repair_problem(self, asked: AskedRepair, attempt: int) -> str:
        """Log the repair; why it cannot run ("" when the fix is runnable)."""
        proposal, editor = asked.proposal, asked.editor
        if proposal is not None:
            self.usage += proposal.usage
            run_files.write_transcript(self.run_dir, asked.number, proposal, editor)
        problem = (
            "the agent could not continue its conversation"
            if proposal is None
            else "proposal_timeout reached"
            if time.monotonic() > asked.deadline
            else proposal.ended or proposal.not_run or _unrunnable(asked.source, editor.source)
        )
        self.run_dir.event(
            "repair",
            experiment=asked.number,
            attempt=attempt,
            seconds=round(time.monotonic() - asked.started, 3),
            outcome=problem or "repaired",
            calls=[untrusted.logged(o.call.input) for o in editor.outcomes],
            usage=asdict(proposal.usage) if proposal else None,
        )
        return problem

    def _context(
        self, number: int, source: str, running: tuple[RunningExperiment, ...] = ()
    ) -> ProposalContext:
        best = self.best
        threshold = self.settings.threshold()
        return ProposalContext(
            noise=self.noise,
            noise_runs=len(baseline_runs(self.rows)),
            margin=self.margin(best.metric) if best and best.metric is not None else 0.0,
            min_improvement=str(threshold) if threshold else "",
            experiment=number,
            program=self.task.program,
            prepare_source=self.task.prepare_source,
            train_source=source,
            metric=self.metric,
            direction=self.direction,
            history=list(self.rows),
            best=best,
            output_tails=agent_context.output_tails(self.run_dir, self.rows),
            best_diff=self.worktree.diff(self.rows[0].commit, self.best_commit),
            settings=agent_context.settings_lines(self.settings),
            remaining=agent_context.remaining(
                self.budget, self.rows, time.time(), getattr(self.settings.agent, "max_cost", None)
            ),
            numbers=agent_context.numbers(self.run_dir),
            diffs=agent_context.diffs(self.run_dir, self.rows),
            notes=agent_context.read_notes(self.run_dir),
            running=running,
        )

    def _confirm(
        self, number: int, source: str, first: Measurement, best: ExperimentRecord
    ) -> tuple[Measurement, Verdict]:
        """Re-run a new best `confirm_runs` times; every run must beat the previous best."""
        runs = [first]
        for index in range(1, self.settings.confirm_runs + 1):
            runs.append(self._pausing(partial(self._measure, number, source, index)))
        metrics = [r.metric if r.train.status is RunStatus.OK else None for r in runs]
        assert best.metric is not None
        verdict, metric, note = confirm(
            metrics,
            best.metric,
            self.direction,
            self.margin(best.metric),
            by_mean=self.settings.min_improvement is not None,
        )
        return combine_runs(runs, metric, note), verdict

    def _measure(
        self,
        number: int,
        source: str,
        confirmation: int = 0,
        remeasure: int = 0,
        devices: tuple[str, ...] | None = None,
    ) -> Measurement:
        """Train and score once. The agent's output file gets the training's output and the
        harness's own words on the evaluation; the evaluator's output, which may quote the
        private data, goes to evaluate.txt for the human (unless show_evaluator_output). The
        returned metric is rounded to metric_digits; events.jsonl keeps the full value."""
        phase = "confirming" if confirmation else "remeasuring" if remeasure else "training"
        self.view.phase(number, phase, self.settings.timeout)
        scratch = self.run_dir.scratch_dir(number)
        if confirmation or remeasure:  # a remeasure of #3 may overlap #3's own confirmation
            scratch = scratch.with_name(f"{scratch.name}-{confirmation}-{remeasure}")
        measurement = self.measurer.measure(source, scratch, devices)
        shown = round_metric(measurement.metric, self.settings.metric_digits)
        suffix = (
            f"-confirm-{confirmation}"
            if confirmation
            else f"-remeasure-{remeasure}"
            if remeasure
            else ""
        )
        run_files.write_outputs(
            self.run_dir,
            number,
            suffix,
            measurement,
            self.settings.metric,
            shown,
            self.settings.show_evaluator_output,
        )
        train = measurement.train
        self.run_dir.event(
            "run",
            experiment=number,
            confirmation=confirmation,
            **({"remeasure": remeasure} if remeasure else {}),
            train_status=train.status.value,
            exit_code=train.exit_code,
            train_seconds=train.wall_s,
            eval_seconds=measurement.evaluation.wall_s if measurement.evaluation else None,
            eval_status=measurement.evaluation.status.value if measurement.evaluation else None,
            metric=measurement.metric,
            rounded_metric=shown,
            metrics=measurement.metrics,
            note=measurement.note,
            detail=untrusted.logged(measurement.detail),
            protected=self.settings.protected,
            peak_memory_bytes=train.peak_memory_bytes,
            **({"where": measurement.where} if measurement.where else {}),
        )
        digits = self.settings.metric_digits
        metrics = {name: round_digits(value, digits) for name, value in measurement.metrics.items()}
        return replace(measurement, metric=shown, metrics=metrics)  # a metric inferred: rounded too

    def _record(
        self,
        number: int,
        commit: str,
        measurement: Measurement,
        verdict: Verdict,
        description: str,
        **details: Any,
    ) -> None:
        evaluation = measurement.evaluation.wall_s if measurement.evaluation else 0.0
        row = ExperimentRecord(
            experiment=number,
            commit=commit,
            metric=measurement.metric,
            status=verdict,
            description=description,
            seconds=measurement.train.wall_s + evaluation,
            memory_gb=measurement.train.peak_memory_bytes / 1024**3,
            cost_usd=self.usage.cost_usd,
        )
        self._append(
            row, commit=commit, metric=measurement.metric, best_commit=self.best_commit, **details
        )

    def _skip(self, number: int, description: str, problem: str) -> None:
        row = ExperimentRecord(
            number,
            "-",
            None,
            Verdict.SKIPPED,
            f"{description} [{problem}]",
            cost_usd=self.usage.cost_usd,
        )
        self._append(row, reason=problem)

    def _append(self, row: ExperimentRecord, **details: Any) -> None:
        self.run_dir.record(row)
        self.rows.append(row)
        self.run_dir.event(
            "decision", experiment=row.experiment, status=row.status.value, **details
        )
        self.view.result(row, self.best)
        if self.on_record is not None:
            self.on_record(row)


def _better(metric: float | None, best: float, night: Night) -> bool:
    return metric is not None and is_better(metric, best, night.direction)


def _show(metric: float | None) -> str:
    return "-" if metric is None else f"{metric:.6g}"


def _unrunnable(base: str, source: str) -> str:
    """Why the proposal is not run. The editor holds only sources that compiled in its child
    process; compiling again here is a cheap second look, whose every failure is a skip."""
    if source == base:
        return "train.py unchanged"
    try:
        compile(source, "train.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        return f"does not compile: {type(err).__name__}: {err}"
    return ""


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-count:])
