"""The offline `mutate` agent, driven through the real `edit` tool as a night would drive it."""

from __future__ import annotations

import ast
import re

import pytest

from harness.agents.mutate import MutateAgent
from harness.edit_tool import TrainEditor
from harness.seams import (
    Direction,
    ExperimentRecord,
    Proposal,
    ProposalContext,
    StopNight,
    Verdict,
)

TOY = '''"""Toy training script."""

import math

LEARNING_RATE = 0.01
EPOCHS = 4
BATCH_SIZE = 32
WEIGHT_DECAY = 0.001
NAME = "toy"
USE_BIAS = True


def train():
    steps = 10
    return LEARNING_RATE * math.sqrt(EPOCHS * BATCH_SIZE) - WEIGHT_DECAY * steps


print("loss:", train())
'''
MOVE = re.compile(r"^([A-Za-z_]\w*) (\S+) -> (\S+)$")


def context(source: str, experiment: int = 1, history=()) -> ProposalContext:
    history = list(history)
    keeps = [r for r in history if r.status is Verdict.KEEP]
    return ProposalContext(
        experiment=experiment,
        program="Lower the loss.",
        prepare_source='METRIC = "loss"\n',
        train_source=source,
        metric="loss",
        direction=Direction.MINIMIZE,
        history=history,
        best=keeps[-1] if keeps else None,
    )


def propose(
    source: str, experiment: int = 1, history=(), seed: int = 0
) -> tuple[Proposal | None, TrainEditor]:
    editor = TrainEditor(source)
    proposal = MutateAgent(seed=seed).propose(context(source, experiment, history), editor)
    return proposal, editor


def record(experiment: int, description: str, status: Verdict = Verdict.DISCARD):
    return ExperimentRecord(experiment, f"{experiment:07d}", 1.0, status, description)


