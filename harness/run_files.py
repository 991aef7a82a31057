"""What one experiment leaves in its folder of the run (`experiments/NNNN/`), written in one
place: transcript.json (the agent's conversation and calls), output.txt (what the agent may
read of a run), evaluate.txt (the evaluator's own output, for the human), and the crashed
run's files set aside when a repair replaces it. Everything the agent wrote is made printable
and bounded (`untrusted.logged`) before it is written.
"""

from __future__ import annotations

import json
from typing import Any

from harness import untrusted
from harness.edit_tool import TrainEditor
from harness.experiment import Measurement
from harness.ledger import RunDir
from harness.seams import Proposal


def logged_calls(editor: TrainEditor) -> list[dict[str, Any]]:
    return [
        {
            "input": untrusted.logged(o.call.input),
            "output": untrusted.logged(o.output),
            "is_error": o.is_error,
        }
        for o in editor.outcomes
    ]


def write_transcript(run_dir: RunDir, number: int, proposal: Proposal, editor: TrainEditor) -> None:
    """transcript.json: the agent's conversation and the calls of its latest editor (a repair's
    conversation holds the proposal's, so the latest write is the whole story)."""
    transcript = {
        "description": untrusted.logged(proposal.description),
        "ended": proposal.ended or "the agent replied",
        "calls": logged_calls(editor),
        "messages": untrusted.logged(proposal.transcript),
    }
    run_dir.write_artifact(number, "transcript.json", json.dumps(transcript, indent=1))


def log_proposal(
    run_dir: RunDir, number: int, proposal: Proposal, editor: TrainEditor, seconds: float
) -> str:
    """The transcript and the proposal's event; returns the one-line description."""
    description = untrusted.first_line(proposal.description) or "(no description)"
    write_transcript(run_dir, number, proposal, editor)
    run_dir.event(
        "proposal",
        experiment=number,
        description=description,
        seconds=round(seconds, 3),
        ended=proposal.ended or "the agent replied",
        calls=logged_calls(editor),
        usage=_usage(proposal),
    )
    return description


def set_aside_crashed(run_dir: RunDir, number: int, attempt: int) -> None:
    """Before a repaired candidate runs: the crashed run's files become *-crash-N.*."""
    folder = run_dir.experiment_dir(number)
    for name in ("output.txt", "evaluate.txt", "diff.patch"):
        if (folder / name).exists():
            stem, suffix = name.split(".")
            (folder / name).replace(folder / f"{stem}-crash-{attempt}.{suffix}")


def read_output(run_dir: RunDir, number: int) -> str:
    path = run_dir.experiment_dir(number) / "output.txt"
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def write_outputs(
    run_dir: RunDir,
    number: int,
    suffix: str,
    measurement: Measurement,
    metric: str | None,
    shown: float | None,
    show_evaluator: bool,
) -> None:
    """output{suffix}.txt for the agent, evaluate{suffix}.txt for the human."""
    text = agent_output(measurement, metric, shown, show_evaluator)
    run_dir.write_artifact(number, f"output{suffix}.txt", text)
    if measurement.evaluation is not None:
        run_dir.write_artifact(number, f"evaluate{suffix}.txt", evaluator_output(measurement))


def agent_output(
    measurement: Measurement, metric: str | None, shown: float | None, show: bool
) -> str:
    """What the agent may read of one run: the training's output, the evaluator's only with
    show_evaluator_output, and last (so a cut tail keeps it) the harness's words on the metric."""
    train = measurement.train
    text = (
        f"# train.py ({train.status.value}, exit {train.exit_code}, {train.wall_s:.1f}s)\n"
        f"{train.output_tail}"
    )
    if measurement.evaluation is not None and show:
        text += "\n# the evaluator's output (show_evaluator_output = true):\n"
        text += evaluator_output(measurement)
    elif measurement.evaluation is not None:
        text += "\n# (the evaluator's own output is kept for the human in evaluate.txt)"
    if shown is not None:
        return text + f"\n# overnight: {metric} = {shown:.6g}\n"
    if measurement.note:
        return text + f"\n# overnight: no valid metric: {measurement.note}\n"
    return text + "\n"


def evaluator_output(measurement: Measurement) -> str:
    ev = measurement.evaluation
    assert ev is not None
    head = f"# evaluate ({ev.status.value}, exit {ev.exit_code}, {ev.wall_s:.1f}s)\n"
    if measurement.detail:
        head += f"# {measurement.note}: {measurement.detail}\n"
    return head + ev.output_tail


def _usage(proposal: Proposal) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(proposal.usage)
