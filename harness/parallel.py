"""Many experiments at once (--workers N): measured in threads, decided one at a time.

The loop stays in one thread: it asks the agent for proposals (in a proposer thread, one at a
time, so a model's thinking overlaps the runs), starts each runnable candidate in a worker
thread with its own scratch folder and GPU slot, and settles each result as it arrives, in
completion order, against the best at that moment, with the same pure decision as one worker.

Git stays linear: a candidate is not committed when proposed but when decided, on top of the
best of that moment, so every commit on the branch is a train.py that was measured. Before it
starts, a candidate is written to its experiment folder (candidate.json), so a night killed
with experiments running reruns exactly those, from the same train.py, and numbers stay
0..n without gaps. Rows land in results.tsv in the order decisions were made; every reader
(status, the report, the resume) keys them by number.

The agent is called from one agent thread, one call at a time (a proposal, or the repair of a
crashed candidate in the conversation that proposed it), so no agent needs to be thread-safe.
"""

from __future__ import annotations

import difflib
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from harness import agent_context, run_files, untrusted
from harness.crashpoints import crashpoint
from harness.decision import confirm, decide
from harness.edit_tool import TrainEditor
from harness.experiment import Measurement, combine_runs
from harness.ledger import RunDir
from harness.loop import AskedRepair, Night, _better, _show, _unrunnable
from harness.model_config import MODEL_AGENTS
from harness.noise import remeasure_due, runs_of_best
from harness.runstate import write_state
from harness.seams import (
    Proposal,
    RunningExperiment,
    RunStatus,
    StopNight,
    Usage,
    Verdict,
)
from harness.workers import DevicePool

CANDIDATE_FILE = "candidate.json"  # a started candidate: rerun from it if the night dies


@dataclass
class _Job:
    """One experiment's measurements in flight: a candidate (and its confirmations) or a
    re-measurement of the best."""

    number: int
    kind: Literal["candidate", "remeasure"]
    source: str
    description: str
    proposed_from: int = 0  # the experiment number of the best it was proposed from
    proposed_from_commit: str = ""
    cost_usd: float = 0.0
    devices: tuple[str, ...] | None = None
    runs: list[Measurement] = field(default_factory=list)
    remeasure_index: int = 0
    repairs: int = 0
    base_source: str = ""  # the train.py it was proposed from

    @property
    def confirmation(self) -> int:
        """0 for a candidate's first run, then 1, 2, ... for its confirmations."""
        return len(self.runs) if self.kind == "candidate" else 0


@dataclass
class _Repaired:
    """What the agent answered when shown a candidate's crash."""

    job: _Job
    asked: AskedRepair | BaseException


@dataclass
class _Proposed:
    """What the proposer thread hands back."""

    number: int
    outcome: Proposal | BaseException | None
    editor: TrainEditor
    base_source: str
    seconds: float
    proposed_from: int
    proposed_from_commit: str