def module_assignments(source: str) -> dict[str, object]:
    """Module-level `NAME = <literal>` values, read independently of the agent."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def moves_of(description: str) -> list[tuple[str, str, str]]:
    assert description.startswith("mutate: "), description
    parts = description.removeprefix("mutate: ").split(", ")
    moves = []
    for part in parts:
        match = MOVE.match(part)
        assert match, f"{part!r} is not `NAME old -> new`"
        moves.append(match.groups())
    return moves


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("experiment", [1, 2, 5])
def test_a_proposal_changes_one_or_two_constants_with_str_replace(seed, experiment) -> None:
    proposal, editor = propose(TOY, experiment, seed=seed)

    assert proposal is not None
    before, after = module_assignments(TOY), module_assignments(editor.source)
    changed = {name for name in before if before[name] != after[name]}
    assert 1 <= len(changed) <= 2
    assert changed <= {"LEARNING_RATE", "EPOCHS", "BATCH_SIZE", "WEIGHT_DECAY"}
    assert set(after) == set(before)

    # Only the lines of the changed constants differ; the function body is untouched.
    old_lines, new_lines = TOY.splitlines(), editor.source.splitlines()
    assert len(old_lines) == len(new_lines)
    differing = [old for old, new in zip(old_lines, new_lines, strict=True) if old != new]
    assert sorted(line.split(" = ")[0] for line in differing) == sorted(changed)
    assert "    steps = 10" in new_lines
    compile(editor.source, "train.py", "exec")

    # Through the edit tool, with str_replace only (after a look at the file).
    commands = [o.call.input["command"] for o in editor.outcomes]
    assert set(commands) <= {"view", "str_replace"}
    accepted = [o for o in editor.outcomes if o.call.input["command"] == "str_replace"]
    assert len([o for o in accepted if not o.is_error]) == len(changed)

    # The description lists exactly what changed, as `NAME old -> new`.
    moves = moves_of(proposal.description)
    assert {name for name, _, _ in moves} == changed
    for name, old, new in moves:
        assert float(old) == before[name]
        assert float(new) == after[name]


def test_the_same_seed_and_history_give_the_same_proposal() -> None:
    history = [
        record(1, "mutate: EPOCHS 4 -> 5", Verdict.KEEP),
        record(2, "mutate: LEARNING_RATE 0.01 -> 0.012"),
        record(3, "hand-written change"),
    ]
    first, first_editor = propose(TOY, 4, history, seed=42)
    second, second_editor = propose(TOY, 4, list(history), seed=42)

    assert first is not None and second is not None
    assert first.description == second.description
    assert first_editor.source == second_editor.source
    assert [o.call.input for o in first_editor.outcomes] == [
        o.call.input for o in second_editor.outcomes
    ]


def test_the_seed_and_the_experiment_number_matter() -> None:
    by_seed = {propose(TOY, 1, seed=seed)[0].description for seed in range(10)}
    by_experiment = {propose(TOY, k, seed=0)[0].description for k in range(1, 11)}

    assert len(by_seed) > 1
    assert len(by_experiment) > 1


# EPOCHS = 4 can move to 2, 3 (down) or 5, 6, 8 (up): with 2, 3, 5, 6 tried, only 8 is left.
ONE_INT = "EPOCHS = 4\nprint('loss:', 1 / EPOCHS)\n"
TRIED_INTS = ["2", "3", "5", "6"]


def histories(name: str, old: str, values: list[str]) -> list:
    """The same tried values, written the three ways a description can hold them."""
    statuses = [Verdict.KEEP, Verdict.DISCARD, Verdict.CRASH, Verdict.INVALID]
    shapes = {
        "alone": lambda v: f"mutate: {name} {old} -> {v}",
        "first-of-two": lambda v: f"mutate: {name} {old} -> {v}, OTHER 0.5 -> 0.6",
        "second-of-two": lambda v: f"mutate: OTHER 0.5 -> 0.6, {name} {old} -> {v}",
    }
    return [
        pytest.param(
            [
                record(k, describe(v), statuses[k % len(statuses)])
                for k, v in enumerate(values, start=1)
            ],
            id=shape,
        )
        for shape, describe in shapes.items()
    ]


@pytest.mark.parametrize("history", histories("EPOCHS", "4", TRIED_INTS))
def test_it_never_proposes_an_integer_already_in_the_history(history) -> None:
    for seed in range(10):
        proposal, editor = propose(ONE_INT, len(history) + 1, history, seed=seed)

        assert proposal is not None
        assert proposal.description == "mutate: EPOCHS 4 -> 8", seed
        assert editor.source == "EPOCHS = 8\nprint('loss:', 1 / EPOCHS)\n"


@pytest.mark.parametrize("history", histories("EPOCHS", "4", [*TRIED_INTS, "8"]))
def test_with_every_near_value_tried_it_goes_further_out(history) -> None:
    tried = {int(v) for v in [*TRIED_INTS, "8"]}
    for seed in range(5):
        proposal, editor = propose(ONE_INT, len(history) + 1, history, seed=seed)

        assert proposal is not None, seed
        [(name, old, new)] = moves_of(proposal.description)
        assert (name, old) == ("EPOCHS", "4")
        assert int(new) not in tried and int(new) >= 1 and new == str(int(new))
        assert editor.source == f"EPOCHS = {new}\nprint('loss:', 1 / EPOCHS)\n"


ONE_FLOAT = "LEARNING_RATE = 0.01\nprint('loss:', LEARNING_RATE)\n"
TRIED_FLOATS = ["0.012", "0.0085", "0.014", "0.007"]


@pytest.mark.parametrize("history", histories("LEARNING_RATE", "0.01", TRIED_FLOATS))
def test_it_never_proposes_a_float_already_in_the_history(history) -> None:
    tried = {float(v) for v in TRIED_FLOATS}
    for seed in range(20):
        proposal, _ = propose(ONE_FLOAT, len(history) + 1, history, seed=seed)

        assert proposal is not None
        [(name, old, new)] = moves_of(proposal.description)
        assert (name, old) == ("LEARNING_RATE", "0.01")
        assert float(new) not in tried, (seed, proposal.description)


SMALL_INTS = """LAYERS = 1
HEADS = 2
STEPS = 3
WARMUP: int = 1
SHIFT = -1

