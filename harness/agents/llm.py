"""The model agent: a fresh conversation per proposal, driving the `edit` tool until the model
answers without a tool call; that answer is the description.

Errors the model can fix (malformed arguments, an unknown tool or command, a refused edit) go
back to it as tool errors. A proposal ends after `max_tool_errors` of them in a row, or at the
editor's call limit. A turn cut at `max_output_tokens` has none of its calls applied. A refusal,
or an empty reply before any edit, is never run: the proposal is asked for once more in a fresh
conversation, and if that fails too it is recorded as skipped. `--max-cost` is checked before every call against the tag's spend so far, read
from the ledger, so it holds across restarts. No request outlives the proposal's deadline.
The model's turns are untrusted: each is made valid and bounded (`untrusted.plain`) before it
joins the conversation, so nothing it said can break the next request or the transcript; its
tool calls go to the editor as sent, which guards its own seam.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, cast

from harness import untrusted
from harness.agents.prompt import Prompt, build_prompt
from harness.edit_tool import EDIT_TOOL
from harness.errors import OvernightError
from harness.model_config import ModelAgentConfig
from harness.providers.base import (
    DeadlineReached,
    Message,
    Model,
    ModelRequest,
    ModelTurn,
    Text,
    ToolResult,
    ToolSpec,
    ToolUse,
)
from harness.providers.pricing import Prices
from harness.seams import (
    Editor,
    Proposal,
    ProposalContext,
    RepairRequest,
    StopNight,
    ToolCall,
    Usage,
)

EDIT = ToolSpec(
    str(EDIT_TOOL["name"]),
    str(EDIT_TOOL["description"]),
    cast(dict[str, Any], EDIT_TOOL["input_schema"]),
)


_KEPT_CONVERSATIONS = 32  # more than any worker count runs at once


class LLMAgent:
    def __init__(
        self,
        model: Model,
        config: ModelAgentConfig,
        prices: Prices | None,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.model = model
        self.config = config
        self.prices = prices
        self.log = log
        # The latest proposals' conversations by experiment, for a repair (with --workers N,
        # several candidates are out at once and each repair continues its own).
        self._talks: dict[int, _Conversation] = {}

    def propose(self, context: ProposalContext, editor: Editor) -> Proposal:
        spent = sum(r.cost_usd for r in context.history)  # this tag's, from the ledger
        first = self._attempt(context, editor, spent)
        if not first.not_run:
            return first
        self.log(f"experiment {context.experiment}: {first.not_run}; asking again, afresh")
        editor.restart()  # nothing of the refused attempt may run
        second = self._attempt(context, editor, spent + first.usage.cost_usd)
        return replace(
            second,
            transcript=[
                *first.transcript,
                {"role": "harness", "content": f"{first.not_run}: a fresh conversation follows"},
                *second.transcript,
            ],
            usage=first.usage + second.usage,
            not_run=f"{second.not_run} (twice)" if second.not_run else "",
        )

    def repair(self, request: RepairRequest, editor: Editor) -> Proposal | None:
        """Continue the proposal's conversation with the crash's output, so the model can fix
        its own mistake; None when that conversation cannot go on (it ended at a limit)."""
        talk = self._talks.get(request.experiment)
        if talk is None or talk.ended:
            return None
        talk.deadline = request.deadline
        before = talk.usage
        talk.add(Message("user", (Text(_repair_text(request)),)))
        fixed = self._converse(talk, editor, request.spent, request.experiment)
        return replace(fixed, usage=talk.usage - before)

    def _attempt(self, context: ProposalContext, editor: Editor, spent: float) -> Proposal:
        """One conversation, until the model replies without a tool call or a limit ends it."""
        talk = self._talks[context.experiment] = _Conversation(
            self._prompt(context), context.deadline
        )
        while len(self._talks) > _KEPT_CONVERSATIONS:
            del self._talks[min(self._talks)]
        return self._converse(talk, editor, spent, context.experiment)

    def _converse(
        self, talk: _Conversation, editor: Editor, spent: float, experiment: int
    ) -> Proposal:
        start = editor.source
        errors_in_row = 0
        while True:
            request = talk.request(self.config.max_output_tokens)
            over = self._over_budget(request, spent + talk.usage.cost_usd)
            if over and talk.usage.calls == 0:
                raise StopNight(over)
            if over:
                self.log(f"experiment {experiment}: {over}")
                return talk.proposal(f"(unfinished: {over})", ended=over)
            sent = self._complete(request, talk.usage)
            if sent is None:
                ended = "proposal_timeout reached"
                return talk.proposal(f"(unfinished: {ended})", ended=ended)
            turn = _safe(sent)
            talk.add(turn.message, turn)
            if turn.stop == "refusal":
                said = untrusted.one_line(turn.message.text, 200)
                why = f"the model refused ({said})" if said else "the model refused"
                return talk.proposal("(refused)", ended=why, not_run=why)
            empty = not turn.message.tool_uses and not turn.message.text.strip()
            if empty and turn.stop != "max_tokens" and editor.source == start:
                why = "the model's reply was empty"
                return talk.proposal("(empty reply)", ended=why, not_run=why)
            if not turn.message.tool_uses:
                return replace(talk.proposal(_description(turn)), notes=_notes(turn))
            if turn.stop == "max_tokens":  # a cut turn's calls may be cut too: none is applied
                results = [_not_applied(use) for use in turn.message.tool_uses]
            else:
                uses = zip(sent.message.tool_uses, turn.message.tool_uses, strict=True)
                results = [self._run(raw, use, editor) for raw, use in uses]
            for result in results:
                errors_in_row = errors_in_row + 1 if result.is_error else 0
            talk.add(Message("user", tuple(results)))
            if editor.calls_left == 0:
                ended = "the edit-call limit was reached"
                text = untrusted.first_line(turn.message.text)
                return talk.proposal(text or f"(unfinished: {ended})", ended=ended)
            if errors_in_row >= self.config.max_tool_errors:
                ended = f"{errors_in_row} failed tool calls in a row"
                return talk.proposal(f"(unfinished: {ended})", ended=ended)

    def _prompt(self, context: ProposalContext) -> Prompt:
        prompt = build_prompt(context, self.config.max_prompt_bytes)
        if prompt.size > self.config.max_prompt_bytes:
            self.log(
                f"the prompt is {prompt.size} bytes even with the least history, over "
                f"max_prompt_bytes = {self.config.max_prompt_bytes} (program.md, prepare.py and "
                "train.py alone are that large)"
            )
        return prompt

    def _complete(self, request: ModelRequest, usage: Usage) -> ModelTurn | None:
        """The model's turn, or None when the proposal's time ran out first."""
        try:
            return self.model.complete(request)
        except DeadlineReached:
            return None
        except OvernightError as err:  # the night stops; say what this proposal had spent
            if usage.calls:
                raise type(err)(
                    f"{err} (this proposal's {usage.calls} earlier calls cost "
                    f"${usage.cost_usd:.4f}, which the ledger does not show)"
                ) from err
            raise

    def _run(self, raw: ToolUse, use: ToolUse, editor: Editor) -> ToolResult:
        """One tool call: `use` is the safe copy, `raw` the input as sent, for the editor."""
        if use.name != EDIT.name:
            name = untrusted.one_line(use.name, 60)
            return ToolResult(use.id, f"unknown tool {name!r}: the only tool is `edit`", True)
        if use.error:
            return ToolResult(
                use.id, f'{use.error}; call edit with an object such as {{"command": "view"}}', True
            )
        outcome = editor.call(ToolCall(id=use.id, input=raw.input))
        return ToolResult(use.id, outcome.output, outcome.is_error)

    def _over_budget(self, request: ModelRequest, spent: float) -> str:
        """Why the next call may not be made under max_cost, or ""."""
        limit = self.config.max_cost
        if limit is None or self.prices is None:
            return ""
        worst = self.prices.most(request_bytes(request), request.max_output_tokens)
        if spent + worst <= limit:
            return ""
        return (
            f"reached --max-cost ${limit:g}: ${spent:.4f} spent in this tag, and the next call "
            f"could cost up to ${worst:.4f}"
        )


class _Conversation:
    """One proposal's messages, its transcript for transcript.json and its usage so far."""

    def __init__(self, prompt: Prompt, deadline: float | None = None) -> None:
        self.system = prompt.system
        self.deadline = deadline
        first = Message("user", (Text(prompt.task, cache=True), Text(prompt.experiment)))
        self.messages = [first]
        self.transcript: list[dict[str, Any]] = [
            {"role": "system", "content": prompt.system},
            _logged(first),
        ]
        self.usage = Usage()
        self.ended = ""  # why it ended, if not by the model's reply: then it cannot go on

    def request(self, max_output_tokens: int) -> ModelRequest:
        return ModelRequest(
            self.system, list(self.messages), [EDIT], max_output_tokens, self.deadline
        )

    def add(self, message: Message, turn: ModelTurn | None = None) -> None:
        self.messages.append(message)
        self.transcript.append(_logged(message, turn))
        if turn is not None:
            self.usage += _usage(turn)

    def proposal(self, description: str, ended: str = "", not_run: str = "") -> Proposal:
        self.ended = ended
        return Proposal(description, list(self.transcript), self.usage, ended, not_run)


