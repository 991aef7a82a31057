"""Text from the agent is untrusted input: hostile text in every field it controls, through the
real loop (replay agent and model agents over HTTP, real engine, real git).

Every kind of bad text (NUL, lone surrogates, megabytes, terminal escapes, carriage returns,
bidi overrides, nothing but whitespace) goes into the description, each tool input field,
unknown fields, the model's replies, its thinking and its tool-call arguments, with inputs nested
600 and 100,000 deep. Each time the night goes on (or resumes after a kill), the verdict is the
right one, results.tsv, events.jsonl, transcripts and the git log are valid UTF-8 with no control
character but newline and tab, and what reaches the terminal has no escape byte.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import events, git, results, run_cli
from fake_llm_server import FakeLLM, guard_network, slow, text, tool
from test_night import TRAIN, value_task

from harness import untrusted
from harness.crashpoints import EXIT_CODE
from harness.seams import Verdict

# What no file or terminal line may hold: C0 controls but tab and newline, DEL, C1 controls,
# bidi controls, line separators, byte-order marks and lone surrogates.
UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ufeff\ud800-\udfff]"
)

BAD = {
    "nul": "lower VALUE\x00 after a NUL",
    "high surrogate": "lower \ud800 VALUE",
    "low surrogate": "lower \udfff VALUE",
    "surrogate escape": "lower \udcff VALUE",
    "clear screen": "\x1b[2J\x1b[3J\x1b[Hscreen cleared",
    "colours": "\x1b[31;1mred\x1b[0m text",
    "window title": "\x1b]0;owned\x07 title",
    "osc 8 link": "\x1b]8;;http://evil.invalid/\x1b\\click me\x1b]8;;\x1b\\",
    "c1 controls": "\x9b2J\x9d0;owned\x9c c1",
    "carriage return": "honest change\r\x1b[2Kevil change",
    "bidi override": "lower \u202eEULAV\u202c and \u2066isolate\u2069",
    "backspace and bell": "abc\x08\x08\x08xyz\x07",
    "200 KB": "a" * 200_000,
    "5 MB": "many words " * 480_000,
    "only whitespace": " \t\n \u3000 \u2028 \r\n ",
    "everything": "\n\n\x00\udcff\x1b[2J\u202e\x9b" + "y" * 300_000,
}


def unsafe(text: str) -> list[str]:
    return UNSAFE.findall(text)


def strings(value) -> list[str]:
    """Every string in a JSON value (keys too), without recursion."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def assert_clean_file(path: Path) -> None:
    """Valid UTF-8 without unsafe characters, and for JSON the same inside every string."""
    text = path.read_bytes().decode("utf-8")  # strict: raises on invalid UTF-8
    assert unsafe(text) == [], path
    if path.suffix in (".json", ".jsonl"):
        for line in text.splitlines() if path.suffix == ".jsonl" else [text]:
            bad = [s for s in strings(json.loads(line)) if unsafe(s)]
            assert bad == [], (path, bad[:3])


def assert_clean_run(task: Path, tag: str) -> None:
    run = task / ".overnight" / tag
    for path in [
        run / "results.tsv",
        run / "events.jsonl",
        *run.glob("experiments/*/transcript.json"),
    ]:
        assert_clean_file(path)
    log = subprocess.run(
        ["git", "log", "--all", "--format=%H %B"], cwd=task, capture_output=True, check=True
    ).stdout.decode("utf-8")
    assert unsafe(log) == []


def assert_no_escape(printed: str) -> None:
    assert "\x1b" not in printed and unsafe(printed.replace("\r", "")) == [], unsafe(printed)[:5]


# --- the module that makes text safe -------------------------------------------------------


@pytest.mark.parametrize("name", BAD)
@pytest.mark.engine_free
def test_printable_text_keeps_newlines_and_tabs_and_shows_every_other_control(name) -> None:
    shown = untrusted.printable(BAD[name])

    assert unsafe(shown) == []
    shown.encode("utf-8")
    if "\x1b" in BAD[name]:
        assert "\\x1b" in shown


@pytest.mark.parametrize("name", BAD)
@pytest.mark.engine_free
def test_a_description_becomes_one_short_printable_line(name) -> None:
    line = untrusted.first_line(BAD[name])

    assert unsafe(line) == [] and "\n" not in line and "\t" not in line
    assert len(line) <= 6 * (untrusted.DESCRIPTION_CAP + 6)  # escapes at most 6 characters each
    if name == "only whitespace":
        assert line == ""
    if name == "carriage return":  # nothing overwritten: both halves are there
        assert line == "honest change \\x1b[2Kevil change"


