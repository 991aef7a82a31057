"""Which of a list of modules an image lacks, asked inside one locked-down container.

`importlib.util.find_spec` on each top-level name finds a module without importing it, and no
file of the task is mounted: nothing the task wrote runs.
"""

from __future__ import annotations

import json

from harness.seams import RunSpec, RunStatus, Sandbox
from sandbox.image import ImageError

MARKER = "overnight-probe:"
PROBE = (
    "import importlib.util, json, sys\n"
    "def lacks(name):\n"
    "    try:\n"
    "        return importlib.util.find_spec(name) is None\n"
    "    except (ImportError, ValueError):\n"
    "        return True\n"
    f"print({MARKER!r} + json.dumps([n for n in sys.argv[1:] if lacks(n)]))\n"
)


def missing_modules(sandbox: Sandbox, image: str, modules: list[str]) -> set[str]:
    """The names `python3` in `image` cannot find; ImageError if it cannot even be asked."""
    if not modules:
        return set()
    spec = RunSpec(
        image, ["python3", "-I", "-c", PROBE, *modules], [], {}, timeout_s=120, purpose="probe"
    )
    result = sandbox.run(spec)
    found = [line for line in result.output_tail.splitlines() if line.startswith(MARKER)]
    if result.status is not RunStatus.OK or not found:
        why = "it has no python3" if result.exit_code == 127 else result.output_tail.strip()[-300:]
        raise ImageError(
            f"image {image}: cannot check which modules it has ({result.status.value}: {why}); "
            "use an image with python3"
        )
    return set(json.loads(found[-1].removeprefix(MARKER)))