# How much of one turn's reasoning transcript.json keeps (the API gets all of it back).
THINKING_CHARS = 20_000


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters of thinking not kept]"


def request_bytes(request: ModelRequest) -> int:
    """The size of what a request sends, for the cost bound (tool schema included)."""
    size = len(request.system.encode()) + sum(len(str(t.input_schema)) for t in request.tools)
    for message in request.messages:
        for block in message.content:
            if isinstance(block, Text):
                size += len(block.text.encode())
            elif isinstance(block, ToolResult):
                size += len(block.output.encode())
            else:
                size += len(str(block.input).encode())
    return size


def _safe(turn: ModelTurn) -> ModelTurn:
    """The turn with valid text, and tool inputs and the adapter's echo JSON-safe and bounded."""
    blocks: list[Text | ToolUse | ToolResult] = []
    for block in turn.message.content:
        if isinstance(block, Text):
            blocks.append(Text(untrusted.valid(block.text), block.cache))
        elif isinstance(block, ToolUse):
            safe_input = untrusted.plain(block.input)
            blocks.append(
                ToolUse(
                    untrusted.valid(block.id),
                    untrusted.valid(block.name),
                    safe_input if isinstance(safe_input, dict) else {},
                    block.error,
                    None if block.raw is None else untrusted.valid(block.raw),
                )
            )
    echo = None if turn.message.echo is None else untrusted.plain(turn.message.echo)
    thinking = untrusted.valid(turn.message.thinking)
    message = Message("assistant", tuple(blocks), echo=echo, thinking=thinking)
    return replace(turn, message=message)