@pytest.mark.parametrize("depth", [600, 100_000])
@pytest.mark.engine_free
def test_json_nested_deeper_than_any_reader_allows_is_read_with_a_note(depth) -> None:
    raw = '{"command": "view", "x": ' + "[" * depth + "]" * depth + ', "n": ' + "9" * 5000 + "}"

    value = untrusted.loads(raw)

    assert value["command"] == "view"
    assert value["n"] == "[an integer of 5000 digits]"
    assert f"nested deeper than {untrusted.MAX_DEPTH} levels" in json.dumps(value)


@pytest.mark.engine_free
def test_what_is_logged_of_one_proposal_stays_within_its_size_limit() -> None:
    calls = [{"input": {"content": "\x1b" * 20_000}, "output": "x" * 20_000} for _ in range(1_000)]

    logged = json.dumps(untrusted.logged(calls))

    assert len(logged) < 2 * untrusted.LOGGED_CAP  # escapes and JSON quoting on top of the cap
    assert "over its size limit" in logged and "\\u001b" not in logged


@pytest.mark.engine_free
def test_malformed_json_still_raises_as_json_does() -> None:
    with pytest.raises(json.JSONDecodeError):
        untrusted.loads('{"command": ' + "[" * 100_000)


# --- a night of hostile text through the replay agent ----------------------------------------


def nested(depth: int) -> dict:
    value: dict = {"leaf": "\x1b[2J\udcff"}
    for _ in range(depth):
        value = {"deeper": value}
    return value


def write_value(value: float, padding: str = "") -> dict:
    return {"command": "write", "content": TRAIN.replace("5.0", repr(value)) + padding}


MEGABYTE_PADDING = "".join(f"# padding line {n} of a megabyte train.py\n" for n in range(21_500))
NO_MATCH_1000 = "\n".join(f"not_here_{n} = {n}" for n in range(1_000))
NO_MATCH_20000 = "\n".join(f"not_here_{n} = {n}" for n in range(20_000))

# (name, JSON line or proposal, verdict); values fall by 0.1 a proposal, so each change that
# runs is a keep. Tool-input cases that end with no valid change are skipped.
TOOL_CASES = [
    ("escape in new_str", [{"command": "str_replace", "old_str": "VALUE = 5.0",
                            "new_str": "VALUE = 1.0  # \x1b[2J"}], "skipped"),
    ("surrogate in content", [{"command": "write", "content": "VALUE = '\udcff'\n"}], "skipped"),
    ("nul in insert", [{"command": "insert", "insert_line": 0, "new_str": "# \x00"}], "skipped"),
    ("bidi in content", [{"command": "write", "content": "x = 'abc\u202e'\n"}], "skipped"),
    ("hostile old_str", [{"command": "str_replace", "old_str": "VALUE\x00\ud800\x1b[2J\r",
                          "new_str": "VALUE = 1.0"}], "skipped"),
    ("hostile command", [{"command": "\x1b[2Jview\ud800"}], "skipped"),
    ("hostile unknown fields", [{"command": "view", "\x1b]0;t\x07": "\x9b\udcff",
                                 "path": "../prepare.py", "k" * 100_000: "\u202e"}], "keep"),
    ("not objects", ["\x1b[2J", 42, None, [[["\udcff"]]]], "keep"),
    ("nested 600", [{"command": "view", "extra": nested(600)}], "keep"),
    ("nested 100000", "RAW-NESTED", "keep"),
    ("integer of 5000 digits", "RAW-INTEGER", "keep"),
    ("a megabyte train.py", "MEGABYTE", "keep"),
]  # fmt: skip


