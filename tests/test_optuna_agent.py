"""The `optuna` agent: an Optuna study over train.py's constants, told its results by the ledger."""

from __future__ import annotations

import ast
import difflib
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.agents.optuna_agent import OptunaAgent
from harness.config import OptunaAgentConfig, resolve_settings
from harness.edit_tool import TrainEditor
from harness.errors import OvernightError, TaskError
from harness.overrides import Overrides
from harness.seams import Direction, ExperimentRecord, ProposalContext, StopNight, Verdict
from harness.task import load_task
from tests.conftest import copy_quickstart, results, run_cli

engine_free = pytest.mark.engine_free
TASKS = Path(__file__).resolve().parent.parent / "tasks"

TOY = '''"""Toy training script."""

LEARNING_RATE = 0.01
EPOCHS = 4
DROPOUT = 0.2
SEED = 3
N_SAMPLES = 500
NAME = "toy"


def loss():
    return (math.log10(LEARNING_RATE) + 2.5) ** 2 + (EPOCHS - 9) ** 2 / 10
'''


def values(source: str) -> dict[str, object]:
    """Module-level `NAME = <literal>` values, read independently of the agent."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def toy_loss(source: str) -> float:
    v = values(source)
    return (math.log10(v["LEARNING_RATE"]) + 2.5) ** 2 + (v["EPOCHS"] - 9) ** 2 / 10


def context(source: str, history: list[ExperimentRecord]) -> ProposalContext:
    """What the loop gives the agent when `source` is the best train.py (TOY the baseline's)."""
    keeps = [r for r in history if r.status is Verdict.KEEP]
    diff = difflib.unified_diff(TOY.splitlines(), source.splitlines(), "a/train.py", "b/train.py")
    return ProposalContext(
        experiment=len(history),
        program="Lower the loss.",
        prepare_source='METRIC = "loss"\n',
        train_source=source,
        metric="loss",
        direction=Direction.MINIMIZE,
        history=list(history),
        best=keeps[-1] if keeps else None,
        best_diff="\n".join(line.rstrip("\n") for line in diff),
    )


def night(agent: OptunaAgent, experiments: int, fail: tuple[int, ...] = ()) -> list:
    """A night without containers: each proposal's train.py is scored by `toy_loss`, kept when
    better, and experiments numbered in `fail` crash."""
    best_source = TOY
    history = [ExperimentRecord(0, "c0", toy_loss(TOY), Verdict.KEEP, "baseline")]
    sources = []
    for number in range(1, experiments + 1):
        editor = TrainEditor(best_source)
        proposal = agent.propose(context(best_source, history), editor)
        assert proposal is not None
        sources.append(editor.source)
        loss, best = toy_loss(editor.source), min(r.metric for r in history if r.metric)
        if number in fail:
            status, loss = Verdict.CRASH, None
        else:
            status = Verdict.KEEP if loss < best else Verdict.DISCARD
        history.append(ExperimentRecord(number, f"c{number}", loss, status, proposal.description))
        if status is Verdict.KEEP:
            best_source = editor.source
    return history, sources


@engine_free
def test_the_same_seed_and_ledger_give_the_same_proposals_and_another_seed_others() -> None:
    first, sources = night(OptunaAgent(seed=1), 12)
    again, _ = night(OptunaAgent(seed=1), 12)
    other, _ = night(OptunaAgent(seed=2), 12)
    assert [r.description for r in first] == [r.description for r in again]
    assert [r.description for r in first] != [r.description for r in other]
    # A night resumed before experiment 8: a new agent, the ledger so far, the best train.py.
    keeps = [r.experiment for r in first[1:8] if r.status is Verdict.KEEP]
    best = sources[keeps[-1] - 1] if keeps else TOY
    resumed = OptunaAgent(seed=1).propose(context(best, first[:8]), TrainEditor(best))
    assert resumed is not None and resumed.description == first[8].description


@engine_free
def test_a_night_improves_and_its_descriptions_say_what_ran() -> None:
    history, sources = night(OptunaAgent(seed=0), 20)
    assert min(r.metric for r in history if r.metric) < history[0].metric / 2
    for record, source in zip(history[1:], sources, strict=True):
        assert record.description.startswith("optuna: ")
        ran, told = values(source), _tokens(record.description)
        assert set(told) == {"LEARNING_RATE", "EPOCHS", "DROPOUT"}
        for name, value in told.items():
            assert ran[name] == ast.literal_eval(value.split("->")[-1])


@engine_free
def test_seeds_sizes_and_names_are_left_alone_and_ints_stay_ints() -> None:
    _, sources = night(OptunaAgent(seed=0), 10)
    for source in sources:
        v = values(source)
        assert (v["SEED"], v["N_SAMPLES"], v["NAME"]) == (3, 500, "toy")
        assert type(v["EPOCHS"]) is int and v["EPOCHS"] >= 1
        assert type(v["LEARNING_RATE"]) is float and v["LEARNING_RATE"] > 0
        assert 0.0 <= v["DROPOUT"] <= 1.0
    assert len({values(s)["EPOCHS"] for s in sources}) > 2


@engine_free
def test_pinned_and_bounded_constants_stay_where_the_config_says() -> None:
    agent = OptunaAgent(seed=0, bounds={"LEARNING_RATE": (0.001, 0.002)}, pinned=["EPOCHS"])
    history, sources = night(agent, 10)
    for source in sources:
        assert 0.001 <= values(source)["LEARNING_RATE"] <= 0.002
        assert values(source)["EPOCHS"] == 4
    assert all("EPOCHS" not in r.description for r in history)


@engine_free
def test_the_trading_task_s_thirteen_constants_fit_in_one_description() -> None:
    source = (TASKS / "trading" / "train.py").read_text()
    prepare = (TASKS / "trading" / "prepare.py").read_text()
    ctx = replace(context(source, []), prepare_source=prepare, best_diff="")
    editor = TrainEditor(source)
    proposal = OptunaAgent(seed=0).propose(ctx, editor)
    assert proposal is not None and len(proposal.description) <= 300
    ran = values(editor.source)
    tokens = _tokens(proposal.description)
    assert len(tokens) == 13
    for name, value in tokens.items():
        assert ran[name] == ast.literal_eval(value.split("->")[-1])


@engine_free
def test_too_many_constants_for_a_description_stop_the_night_asking_for_pins() -> None:
    source = "".join(f"A_RATHER_LONG_KNOB_NAME_{i} = 0.{i + 1}23\n" for i in range(20))
    with pytest.raises(StopNight, match=r"pin some"):
        OptunaAgent(seed=0).propose(context(source, []), TrainEditor(source))


@engine_free
def test_a_bound_on_a_seed_or_a_missing_name_stops_the_night_with_the_reason() -> None:
    with pytest.raises(StopNight, match=r"SEED, which it leaves alone"):
        OptunaAgent(bounds={"SEED": (1, 9)}).propose(context(TOY, []), TrainEditor(TOY))
    with pytest.raises(StopNight, match=r"LR, which train\.py has no"):
        OptunaAgent(pinned=["LR"]).propose(context(TOY, []), TrainEditor(TOY))


@engine_free
def test_crashes_and_timeouts_are_told_as_failures_and_skipped_rows_not_at_all() -> None:
    history, sources = night(OptunaAgent(seed=0), 5, fail=(2,))
    history[3] = ExperimentRecord(3, "c3", None, Verdict.TIMEOUT, history[3].description)
    history[4] = ExperimentRecord(4, "", None, Verdict.SKIPPED, history[4].description)
    trials = OptunaAgent(seed=0).plan(context(TOY, history), TOY).study.trials
    # The baseline, then experiments 1, 2 (crash), 3 (timeout) and 5, with the values they ran.
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert [t.value for t in trials] == [
        history[0].metric,
        history[1].metric,
        None,
        None,
        history[5].metric,
    ]
    for trial, source in zip(
        trials[1:], [sources[0], sources[1], sources[2], sources[4]], strict=True
    ):
        ran = values(source)
        assert trial.params == {n: ran[n] for n in ("LEARNING_RATE", "EPOCHS", "DROPOUT")}


@engine_free
def test_a_range_widens_when_the_best_lands_at_its_edge() -> None:
    baseline = ExperimentRecord(0, "c0", 10.0, Verdict.KEEP, "baseline")
    agent = OptunaAgent(seed=0)
    before = agent.plan(context(TOY, [baseline]), TOY).spaces
    assert (before["LEARNING_RATE"].low, before["LEARNING_RATE"].high) == (0.0025, 0.04)
    assert (before["EPOCHS"].low, before["EPOCHS"].high) == (1, 16)
    at_edge = ExperimentRecord(
        1,
        "c1",
        1.0,
        Verdict.KEEP,
        "optuna: LEARNING_RATE=0.01->0.04 EPOCHS=4->16 DROPOUT=0.2",
    )
    source = TOY.replace("0.01", "0.04").replace("EPOCHS = 4", "EPOCHS = 16")
    after = agent.plan(context(source, [baseline, at_edge]), source).spaces
    assert (after["LEARNING_RATE"].low, after["LEARNING_RATE"].high) == (0.0025, 0.16)
    assert (after["EPOCHS"].low, after["EPOCHS"].high) == (1, 64)
    assert after["DROPOUT"] == before["DROPOUT"]


@engine_free
def test_cmaes_advances_its_generations_from_the_ledger() -> None:
    history, _ = night(OptunaAgent(seed=0, sampler="cmaes"), 14)
    trials = OptunaAgent(sampler="cmaes").plan(context(TOY, history), TOY).study.trials
    generations = {t.system_attrs.get("cma:generation") for t in trials} - {None}
    assert generations == {0, 1}  # 3 constants: 7 trials a generation


@engine_free
def test_without_optuna_the_agent_is_a_one_line_error_with_the_install_command(
    monkeypatch,
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    with pytest.raises(OvernightError) as raised:
        OptunaAgent()
    assert "\n" not in str(raised.value)
    assert "pip install 'overnight[optuna]'" in str(raised.value)


@engine_free
def test_overnight_toml_configures_the_study_and_the_cli_seed_keeps_it(tmp_path) -> None:
    task = copy_quickstart(tmp_path)
    (task / "overnight.toml").write_text(
        (task / "overnight.toml").read_text()
        + '\n[agent]\nprovider = "optuna"\nsampler = "cmaes"\nseed = 4\npinned = ["EPOCHS"]\n'
        "[agent.bounds]\nLEARNING_RATE = [0.001, 0.1]\n"
    )
    expected = OptunaAgentConfig(
        provider="optuna",
        sampler="cmaes",
        seed=4,
        pinned=["EPOCHS"],
        bounds={"LEARNING_RATE": (0.001, 0.1)},
    )
    assert resolve_settings(load_task(task), Overrides()).agent == expected
    flagged = resolve_settings(load_task(task), Overrides(seed=9, provider="optuna")).agent
    assert flagged == expected.model_copy(update={"seed": 9})
    assert resolve_settings(load_task(task), Overrides(seed=9)).agent == flagged
    (task / "overnight.toml").write_text('[agent]\nprovider = "optuna"\nsampler = "grid"\n')
    with pytest.raises(TaskError, match=r"agent\.sampler"):
        resolve_settings(load_task(task), Overrides())


def _tokens(description: str) -> dict[str, str]:
    """NAME -> "value" or "old->new", as the description has them."""
    return dict(token.split("=") for token in description.removeprefix("optuna: ").split())


def test_a_night_through_the_cli_keeps_an_improvement(tmp_path, capsys, no_leftover_containers):
    task = copy_quickstart(tmp_path)
    args = ("run", str(task), "--tag", "o", "--provider", "optuna")
    code, out = run_cli(*args, "--max-experiments", "8", capsys=capsys)
    assert code == 0, out
    rows = results(task, "o")
    assert [r.experiment for r in rows] == list(range(9))
    assert all(r.description.startswith("optuna: ") for r in rows[1:])
    keeps = [r for r in rows[1:] if r.status is Verdict.KEEP]
    assert keeps and keeps[-1].metric < rows[0].metric


def test_a_resumed_night_proposes_what_an_uninterrupted_one_does(
    tmp_path, capsys, no_leftover_containers
):
    whole, parts = copy_quickstart(tmp_path / "whole"), copy_quickstart(tmp_path / "parts")
    args = ("--tag", "r", "--provider", "optuna", "--seed", "5")
    code, out = run_cli("run", str(whole), *args, "--max-experiments", "8", capsys=capsys)
    assert code == 0, out
    code, out = run_cli("run", str(parts), *args, "--max-experiments", "4", capsys=capsys)
    assert code == 0, out
    assert len(results(parts, "r")) == 5
    code, out = run_cli("run", str(parts), *args, "--max-experiments", "8", capsys=capsys)
    assert code == 0, out
    assert [r.description for r in results(parts, "r")] == [
        r.description for r in results(whole, "r")
    ]
    assert [r.status for r in results(parts, "r")] == [r.status for r in results(whole, "r")]
