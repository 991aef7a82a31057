"""Reading a task folder and resolving its settings, as a user setting up a night would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import MutateAgentConfig, ReplayAgentConfig, resolve_settings
from harness.errors import TaskError
from harness.overrides import Overrides
from harness.seams import Direction
from harness.task import NotLiteral, load_task

PROGRAM = "# Lower the loss\nChange only train.py.\n"
PREPARE = '''"""Fixed by the human."""

METRIC = "val_loss"
DIRECTION = "minimize"
TIME_BUDGET = 5 * 60


def evaluate(output_dir):
    return {"val_loss": 1.0}
'''
TRAIN = "LEARNING_RATE = 0.01\nprint('val_loss:', LEARNING_RATE)\n"


def make_task(
    folder: Path,
    *,
    prepare: str | None = PREPARE,
    train: str | None = TRAIN,
    program: str | None = PROGRAM,
    toml: str | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("prepare.py", prepare),
        ("train.py", train),
        ("program.md", program),
        ("overnight.toml", toml),
    ):
        if text is not None:
            (folder / name).write_text(text, encoding="utf-8")
    return folder


def settings_of(folder: Path, overrides=None):
    return resolve_settings(load_task(folder), overrides)


def problem_of(folder: Path, overrides=None) -> str:
    with pytest.raises(TaskError) as raised:
        settings_of(folder, overrides)
    return str(raised.value)


def test_constants_are_read_from_prepare_py(tmp_path) -> None:
    task = make_task(tmp_path / "task")

    loaded = load_task(task)
    settings = resolve_settings(loaded)

    assert loaded.prepare_constants == {
        "METRIC": "val_loss",
        "DIRECTION": "minimize",
        "TIME_BUDGET": 300,
    }
    assert settings.metric == "val_loss"
    assert settings.direction is Direction.MINIMIZE
    assert settings.time_budget == 300.0
    assert settings.timeout == 2 * 300 + 60
    assert settings.protected is True
    assert isinstance(settings.agent, MutateAgentConfig)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("TIME_BUDGET = 5 * 60", 300),
        ("TIME_BUDGET = 90", 90),
        ("TIME_BUDGET = 2.5", 2.5),
        ("TIME_BUDGET: int = 600", 600),
        ("TIME_BUDGET = 10 * 60 + 30", 630),
        ("TIME_BUDGET = (20 - 5) * 2", 30),
        ("TIME_BUDGET = 3600 / 4", 900.0),
    ],
)
def test_time_budget_may_be_plain_arithmetic(tmp_path, line, expected) -> None:
    prepare = f'METRIC = "loss"\nDIRECTION = "maximize"\n{line}\n'
    task = make_task(tmp_path / "task", prepare=prepare)

    settings = settings_of(task)

    assert load_task(task).prepare_constants["TIME_BUDGET"] == expected
    assert settings.time_budget == float(expected)
    assert settings.timeout == 2 * float(expected) + 60
    assert settings.direction is Direction.MAXIMIZE


def test_timeout_in_prepare_py_replaces_the_default(tmp_path) -> None:
    prepare = 'METRIC = "loss"\nDIRECTION = "minimize"\nTIME_BUDGET = 60\nTIMEOUT = 100\n'
    task = make_task(tmp_path / "task", prepare=prepare)

    assert settings_of(task).timeout == 100.0


def test_without_any_time_budget_the_default_is_five_minutes(tmp_path) -> None:
    task = make_task(tmp_path / "task", prepare='METRIC = "loss"\nDIRECTION = "minimize"\n')

    settings = settings_of(task)

    assert settings.time_budget == 300.0
    assert settings.timeout == 660.0


def test_overnight_toml_wins_over_prepare_py(tmp_path) -> None:
    toml = 'metric = "accuracy"\ndirection = "maximize"\ntime_budget = 120\n'
    task = make_task(tmp_path / "task", toml=toml)

    settings = settings_of(task)

    assert settings.metric == "accuracy"
    assert settings.direction is Direction.MAXIMIZE
    assert settings.time_budget == 120.0
    assert settings.timeout == 2 * 120 + 60


def test_overrides_win_over_overnight_toml_and_prepare_py(tmp_path) -> None:
    toml = 'metric = "accuracy"\ndirection = "maximize"\ntime_budget = 120\ntimeout = 500\n'
    task = make_task(tmp_path / "task", toml=toml)
    overrides = Overrides(
        metric="f1", direction="minimize", time_budget=30, timeout=45, seed=7, image="my/image:1"
    )

    settings = settings_of(task, overrides)

    assert settings.metric == "f1"
    assert settings.direction is Direction.MINIMIZE
    assert settings.time_budget == 30.0
    assert settings.timeout == 45.0
    assert settings.agent == MutateAgentConfig(seed=7)
    assert settings.image == "my/image:1"


def test_a_seed_in_overnight_toml_is_kept_and_the_cli_seed_wins(tmp_path) -> None:
    task = make_task(tmp_path / "task", toml='[agent]\nprovider = "mutate"\nseed = 3\n')

    assert settings_of(task).agent == MutateAgentConfig(seed=3)
    assert settings_of(task, Overrides(seed=11)).agent == MutateAgentConfig(seed=11)


def test_a_replay_script_override_switches_the_agent(tmp_path) -> None:
    task = make_task(tmp_path / "task")
    script = tmp_path / "night.jsonl"

    settings = settings_of(task, Overrides(provider="replay", script=script))

    assert settings.agent == ReplayAgentConfig(provider="replay", script=script)


def test_overrides_left_as_none_do_not_hide_the_config(tmp_path) -> None:
    task = make_task(tmp_path / "task", toml='metric = "accuracy"\n')

    settings = settings_of(task, Overrides(metric=None, time_budget=None, image=None))

    assert settings.metric == "accuracy"
    assert settings.time_budget == 300.0
    assert settings.image is None


def test_a_time_budget_override_moves_the_default_timeout(tmp_path) -> None:
    task = make_task(tmp_path / "task")

    assert settings_of(task, Overrides(time_budget=10)).timeout == 80.0


def test_an_undeclared_metric_is_left_for_the_baseline_to_settle(tmp_path) -> None:
    task = make_task(tmp_path / "task", prepare='DIRECTION = "minimize"\nTIME_BUDGET = 60\n')

    settings = settings_of(task)

    assert settings.metric is None
    assert settings.direction is Direction.MINIMIZE
    assert settings.metric_source == "direction from prepare.py"


def test_a_tag_keeps_the_metric_it_measured_without_flags(tmp_path) -> None:
    task = make_task(tmp_path / "task", prepare="TIME_BUDGET = 60\n")

    settings = resolve_settings(
        load_task(task), None, saved={"metric": "val_bpb", "direction": "minimize"}
    )

    assert (settings.metric, settings.direction) == ("val_bpb", Direction.MINIMIZE)
    assert settings.metric_source == "from this tag's config.json"


@pytest.mark.parametrize("value", ['"Minimize"', '"max"', '"lower"'])
def test_direction_words_users_write_are_understood(tmp_path, value) -> None:
    task = make_task(tmp_path / "task", prepare=f'METRIC = "loss"\nDIRECTION = {value}\n')

    expected = Direction.MAXIMIZE if "max" in value else Direction.MINIMIZE
    assert settings_of(task).direction is expected


@pytest.mark.parametrize("value", ['"down"', '""', "1"])
def test_bad_direction_names_the_file_and_the_fix(tmp_path, value) -> None:
    task = make_task(tmp_path / "task", prepare=f'METRIC = "loss"\nDIRECTION = {value}\n')

    message = problem_of(task)

    assert str(task / "prepare.py") in message
    assert '"minimize" or "maximize"' in message
    assert "direction in overnight.toml" in message


def test_every_problem_is_reported_at_once(tmp_path) -> None:
    task = make_task(tmp_path / "task", prepare='DIRECTION = "down"\nTIME_BUDGET = -5\n')

    lines = problem_of(task).splitlines()

    assert len(lines) == 2
    assert any("DIRECTION" in line for line in lines)
    assert any("TIME_BUDGET must be a positive number" in line for line in lines)


@pytest.mark.parametrize(
    ("toml", "where", "known"),
    [
        ('metrik = "loss"\n', "metrik", "metric"),
        ('[sandbox]\nmemroy = "1g"\n', "sandbox.memroy", "memory"),
        ("[edit]\nmax_call = 3\n", "edit.max_call", "max_calls"),
        ('[agent]\nprovider = "mutate"\nsed = 1\n', "sed", "seed"),
    ],
    ids=["top", "sandbox", "edit", "agent"],
)
def test_an_unknown_key_in_overnight_toml_is_named(tmp_path, toml, where, known) -> None:
    task = make_task(tmp_path / "task", toml=toml)

    message = problem_of(task)

    assert str(task / "overnight.toml") in message
    assert where in message
    assert "remove it" in message
    known_keys = message.split("known keys: ", 1)[1].rstrip(")").split(", ")
    assert known in known_keys


def test_invalid_toml_names_the_file(tmp_path) -> None:
    task = make_task(tmp_path / "task", toml="metric = \n")

    with pytest.raises(TaskError) as raised:
        load_task(task)

    assert str(task / "overnight.toml") in str(raised.value)
    assert "not valid TOML" in str(raised.value)


def test_a_computed_constant_without_a_visible_default_counts_as_undeclared(tmp_path) -> None:
    prepare = 'def compute():\n    return "loss"\n\n\nMETRIC = compute()\nDIRECTION = "minimize"\n'
    task = make_task(tmp_path / "task", prepare=prepare)

    assert load_task(task).prepare_constants["METRIC"] == NotLiteral("compute()")
    assert settings_of(task).metric is None


@pytest.mark.parametrize(
    ("expression", "budget"),
    [
        ('int(os.environ.get("TIME_BUDGET", 120))', 120.0),
        ('float(os.getenv("BUDGET", "90"))', 90.0),
        ('os.environ.get("BUDGET") or 45', 45.0),
    ],
)
def test_a_computed_time_budget_is_read_as_its_visible_default(tmp_path, expression, budget):
    prepare = f'import os\nMETRIC = "loss"\nDIRECTION = "minimize"\nTIME_BUDGET = {expression}\n'
    task = make_task(tmp_path / "task", prepare=prepare)

    settings = settings_of(task)

    assert settings.time_budget == budget
    assert settings.timeout == 2 * budget + 60


def test_a_non_literal_constant_is_fine_when_overnight_toml_sets_it(tmp_path) -> None:
    prepare = 'import os\n\nMETRIC = os.environ["METRIC"]\nDIRECTION = "minimize"\n'
    task = make_task(tmp_path / "task", prepare=prepare, toml='metric = "loss"\n')

    assert settings_of(task).metric == "loss"


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        (("train.py",), ("program.md", "prepare.py")),
        (("program.md", "train.py"), ("prepare.py",)),
        (("program.md", "prepare.py"), ("train.py",)),
        ((), ("program.md", "train.py", "prepare.py")),
    ],
)
def test_missing_task_files_are_listed(tmp_path, present, missing) -> None:
    folder = tmp_path / "task"
    make_task(
        folder,
        prepare=PREPARE if "prepare.py" in present else None,
        train=TRAIN if "train.py" in present else None,
        program=PROGRAM if "program.md" in present else None,
    )

    with pytest.raises(TaskError) as raised:
        load_task(folder)

    missing_part = str(raised.value).split("missing ", 1)[1].split(";", 1)[0]
    assert missing_part.split(", ") == list(missing)
    assert str(folder) in str(raised.value)


def test_a_path_that_is_not_a_folder_is_refused(tmp_path) -> None:
    not_a_folder = tmp_path / "train.py"
    not_a_folder.write_text(TRAIN)

    with pytest.raises(TaskError) as raised:
        load_task(not_a_folder)

    assert "not a folder" in str(raised.value)


def test_a_syntax_error_in_train_py_names_the_file_and_line(tmp_path) -> None:
    task = make_task(tmp_path / "task", train="import math\n\ndef f(:\n    pass\n")

    with pytest.raises(TaskError) as raised:
        load_task(task)

    assert f"{task / 'train.py'}:3:" in str(raised.value)
    assert "syntax error" in str(raised.value)


def test_a_syntax_error_in_prepare_py_names_the_file_and_line(tmp_path) -> None:
    task = make_task(tmp_path / "task", prepare='METRIC = "loss"\nDIRECTION = (\n')

    with pytest.raises(TaskError) as raised:
        load_task(task)

    assert f"{task / 'prepare.py'}:" in str(raised.value)


@pytest.mark.parametrize(
    ("tail", "protected"),
    [
        ("def evaluate(output_dir):\n    return {}\n", True),
        ("def evaluate(output_dir, extra=None):\n    return {}\n", True),
        ("", False),
        ("def evaluate_model(output_dir):\n    return {}\n", False),
        ("evaluate = lambda output_dir: {}\n", False),
        ("class Scorer:\n    def evaluate(self, output_dir):\n        return {}\n", False),
        ("def outer():\n    def evaluate(output_dir):\n        return {}\n", False),
        ("if True:\n    def evaluate(output_dir):\n        return {}\n", False),
        ('"""def evaluate(output_dir): no, only a docstring"""\n', False),
        ("# def evaluate(output_dir):\n", False),
    ],
    ids=[
        "top-level",
        "extra-args",
        "absent",
        "other-name",
        "lambda",
        "method",
        "nested",
        "under-if",
        "in-string",
        "in-comment",
    ],
)
def test_protected_exactly_when_prepare_py_defines_evaluate(tmp_path, tail, protected) -> None:
    prepare = f'METRIC = "loss"\nDIRECTION = "minimize"\n\n\n{tail}'
    task = make_task(tmp_path / "task", prepare=prepare)

    assert load_task(task).has_evaluate is protected
    assert settings_of(task).protected is protected


def test_load_task_never_runs_prepare_py_or_train_py(tmp_path) -> None:
    ran_prepare, ran_train, ran_compute = (
        tmp_path / "ran-prepare",
        tmp_path / "ran-train",
        tmp_path / "ran-compute",
    )
    prepare = f"""import pathlib

