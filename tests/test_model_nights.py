"""Whole nights with a model agent: the real anthropic, openai and litellm clients talk HTTP to a
scripted model on 127.0.0.1, and every change runs in real containers on a real git repository."""

from __future__ import annotations

import json

import pytest
from conftest import copy_quickstart, events, git, results, run_cli
from fake_llm_server import FakeLLM, Usage, drop, edit_session, error, guard_network, text

from harness.edit_tool import EDIT_TOOL
from harness.seams import Verdict
from sandbox.image import DEFAULT_IMAGE

LR = ("LEARNING_RATE = 0.01", "LEARNING_RATE = 0.02", "Raise the learning rate to 0.02")
FAST = "retry_initial_seconds = 0.02\nretry_max_seconds = 0.05\ntimeout = 20\n"
# Per call: 500 plain input tokens at $1/M, 500 cached at $0.2/M, 50 output at $10/M = $0.0011.
USAGE = Usage(input=1000, cached=500, output=50)
PRICES = "[agent.prices]\ninput = 1.0\ncached_input = 0.2\noutput = 10.0\n"
CALL_COST = 0.0011


@pytest.fixture(autouse=True)
def model_env(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with guard_network():
        yield


def agent_toml(kind: str, url: str, extra: str = "") -> str:
    """The [agent] table of overnight.toml for `kind`, pointed at the fake server."""
    lines = {
        "anthropic": 'provider = "anthropic"\nmodel = "claude-test"\n',  # URL from the environment
        "openai": f'provider = "openai"\nmodel = "gpt-test"\nbase_url = "{url}/v1"\n',
        "responses": f'provider = "openai"\nmodel = "gpt-test"\napi = "responses"\nbase_url = "{url}/v1"\n',
        "litellm": f'provider = "litellm"\nmodel = "openai/local-test"\nbase_url = "{url}/v1"\n',
    }[kind]
    return f"\n[agent]\n{lines}{FAST}{extra}"


def model_task(tmp_path, agent: str):
    task = copy_quickstart(tmp_path)
    config = task / "overnight.toml"
    config.write_text(config.read_text() + agent)
    return task


def sent_tools(kind: str, body: dict) -> list[tuple[str, dict]]:
    """(name, schema) of the tools a request offered, whatever its wire format."""
    if kind == "anthropic":
        return [(t["name"], t["input_schema"]) for t in body["tools"]]
    if kind == "responses":
        return [(t["name"], t["parameters"]) for t in body["tools"]]
    return [(t["function"]["name"], t["function"]["parameters"]) for t in body["tools"]]


def stable_prefix(kind: str, body: dict) -> str:
    """What a request sends before the part that changes per proposal."""
    if kind == "anthropic":
        return json.dumps([body["system"], body["tools"], body["messages"][0]["content"][0]])
    if kind == "responses":
        first = body["input"][0]["content"]
        return (
            json.dumps([body["instructions"], body["tools"]]) + first[: first.index("# Experiment")]
        )
    first = body["messages"][1]["content"]
    return json.dumps([body["messages"][0], body["tools"]]) + first[: first.index("# Experiment")]


@pytest.mark.parametrize("kind", ["anthropic", "openai", "responses", "litellm"])
def test_a_model_views_edits_and_describes_a_change_that_is_run_scored_and_decided(
    kind, tmp_path, capsys, monkeypatch, no_leftover_containers
):
    script = [*edit_session(*LR, usage=USAGE), text("Nothing better to try right now.", USAGE)]
    with FakeLLM(script) as llm:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        task = model_task(tmp_path, agent_toml(kind, llm.url, PRICES))
        code, out = run_cli("run", str(task), "--tag", "m", "--max-experiments", "2", capsys=capsys)
        requests = llm.model_requests()
    assert code == 0, out
    rows = results(task, "m")
    assert [r.experiment for r in rows] == [0, 1, 2]
    first = rows[1]
    assert first.description == LR[2]
    # The quickstart is deterministic: a learning rate of 0.02 lowers val_loss 1.25744 -> 1.14157.
    assert first.status is Verdict.KEEP and first.metric == pytest.approx(1.14157, abs=1e-5)
    assert "LEARNING_RATE = 0.02" in git(task, "show", "overnight/m:train.py")
    # A model that answers without editing gives a skipped proposal, not a run.
    assert rows[2].status is Verdict.SKIPPED and "train.py unchanged" in rows[2].description
    assert 2 not in {e["experiment"] for e in events(task, "m") if e["event"] == "run"}
    # Every request offered the one `edit` tool with its schema; each proposal started afresh
    # with a byte-identical stable prefix (program.md and prepare.py included).
    assert len(requests) == 4
    for request in requests:
        assert sent_tools(kind, request.body) == [("edit", EDIT_TOOL["input_schema"])]
    assert stable_prefix(kind, requests[0].body) == stable_prefix(kind, requests[3].body)
    assert "def evaluate(output_dir)" in stable_prefix(kind, requests[0].body)
    if kind == "anthropic":
        stable = requests[0].body["messages"][0]["content"][0]
        assert stable["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
        assert "# program.md" in stable["text"] and "# prepare.py" in stable["text"]
    # The tool's answers went back to the model: train.py with line numbers, then the change.
    assert "LEARNING_RATE = 0.01" in json.dumps(requests[1].body)
    assert "train.py changed" in json.dumps(requests[2].body)
    # Usage and cost per experiment, per call, and for the tag.
    assert [r.cost_usd for r in rows] == pytest.approx([0, 3 * CALL_COST, CALL_COST])
    proposal = next(e for e in events(task, "m") if e["event"] == "proposal")
    assert proposal["usage"]["calls"] == 3 and proposal["usage"]["cached_input_tokens"] == 1500
    transcript = json.loads((task / ".overnight/m/experiments/0001/transcript.json").read_text())
    calls = [m["call"] for m in transcript["messages"] if "call" in m]
    assert [c["cost_usd"] for c in calls] == pytest.approx([CALL_COST] * 3)
    code, out = run_cli("status", str(task), "--tag", "m", "--json", capsys=capsys)
    report = json.loads(out)
    assert report["tokens"] == {"calls": 4, "input": 4000, "cached_input": 2000, "output": 200}
    assert report["cost_usd"] == pytest.approx(4 * CALL_COST)


def test_rate_limits_overload_server_errors_and_dropped_connections_are_retried_and_the_night_goes_on(
    tmp_path, capsys, monkeypatch, no_leftover_containers
):
    script = [
        error(
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
            {"retry-after": "1"},
        ),
        error(529, "overloaded_error", "Overloaded"),
        error(500, "api_error", "Internal server error"),
        drop(),
        *edit_session(*LR),
    ]
    with FakeLLM(script) as llm:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        task = model_task(tmp_path, agent_toml("anthropic", llm.url))
        code, out = run_cli("run", str(task), "--tag", "r", "--max-experiments", "1", capsys=capsys)
        seen = [(r.step.kind if r.step else None) for r in llm.requests]
        waited = llm.requests[1].at - llm.requests[0].at
    assert code == 0, out
    assert seen == ["error", "error", "error", "drop", "tool", "tool", "text"]
    assert waited >= 1.0  # retry-after was honoured
    assert "429 rate_limit_error" in out and "retrying in" in out
    assert "model: back after 4 failed attempts" in out
    rows = results(task, "r")
    assert [r.experiment for r in rows] == [0, 1] and rows[1].description == LR[2]


def test_provider_failures_stop_the_night_with_a_clear_message_and_lose_nothing(
    tmp_path, capsys, monkeypatch, no_leftover_containers
):
    """A user's night: a bad key, then a spent quota, then a long outage, then it works."""
    with FakeLLM() as llm:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        task = model_task(tmp_path, agent_toml("anthropic", llm.url, "max_outage_minutes = 0.02\n"))
        args = ("run", str(task), "--tag", "f", "--max-experiments", "1")

        llm.add(error(401, "authentication_error", "invalid x-api-key"))
        code, out = run_cli(*args, capsys=capsys)
        assert code == 2
        message = out.strip().splitlines()[-1]
        assert message.startswith("overnight: anthropic: the API key was rejected (401")
        assert message.endswith("check ANTHROPIC_API_KEY")
        assert [r.experiment for r in results(task, "f")] == [0]  # the baseline, nothing else
        baseline = results(task, "f")[0].commit

        llm.add(
            error(
                429, "rate_limit_error", "This request would exceed your spend limit; see billing"
            )
        )
        code, out = run_cli(*args, capsys=capsys)
        assert code == 2
        assert "spend limit or quota reached (429" in out and "run the same command again" in out

        llm.add(*[error(529, "overloaded_error", "Overloaded")] * 500)
        code, out = run_cli(*args, capsys=capsys)
        assert code == 2
        assert "the model service failed for" in out and "Run the same command again" in out
        llm.steps.clear()

        # Nothing was committed, discarded or recorded for any of it.
        assert [r.experiment for r in results(task, "f")] == [0]
        assert git(task, "rev-parse", "--short=7", "overnight/f") == baseline
        assert git(task, "for-each-ref", "refs/overnight/") == ""
        assert not (task / ".overnight/f/experiments/0001").exists()

        llm.add(*edit_session(*LR))
        code, out = run_cli(*args, capsys=capsys)
    assert code == 0, out
    rows = results(task, "f")
    assert [r.experiment for r in rows] == [0, 1] and rows[1].description == LR[2]
    assert sum(1 for e in events(task, "f") if e["event"] == "run" and e["experiment"] == 0) == 1


def test_max_cost_stops_the_night_before_a_call_that_could_pass_it_and_holds_across_restarts(
    tmp_path, capsys, no_leftover_containers
):
    # $0.0005 a call (50 output tokens at $10/M); the most a call could cost is 1000 output
    # tokens, $0.01. Under --max-cost 0.0121 five calls fit: the sixth could pass it.
    usage = Usage(input=1000, output=50)
    epochs = ("EPOCHS = 4", "EPOCHS = 5", "Train one more epoch")
    script = [*edit_session(*LR, usage=usage), *edit_session(*epochs, usage=usage)] * 2
    prices = "max_output_tokens = 1000\n[agent.prices]\ninput = 0.0\noutput = 10.0\n"
    with FakeLLM(script) as llm:
        task = model_task(tmp_path, agent_toml("openai", llm.url, prices))
        args = ("run", str(task), "--tag", "c", "--max-cost", "0.0121")
        code, out = run_cli(*args, capsys=capsys)
        assert code == 0, out
        assert "stopped: reached --max-cost $0.0121: $0.0025 spent in this tag" in out
        rows = results(task, "c")
        assert [r.experiment for r in rows] == [0, 1, 2]
        # The ledger's cost is the sum of the calls the server answered.
        assert len(llm.served) == 5
        assert sum(r.cost_usd for r in rows) == pytest.approx(5 * 0.0005)
        assert [r.cost_usd for r in rows] == pytest.approx([0, 0.0015, 0.001])
        # The second proposal was cut short before its third call: its edit ran, labelled so.
        assert rows[2].description.startswith("(unfinished: reached --max-cost")
        # The spend survives a restart of the tag: no call is made at all.
        code, out = run_cli(*args, capsys=capsys)
        assert code == 0, out
        assert "reached --max-cost" in out and len(llm.requests) == 5
        code, out = run_cli("status", str(task), "--tag", "c", "--json", capsys=capsys)
        assert json.loads(out)["cost_usd"] == pytest.approx(0.0025)


def test_a_missing_key_is_one_line_naming_the_variable_before_anything_runs(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    task = copy_quickstart(tmp_path)
    code, out = run_cli("run", str(task), "--provider", "anthropic", capsys=capsys)
    assert code == 2
    assert out.strip() == (
        "overnight: ANTHROPIC_API_KEY is not set: provider anthropic reads its key from the "
        "environment (export ANTHROPIC_API_KEY=...)"
    )
    assert not (task / ".overnight").exists() and not (task / ".git").exists()
    code, out = run_cli("run", str(task), "--model", "gpt-test", capsys=capsys)
    assert code == 2 and "--model and --max-cost are for a model provider" in out


def test_doctor_says_what_is_ready_and_what_is_not(tmp_path, capsys, monkeypatch, docker_client):
    with FakeLLM([text("ready"), error(401, "authentication_error", "invalid x-api-key")]) as llm:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        task = model_task(tmp_path, agent_toml("anthropic", llm.url, PRICES))
        code, out = run_cli("doctor", str(task), capsys=capsys)
        assert code == 0, out
        assert "ok: anthropic claude-test: SDK installed, credentials in the environment" in out
        assert "ok: anthropic claude-test answered in" in out and "1000 input" in out
        assert "ok: Docker engine reachable" in out
        assert f"ok: image {DEFAULT_IMAGE} is on this machine" in out
        assert out.strip().endswith("ready")
        assert llm.requests[0].body["tools"][0]["name"] == "edit"

        code, out = run_cli("doctor", str(task), capsys=capsys)
        assert code == 2
        assert "problem: anthropic: the API key was rejected (401" in out
        assert out.strip().endswith("not ready: 1 problem(s)")

        monkeypatch.delenv("ANTHROPIC_API_KEY")
        code, out = run_cli("doctor", str(task), capsys=capsys)
        assert code == 2 and "problem: ANTHROPIC_API_KEY is not set" in out
        assert len(llm.requests) == 2  # no request without a key
    assert not (task / ".overnight").exists()
