"""A non-editable install works: the wheel holds the model agent's prompt templates and the
sandbox's in-container programs, and an installed copy builds a prompt from them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO, git

RENDER = """
import harness
from harness.agents.prompt import build_prompt
from harness.seams import Direction, ProposalContext
context = ProposalContext(
    experiment=1, program="Lower val_bpb.", prepare_source="METRIC = 'val_bpb'",
    train_source="LR = 0.1\\n", metric="val_bpb", direction=Direction.MINIMIZE,
    history=[], best=None,
)
prompt = build_prompt(context, 100_000)
print(harness.__file__)
print(prompt.system[:200])
print(prompt.task[:400])
"""


def test_a_wheel_install_has_the_prompt_templates_and_builds_a_prompt(tmp_path):
    source = tmp_path / "source"
    for name in git(REPO, "ls-files").splitlines():
        origin = REPO / name
        if not origin.exists() and not origin.is_symlink():
            continue  # deleted in this checkout
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_symlink():
            target.symlink_to(os.readlink(origin))
        else:
            shutil.copy2(origin, target)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("overnight-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in ("system.md", "task.md", "experiment.md"):
        assert f"harness/prompts/{template}" in names
    assert "sandbox/overnight_eval.py" in names and "sandbox/train_worker.py" in names

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = subprocess.run(
        [sys.executable, "-c", RENDER],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)},
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    installed, *prompt = shown.splitlines()
    assert Path(installed).is_relative_to(site)
    assert "val_bpb" in "\n".join(prompt) and "Lower val_bpb." in "\n".join(prompt)
