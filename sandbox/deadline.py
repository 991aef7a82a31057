"""The deadline inside each container: enforcer.py as PID 1, or a weaker fallback, and its status.

Every container runs `python3 -I -S -c <enforcer.py> SECONDS -- COMMAND`, so it ends by its own
deadline even when the harness is gone, whatever COMMAND does to the processes it can see. An
image without a python3 that can run the enforcer falls back to Docker's init (tini) and
`timeout -s KILL` where the image has it, which code inside could stop: the night says so.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from sandbox import enforcer

PREFIX = enforcer.STATUS_PREFIX
GRACE_S = 5  # the in-container deadline trails the harness's own by this much
# How a container gets its deadline: the enforcer as PID 1, `timeout -s KILL`, or none at all.
ENFORCER, TIMEOUT, UNWRAPPED = "enforcer", "timeout", "unwrapped"
NO_ENFORCER = (
    "image {image!r} has no python3 that can run overnight's deadline enforcer: its containers "
    "run under Docker's init{timeout}, which code inside could stop (kill -9 of the harness "
    "might then leave a container running); use an image with python3 3.6+ for the full guarantee"
)


@dataclass(frozen=True)
class Status:
    """The enforcer's last word: why it ended, and what the container used."""

    reason: str  # "exit" | "deadline"
    exit_code: int
    peak_bytes: int
    oom_kills: int
    nondumpable: bool


def enforced(command: list[str], seconds: float) -> list[str]:
    """`command` under the enforcer, killed with everything it started after `seconds`."""
    return [*keeper(seconds), "--", *command]


def keeper(seconds: float) -> list[str]:
    """The enforcer alone: it holds a volume mounted until `seconds` pass, then exits."""
    return ["python3", "-I", "-S", "-c", source(), f"{seconds:.3f}"]


@functools.cache
def source() -> str:
    return Path(enforcer.__file__).read_text(encoding="utf-8")


def with_timeout(command: list[str], seconds: float) -> list[str]:
    """The fallback for images without python3: coreutils' timeout, under Docker's init."""
    return ["timeout", "-s", "KILL", f"{int(seconds)}", *command]


def parse(stderr: bytes) -> Status | None:
    """The enforcer's status from the container's stderr (only the enforcer writes there)."""
    for line in reversed(stderr.decode("utf-8", "replace").splitlines()):
        if not line.startswith(PREFIX):
            continue
        try:
            raw = json.loads(line[len(PREFIX) :])
            return Status(
                reason=str(raw["reason"]),
                exit_code=int(raw["exit"]),
                peak_bytes=int(raw["peak_bytes"] or 0),
                oom_kills=int(raw["oom_kills"] or 0),
                nondumpable=bool(raw["nondumpable"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
    return None
