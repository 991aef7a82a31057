"""The `replay` agent: proposals read from a JSONL script, for tests and for re-running a night.

One line a proposal: `{"description": "...", "calls": [<edit inputs>...]}`. Proposal k of the
night is line k of the file (the baseline is not a proposal), so a resumed night picks up where
it stopped. The night ends when the file ends. A script carries what a model could send, so it
is read as untrusted JSON (`untrusted.loads`: no unbounded nesting, no unreadable integer) and
its calls go to the editor as written, which guards its own seam.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import untrusted
from harness.errors import TaskError
from harness.seams import Editor, Proposal, ProposalContext, ToolCall


def load_script(path: Path) -> list[dict[str, Any]]:
    """The script's proposals, or a TaskError naming the line and what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise TaskError(
            f"{path}: cannot read the replay script ({err.strerror}); check --script"
        ) from err
    proposals = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = untrusted.loads(line)
        except json.JSONDecodeError as err:
            raise TaskError(
                f"{path}:{number}: not JSON ({err.msg}); one JSON object per line"
            ) from err
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("description", ""), str)
            or not isinstance(entry.get("calls", []), list)
        ):
            raise TaskError(
                f'{path}:{number}: expected {{"description": str, "calls": [edit inputs]}}'
            )
        proposals.append(entry)
    return proposals


class ReplayAgent:
    def __init__(self, script: Path) -> None:
        self.proposals = load_script(script)

    def propose(self, context: ProposalContext, editor: Editor) -> Proposal | None:
        index = context.experiment - 1
        if index >= len(self.proposals):
            return None
        entry = self.proposals[index]
        for number, call_input in enumerate(entry.get("calls", [])):
            editor.call(ToolCall(id=f"replay-{number}", input=call_input))
        return Proposal(description=entry.get("description", "") or "replayed change")
