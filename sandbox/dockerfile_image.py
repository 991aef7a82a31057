"""A task's own Dockerfile, built once as `overnight/task:<hash>` and logged to a file.

The hash covers the task folder, the Dockerfile and the ids of the images it starts FROM, so a
rebuilt base rebuilds it. The build context is the task folder without `.overnight` (the runs,
their data and private data) and `.git`. Docker's predefined proxy build arguments are passed
from this machine's variables; an index that needs this machine's pip settings or CA bundle is
best used through declared dependencies (requirements.txt, pyproject.toml, [image] pip).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

from sandbox.build_log import BuildLog, tail
from sandbox.image import RECIPE_LABEL, ImageError, image_exists
from sandbox.task_image import KIND_LABEL, TASK_LABEL, TASK_REPOSITORY, remove_replaced

ALWAYS_EXCLUDED = [".overnight", ".git"]
_PROXY_ARGS = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)


def dockerfile_image_name(client: Any, task_dir: Path) -> str:
    """The image the task's Dockerfile builds into (whether it is built or not)."""
    text = (task_dir / "Dockerfile").read_text(errors="replace")
    parts = [str(task_dir), text]
    stages: set[str] = set()
    for image, stage in _FROM.findall(text):
        if image.lower() not in stages and image != "scratch":
            parts.append(_image_id(client, image))
        if stage:
            stages.add(stage.lower())
    return f"{TASK_REPOSITORY}:{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:16]}"


def _image_id(client: Any, name: str) -> str:
    import docker.errors

    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        return name  # not here: the build says so


def dockerfile_image(
    client: Any, task_dir: Path, say: Any, timeout: float = 3600.0, **options: Any
) -> str:
    """Build the task's Dockerfile unless its image exists; options: keep, force, log_dir."""
    dockerfile = task_dir / "Dockerfile"
    name = dockerfile_image_name(client, task_dir)
    if not options.get("force") and image_exists(client, name):
        return name
    digest = name.split(":", 1)[1]
    log_path = Path(options.get("log_dir") or task_dir / ".overnight" / "images") / f"{digest}.log"
    say(f"building {dockerfile} as {name}; log: {log_path}")
    started = time.monotonic()
    error = _build(task_dir, name, log_path, timeout)
    if error:
        raise ImageError(
            f"{dockerfile}: the build failed ({error}); fix the Dockerfile and run again "
            f"(log: {log_path}). The log ends:\n{tail(log_path)}"
        )
    image = client.images.get(name)
    remove_replaced(client, task_dir, image.id, options.get("keep", ()))
    say(
        f"built image {name} in {time.monotonic() - started:.0f}s ({image.attrs['Size'] / 1e9:.2f} GB)"
    )
    return name


def _build(task_dir: Path, name: str, log_path: Path, timeout: float) -> str:
    """Run the build, its output into the log; the engine's error, or "" when it worked."""
    import docker.errors

    from sandbox.docker_sandbox import connect

    labels = {TASK_LABEL: str(task_dir), KIND_LABEL: "dockerfile", RECIPE_LABEL: name}
    builder = connect(max(timeout, 600.0))
    error = ""
    with BuildLog(log_path) as log, _context(task_dir) as context:
        log.line(f"overnight: building {task_dir / 'Dockerfile'} as {name}")
        try:
            for chunk in builder.api.build(
                fileobj=context,
                custom_context=True,
                tag=name,
                pull=False,
                rm=True,
                forcerm=True,
                decode=True,
                labels=labels,
                buildargs=proxy_build_args(os.environ),
                timeout=timeout,
            ):
                if "stream" in chunk:
                    log.write(chunk["stream"])
                elif "error" in chunk:
                    error = str(chunk["error"]).strip()
                    log.line(error)
        except docker.errors.APIError as err:
            error = str(err.explanation or err)
            log.line(error)
        finally:
            builder.close()
    return error.splitlines()[0] if error else ""


def _context(task_dir: Path) -> Any:
    """The build context as a tar file: the task folder, as .dockerignore and we exclude."""
    from docker.utils.build import tar

    ignore = task_dir / ".dockerignore"
    patterns = []
    if ignore.is_file():
        lines = [line.strip() for line in ignore.read_text(errors="replace").splitlines()]
        patterns = [line for line in lines if line and not line.startswith("#")]
    return tar(str(task_dir), exclude=patterns + ALWAYS_EXCLUDED, dockerfile=("Dockerfile", None))


def proxy_build_args(env: Any) -> dict[str, str]:
    """Docker's predefined proxy arguments, from this machine's variables (not kept in history)."""
    args = {}
    for name in _PROXY_ARGS:
        for variant in (name, name.lower()):
            if env.get(variant):
                args[variant] = env[variant]
    return args
