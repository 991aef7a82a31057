"""The evaluator from the hostile side, after an outside review's breaches: metrics forged with
values that are not real numbers, held-out data that reached the agent through the evaluator's
output, folders nested too deep, and the metric as a side channel.

Every night runs through the real loop (the replay agent, or a model agent over HTTP), the real
engine and real git. Each hostile proposal must end `invalid`, never kept, and the night goes on
to keep an honest change after them. No private value (a needle that setup writes into the
private folder) may appear in what the agent can read: the ledger, the output files the history
quotes, or, for a model agent, any request the model received.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    committed_repo,
    copy_quickstart,
    events,
    git,
    nest_folders,
    results,
    run_cli,
    write_script,
    write_task,
)
from fake_llm_server import FakeLLM, guard_network, text, tool
from test_night import replace_value, value_task

from harness.experiment import read_result
from harness.seams import RunResult, RunStatus
from sandbox import tree
from sandbox.evaluator_checks import MAX_ENTRIES, unsafe_output

NARROWED = "(a value was narrowed; overnight makes that an error)"


@dataclass
class Night:
    task: Path
    tag: str
    code: int

    @property
    def rows(self):
        return results(self.task, self.tag)

    @property
    def events(self):
        return events(self.task, self.tag)

    def row(self, description: str):
        return next(r for r in self.rows if r.description == description)

    def folder(self, number: int) -> Path:
        return self.task / ".overnight" / self.tag / "experiments" / f"{number:04d}"

    def run_event(self, number: int) -> dict:
        return next(e for e in self.events if e["event"] == "run" and e["experiment"] == number)

    def agent_readable(self) -> str:
        """Everything of the night the agent's history is built from: the ledger and the output
        files (output.txt, output-confirm-N.txt)."""
        texts = [(self.task / ".overnight" / self.tag / "results.tsv").read_text()]
        for folder in sorted((self.task / ".overnight" / self.tag / "experiments").iterdir()):
            texts += [path.read_text() for path in sorted(folder.glob("output*.txt"))]
        return "\n".join(texts)


def run_night(task: Path, tag: str, proposals: list[dict]) -> Night:
    script = write_script(task.parent / f"{tag}.jsonl", proposals)
    code, _ = run_cli(
        "run", str(task), "--tag", tag, "--provider", "replay", "--script", str(script)
    )
    return Night(task, tag, code)


def assert_nothing_hostile_kept(night: Night, honest: str) -> None:
    """The night ended normally, and the branch holds the baseline and the honest change only."""
    assert night.code == 0
    keeps = [r for r in night.rows if r.status.value == "keep"]
    assert [r.description for r in keeps] == ["baseline", honest]
    assert (
        git(night.task, "rev-list", "--count", f"{keeps[0].commit}..overnight/{night.tag}") == "1"
    )


# --- forged metrics through the shipped quickstart evaluator ---------------------------------

SAVE = 'np.save(os.path.join(output, "weights.npy"), weights)'
# The review's attack: complex weights whose bias has a large imaginary part. The squared error's
# real part is then the honest loss minus 100, and float() would drop the imaginary part.
COMPLEX = "weights = weights.astype(np.{dtype})\nweights[-1] += 10j\n" + SAVE
QUICKSTART_CASES = {
    "complex128 weights (the review's forged keep)": COMPLEX.format(dtype="complex128"),
    "complex64 weights": COMPLEX.format(dtype="complex64"),
    "clongdouble weights": COMPLEX.format(dtype="clongdouble"),
    "a complex projection": "projection = projection + 1j\n"
    'np.save(os.path.join(output, "projection.npy"), projection)\n' + SAVE,
    "float16 weights": SAVE.replace("weights)", "weights.astype(np.float16))"),
    "object weights": SAVE.replace("weights)", "weights.astype(object), allow_pickle=True)"),
}
HONEST = "LEARNING_RATE = 0.01 -> 0.02074"
DTYPE_CHECK = """    if projection.dtype != np.float64 or weights.dtype != np.float64:
        raise ValueError(f"expected float64 arrays, not {projection.dtype} and {weights.dtype}")
