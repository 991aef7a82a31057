"""The provider adapters, the retry wrapper and the model agent, with the real SDK clients talking
HTTP to a scripted server on 127.0.0.1. No Docker here: these are the fast ones."""

from __future__ import annotations

import itertools
import json

import pytest
from fake_llm_server import FakeLLM, Usage, drop, error, guard_network, slow, text, tool

from harness.agents import make_agent
from harness.agents.prompt import numbered
from harness.config import AgentConfig
from harness.edit_tool import TrainEditor
from harness.errors import OvernightError
from harness.providers.base import Message, ModelRequest, ProviderError, Text
from harness.providers.models import make_adapter, make_model
from harness.providers.pricing import Prices, prices_for
from harness.seams import Direction, ExperimentRecord, ProposalContext, Verdict

TRAIN = "LEARNING_RATE = 0.01\nEPOCHS = 4\n"
PROVIDERS = ["anthropic", "openai", "responses", "litellm"]
FAST_RETRIES = {"retry_initial_seconds": 0.02, "retry_max_seconds": 0.05, "timeout": 5}


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch):
    """Keys for every provider, no base URL from the environment, and no traffic off this host."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with guard_network():
        yield


def agent_config(kind: str, url: str, **extra) -> AgentConfig:
    """An [agent] table pointing `kind` at the fake server."""
    from pydantic import TypeAdapter

    fields = {
        "anthropic": {"provider": "anthropic", "model": "claude-test", "base_url": url},
        "openai": {"provider": "openai", "model": "gpt-test", "base_url": url + "/v1"},
        "responses": {
            "provider": "openai",
            "model": "gpt-test",
            "api": "responses",
            "base_url": url + "/v1",
        },
        "litellm": {"provider": "litellm", "model": "openai/local-test", "base_url": url + "/v1"},
    }[kind]
    return TypeAdapter(AgentConfig).validate_python({**fields, **FAST_RETRIES, **extra})


def context(experiment: int = 1, history: list[ExperimentRecord] | None = None) -> ProposalContext:
    history = history or [ExperimentRecord(0, "abc1234", 1.0, Verdict.KEEP, "baseline")]
    return ProposalContext(
        experiment=experiment,
        program="Make the loss small.",
        prepare_source='METRIC = "loss"\n',
        train_source=TRAIN,
        metric="loss",
        direction=Direction.MINIMIZE,
        history=history,
        best=history[0],
    )


def hello() -> ModelRequest:
    return ModelRequest("system", [Message("user", (Text("hello"),))], max_output_tokens=64)


def tool_results(request) -> list[tuple[str, bool]]:
    """(output, is_error) of each tool result in a request body, whatever its wire format."""
    body = request.body
    if request.path.endswith("/messages"):
        blocks = [
            b for m in body["messages"] for b in m["content"] if isinstance(m["content"], list)
        ]
        return [(b["content"], b["is_error"]) for b in blocks if b.get("type") == "tool_result"]
    if request.path.endswith("/responses"):
        items = [i for i in body["input"] if i.get("type") == "function_call_output"]
        return [(i["output"], i["output"].startswith("error: ")) for i in items]
    tools = [m for m in body["messages"] if m["role"] == "tool"]
    return [(m["content"], m["content"].startswith("error: ")) for m in tools]


ERRORS = [
    (error(429, "rate_limit_error", "slow down", {"retry-after": "7"}), True, "429"),
    (error(529, "overloaded_error", "Overloaded"), True, "529"),
    (error(500, "api_error", "Internal server error"), True, "500"),
    (error(503, "service_unavailable", "try later", {"retry-after-ms": "1500"}), True, "503"),
    (drop(), True, ""),
    (error(401, "authentication_error", "invalid x-api-key"), False, "API key was rejected"),
    (error(403, "permission_error", "no access to this model"), False, "permission denied"),
    (error(400, "invalid_request_error", "max_tokens is too large"), False, "refused"),
    (error(429, "insufficient_quota", "You exceeded your current quota"), False, "spend limit"),
    (error(400, "invalid_request_error", "Your credit balance is too low"), False, "spend limit"),
]


@pytest.mark.parametrize("kind", PROVIDERS)
def test_every_adapter_classifies_provider_errors_the_same_way(kind):
    with FakeLLM([step for step, _, _ in ERRORS]) as llm:
        model = make_adapter(agent_config(kind, llm.url))
        for step, retryable, words in ERRORS:
            with pytest.raises(ProviderError) as caught:
                model.complete(hello())
            assert caught.value.retryable is retryable, (step, str(caught.value))
            assert words in str(caught.value)
            assert "\n" not in str(caught.value)
            if step.headers.get("retry-after") == "7":
                assert caught.value.retry_after == 7
            if "retry-after-ms" in step.headers:
                assert caught.value.retry_after == 1.5


def test_a_rejected_key_names_the_variable_to_fix():
    with FakeLLM([error(401, "authentication_error", "invalid x-api-key")] * 2) as llm:
        for kind, variable in (("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY")):
            with pytest.raises(ProviderError, match=f"check {variable}"):
                make_adapter(agent_config(kind, llm.url)).complete(hello())


@pytest.mark.parametrize("kind", PROVIDERS)
def test_rate_limits_overload_5xx_timeouts_and_drops_are_retried_honouring_retry_after(kind):
    script = [
        error(429, "rate_limit_error", "slow down", {"retry-after": "1"}),
        error(529, "overloaded_error", "Overloaded"),
        error(500, "api_error", "boom"),
        drop(),
        slow(1.5, text("too late")),
        text("ready", Usage(input=100, output=5)),
    ]
    messages: list[str] = []
    with FakeLLM(script) as llm:
        model = make_model(agent_config(kind, llm.url, timeout=0.5), messages.append)
        turn = model.complete(hello())
        times = [r.at for r in llm.requests]
    assert turn.message.text == "ready" and turn.attempts == 6
    assert times[1] - times[0] >= 1.0  # retry-after: 1 was honoured
    assert all(later - earlier < 1.0 for earlier, later in itertools.pairwise(times[1:5]))
    assert len([m for m in messages if "retrying in" in m]) == 5
    assert messages[-1] == "model: back after 5 failed attempts"


def test_a_long_outage_stops_with_a_message_after_the_configured_limit():
    with FakeLLM([error(529, "overloaded_error", "Overloaded")] * 200) as llm:
        model = make_model(agent_config("anthropic", llm.url, max_outage_minutes=0.01), print)
        with pytest.raises(OvernightError) as caught:
            model.complete(hello())
        attempts = len(llm.requests)
    message = str(caught.value)
    assert "the model service failed for" in message and "529" in message
    assert "Run the same command again to continue" in message and "max_outage_minutes" in message
    assert 3 <= attempts < 200


def test_fatal_errors_are_not_retried():
    with FakeLLM([error(401, "authentication_error", "bad key"), text("never")]) as llm:
        model = make_model(agent_config("openai", llm.url), print)
        with pytest.raises(OvernightError, match="API key was rejected"):
            model.complete(hello())
        assert len(llm.requests) == 1


@pytest.mark.parametrize("kind", PROVIDERS)
def test_tool_errors_go_back_to_the_model_and_its_final_text_is_the_description(kind):
    script = [
        tool({"command": "view"}, raw_arguments='{"command": "view"'),  # malformed JSON
        tool({"command": "view"}, name="bash"),  # an unknown tool
        tool({"command": "explode"}),  # an unknown command
        tool({"command": "str_replace", "old_str": "0.01", "new_str": "0.02"}),
        text("Raise the learning rate to 0.02\nIt was too low."),
    ]
    if kind == "anthropic":
        script[0] = tool({"command": "view", "path": "/etc/passwd"})  # its JSON is always parsed
    with FakeLLM(script) as llm:
        agent = make_agent(agent_config(kind, llm.url))
        editor = TrainEditor(TRAIN)
        proposal = agent.propose(context(), editor)
        last = llm.requests[-1]
    assert proposal.description.startswith("Raise the learning rate to 0.02")
    assert editor.source == TRAIN.replace("0.01", "0.02")
    results = tool_results(last)
    assert [is_error for _, is_error in results] == [True, True, True, False]
    assert "unknown tool 'bash'" in results[1][0]
    assert "command is one of view, str_replace" in results[2][0]
    assert "train.py changed" in results[3][0]
    assert proposal.usage.calls == 5
    calls = [m["call"] for m in proposal.transcript if "call" in m]
    assert len(calls) == 5 and calls[-1]["stop"] == "end"


def test_a_proposal_ends_after_too_many_tool_errors_in_a_row():
    bad = tool({"command": "str_replace", "old_str": "nowhere", "new_str": "x"})
    with FakeLLM([bad] * 10) as llm:
        agent = make_agent(agent_config("openai", llm.url, max_tool_errors=3))
        editor = TrainEditor(TRAIN)
        proposal = agent.propose(context(), editor)
        assert len(llm.requests) == 3
    assert proposal.description == "(unfinished: 3 failed tool calls in a row)"
    assert editor.source == TRAIN


def test_the_edit_tool_schema_is_the_one_every_provider_sends():
    from harness.edit_tool import EDIT_TOOL

    with FakeLLM([text("nothing to do")] * 4) as llm:
        for kind in PROVIDERS:
            make_agent(agent_config(kind, llm.url)).propose(context(), TrainEditor(TRAIN))
        bodies = [r.body for r in llm.requests]
    anthropic, chat, responses, litellm = (b["tools"] for b in bodies)
    assert anthropic == [EDIT_TOOL]
    assert chat[0]["function"]["parameters"] == EDIT_TOOL["input_schema"]
    assert litellm[0]["function"]["parameters"] == EDIT_TOOL["input_schema"]
    assert responses[0]["parameters"] == EDIT_TOOL["input_schema"]
    assert {t[0]["function"]["name"] for t in (chat, litellm)} == {"edit"}


def test_anthropic_marks_the_stable_prefix_with_the_configured_cache_lifetime():
    with FakeLLM([tool({"command": "view"}), text("done")]) as llm:
        make_agent(agent_config("anthropic", llm.url, cache_ttl="1h")).propose(
            context(), TrainEditor(TRAIN)
        )
        first, second = (r.body for r in llm.requests)
    stable, rest = first["messages"][0]["content"]
    assert stable["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert "Make the loss small." in stable["text"] and 'METRIC = "loss"' in stable["text"]
    assert "# Experiment 1" in rest["text"] and numbered(TRAIN) in rest["text"]
    # Within a proposal the newest message is marked too, so the next call reads the rest.
    assert second["messages"][0]["content"][0] == stable
    assert second["messages"][-1]["content"][-1]["cache_control"]["ttl"] == "5m"


def test_costs_come_from_config_prices_else_litellms_offline_price_map():
    usage = Usage(input=2_000_000, cached=1_000_000, cache_write=0, output=100_000)
    with FakeLLM([text("a", usage), text("b", usage)]) as llm:
        priced = make_model(
            agent_config(
                "openai", llm.url, prices={"input": 2.0, "cached_input": 0.5, "output": 8.0}
            ),
            print,
        )
        assert priced.complete(hello()).cost_usd == pytest.approx(2.0 + 0.5 + 0.8)
        mapped = make_model(agent_config("anthropic", llm.url, model="claude-sonnet-5-5"), print)
        assert mapped.complete(hello()).cost_usd == pytest.approx(2.0 + 0.1 + 1.0)
    sonnet = prices_for("anthropic/claude-sonnet-5-5")
    assert sonnet is not None and sonnet.cache_write_1h == pytest.approx(2 * sonnet.input)
    assert prices_for("ollama/some-local-model") is None
    bound = Prices.per_million(input=1.0, output=10.0).most(
        prompt_bytes=3000, max_output_tokens=1000
    )
    assert bound == pytest.approx(1000 * 1e-6 + 1000 * 10e-6)


def test_max_cost_stops_before_the_first_call_that_could_pass_it():
    from harness.seams import StopNight

    spent = [
        ExperimentRecord(0, "abc1234", 1.0, Verdict.KEEP, "baseline"),
        ExperimentRecord(1, "def5678", 1.1, Verdict.DISCARD, "x", cost_usd=0.0095),
    ]
    prices = {"input": 0.0, "output": 10.0}
    with FakeLLM([text("never")]) as llm:
        agent = make_agent(
            agent_config("openai", llm.url, max_cost=0.01, prices=prices, max_output_tokens=100)
        )
        with pytest.raises(StopNight, match=r"reached --max-cost \$0.01: \$0.0095 spent"):
            agent.propose(context(2, spent), TrainEditor(TRAIN))
        assert llm.requests == []


def test_missing_keys_and_sdks_are_one_line_errors_naming_the_fix(monkeypatch, tmp_path):
    import subprocess
    import sys

    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(OvernightError, match=r"^OPENAI_API_KEY is not set: provider openai"):
        make_agent(agent_config("openai", "http://127.0.0.1:9"))
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(OvernightError, match=r"^OPENROUTER_API_KEY is not set: litellm needs it"):
        make_agent(agent_config("litellm", "http://127.0.0.1:9", model="openrouter/qwen/qwen3"))
    code = (
        "import sys; sys.modules['anthropic'] = None\n"
        "from harness.cli import main\n"
        "sys.exit(main(['run', sys.argv[1]]))\n"
    )
    task = tmp_path / "t"
    task.mkdir()
    for name, body in (
        ("program.md", "x"),
        ("train.py", "pass\n"),
        ("prepare.py", 'METRIC = "m"\nDIRECTION = "minimize"\n'),
        ("overnight.toml", '[agent]\nprovider = "anthropic"\n'),
    ):
        (task / name).write_text(body)
    done = subprocess.run([sys.executable, "-c", code, str(task)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert (
        "provider anthropic needs the anthropic package: pip install 'overnight[anthropic]'"
        in done.stderr
    )
    assert not (task / ".overnight").exists()


def test_transcripts_are_json(tmp_path):
    with FakeLLM([tool({"command": "view"}), text("done")]) as llm:
        proposal = make_agent(agent_config("anthropic", llm.url)).propose(
            context(), TrainEditor(TRAIN)
        )
    roles = [m["role"] for m in json.loads(json.dumps(proposal.transcript))]
    assert roles == ["system", "user", "assistant", "user", "assistant"]


def test_every_registered_provider_is_a_cli_choice_a_config_table_and_an_adapter(capsys):
    from harness.cli import main
    from harness.model_config import MODEL_AGENTS
    from harness.providers.registry import OFFLINE_AGENTS, model_providers

    registered = model_providers()
    assert list(MODEL_AGENTS) == list(registered)
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    shown = capsys.readouterr().out
    assert "{" + ",".join([*OFFLINE_AGENTS, *registered]) + "}" in shown
    for name, info in registered.items():
        config = MODEL_AGENTS[name].model_validate({"provider": name, "model": "m-1"})
        assert type(config).__name__ == info.config
        adapter = make_adapter(config)
        assert adapter.name == "m-1" and type(adapter).__module__ == f"harness.providers.{name}"