def _repair_text(request: RepairRequest) -> str:
    return (
        f"Your change crashed (experiment {request.experiment}, {request.status}). The end of its "
        f"output:\n```\n{request.output_tail}\n```\nIf this is a mistake you can fix (a typo, a "
        "missing import, a shape mismatch), fix it with the `edit` tool: train.py is as you left "
        "it. Then reply with the one-line description again. If the idea itself cannot work, "
        "reply without an edit and it stays a crash."
    )


def _not_applied(use: ToolUse) -> ToolResult:
    return ToolResult(
        use.id,
        "not applied: your reply was cut at max_output_tokens, so this call may be cut too. "
        "Send a smaller edit (a str_replace of a few lines rather than a whole write).",
        True,
    )


def _notes(turn: ModelTurn) -> str | None:
    """What the final reply says after its first line: the model's new notes (None: none)."""
    text = turn.message.text.strip()
    _, _, rest = text.partition("\n")
    return rest.strip() or None


def _description(turn: ModelTurn) -> str:
    text = turn.message.text.strip()
    if text:
        return text
    if turn.stop == "max_tokens":
        return "(no description: the reply was cut at max_output_tokens)"
    return "(no description)"


def _usage(turn: ModelTurn) -> Usage:
    return Usage(
        calls=1,
        input_tokens=turn.usage.input_tokens,
        cached_input_tokens=turn.usage.cached_input_tokens,
        output_tokens=turn.usage.output_tokens,
        cost_usd=turn.cost_usd,
    )


def _logged(message: Message, turn: ModelTurn | None = None) -> dict[str, Any]:
    """A message as it goes into transcript.json, with the call's usage for the model's turns."""
    content: list[dict[str, Any]] = []
    if message.thinking:
        content.append({"type": "thinking", "text": _bounded(message.thinking, THINKING_CHARS)})
    for block in message.content:
        if isinstance(block, Text):
            content.append({"type": "text", "text": block.text})
        elif isinstance(block, ToolUse):
            content.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
                | ({"error": block.error} if block.error else {})
            )
        else:
            content.append(
                {
                    "type": "tool_result",
                    "id": block.id,
                    "output": block.output,
                    "is_error": block.is_error,
                }
            )
    entry: dict[str, Any] = {"role": message.role, "content": content}
    if turn is not None:
        entry["call"] = {
            "model": turn.model,
            "stop": turn.stop,
            "usage": asdict(turn.usage),
            "cost_usd": turn.cost_usd,
            "attempts": turn.attempts,
            "seconds": round(turn.seconds, 3),
        }
    return entry
