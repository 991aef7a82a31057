"""tasks/tinygpt as a user runs it: its image from Debian's python3-torch, a minute of training,
a better learning rate kept, and weights the evaluator must refuse, through the real loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import events, run_cli
from test_shipped_tasks import TASKS, copy_task, edit, evaluator_said, output, replay

from harness.task_images import build_for_task

TASK = TASKS / "tinygpt"


@pytest.fixture(scope="module")
def tinygpt_image(docker_client) -> str:
    """The task's image, as `overnight image build tasks/tinygpt` (in .ci/run) builds it.

    Its name is a hash of the task folder's path among others, so the copies the tests run use
    it by name (`--image`) instead of building one image per copy."""
    return build_for_task(TASK, force=False, say=lambda line: None)


def test_validate_says_tinygpt_is_ready_in_its_torch_image(tinygpt_image, capsys):
    code, out = run_cli("validate", str(TASK), capsys=capsys)
    assert code == 0, out
    assert "ok: ready to run" in out
    assert "metric: val_bpb (minimize)" in out
    assert "protected" in out
    assert "dependencies: [image] packages: python3-torch (apt)" in out
    assert f"installed in {tinygpt_image}" in out
    assert f"imports: dataclasses, json, math, os, time, torch: all in {tinygpt_image}" in out


def run(task: Path, image: str, tmp_path: Path, proposals: list[dict], capsys) -> list:
    (task / "overnight.toml").write_text(
        (task / "overnight.toml")
        .read_text()
        .replace("[sandbox]\n", f'[sandbox]\nimage = "{image}"\n')
    )
    return replay(task, tmp_path, proposals, capsys)


def test_tinygpt_keeps_a_better_learning_rate_and_refuses_forged_weights(
    tmp_path, capsys, tinygpt_image, no_leftover_containers
):
    task = copy_task("tinygpt", tmp_path)
    rows = run(
        task,
        tinygpt_image,
        tmp_path,
        [
            {
                "description": "learning rate 3e-4 -> 2e-3: a minute is too short for 3e-4",
                "calls": [edit("LEARNING_RATE = 3e-4", "LEARNING_RATE = 2e-3")],
            },
            {
                "description": "read the whole corpus, held-out segments included",
                "calls": [
                    edit(
                        "    data = encode(load_train_text())\n",
                        "    import prepare\n"
                        "    here = os.path.dirname(os.path.abspath(prepare.__file__))\n"
                        "    data = encode(open(os.path.join(here, prepare.CORPUS)).read())\n",
                    )
                ],
            },
            {
                "description": "save the weights as float64",
                "calls": [
                    edit(
                        "torch.save(model.state_dict(),",
                        "torch.save({k: v.double() for k, v in model.state_dict().items()},",
                    )
                ],
            },
            {
                "description": "claim a longer context than the weights have",
                "calls": [
                    edit(
                        "json.dump(asdict(config), f)",
                        'json.dump({**asdict(config), "block_size": 128}, f)',
                    )
                ],
            },
        ],
        capsys,
    )
    assert [r.status.value for r in rows] == ["keep", "keep", "crash", "invalid", "invalid"]
    baseline, better = rows[0].metric, rows[1].metric
    assert baseline is not None and better is not None
    assert 1.5 < better < baseline < 8
    assert baseline - better > 0.1
    assert "train_bpb:" in output(task, 1) and "num_steps:" in output(task, 1)
    # The held-out text is in the private folder only: the corpus is gone from the task folder.
    assert "FileNotFoundError" in output(task, 2) and "shakespeare.txt" in output(task, 2)
    said = evaluator_said(task, 3)
    assert "must be float32 of shape" in said and "torch.float64" in said
    said = evaluator_said(task, 4)
    assert "wpe.weight must be float32 of shape (128, 64), not torch.float32 (64, 64)" in said
    for number in (3, 4):  # the agent learns the kind of failure, not the evaluator's message
        assert output(task, number).endswith("no valid metric: evaluate() raised ValueError\n")
    run_event = next(e for e in events(task, "t") if e["event"] == "run" and e["experiment"] == 1)
    assert run_event["metrics"]["parameters"] == 116_480
