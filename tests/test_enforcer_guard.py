"""The deadline enforcer ends everything it may signal, which is right only as PID 1 of a
container. Started anywhere else (a host shell) it must refuse and kill nothing."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import REPO

ENFORCER = REPO / "sandbox" / "enforcer.py"
UID = 54321  # no one else's: even a broken guard could only reach this test's own sleeper


@pytest.mark.skipif(os.getuid() != 0, reason="switching to a uid of its own needs root")
def test_the_enforcer_outside_a_container_refuses_and_kills_nothing():
    sleeper = subprocess.Popen(["sleep", "60"], user=UID, group=UID, extra_groups=[])
    try:
        ran = subprocess.run(
            ["/usr/bin/python3", "-I", "-S", "-c", ENFORCER.read_text(), "5", "--", "true"],
            user=UID,
            group=UID,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ran.returncode == 2
        assert "not PID 1 of a container; refusing to run" in ran.stderr
        assert sleeper.poll() is None  # alive: nothing was killed
    finally:
        sleeper.kill()
        sleeper.wait()
