"""Does the model agent make every experiment count? Repair off (the old behaviour) against on.

A scripted model that reacts to what it is sent (over HTTP, in Anthropic's wire format, to the
real `anthropic` client) tunes the numeric constants of tasks/quickstart for a night of N
experiments (default 30), and makes the usual mistakes at a fixed rate:
  * one proposal in four has a typo that crashes (an undefined name after its edit); shown the
    traceback in the same conversation, it fixes it;
  * one in five repeats an edit that was already discarded;
  * one in seven has its first turn cut at max_tokens, its edit still whole.
The same night runs twice on fresh copies of the task, side by side: `repair_attempts = 0` and
the default (1). For each it prints the experiments that produced a valid metric, the keeps, the
best metric, the model calls, and the prompt: bytes of the first request per proposal and the
share of them that is the cacheable prefix (system prompt, tool schema, program.md,
prepare.py and the settings), with the ratios of the two nights.

Usage: .venv/bin/python bench/agent.py [--experiments N]
Nothing is asserted; nothing leaves this machine (the model is a server on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fake_llm_server import FakeLLM, Request, Step, cut, text, tool  # noqa: E402

from harness.cli import main as overnight  # noqa: E402
from harness.ledger import read_rows  # noqa: E402
from harness.seams import Verdict  # noqa: E402

KNOBS = ("LEARNING_RATE", "EPOCHS", "HIDDEN", "WEIGHT_DECAY", "INIT_SCALE", "BATCH_SIZE")
TYPO = "\nundefined_name"


class ScriptedModel:
    """Answers each request from what it holds, as a model with fixed habits would."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.proposals = 0
        self.tried: list[tuple[str, str]] = []  # (old, new) edits made so far
        self.edit: tuple[str, str] = ("", "")
        self.cut_done = False

    def __call__(self, request: Request) -> Step | None:
        messages = request.body["messages"]
        last = messages[-1]["content"]
        said = json.dumps(last)
        if len(messages) == 1:
            return self._start(last[0]["text"] + last[-1]["text"])
        if "Your change crashed" in said:
            return tool({"command": "str_replace", "old_str": TYPO, "new_str": ""})
        if "not applied: your reply was cut" in said:
            return self._call()
        if '"is_error": true' in said:
            return text("The edit did not apply; nothing to run")
        return text(f"{self.edit[1].split(' = ')[0]}: {self.edit[0]} -> {self.edit[1]}")

    def _start(self, prompt: str) -> Step:
        self.proposals += 1
        self.cut_done = False
        k = self.proposals
        values = dict(re.findall(r"^\s*\d+\t([A-Z_]+) = ([0-9.e-]+)$", prompt, re.M))
        if k % 5 == 0 and self.tried:
            old, new = self.rng.choice(self.tried)  # the same idea again
            if old.split(" = ")[0] in values:
                old = f"{old.split(' = ')[0]} = {values[old.split(' = ')[0]]}"
        else:
            name = self.rng.choice([n for n in KNOBS if n in values])
            value = float(values[name])
            factor = self.rng.choice((0.5, 0.7, 1.4, 2.0))
            is_int = name in ("EPOCHS", "HIDDEN", "BATCH_SIZE")
            changed = max(1, round(value * factor)) if is_int else round(value * factor, 6)
            old, new = f"{name} = {values[name]}", f"{name} = {changed}"
        self.edit = (old, new)
        self.tried.append((old, new))
        if k % 7 == 0:
            self.cut_done = True
            return cut(self._call())
        return self._call()

    def _call(self) -> Step:
        old, new = self.edit
        typo = TYPO if self.proposals % 4 == 0 else ""
        return tool({"command": "str_replace", "old_str": old, "new_str": new + typo})


def night(repair_attempts: int, experiments: int, workdir: Path) -> dict[str, float]:
    task = workdir / f"repair-{repair_attempts}"
    shutil.copytree(
        ROOT / "tasks" / "quickstart", task, ignore=shutil.ignore_patterns(".overnight")
    )
    model = ScriptedModel(seed=7)
    with FakeLLM(responder=model) as llm:
        os.environ["ANTHROPIC_BASE_URL"] = llm.url
        agent = (
            '\n[agent]\nprovider = "anthropic"\nmodel = "claude-bench"\n'
            f"repair_attempts = {repair_attempts}\nretry_initial_seconds = 0.02\n"
            "[agent.prices]\ninput = 3.0\noutput = 15.0\n"
        )
        (task / "overnight.toml").write_text((task / "overnight.toml").read_text() + agent)
        code = overnight(["run", str(task), "--tag", "b", "--max-experiments", str(experiments)])
        requests = [r.body for r in llm.model_requests()]
    if code != 0:
        raise SystemExit(f"the night with repair_attempts = {repair_attempts} failed ({code})")
    rows = [r for r in read_rows(task / ".overnight/b/results.tsv") if r.experiment > 0]
    valid = [r for r in rows if r.status in (Verdict.KEEP, Verdict.DISCARD)]
    firsts = [b for b in requests if len(b["messages"]) == 1]
    sizes = [len(json.dumps(b)) for b in firsts]
    stable = [
        len(json.dumps([b["system"], b["tools"], b["messages"][0]["content"][0]])) for b in firsts
    ]
    metrics = [r.metric for r in rows if r.status is Verdict.KEEP and r.metric is not None]
    baseline = read_rows(task / ".overnight/b/results.tsv")[0].metric or 1.0
    return {
        "valid": len(valid),
        "keeps": sum(1 for r in rows if r.status is Verdict.KEEP),
        "crashes": sum(1 for r in rows if r.status is Verdict.CRASH),
        "best / baseline": (min(metrics) if metrics else baseline) / baseline,
        "model calls": len(requests),
        "prompt bytes": statistics.median(sizes),
        "cacheable share": statistics.median(s / t for s, t in zip(stable, sizes, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("ANTHROPIC_API_KEY", "bench")
    with tempfile.TemporaryDirectory(prefix="overnight-bench-agent-") as folder:
        old = night(0, args.experiments, Path(folder))
        new = night(1, args.experiments, Path(folder))
    print(f"\n{args.experiments} experiments on tasks/quickstart, scripted model (seed 7)")
    print(f"{'':18}{'repair off':>12}{'repair on':>12}{'on / off':>10}")
    for key in old:
        ratio = new[key] / old[key] if old[key] else float("nan")
        print(f"{key:18}{old[key]:>12.4g}{new[key]:>12.4g}{ratio:>10.3f}")


if __name__ == "__main__":
    main()