def hostile_script(path: Path) -> tuple[Path, list[tuple[str, str]]]:
    """The script, and (name, verdict) for proposal 1, 2, ..."""
    lines, expected = [], []
    value = 5.0

    def lower() -> float:
        nonlocal value
        value = round(value - 0.1, 1)
        return value

    for name, description in BAD.items():
        lines.append(json.dumps({"description": description, "calls": [write_value(lower())]}))
        expected.append((name, "keep"))
    for name, calls, verdict in TOOL_CASES:
        if calls == "RAW-NESTED":
            deep = "[" * 100_000 + "]" * 100_000
            valid = json.dumps(write_value(lower()))
            lines.append(
                f'{{"description": "{name}", "calls": [{{"command": "view", "extra": {deep}}}, '
                f"{valid}]}}"
            )
        elif calls == "RAW-INTEGER":
            valid = json.dumps(write_value(lower()))
            lines.append(
                f'{{"description": "{name}", "calls": [{{"command": "insert", "insert_line": '
                f'{"9" * 5000}, "new_str": "# x"}}, {valid}]}}'
            )
        elif calls == "MEGABYTE":
            big = write_value(lower(), MEGABYTE_PADDING)
            assert 900_000 < len(big["content"]) < 1_000_000
            again = [
                {"command": "str_replace", "old_str": NO_MATCH_1000, "new_str": "x = 1"},
                {"command": "str_replace", "old_str": NO_MATCH_20000, "new_str": "x = 1"},
                {"command": "view"},
            ]
            lines.append(json.dumps({"description": name, "calls": [big, *again]}))
        else:
            tail = [write_value(lower())] if verdict == "keep" else []
            lines.append(json.dumps({"description": name, "calls": [*calls, *tail]}))
        expected.append((name, verdict))
    path.write_text("\n".join(lines) + "\n")
    return path, expected


@pytest.fixture(scope="module")
def hostile_night(tmp_path_factory, docker_client):
    base = tmp_path_factory.mktemp("hostile-text")
    task = value_task(base, **{"overnight.toml": "timeout = 30\n"})
    script, expected = hostile_script(base / "script.jsonl")
    capture = base / "terminal.txt"
    with open(capture, "w", encoding="utf-8") as stream, pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", stream)
        patch.setattr(sys, "stdout", stream)
        code, _ = run_cli("run", str(task), "--tag", "t", "--provider", "replay",
                          "--script", str(script))  # fmt: skip
    return task, code, expected, capture.read_text(encoding="utf-8")


def test_a_night_of_hostile_text_ends_normally_with_the_right_verdicts(hostile_night) -> None:
    task, code, expected, _ = hostile_night
    rows = results(task, "t")

    assert code == 0
    assert [r.experiment for r in rows] == list(range(len(expected) + 1))
    assert [
        (name, r.status.value) for (name, _), r in zip(expected, rows[1:], strict=True)
    ] == expected
    by_name = {name: rows[n] for n, (name, _) in enumerate(expected, start=1)}
    assert by_name["only whitespace"].description == "(no description)"
    assert by_name["clear screen"].description == "\\x1b[2J\\x1b[3J\\x1b[Hscreen cleared"
    assert by_name["surrogate escape"].description == "lower \\udcff VALUE"
    assert by_name["nul"].description == "lower VALUE\\x00 after a NUL"
    assert len(by_name["5 MB"].description) < 2 * untrusted.DESCRIPTION_CAP
    assert by_name["hostile command"].description == "hostile command [train.py unchanged]"
    # A kept commit's message is its ledger line.
    for row in rows[1:]:
        if row.status is Verdict.KEEP:
            assert git(task, "log", "-1", "--format=%B", row.commit) == row.description


def test_after_hostile_text_every_file_and_the_git_log_are_clean_utf8(hostile_night) -> None:
    task, _, _, _ = hostile_night

    assert_clean_run(task, "t")
    assert_clean_file(task / ".overnight" / "t" / "overnight.log")


def test_the_live_view_and_status_print_no_escape(hostile_night, capsys) -> None:
    task, _, _, printed = hostile_night
    assert "[   1] keep" in printed  # the view printed the rows, cleaned

    assert_no_escape(printed)
    for args in ([], ["--json"]):
        code, out = run_cli("status", str(task), "--tag", "t", *args, capsys=capsys)
        assert code == 0
        assert_no_escape(out)
    assert json.loads(out)["counts"]["keep"] >= len(BAD)