print(LAYERS, HEADS, STEPS, WARMUP, SHIFT)
"""


@pytest.mark.parametrize("seed", range(8))
def test_integers_stay_integers_and_positive_ones_stay_at_least_one(seed) -> None:
    source, history = SMALL_INTS, []
    for experiment in range(1, 21):
        proposal, editor = propose(source, experiment, history, seed=seed)
        assert proposal is not None, f"nothing proposed at experiment {experiment}"
        for name, _, new in moves_of(proposal.description):
            assert re.fullmatch(r"-?\d+", new), f"{name} -> {new} is not written as an int"
        values = {}
        for node in ast.parse(editor.source).body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                if isinstance(target, ast.Name):
                    values[target.id] = ast.literal_eval(node.value)
        for name in ("LAYERS", "HEADS", "STEPS", "WARMUP", "SHIFT"):
            assert type(values[name]) is int, (name, values[name])
        for name in ("LAYERS", "HEADS", "STEPS", "WARMUP"):
            assert values[name] >= 1, (name, values[name], proposal.description)
        keep = experiment % 2 == 1
        history.append(
            record(experiment, proposal.description, Verdict.KEEP if keep else Verdict.DISCARD)
        )
        if keep:
            source = editor.source


@pytest.mark.parametrize(
    "source",
    [
        'NAME = "toy"\nUSE_BIAS = True\nprint(NAME, USE_BIAS)\n',
        "def train():\n    rate = 0.01\n    return rate\n\n\nprint(train())\n",
        "RATE = 2 * 0.01\nSIZES = [1, 2, 3]\nprint(RATE, SIZES)\n",
        "import math\n\nRATE = math.pi\n",
        "",
    ],
    ids=["strings-and-bools", "only-in-functions", "expressions", "names", "empty"],
)
def test_without_numeric_constants_it_says_so_and_changes_nothing(source) -> None:
    editor = TrainEditor(source)
    with pytest.raises(StopNight) as stopped:
        MutateAgent().propose(context(source), editor)

    assert "train.py has no numbers to change" in str(stopped.value)
    assert editor.source == source


LEAVE_ALONE = """SEED = 1234
N = 5000
N_SAMPLES = 200
NUM_CLASSES = 10
FEATURES = 16
LOG_EVERY = 100
"""


def test_seeds_sizes_counts_and_prepares_own_settings_are_left_alone() -> None:
    editor = TrainEditor(LEAVE_ALONE)
    prepared = ProposalContext(
        **{**context(LEAVE_ALONE).__dict__, "prepare_source": "FEATURES = 16\n"}
    )
    with pytest.raises(StopNight) as stopped:
        MutateAgent().propose(prepared, editor)

    for name in ("SEED", "N", "N_SAMPLES", "NUM_CLASSES", "FEATURES", "LOG_EVERY"):
        assert name in str(stopped.value)
    assert "leaves alone" in str(stopped.value)
    assert editor.source == LEAVE_ALONE


BOUNDED = "DROPOUT = 0.0\nLABEL_SMOOTHING = 0.95\nLEARNING_RATE = 0.0\nSHIFT = 0\n"


@pytest.mark.parametrize("seed", range(10))
def test_probabilities_stay_in_the_unit_interval_and_nothing_changes_sign(seed) -> None:
    source, history = BOUNDED, []
    for experiment in range(1, 25):
        proposal, editor = propose(source, experiment, history, seed=seed)
        assert proposal is not None
        values = module_assignments(editor.source)
        assert 0.0 <= values["DROPOUT"] <= 1.0, proposal.description
        assert 0.0 <= values["LABEL_SMOOTHING"] <= 1.0, proposal.description
        assert values["LEARNING_RATE"] >= 0.0 and values["SHIFT"] >= 0, proposal.description
        history.append(record(experiment, proposal.description, Verdict.KEEP))
        source = editor.source


def _simulate(seed: int, experiments: int):
    """A night in miniature: every third proposal is kept and becomes the new train.py."""
    source, history, proposed = TOY, [], []
    for experiment in range(1, experiments + 1):
        proposal, editor = propose(source, experiment, history, seed=seed)
        assert proposal is not None, f"nothing to propose at experiment {experiment}"
        moves = moves_of(proposal.description)
        after = module_assignments(editor.source)
        for name, _, new in moves:
            assert after[name] == float(new)
            proposed.append((experiment, name, float(new)))
        keep = experiment % 3 == 0
        history.append(
            record(experiment, proposal.description, Verdict.KEEP if keep else Verdict.DISCARD)
        )
        if keep:
            source = editor.source
    return proposed


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_over_thirty_proposals_no_value_repeats(seed) -> None:
    proposed = _simulate(seed, 30)

    first_seen: dict[tuple[str, float], int] = {}
    repeats = []
    for experiment, name, value in proposed:
        if (name, value) in first_seen:
            repeats.append(f"{name} = {value:g} at {first_seen[name, value]} and {experiment}")
        first_seen.setdefault((name, value), experiment)
    assert repeats == []


SKLEARN_STYLE = """import time

from prepare import X_train, y_train, evaluate

model = GradientBoostingRegressor(
    n_estimators=300,
    learning_rate=0.05,
    max_depth=4,
    random_state=42,
)
scaler = Pipeline([("scale", StandardScaler(with_mean=True)), ("pca", PCA(n_components=8))])
np.random.seed(0)
print(X_train.mean(axis=0).round(decimals=3))
t0 = time.time()
model.fit(X_train, y_train)
step = 0
smooth_loss = 0
while step < 10:
    step += 1
    smooth_loss = 0.9 * smooth_loss + 0.1
evaluate(model, time.time() - t0)
"""


def test_the_knobs_of_a_model_written_as_keyword_arguments_are_tuned() -> None:
    from harness.agents.constants import find_constants, knobs

    found = {c.name: c for c in knobs(find_constants(SKLEARN_STYLE), "")}

    # The model's arguments; not the seed, the loop's state, axes or formatting.
    assert sorted(found) == ["learning_rate", "max_depth", "n_components", "n_estimators"]
    assert found["learning_rate"].line == "learning_rate=0.05"
    editor = TrainEditor(SKLEARN_STYLE)
    proposal = MutateAgent(seed=3).propose(context(SKLEARN_STYLE), editor)
    assert proposal is not None
    changed = {c.name: c.value for c in find_constants(editor.source)}
    moved = [name for name in found if changed[name] != found[name].value]
    assert moved and all(name in proposal.description for name in moved)
    assert "random_state=42" in editor.source and "step = 0" in editor.source