pathlib.Path({str(ran_prepare)!r}).write_text("ran")


def compute():
    pathlib.Path({str(ran_compute)!r}).write_text("ran")
    return 60


METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = compute()


def evaluate(output_dir):
    return {{"loss": 1.0}}
"""
    train = f'import pathlib\n\npathlib.Path({str(ran_train)!r}).write_text("ran")\n'
    task = make_task(tmp_path / "task", prepare=prepare, train=train, toml="time_budget = 60\n")

    loaded = load_task(task)
    settings = resolve_settings(loaded)

    assert settings.time_budget == 60.0
    assert loaded.prepare_constants["TIME_BUDGET"] == NotLiteral("compute()")
    assert not ran_prepare.exists()
    assert not ran_train.exists()
    assert not ran_compute.exists()

    # The traps are armed: running the files does leave the markers.
    for name in ("prepare.py", "train.py"):
        subprocess.run([sys.executable, name], cwd=task, check=True, capture_output=True)
    assert ran_prepare.exists()
    assert ran_train.exists()
    assert ran_compute.exists()


def test_the_task_keeps_the_texts_it_read(tmp_path) -> None:
    task = make_task(tmp_path / "task")

    loaded = load_task(task)

    assert loaded.root == task.resolve()
    assert loaded.program == PROGRAM
    assert loaded.train_source == TRAIN
    assert loaded.prepare_source == PREPARE
    assert loaded.has_dockerfile is False
    assert loaded.toml == {}


@pytest.mark.parametrize(
    ("prepare_tail", "train", "toml", "protected", "why"),
    [
        ("def evaluate(output_dir):\n    return 1.0\n", TRAIN, None, True, "defines evaluate"),
        (
            "def evaluate(fn, data=None):\n    return fn(data)\n",
            "from prepare import evaluate\nprint('score:', evaluate(len, [1]))\n",
            None,
            False,
            "evaluate(fn, data) is not evaluate(output_dir)",
        ),
        (
            "def evaluate(model):\n    return model\n",
            "import prepare\nprint('score:', prepare.evaluate(1.0))\n",
            None,
            False,
            "train.py calls prepare.py's evaluate itself",
        ),
        (
            "def evaluate(output_dir):\n    return 1.0\n",
            TRAIN,
            'mode = "inline"\n',
            False,
            'mode = "inline" in overnight.toml',
        ),
    ],
    ids=["output-dir", "another-signature", "called-by-train", "forced-inline"],
)
def test_protected_only_for_an_evaluate_of_the_output_folder(
    tmp_path, prepare_tail, train, toml, protected, why
) -> None:
    prepare = f'METRIC = "score"\nDIRECTION = "maximize"\n\n\n{prepare_tail}'
    task = make_task(tmp_path / "task", prepare=prepare, train=train, toml=toml)

    settings = settings_of(task)

    assert settings.protected is protected
    assert why in settings.mode_reason


def test_protected_mode_forced_without_evaluate_of_the_output_folder_is_refused(tmp_path):
    prepare = 'METRIC = "score"\nDIRECTION = "maximize"\n\ndef evaluate(fn, data=None):\n    pass\n'
    task = make_task(tmp_path / "task", prepare=prepare, toml='mode = "protected"\n')

    message = problem_of(task)

    assert str(task / "overnight.toml") in message
    assert "evaluate(fn, data)" in message


def test_an_override_cannot_reach_a_time_budget_train_py_imports_from_prepare(tmp_path):
    prepare = 'METRIC = "loss"\nDIRECTION = "minimize"\nTIME_BUDGET = 300\n'
    train = "from prepare import TIME_BUDGET\nprint('loss:', TIME_BUDGET)\n"
    task = make_task(tmp_path / "task", prepare=prepare, train=train, toml="time_budget = 20\n")

    settings = settings_of(task)

    assert settings.time_budget == 300
    assert settings.timeout == 660
    assert "cannot reach it" in settings.time_budget_note
    assert "the hard timeout follows 300s" in settings.time_budget_note


def test_an_override_reaches_a_train_py_that_reads_the_budget_from_its_environment(tmp_path):
    prepare = 'METRIC = "loss"\nDIRECTION = "minimize"\nTIME_BUDGET = 300\n'
    train = (
        "import os\nfrom prepare import TIME_BUDGET\n"
        "budget = float(os.environ.get('OVERNIGHT_TIME_BUDGET', TIME_BUDGET))\n"
    )
    task = make_task(tmp_path / "task", prepare=prepare, train=train, toml="time_budget = 20\n")

    settings = settings_of(task)

    assert (settings.time_budget, settings.timeout, settings.time_budget_note) == (20, 100, "")


def test_show_evaluator_output_and_metric_digits_are_read_from_overnight_toml(tmp_path) -> None:
    default = settings_of(make_task(tmp_path / "default"))
    assert default.show_evaluator_output is False and default.metric_digits is None
    task = make_task(tmp_path / "task", toml="show_evaluator_output = true\nmetric_digits = 4\n")
    settings = settings_of(task)
    assert settings.show_evaluator_output is True and settings.metric_digits == 4


@pytest.mark.parametrize(
    ("toml", "where"),
    [
        ('show_evaluator_output = "yes"\n', "show_evaluator_output"),
        ("show_evaluator_output = 1\n", "show_evaluator_output"),
        ('metric_digits = "3"\n', "metric_digits"),
        ("metric_digits = 2.5\n", "metric_digits"),
        ("metric_digits = true\n", "metric_digits"),
        ("metric_digits = 0\n", "metric_digits"),
        ("metric_digits = 18\n", "metric_digits"),
    ],
)
def test_show_evaluator_output_and_metric_digits_take_only_their_own_type(
    tmp_path, toml, where
) -> None:
    task = make_task(tmp_path / "task", toml=toml)

    message = problem_of(task)

    assert f"{task / 'overnight.toml'}: {where}:" in message


@pytest.mark.parametrize(
    ("written", "size"),
    [('"512m"', 512 * 2**20), ('"1.5GiB"', 3 * 2**29), ('"64k"', 64 * 1024), ("1048576", 2**20)],
)
def test_sizes_are_read_once_as_bytes_and_kept_as_written(tmp_path, written, size) -> None:
    task = make_task(tmp_path / "task", toml=f"[sandbox]\nmemory = {written}\n")

    settings = settings_of(task)

    assert settings.sandbox.memory.bytes == size
    assert str(settings.sandbox.memory) == written.strip('"')
    assert settings.model_dump(mode="json")["sandbox"]["memory"] == written.strip('"')
    assert settings.sandbox.tmpfs.bytes == 512 * 2**20


@pytest.mark.parametrize("written", ['"lots"', "-4", "true", '"4 gallons"'])
def test_a_size_that_is_not_one_names_the_key_and_the_form(tmp_path, written) -> None:
    task = make_task(tmp_path / "task", toml=f"[night]\nmin_free_disk = {written}\n")

    problem = problem_of(task)

    assert "overnight.toml: night.min_free_disk" in problem
    assert "512m or 4g" in problem or "negative" in problem