def test_the_editor_told_the_agent_what_to_fix_in_words_it_can_act_on(hostile_night) -> None:
    task, _, expected, _ = hostile_night
    number = {name: n for n, (name, _) in enumerate(expected, start=1)}

    def outputs(name: str) -> list[str]:
        path = task / f".overnight/t/experiments/{number[name]:04d}/transcript.json"
        return [c["output"] for c in json.loads(path.read_text())["calls"]]

    assert "holds the character \\x1b at line 1" in outputs("escape in new_str")[0]
    assert "holds a lone surrogate \\udcff" in outputs("surrogate in content")[0]
    assert "holds the character \\x00" in outputs("nul in insert")[0]
    assert "holds the character \\u202e" in outputs("bidi in content")[0]
    assert "no match for old_str" in outputs("hostile old_str")[0]
    assert "invalid edit call" in outputs("hostile command")[0]
    assert "extra" in outputs("nested 100000")[0] and "compiles" in outputs("nested 100000")[1]
    assert "insert_line" in outputs("integer of 5000 digits")[0]
    big = outputs("a megabyte train.py")
    assert "compiles" in big[0] and all("no match" in o for o in big[1:3])
    assert big[3].startswith("     1\timport os") and big[3].endswith(" more characters]")


def test_a_task_folder_named_with_terminal_escapes_is_printed_escaped_by_every_command(
    tmp_path, capsys, docker_client
) -> None:
    task = value_task(tmp_path / "x\x1b]0;owned\x07\x1b[2J\x9b")
    commands = [
        ["validate", str(task)],
        ["doctor", str(task)],
        ["status", str(task)],  # no runs yet: an error line naming the folder
        ["run", str(task / "missing")],
    ]
    for command in commands:
        code, out = run_cli(*command, capsys=capsys)
        assert_no_escape(out)
        assert "x\\x1b]0;owned\\x07\\x1b[2J\\x9b" in out, (command, code, out)


# --- killed at any step of a hostile proposal, a night resumes ------------------------------