class ParallelNight(Night):
    """A Night whose experiments overlap: `settings.workers` measured at once."""

    def _next(self) -> None:
        """The whole rest of the night; it ends, as every night does, with a StopNight."""
        self._events: queue.Queue[
            tuple[_Job, Measurement | BaseException] | _Proposed | _Repaired
        ] = queue.Queue()
        self._agent_calls: queue.Queue[Callable[[], None]] = queue.Queue()
        threading.Thread(target=self._agent_thread, name="agent", daemon=True).start()
        self._devices = DevicePool(
            None
            if self.settings.gpu_slots is None
            else tuple(tuple(slot) for slot in self.settings.gpu_slots)
        )
        self._running: dict[int, _Job] = {}  # by id(job)
        self._ready: list[_Job] = []
        self._proposing: int | None = None
        self._stop_reason: str | None = None
        ahead = 1 if self.settings.agent.provider in MODEL_AGENTS else 0
        resumed = self._unfinished()
        if resumed:
            self.view.message(
                f"resumed: {len(resumed)} experiment(s) that were running when the night ended "
                f"run again from their saved train.py: "
                + ", ".join(f"#{job.number}" for job in resumed)
            )
        self._ready.extend(resumed)
        while True:
            if self.signals.requested:
                self._stop_reason = self._why_not_start(0)
            self._start_what_fits()
            if (
                self._stop_reason is None
                and self._proposing is None
                and len(self._running) + len(self._ready) < self.settings.workers + ahead
            ):
                self._begin_proposal()
            if self._ended():
                raise StopNight(self._stop_reason or "nothing left to run")
            try:
                event = self._events.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(event, _Proposed):
                self._proposal_done(event)
            elif isinstance(event, _Repaired):
                self._repair_done(event)
            else:
                self._measured(*event)

    def _ended(self) -> bool:
        """Nothing runs and nothing more will start. Candidates proposed but not started when a
        stop came stay saved: the next night of this tag runs them first. A proposal still
        being made is waited for, unless a signal asked to stop."""
        if self._running:
            return False
        if self._stop_reason is None:
            return self._proposing is None and not self._ready
        return self._proposing is None or bool(self.signals.requested)

    def _agent_thread(self) -> None:
        """Every call of the agent, one at a time, in order."""
        while True:
            self._agent_calls.get()()

    # --- starting ---------------------------------------------------------------------

    def _started_count(self) -> int:
        """Experiments started in this tag: in the ledger, running, ready or being proposed."""
        numbers = {r.experiment for r in self.rows if r.experiment > 0}
        numbers.update(j.number for j in self._running.values() if j.kind == "candidate")
        numbers.update(j.number for j in self._ready)
        if self._proposing is not None:
            numbers.add(self._proposing)
        return len(numbers)

    def _next_free_number(self) -> int:
        numbers = [r.experiment for r in self.rows]
        numbers += [j.number for j in self._running.values()] + [j.number for j in self._ready]
        return max(numbers, default=0) + 1

    def _why_not_start(self, started: int) -> str | None:
        if self.signals.requested:
            return (
                f"stopped by {self.signals.requested}; the running experiments finished; run "
                "the same tag again to continue"
            )
        return self.budget.exhausted(self.rows, time.time(), started=started)

    def _start_what_fits(self) -> None:
        while len(self._running) < self.settings.workers and not self.signals.requested:
            if self._remeasure_wanted():
                self._launch(self._remeasure_job())
                continue
            if not self._ready:
                return
            job = self._ready[0]
            reason = self._why_not_start(self._started_count() - 1)
            if reason is not None and not self._counted_already(reason):
                self._stop_reason = self._stop_reason or reason
                return
            self._ready.pop(0)
            self._pausing(self._check_disk)
            self._launch(job)

    def _counted_already(self, reason: str) -> bool:
        """A ready candidate was counted when it was proposed: --max-experiments lets it run."""
        return reason.startswith("reached --max-experiments") and not self.signals.requested

    def _remeasure_wanted(self) -> bool:
        return (
            self._stop_reason is None
            and not self.signals.requested
            and not any(j.kind == "remeasure" for j in self._running.values())
            and remeasure_due(self.rows, self.settings.remeasure_best_every)
        )

    def _remeasure_job(self) -> _Job:
        best = self.best
        assert best is not None
        index = sum(
            1
            for r in self.rows
            if r.status is Verdict.REMEASURE and r.experiment == best.experiment
        )
        what = "the baseline" if best.experiment == 0 else f"#{best.experiment}"
        runs = runs_of_best(self.rows, self.settings.confirm_runs)
        return _Job(
            number=best.experiment,
            kind="remeasure",
            source=self.worktree.read_train(),
            description=f"remeasure of {what} (mean of {runs} runs was {_show(best.metric)})",
            remeasure_index=index + 1,
        )

    def _launch(self, job: _Job) -> None:
        if job.devices is None:
            job.devices = self._devices.take()
        self._running[id(job)] = job
        if job.kind == "candidate" and not job.runs:
            self.run_dir.event(
                "started",
                experiment=job.number,
                proposed_from=job.proposed_from,
                devices=list(job.devices) if job.devices else None,
                running=sorted(j.number for j in self._running.values()),
            )
        self._say_running()
        threading.Thread(
            target=self._measure_in_thread,
            args=(job,),
            name=f"experiment-{job.number}",
            daemon=True,  # a second Ctrl-C must not wait for them: the sandbox removes their runs
        ).start()

    def _measure_in_thread(self, job: _Job) -> None:
        try:
            measurement = self._pausing(
                lambda: self._measure(
                    job.number,
                    job.source,
                    confirmation=job.confirmation,
                    remeasure=job.remeasure_index,
                    devices=job.devices,
                )
            )
            self._events.put((job, measurement))
        except BaseException as err:  # handed to the loop's thread, which re-raises it
            self._events.put((job, err))

    # --- proposing --------------------------------------------------------------------

    def _begin_proposal(self) -> None:
        reason = self._why_not_start(self._started_count())
        if reason is not None:
            self._stop_reason = reason
            return
        number = self._next_free_number()
        self._proposing = number
        base = self.worktree.read_train()
        best = self.best
        assert best is not None
        self.view.phase(number, "proposing")
        started = time.monotonic()
        allowed = self.settings.agent.proposal_timeout
        editor = self._editor(base, started + allowed)
        running = tuple(
            RunningExperiment(j.number, j.description, j.proposed_from)
            for j in [*self._running.values(), *self._ready]
            if j.kind == "candidate"
        )
        context = replace(self._context(number, base, running), deadline=started + allowed)
        best_number, best_commit = best.experiment, self.best_commit

        def propose() -> None:
            try:
                outcome: Proposal | BaseException | None = self.agent.propose(context, editor)
            except BaseException as err:
                outcome = err
            self._events.put(
                _Proposed(
                    number,
                    outcome,
                    editor,
                    base,
                    time.monotonic() - started,
                    best_number,
                    best_commit,
                )
            )

        self._agent_calls.put(propose)

    def _proposal_done(self, done: _Proposed) -> None:
        self._proposing = None
        number, outcome = done.number, done.outcome
        if isinstance(outcome, StopNight):
            self.run_dir.event("stop", experiment=number, reason=str(outcome))
            self._stop_reason = self._stop_reason or str(outcome)
            return
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is None:
            self._stop_reason = self._stop_reason or "the agent has no more proposals"
            return
        self.usage = outcome.usage
        description = run_files.log_proposal(
            self.run_dir, number, outcome, done.editor, done.seconds
        )
        if outcome.notes is not None:
            agent_context.write_notes(self.run_dir, untrusted.valid(outcome.notes))
        allowed = self.settings.agent.proposal_timeout
        problem = (
            f"proposal_timeout of {allowed:g}s reached"
            if done.seconds > allowed
            else outcome.not_run or _unrunnable(done.base_source, done.editor.source)
        )
        if problem:
            self._skip(number, description, problem)
            return
        job = _Job(
            number=number,
            kind="candidate",
            source=done.editor.source,
            description=description,
            proposed_from=done.proposed_from,
            proposed_from_commit=done.proposed_from_commit,
            cost_usd=outcome.usage.cost_usd,
            base_source=done.base_source,
        )
        self._save_candidate(job)
        crashpoint("candidate saved")
        self._ready.append(job)

    def _save_candidate(self, job: _Job) -> None:
        diff = "".join(
            difflib.unified_diff(
                job.base_source.splitlines(keepends=True),
                job.source.splitlines(keepends=True),
                "a/train.py",
                "b/train.py",
            )
        )
        self.run_dir.write_artifact(job.number, "diff.patch", diff)
        saved = {
            "source": job.source,
            "description": job.description,
            "proposed_from": job.proposed_from,
            "proposed_from_commit": job.proposed_from_commit,
            "cost_usd": job.cost_usd,
            "repairs": job.repairs,
            "base_source": job.base_source,
        }
        folder = self.run_dir.experiment_dir(job.number)
        tmp = folder / f"{CANDIDATE_FILE}.tmp"
        tmp.write_text(json.dumps(saved), encoding="utf-8")
        tmp.replace(folder / CANDIDATE_FILE)

    def _unfinished(self) -> list[_Job]:
        """Candidates saved by a night that died before their rows: run again, in order."""
        recorded = {r.experiment for r in self.rows}
        jobs = []
        for path in sorted(self.run_dir.root.glob(f"experiments/*/{CANDIDATE_FILE}")):
            try:
                number = int(path.parent.name)
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                continue
            if number <= 0 or number in recorded:
                continue
            jobs.append(
                _Job(
                    number=number,
                    kind="candidate",
                    source=str(saved["source"]),
                    description=str(saved["description"]),
                    proposed_from=int(saved.get("proposed_from", 0)),
                    proposed_from_commit=str(saved.get("proposed_from_commit", "")),
                    cost_usd=float(saved.get("cost_usd", 0.0)),
                    repairs=int(saved.get("repairs", 0)),
                    base_source=str(saved.get("base_source", "")),
                )
            )
        return jobs

    # --- settling ---------------------------------------------------------------------

    def _measured(self, job: _Job, result: Measurement | BaseException) -> None:
        if isinstance(result, BaseException):
            raise result
        if job.kind == "remeasure":
            self._finish(job)
            self._record_remeasure(job.number, job.remeasure_index, job.description, result)
            after = self.best
            self.view.message(
                f"remeasured {job.description.split(' (')[0].removeprefix('remeasure of ')}: its "
                f"value is now {_show(after.metric if after else None)}, the mean of "
                f"{runs_of_best(self.rows, self.settings.confirm_runs)} runs"
            )
            return
        job.runs.append(result)
        if len(job.runs) == 1 and self._repairable(job, result):
            self._ask_for_repair(job)
            return
        best = self.best
        assert best is not None and best.metric is not None
        margin = self.margin(best.metric)
        if len(job.runs) == 1:
            verdict = decide(
                result.train.status, result.metric, best.metric, self.direction, margin
            )
            if verdict is Verdict.KEEP and self.settings.confirm_runs:
                self._relaunch(job)
                return
            measurement = result
            if verdict is Verdict.DISCARD and _better(result.metric, best.metric, self):
                job.description += (
                    f" [within the noise: {result.metric:.6g} is not better than "
                    f"{best.metric:.6g} by more than {margin:.3g} "
                    f"({self.settings.min_improvement})]"
                )
        elif len(job.runs) <= self.settings.confirm_runs:
            self._relaunch(job)
            return
        else:
            metrics = [r.metric if r.train.status is RunStatus.OK else None for r in job.runs]
            verdict, metric, note = confirm(
                metrics,
                best.metric,
                self.direction,
                margin,
                by_mean=self.settings.min_improvement is not None,
            )
            measurement = combine_runs(job.runs, metric, note)
            job.description += f" [{note}]"
        self._finish(job)
        self._settle(job, measurement, verdict)

    def _repairable(self, job: _Job, result: Measurement) -> bool:
        return result.train.status is RunStatus.CRASH and job.repairs < self._repairs_allowed

    def _ask_for_repair(self, job: _Job) -> None:
        """The agent fixes its crashed candidate while the slot waits for the fix."""
        self.view.phase(job.number, "repairing")
        source = job.source

        def repair() -> None:
            try:
                asked: AskedRepair | BaseException = self._ask_repair(job.number, source)
            except BaseException as err:
                asked = err
            self._events.put(_Repaired(job, asked))

        self._agent_calls.put(repair)

    def _repair_done(self, done: _Repaired) -> None:
        job, asked = done.job, done.asked
        if isinstance(asked, BaseException):
            raise asked
        attempt = job.repairs + 1
        self.usage = Usage()
        problem = self._repair_problem(asked, attempt)
        job.cost_usd += self.usage.cost_usd
        if problem:
            crashed = job.runs[0]
            self._finish(job)
            self._settle(job, crashed, Verdict.CRASH)
            return
        run_files.set_aside_crashed(self.run_dir, job.number, attempt)
        crashed_commit = self.worktree.commit_candidate(
            job.source, f"{job.description} [crashed, repair {attempt} follows]"
        )
        self.worktree.keep_ref(crashed_commit, job.number, kind=f"crashed/{attempt}")
        self.worktree.reset_to(self.best_commit)
        job.repairs, job.runs = attempt, []
        job.source = asked.editor.source
        self._save_candidate(job)
        crashpoint("repair saved")
        self._relaunch(job)

    def _relaunch(self, job: _Job) -> None:
        """The next confirmation run of a candidate that beat the best, in its own slot."""
        self._running.pop(id(job))
        self._launch(job)

    def _finish(self, job: _Job) -> None:
        self._running.pop(id(job))
        self._devices.give_back(job.devices)
        self._say_running()

    def _say_running(self) -> None:
        """state.json names the experiments being measured, for `overnight status`."""
        numbers = sorted({j.number for j in self._running.values()})
        write_state(self.run_dir.root, "running", running=numbers)

    def _settle(self, job: _Job, measurement: Measurement, verdict: Verdict) -> None:
        """Commit the measured train.py on top of the best of this moment; keep it or not."""
        if job.repairs:
            job.description += f" [repaired {job.repairs}x]"
        commit = self.worktree.commit_candidate(job.source, job.description)
        crashpoint("candidate committed")
        if verdict is Verdict.KEEP:
            self.best_commit = commit
        else:
            self.worktree.discard(commit, self.best_commit, job.number)
        crashpoint("git decided")
        self.usage = Usage(cost_usd=job.cost_usd)
        self._record(
            job.number,
            commit,
            measurement,
            verdict,
            job.description,
            proposed_from=job.proposed_from,
        )
        crashpoint("recorded")

    def _stop_requested(self, name: str) -> None:
        self.run_dir.event("stop_requested", signal=name)
        self.view.message(
            f"{name}: starting nothing new, finishing the running experiments, then stopping "
            "(again to abort now)"
        )


def has_unfinished(run_dir: RunDir) -> bool:
    """Whether a night of this tag died with candidates running (they must run again)."""
    recorded = {r.experiment for r in run_dir.rows()}
    return any(
        path.parent.name.isdigit() and int(path.parent.name) not in recorded
        for path in run_dir.root.glob(f"experiments/*/{CANDIDATE_FILE}")
    )