"""


def quickstart_proposals() -> list[dict]:
    proposals = [
        {
            "description": name,
            "calls": [{"command": "str_replace", "old_str": SAVE, "new_str": new}],
        }
        for name, new in QUICKSTART_CASES.items()
    ]
    change = {
        "command": "str_replace",
        "old_str": "LEARNING_RATE = 0.01\n",
        "new_str": "LEARNING_RATE = 0.02074\n",
    }
    return [*proposals, {"description": HONEST, "calls": [change]}]


@pytest.fixture(scope="module", params=["shipped", "without its dtype check"])
def quickstart_night(request, tmp_path_factory, docker_client) -> tuple[str, Night]:
    task = copy_quickstart(tmp_path_factory.mktemp("quickstart"))
    if request.param != "shipped":  # the runner alone must stop what the task's check stops
        prepare = (task / "prepare.py").read_text()
        assert DTYPE_CHECK in prepare
        (task / "prepare.py").write_text(prepare.replace(DTYPE_CHECK, ""))
    committed_repo(task)
    return request.param, run_night(task, "q", quickstart_proposals())


@pytest.mark.parametrize("case", list(QUICKSTART_CASES))
def test_arrays_of_another_dtype_make_the_quickstart_experiment_invalid_never_a_keep(
    quickstart_night, case
):
    evaluator, night = quickstart_night
    row = night.row(case)
    note = night.run_event(row.experiment)["note"]
    if evaluator == "shipped" or case == "object weights":
        assert row.status.value == "invalid" and note == "evaluate() raised ValueError"
    elif case == "float16 weights":  # honest weights, only rounded: scored as they are
        assert row.status.value in ("discard", "keep") and row.metric > 0.5
    else:
        assert (
            row.status.value == "invalid" and note == f"evaluate() raised ComplexWarning {NARROWED}"
        )
    assert row.metric is None or row.metric > 0.5  # never the forged -98.7
    output = (night.folder(row.experiment) / "output.txt").read_text()
    assert "# overnight: no valid metric" in output or row.status.value != "invalid"


def test_the_quickstart_night_goes_on_and_keeps_only_the_honest_change(quickstart_night):
    evaluator, night = quickstart_night
    assert night.code == 0
    assert [r.description for r in night.rows] == ["baseline", *QUICKSTART_CASES, HONEST]
    last = night.rows[-1]
    if evaluator == "shipped":
        assert_nothing_hostile_kept(night, HONEST)
        assert 0.5 < last.metric < night.rows[0].metric
    else:  # float16 weights are honest, only rounded: they may be kept, or beat the last change
        assert last.status.value in ("keep", "discard") and last.metric > 0.5
    assert "complex" not in git(night.task, "show", "overnight/q:train.py")


# --- what the evaluator returns, and what reaches the agent ----------------------------------

LEAK_PREPARE = '''
import json
import os
import secrets
import sys

import numpy as np
from overnight_eval import TrainCallError, call_train

METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = 1


def evaluate(output_dir):
    """A naive evaluator: it trusts the dtype train.py saved, and quotes held-out rows when
    something goes wrong. What it returns depends on the mode train.py wrote."""
    with open(os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "held_out.json")) as handle:
        rows = json.load(handle)["rows"]
    with open(os.path.join(output_dir, "mode.txt")) as handle:
        mode = handle.read().strip()
    value = np.load(os.path.join(output_dir, "value.npy"), allow_pickle=False)
    if mode == "predict":
        call_train("predict", rows, timeout=3)
    elif mode == "predict, converted":
        try:
            call_train("predict", rows, timeout=3)
        except TrainCallError as err:
            raise ValueError(f"predict() failed: {err}") from None
    elif mode == "quote":
        raise ValueError(f"the answer does not match the held-out row {rows[7]}")
    elif mode == "print and crash":
        print("held-out rows:", rows, flush=True)
        return {"loss": 1 / 0}
    elif mode == "result file":  # writes the runner's result file itself, then leaves
        with open(sys.argv[3], "w") as handle, open(os.path.join(output_dir, "result.json")) as src:
            handle.write(src.read())
        os._exit(0)
    elif mode == "free text":
        with open(sys.argv[3], "w") as handle:
            json.dump({"invalid": f"bad row {rows[3]}", "detail": rows[3]}, handle)
        os._exit(0)
    elif mode == "extra":
        return {"loss": 1.0, "accuracy": value.item()}
    returns = {
        "float": lambda: float(np.mean(value)),
        "as is": lambda: value,
        "item": lambda: value.item(),
        "scalar": lambda: value[()],
        "astype": lambda: float(value.astype(np.float64)),
        "int cast": lambda: float(value.astype(np.int64)),
    }
    return {"loss": returns[mode]()}


if __name__ == "__main__":
    needle = "NEEDLE" + secrets.token_hex(8)
    with open(os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "held_out.json"), "w") as handle:
        json.dump({"rows": [f"{needle}-row-{i}" for i in range(120)]}, handle)
'''

LEAK_TRAIN = """import os
import sys
import time

import numpy as np

OUT = os.environ["OVERNIGHT_OUTPUT_DIR"]


