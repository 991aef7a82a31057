"""What a model's odd turns do to a night: a turn cut at max_tokens, a refusal, an empty reply,
arguments that are not JSON, the edit-call limit, and thinking kept for the human. The real SDK
clients talk HTTP to a scripted model; every change runs in real containers on real git."""

from __future__ import annotations

import json

import pytest
from conftest import events, git, results, run_cli
from fake_llm_server import FakeLLM, cut, guard_network, refusal, text, tool
from test_model_nights import agent_toml, model_task

from harness.seams import Verdict

BAD_JSON = '{"command": "view", '


def replace(old: str, new: str, **kw) -> object:
    return tool({"command": "str_replace", "old_str": old, "new_str": new}, **kw)


@pytest.fixture(autouse=True)
def model_env(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with guard_network():
        yield


def train_at(task, commit: str) -> str:
    return git(task, "show", f"{commit}:train.py")


def assistant_calls(kind: str, body: dict) -> list:
    """The tool calls of the assistant turns a request sent back, in its wire format."""
    if kind == "anthropic":
        return [
            b
            for m in body["messages"]
            if m["role"] == "assistant"
            for b in m["content"]
            if b["type"] == "tool_use"
        ]
    if kind == "responses":
        return [i for i in body["input"] if i.get("type") == "function_call"]
    return [
        c for m in body["messages"] if m["role"] == "assistant" for c in m.get("tool_calls", [])
    ]


@pytest.mark.parametrize("kind", ["anthropic", "openai", "responses", "litellm"])
def test_cut_turns_refusals_empty_replies_bad_json_and_the_call_limit_waste_no_experiment(
    kind, tmp_path, capsys, monkeypatch, no_leftover_containers
):
    script = [
        # 1: arguments that are not JSON (Anthropic's are an object: an unknown command there),
        # then a turn cut at max_tokens whose edit happens to be whole, then the real edit.
        tool({"command": "fly"}) if kind == "anthropic" else tool({}, raw_arguments=BAD_JSON),
        cut(replace("EPOCHS = 4", "EPOCHS = 40")),
        replace("EPOCHS = 4", "EPOCHS = 5", thinking="Four epochs look too few to converge."),
        text("More epochs"),
        # 2: an edit, then a refusal: asked again afresh, the new attempt runs alone.
        replace("HIDDEN = 32", "HIDDEN = 33"),
        refusal("I would rather not."),
        replace("WEIGHT_DECAY = 0.01", "WEIGHT_DECAY = 0.02"),
        text("More weight decay"),
        # 3: refused twice; 4: empty twice.
        refusal(),
        refusal(),
        text(""),
        text(""),
        # 5: the third edit call reaches max_calls = 3; the model is not called again.
        replace("BATCH_SIZE = 128", "BATCH_SIZE = 64"),
        tool({"command": "view"}),
        tool({"command": "view"}),
        text("never asked for"),
    ]
    with FakeLLM(script) as llm:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        task = model_task(tmp_path, agent_toml(kind, llm.url) + "\n[edit]\nmax_calls = 3\n")
        code, out = run_cli("run", str(task), "--tag", "t", "--max-experiments", "5", capsys=capsys)
        requests = [r.body for r in llm.model_requests()]
    assert code == 0, out
    rows = {r.experiment: r for r in results(task, "t")}
    assert len(requests) == 15

    # Unreadable arguments went back as the model wrote them, next to the error.
    sent_back = assistant_calls(kind, requests[1])[-1]
    if kind == "anthropic":
        assert sent_back["input"] == {"command": "fly"} and "fly" in json.dumps(requests[1])
    elif kind == "responses":
        assert sent_back["arguments"] == BAD_JSON
    else:
        assert sent_back["function"]["arguments"] == BAD_JSON
    if kind != "anthropic":
        assert "not valid JSON" in json.dumps(requests[1])
    # The cut turn's edit was never applied; the model was told why.
    assert "not applied: your reply was cut" in json.dumps(requests[2])
    first = train_at(task, rows[1].commit)
    assert "EPOCHS = 5" in first and "EPOCHS = 40" not in first
    assert rows[1].description == "More epochs"
    transcript = (task / ".overnight/t/experiments/0001/transcript.json").read_text()
    if kind in ("anthropic", "responses"):
        assert "Four epochs look too few to converge." in transcript

    # The refused attempt's edit is gone; the fresh attempt's change is what ran.
    second = train_at(task, rows[2].commit)
    assert "WEIGHT_DECAY = 0.02" in second and "HIDDEN = 32" in second
    assert rows[2].description == "More weight decay"
    assert (
        "fresh conversation" in (task / ".overnight/t/experiments/0002/transcript.json").read_text()
    )

    ran = {e["experiment"] for e in events(task, "t") if e["event"] == "run"}
    assert rows[3].status is Verdict.SKIPPED and 3 not in ran
    assert "the model refused" in rows[3].description and "(twice)" in rows[3].description
    assert rows[4].status is Verdict.SKIPPED and 4 not in ran
    assert "reply was empty (twice)" in rows[4].description

    assert 5 in ran and "BATCH_SIZE = 64" in train_at(task, rows[5].commit)
    proposal = [e for e in events(task, "t") if e["event"] == "proposal"][-1]
    assert proposal["experiment"] == 5 and proposal["ended"] == "the edit-call limit was reached"


@pytest.mark.parametrize("kind", ["anthropic", "openai", "responses", "litellm"])
def test_the_model_is_told_the_resolved_settings_the_history_and_its_notes_across_a_resume(
    kind, tmp_path, capsys, monkeypatch, no_leftover_containers
):
    crash = ("started = time.time()", "started = time.time()\nundefined_name")
    script = [
        replace("LEARNING_RATE = 0.01", "LEARNING_RATE = 0.02"),
        text("Raise the learning rate\nLR 0.02 looked promising; try 0.03 next."),
        replace(*crash),
        text("Touch an undefined name"),
        text("That cannot be fixed"),  # shown the crash (a repair), it leaves it
        text("Nothing more"),  # experiment 3: skipped, unchanged
        text("Still nothing"),  # experiment 4, after the resume
    ]
    with FakeLLM(script) as llm:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        extra = "\ntime_budget = 7\ntimeout = 50\n"
        task = model_task(tmp_path, agent_toml(kind, llm.url) + "\n[edit]\nmax_calls = 9\n")
        config = task / "overnight.toml"
        config.write_text(extra + config.read_text())
        code, out = run_cli("run", str(task), "--tag", "c", "--max-experiments", "3", capsys=capsys)
        assert code == 0, out
        code, out = run_cli("run", str(task), "--tag", "c", "--max-experiments", "4", capsys=capsys)
        assert code == 0, out
        requests = [json.dumps(r.body) for r in llm.model_requests()]
    rows = {r.experiment: r for r in results(task, "c")}
    assert rows[2].status is Verdict.CRASH
    third, fourth = requests[5], requests[6]
    # The resolved settings, not prepare.py's TIME_BUDGET = 10.
    for request in (requests[0], third):
        assert "time budget: 7s per training run" in request
        assert "hard timeout: 50s" in request and "at most 9" in request
        assert "metric: val_loss (minimize)" in request
    assert "Budget left: 0 experiments so far; 3 of 3 left" in requests[0]
    assert "Budget left: 2 experiments so far; 1 of 3 left" in third
    # Each experiment's status, metric, seconds and the other numbers evaluate returned.
    assert "hidden = 32" in third and "crash" in third
    # What the crash really changed, and the end of its output and of the best run's.
    assert "+undefined_name" in third and "NameError" in third
    assert "train_loss" in third  # the best run's own output
    # Line-numbered train.py in the first message.
    assert "    14\\tLEARNING_RATE" in requests[0]
    # The notes, carried to later proposals and across the restart.
    assert "None yet" in requests[0]
    for request in (requests[2], third, fourth):
        assert "LR 0.02 looked promising; try 0.03 next." in request
    assert "Budget left: 3 experiments so far; 1 of 4 left" in fourth
    assert (task / ".overnight/c/notes.md").read_text().startswith("LR 0.02 looked promising")


# Every scripted call: 1000 input tokens at $1/M and 50 output tokens at $10/M.
PRICES = "[agent.prices]\ninput = 1.0\ncached_input = 0.2\noutput = 10.0\n"
CALL = 0.0015
TYPO = ("LEARNING_RATE = 0.01", "LEARNING_RATE = 0.02\nundefined_name")


@pytest.mark.parametrize("kind", ["anthropic", "openai", "responses", "litellm"])
def test_a_typo_crash_is_repaired_within_its_experiment_and_a_timeout_is_not(
    kind, tmp_path, capsys, monkeypatch, no_leftover_containers
):
    script = [
        # 1: a typo crashes; shown the traceback in the same conversation, the model fixes it.
        replace(*TYPO),
        text("Raise the learning rate"),
        replace("\nundefined_name", ""),
        text("Raise the learning rate (typo fixed)"),
        # 2: a run that never ends is a result, not a typo: no repair is asked for.
        replace("started = time.time()", "started = time.time()\nwhile True:\n    pass"),
        text("Spin"),
        # 3: a crash the model chooses not to fix stays a crash.
        replace("started = time.time()", "started = time.time()\nraise SystemExit(3)"),
        text("Exit early"),
        text("That idea cannot work"),
    ]
    with FakeLLM(script) as llm:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        task = model_task(tmp_path, agent_toml(kind, llm.url, PRICES))
        config = task / "overnight.toml"
        config.write_text("time_budget = 3\ntimeout = 8\n" + config.read_text())
        code, out = run_cli("run", str(task), "--tag", "r", "--max-experiments", "3", capsys=capsys)
        requests = [json.dumps(r.body) for r in llm.model_requests()]
    assert code == 0, out
    rows = results(task, "r")
    assert [r.experiment for r in rows] == [0, 1, 2, 3]  # one row per experiment
    first, second, third = rows[1], rows[2], rows[3]
    assert first.status is Verdict.KEEP and first.metric == pytest.approx(1.14157, abs=1e-5)
    assert first.description == "Raise the learning rate [repaired 1x]"
    assert "undefined_name" not in train_at(task, first.commit)
    assert "LEARNING_RATE = 0.02" in train_at(task, first.commit)
    # The repair request continued the conversation and showed the traceback.
    assert "Your change crashed" in requests[2] and "NameError" in requests[2]
    assert "Raise the learning rate" in requests[2]  # the model's own earlier reply is there
    folder = task / ".overnight/r/experiments/0001"
    assert "NameError" in (folder / "output-crash-1.txt").read_text()
    assert "NameError" not in (folder / "output.txt").read_text()
    crashed = git(task, "rev-parse", "refs/overnight/r/crashed/1/1")
    assert "undefined_name" in train_at(task, crashed)
    # The repair's calls count: its cost and tokens are the experiment's.
    repairs = [e for e in events(task, "r") if e["event"] == "repair"]
    assert [(e["experiment"], e["outcome"]) for e in repairs] == [
        (1, "repaired"),
        (3, "train.py unchanged"),
    ]
    assert repairs[0]["usage"]["calls"] == 2
    assert first.cost_usd == pytest.approx(4 * CALL)  # the proposal's two calls and the repair's
    assert second.status is Verdict.TIMEOUT and "[repaired" not in second.description
    assert "Your change crashed (experiment 2" not in " ".join(requests)
    assert third.status is Verdict.CRASH and "[repaired" not in third.description
    assert "Your change crashed (experiment 3" in requests[-1]
    assert len(requests) == 9


def test_repair_attempts_0_charges_the_crash_as_today(tmp_path, capsys, monkeypatch):
    script = [replace(*TYPO), text("Raise the learning rate"), text("Nothing more")]
    with FakeLLM(script) as llm:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        task = model_task(tmp_path, agent_toml("anthropic", llm.url, "repair_attempts = 0\n"))
        code, out = run_cli("run", str(task), "--tag", "z", "--max-experiments", "2", capsys=capsys)
        requests = [json.dumps(r.body) for r in llm.model_requests()]
    assert code == 0, out
    rows = results(task, "z")
    assert rows[1].status is Verdict.CRASH and rows[1].description == "Raise the learning rate"
    assert "Your change crashed" not in " ".join(requests)
    assert not any(e["event"] == "repair" for e in events(task, "z"))


def test_the_models_notes_survive_a_kill_9_of_the_harness(tmp_path, monkeypatch, capsys):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = [
        replace("LEARNING_RATE = 0.01", "LEARNING_RATE = 0.02"),
        text("Raise the learning rate\nNext: try EPOCHS = 6 with this rate."),
        replace("started = time.time()", "started = time.time()\ntime.sleep(60)"),
        text("Wait a minute"),
        text("Nothing more"),  # experiment 2 again, after the resume
    ]
    with FakeLLM(script) as llm:
        task = model_task(tmp_path, agent_toml("anthropic", llm.url))
        harness = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "run", str(task), "--tag", "k"],
            env={**os.environ, "ANTHROPIC_BASE_URL": llm.url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while len(llm.model_requests()) < 4 or not (task / ".overnight/k/notes.md").exists():
                assert time.monotonic() < deadline and harness.poll() is None
                time.sleep(0.2)
            # Experiment 2's proposal is answered: the harness is committing or training it.
        finally:
            os.killpg(harness.pid, signal.SIGKILL)
            harness.wait()
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        code, out = run_cli("run", str(task), "--tag", "k", "--max-experiments", "2", capsys=capsys)
        requests = [json.dumps(r.body) for r in llm.model_requests()]
    assert code == 0, out
    assert len(requests) == 5
    assert "Next: try EPOCHS = 6 with this rate." in requests[4]  # the resumed proposal's
    assert [r.experiment for r in results(task, "k")] == [0, 1, 2]