def overnight(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


# Every kind of bad text in one proposal: where the old code crashed (git's argv, the ledger's
# encoding, logging a deep input) the night is killed instead, at each step, and resumed.
HOSTILE_PROPOSAL = (
    '{"description": '
    + json.dumps("\udcff\x00\x1b[2J\x1b]0;t\x07\x9b\r\u202e keep" + "z" * 200_000)
    + ', "calls": [{"command": "view", "extra": '
    + json.dumps(nested(600))
    + '}, {"command": "view", "\\u001b[2J": '
    + "[" * 100_000
    + "]" * 100_000
    + "}, "
    + json.dumps(write_value(1.0))
    + "]}\n"
)


def test_killed_at_every_step_of_a_hostile_proposal_the_night_resumes_to_the_same_end(
    tmp_path, docker_client
) -> None:
    boundary, finals = 5, []  # 1-4 are setup and the baseline
    while True:
        task = value_task(tmp_path / f"crash-{boundary}")
        script = tmp_path / f"script-{boundary}.jsonl"
        script.write_text(HOSTILE_PROPOSAL)
        args = ("run", str(task), "--tag", "r", "--provider", "replay", "--script", str(script))
        crashed = overnight(*args, env={"OVERNIGHT_CRASH_AT": str(boundary)})
        if crashed.returncode == 0:
            break  # past the last boundary
        assert crashed.returncode == EXIT_CODE, crashed.stderr.decode(errors="replace")
        resumed = overnight(*args)
        assert resumed.returncode == 0, resumed.stderr.decode(errors="replace")
        assert_no_escape(resumed.stdout.decode() + resumed.stderr.decode())
        finals.append([(r.experiment, r.status.value, r.description) for r in results(task, "r")])
        assert_clean_run(task, "r")
        boundary += 1
    assert boundary == 10  # proposal logged, committed, measured, decided, recorded
    assert all(final == finals[0] for final in finals)
    assert [status for _, status, _ in finals[0]] == ["keep", "keep"]
    assert finals[0][1][2].startswith("\\udcff\\x00\\x1b[2J\\x1b]0;t\\x07\\x9b \\u202e keep")


def test_an_offline_proposal_past_its_proposal_timeout_is_skipped_and_the_night_goes_on(
    tmp_path, capsys, no_leftover_containers
) -> None:
    script = tmp_path / "script.jsonl"
    script.write_text(
        "\n".join(
            json.dumps({"description": f"try {n}", "calls": [write_value(1.0)]}) for n in (1, 2)
        )
    )
    agent = f'[agent]\nprovider = "replay"\nscript = "{script}"\nproposal_timeout = 0.001\n'
    task = value_task(tmp_path, **{"overnight.toml": agent})

    code, out = run_cli("run", str(task), "--tag", "p", capsys=capsys)

    assert code == 0, out
    rows = results(task, "p")
    # Compiling alone takes longer than a millisecond, so both proposals end past their time.
    assert [(r.status.value, r.description) for r in rows[1:]] == [
        ("skipped", f"try {n} [proposal_timeout of 0.001s reached]") for n in (1, 2)
    ]
    assert [e.get("reason") for e in events(task, "p") if e["event"] == "decision"][1:] == [
        "proposal_timeout of 0.001s reached"
    ] * 2
    assert "stopped: the agent has no more proposals" in out


# --- model agents: hostile replies, thinking and tool-call arguments over HTTP --------------

DEEP_ARGUMENTS = '{"command": "view", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
LONG_INTEGER = '{"command": "insert", "insert_line": ' + "9" * 5000 + ', "new_str": "# x"}'
AGENT = """
[agent]
{provider}
retry_initial_seconds = 0.02
retry_max_seconds = 0.05
timeout = 20
max_tool_errors = 10
proposal_timeout = {timeout}
"""
PROVIDERS = {
    "anthropic": 'provider = "anthropic"\nmodel = "claude-test"',
    "openai": 'provider = "openai"\nmodel = "gpt-test"\nbase_url = "{url}/v1"',
    "responses": 'provider = "openai"\nmodel = "gpt-test"\napi = "responses"\nbase_url = "{url}/v1"',
}
FINAL = "\x1b]0;pwned\x07Lower VALUE \u202e\udcff\x00 " + "z" * 200_000


def hostile_model_script():
    return [
        tool({"command": "view", "\x1b]0;t\x07": "\udcff"}, text="Looking \x1b[2J\ud800",
             thinking="hmm \udcff\x00"),
        tool({"command": "view", "extra": nested(600)}),
        tool({"command": "view"}, name="\x1b]0;x\x07edit\udcff"),
        tool({}, raw_arguments=DEEP_ARGUMENTS),  # anthropic: unreadable answer, retried
        tool({}, raw_arguments=LONG_INTEGER),
        tool({"command": "str_replace", "old_str": "VALUE = 5.0",
              "new_str": "VALUE = 1.0  # \x1b[2J"}),
        tool({"command": "str_replace", "old_str": "VALUE = 5.0", "new_str": "VALUE = 1.0"},
             text="\r\x1b[2K"),
        text(FINAL, thinking="\ud800 done"),
        slow(60, text("too late")),  # proposal 2: the model never answers in time
    ]  # fmt: skip


@pytest.mark.parametrize("kind", PROVIDERS)
def test_a_model_with_hostile_replies_and_arguments_and_a_slow_answer_leaves_a_clean_night(
    kind, tmp_path, capsys, monkeypatch, no_leftover_containers
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with guard_network(), FakeLLM(hostile_model_script()) as llm:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        agent = AGENT.format(provider=PROVIDERS[kind].format(url=llm.url), timeout=8)
        task = value_task(tmp_path, **{"overnight.toml": "timeout = 30\n" + agent})
        code, out = run_cli("run", str(task), "--tag", "m", "--max-experiments", "2",
                            capsys=capsys)  # fmt: skip
        bodies = [r.body for r in llm.requests]

    assert code == 0, out
    rows = results(task, "m")
    assert [r.status.value for r in rows] == ["keep", "keep", "skipped"]
    # The model's text was made valid where it came in (a lone surrogate is U+FFFD), then printable.
    assert rows[1].description == untrusted.first_line(untrusted.valid(FINAL))
    assert rows[1].description.startswith("\\x1b]0;pwned\\x07Lower VALUE \\u202e\ufffd\\x00 zzz")
    assert rows[2].description.endswith("[proposal_timeout of 8s reached]")
    # No request outlived the proposal's remaining time (the request timeout is 20 s).
    log = events(task, "m")
    decided = next(e["ts"] for e in log if e["event"] == "decision" and e["experiment"] == 1)
    proposed = next(e["ts"] for e in log if e["event"] == "proposal" and e["experiment"] == 2)
    assert 7.5 < proposed - decided < 16
    # What went back to the model was valid (the old code could not even encode it).
    assert not [s for b in bodies for s in strings(b) if re.search("[\ud800-\udfff]", s)]
    assert_clean_run(task, "m")
    assert_no_escape(out)