def save(mode, value):
    if __name__ != "__main__":  # imported by a call_train worker: no training
        return
    with open(os.path.join(OUT, "mode.txt"), "w") as handle:
        handle.write(mode)
    np.save(os.path.join(OUT, "value.npy"), np.asarray(value))


def predict(rows):
    return len(rows)


"""


@dataclass(frozen=True)
class Leak:
    name: str
    body: str
    note: str  # what the agent is told, exactly
    quoted: bool = False  # the needle reached the evaluator's output (kept for the human)


PRINT_ROWS = 'def predict(rows):\n    sys.stderr.write("\\n".join(rows) + "\\n")\n'
LEAKS = [
    Leak("a numpy complex scalar", 'save("scalar", np.complex128(1 + 7j))',
         "evaluate() returned complex128 for loss, not a real number"),
    Leak("a Python complex", 'save("item", 1 + 7j)',
         "evaluate() returned complex for loss, not a real number"),
    Leak("a 0-d complex array", 'save("as is", 1 + 7j)',
         "evaluate() returned ndarray for loss, not a real number"),
    Leak("float() of a complex mean", 'save("float", 1 + 7j)',
         f"evaluate() raised ComplexWarning {NARROWED}"),
    Leak("astype(float64) of a complex array", 'save("astype", 1 + 7j)',
         f"evaluate() raised ComplexWarning {NARROWED}"),
    Leak("NaN cast to an integer", 'save("int cast", float("nan"))',
         f"evaluate() raised RuntimeWarning {NARROWED}"),
    Leak("a Python bool", 'save("item", True)', "evaluate() returned bool for loss, not a real number"),
    Leak("a numpy bool", 'save("scalar", True)',
         "evaluate() returned bool_ for loss, not a real number"),
    Leak("a string", 'save("item", "1.0")', "evaluate() returned str for loss, not a real number"),
    Leak("a complex value besides the metric", 'save("extra", 1 + 7j)',
         "evaluate() returned complex for another value, not a real number"),
    Leak("a JSON true in the result file",
         'save("result file", 1.0)\nopen(os.path.join(OUT, "result.json"), "w").write(\'{"metrics": {"loss": true}}\')',
         "evaluate() returned bool for loss, not a real number"),
    Leak("free text as the failure kind", 'save("free text", 1.0)', "evaluate() failed", quoted=True),
    Leak("predict() prints the held-out rows and raises",
         PRINT_ROWS + '    raise ValueError("cannot predict " + repr(rows))\n\n\nsave("predict", 1.0)',
         "call_train: train.py's predict() raised ValueError", quoted=True),
    Leak("predict() prints the held-out rows and exits 3",
         PRINT_ROWS + '    os._exit(3)\n\n\nsave("predict", 1.0)',
         "call_train worker exited with code 3", quoted=True),
    Leak("predict() prints the held-out rows and hangs",
         PRINT_ROWS + '    time.sleep(60)\n\n\nsave("predict", 1.0)',
         "call_train worker timed out", quoted=True),
    Leak("predict() raises a class named after a held-out row",
         PRINT_ROWS + '    raise type(rows[0].replace("-", "_"), (Exception,), {})()\n\n\nsave("predict", 1.0)',
         "call_train: train.py's predict() raised an exception", quoted=True),
    Leak("the evaluator converts the failure, quoting it",
         PRINT_ROWS + '    raise ValueError(repr(rows))\n\n\nsave("predict, converted", 1.0)',
         "call_train: train.py's predict() raised ValueError", quoted=True),
    Leak("the evaluator's exception quotes a held-out row", 'save("quote", 1.0)',
         "evaluate() raised ValueError", quoted=True),
    Leak("the evaluator prints the held-out rows, then fails", 'save("print and crash", 1.0)',
         "evaluate() raised ZeroDivisionError", quoted=True),
    Leak("folders nested 3,000 levels deep",
         'save("float", 1.0)\nos.chdir(OUT)\nfor _ in range(3000):\n    os.mkdir("d")\n    os.chdir("d")',
         "the output directory was refused: "),
]  # fmt: skip
HONEST_LEAK = "an honest 3.0"


def leak_task(folder: Path, top: str = "", tables: str = "") -> Path:
    files = {
        "program.md": "Make loss small.\n",
        "prepare.py": LEAK_PREPARE,
        "train.py": LEAK_TRAIN + 'save("float", 5.0)\n',
        "overnight.toml": top + "timeout = 20\n[sandbox]\neval_timeout = 30\n" + tables,
    }
    return committed_repo(write_task(folder, files))


def needle_of(task: Path) -> str:
    [held_out] = (task / ".overnight" / "cache").glob("setup-*/private/held_out.json")
    needle = json.loads(held_out.read_text())["rows"][0].split("-")[0]
    assert needle.startswith("NEEDLE") and len(needle) == 22
    return needle


def write_train(body: str) -> list[dict]:
    return [{"command": "write", "content": LEAK_TRAIN + body + "\n"}]


@pytest.fixture(scope="module")
def leak_night(tmp_path_factory, docker_client) -> Night:
    task = leak_task(tmp_path_factory.mktemp("leaks") / "task")
    proposals = [{"description": leak.name, "calls": write_train(leak.body)} for leak in LEAKS]
    honest = {"description": HONEST_LEAK, "calls": write_train('save("float", 3.0)')}
    return run_night(task, "l", [*proposals, honest])


@pytest.mark.parametrize("leak", LEAKS, ids=[leak.name for leak in LEAKS])
def test_a_hostile_value_or_a_failing_evaluator_is_invalid_and_the_agent_learns_only_its_kind(
    leak_night, leak
):
    row = leak_night.row(leak.name)
    event = leak_night.run_event(row.experiment)
    assert row.status.value == "invalid" and row.metric is None, event
    if leak.note.endswith(": "):
        assert event["note"].startswith(leak.note) and "nested too deep" in event["note"]
    else:
        assert event["note"] == leak.note, event
    output = (leak_night.folder(row.experiment) / "output.txt").read_text()
    assert f"# overnight: no valid metric: {event['note']}" in output
    needle = needle_of(leak_night.task)
    assert needle not in output and needle not in leak_night.run_event(row.experiment)["note"]
    evaluator = (leak_night.folder(row.experiment) / "evaluate.txt").read_text()
    if leak.quoted:  # it was said, and it is kept for the human: in evaluate.txt or the detail
        assert needle in evaluator + event["detail"]


def test_no_private_value_reaches_the_ledger_or_the_history_and_the_night_goes_on(leak_night):
    assert_nothing_hostile_kept(leak_night, HONEST_LEAK)
    assert [r.description for r in leak_night.rows] == ["baseline"] + [
        leak.name for leak in LEAKS
    ] + [HONEST_LEAK]
    assert leak_night.rows[-1].metric == 3.0
    assert needle_of(leak_night.task) not in leak_night.agent_readable()


# --- a model agent's prompts -----------------------------------------------------------------

EXITS = next(leak for leak in LEAKS if "exits 3" in leak.name)
AGENT = (
    '\n[agent]\nprovider = "anthropic"\nmodel = "claude-test"\n'
    "retry_initial_seconds = 0.02\nretry_max_seconds = 0.05\ntimeout = 20\n"
)


def model_night(tmp_path, monkeypatch, leaks: list[Leak], show: bool):
    """A night of a model agent over HTTP that proposes `leaks` in turn, then nothing more;
    returns the task and the requests the model received."""
    script = []
    for leak in leaks:
        script += [
            tool({"command": "write", "content": LEAK_TRAIN + leak.body + "\n"}),
            text(leak.name),
        ]
    script.append(text("Nothing more to try."))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    with guard_network(), FakeLLM(script) as llm:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        toml = f"show_evaluator_output = {'true' if show else 'false'}\n"
        task = leak_task(tmp_path / "task", toml, AGENT)
        code, _ = run_cli("run", str(task), "--tag", "m", "--max-experiments", str(len(leaks) + 1))
        requests = llm.model_requests()
    assert code == 0
    statuses = [r.status.value for r in results(task, "m")]
    assert statuses == ["keep"] + ["invalid"] * len(leaks) + ["skipped"]
    assert len(requests) == 2 * len(leaks) + 1
    return task, [json.dumps(r.body) for r in requests]


def test_no_request_a_model_agent_receives_holds_a_held_out_row_only_the_kind_of_failure(
    tmp_path, monkeypatch, no_leftover_containers
):
    quoted = [leak for leak in LEAKS if leak.quoted]
    task, bodies = model_night(tmp_path, monkeypatch, quoted, show=False)
    needle = needle_of(task)
    assert not [body for body in bodies if needle in body]
    for number, leak in enumerate(quoted, start=1):  # the next proposal's prompt tells its kind
        assert f"no valid metric: {leak.note}" in bodies[2 * number].replace('\\"', '"'), leak.name


def test_show_evaluator_output_shows_the_model_agent_the_evaluators_output(
    tmp_path, monkeypatch, no_leftover_containers
):
    task, bodies = model_night(tmp_path, monkeypatch, [EXITS], show=True)
    history = bodies[2]  # the second proposal's prompt, with experiment 1 in it
    assert "call_train worker exited with code 3" in history
    assert f"{needle_of(task)}-row-119" in history  # the task author's choice: held-out rows too


# --- the metric as a side channel ------------------------------------------------------------


def test_metric_digits_rounds_what_the_agent_the_ledger_and_the_decision_see(
    tmp_path, no_leftover_containers
):
    task = value_task(tmp_path, **{"overnight.toml": "metric_digits = 3\n"})
    proposals = [
        {"description": "better beyond 3 digits", "calls": [replace_value("VALUE = 4.996")]},
        {"description": "better within 3 digits", "calls": [replace_value("VALUE = 4.9912")]},
    ]
    night = run_night(task, "d", proposals)
    assert night.code == 0
    rows = night.rows
    # 4.996 rounds to 5.00: a tie with the baseline, so it is discarded; 4.9912 is 4.99, kept.
    assert [(r.status.value, r.metric) for r in rows] == [
        ("keep", 5.0),
        ("discard", 5.0),
        ("keep", 4.99),
    ]
    readable = night.agent_readable()
    assert "4.996" not in readable and "4.9912" not in readable
    assert "# overnight: loss = 5\n" in (night.folder(1) / "output.txt").read_text()
    runs = [(e["metric"], e["rounded_metric"]) for e in night.events if e["event"] == "run"]
    assert runs == [(5.0, 5.0), (4.996, 5.0), (4.9912, 4.99)]


# --- the harness's own reading of result.json ------------------------------------------------

OK_RUN = RunResult(RunStatus.OK, 0, 1.0, "")


@pytest.mark.parametrize(
    ("payload", "note"),
    [
        ('{"metrics": {"loss": 1.5, "n": 3}}', ""),
        ('{"metrics": {"loss": true}}', "evaluate() returned bool for loss, not a real number"),
        ('{"metrics": {"loss": "1.5"}}', "evaluate() returned str for loss, not a real number"),
        ('{"metrics": {"loss": [1.5]}}', "evaluate() returned list for loss, not a real number"),
        ('{"metrics": {"loss": 1.5, "n": false}}', "evaluate() returned bool for another value, not a real number"),
        ('{"metrics": {"loss": NaN}}', "evaluate() gave loss: not a finite number"),
        ('{"metrics": {"loss": 1e999}}', "evaluate() gave loss: not a finite number"),
        ('{"metrics": {"loss": 1' + "0" * 400 + "}}", "evaluate() gave loss: not a finite number"),
        ('{"metrics": {"other": 1.0}}', "evaluate() returned no loss"),
        ('{"invalid": "evaluate() raised KeyError", "detail": "KeyError: 42"}', "evaluate() raised KeyError"),
        ('{"invalid": "evaluate() raised ValueError: row 7 is 0.1234"}', "evaluate() failed"),
        ('{"invalid": "call_train worker exited with code 3"}', "call_train worker exited with code 3"),
        ('{"invalid": "call_train worker exited with code 3 after row 7"}', "evaluate() failed"),
        ('{"invalid": "evaluate() returned no secret"}', "evaluate() failed"),
        ("[1.5]", "the evaluator's result is not a JSON object"),
        ("1.5", "the evaluator's result is not a JSON object"),
    ],
)  # fmt: skip
@pytest.mark.engine_free
def test_the_harness_takes_only_json_numbers_and_known_failure_kinds_from_the_result_file(
    tmp_path, payload, note
):
    path = tmp_path / "result.json"
    path.write_text(payload)
    metrics, got, _ = read_result(path, OK_RUN, "loss")
    assert got == note
    assert (metrics == {"loss": 1.5, "n": 3.0}) if not note else metrics == {}


@pytest.mark.engine_free
def test_the_output_check_refuses_deep_and_crowded_folders_without_raising(tmp_path):
    deep = tmp_path / "deep"
    deep.mkdir()
    try:
        nest_folders(deep, 3000)
        problem = unsafe_output(str(deep), 1 << 30)
        assert problem is not None and "folders nested too deep (more than 100 levels)" in problem
    finally:
        tree.remove(deep)  # pytest's rmtree would recurse 3,000 deep, and fail every session
    crowded = tmp_path / "crowded"
    crowded.mkdir()
    for number in range(MAX_ENTRIES + 1):
        (crowded / str(number)).touch()
    assert f"{MAX_ENTRIES} entries" in str(unsafe_output(str(crowded), 1 << 30))
    os.unlink(crowded / "0")
    assert unsafe_output(str(crowded), 1 << 30) is None
