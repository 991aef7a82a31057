"""A task's image, built from what it declares: apt packages and pip requirements over the base.

One build container per image: started from the base as root on the default `bridge` network,
with the task folder, this machine's index settings and CA bundle mounted read-only; it runs
apt and pip, then is committed as `overnight/task:<recipe hash>` and removed. Mounts are not
committed and no variable is set on the container (a commit would keep it), so nothing of this
machine's configuration stays in the image. An image replaced by a newer one of the same task
is removed, unless a container or a live night still uses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.build_log import BuildLog
from sandbox.host_pip import BUILD_DIR, CA_FILE, HostPip, host_pip, redact
from sandbox.image import RECIPE_LABEL, ImageError, image_exists
from sandbox.labels import alive

TASK_REPOSITORY = "overnight/task"
TASK_LABEL = "org.overnight.task"  # the task folder an image is for
KIND_LABEL = "org.overnight.image"  # dependencies | dockerfile
BUILDER_PREFIX = "overnight-build-"  # build containers are named, not labelled: see the docstring
TASK_DIR = "/overnight/task"
PIP = ("python3", "-m", "pip", "install", "--no-input", "--progress-bar", "off")


@dataclass(frozen=True)
class PipInstall:
    """One `pip install` in the build container, run in the task folder."""

    requirements: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # requirements files, relative to the task folder
    extra_index: str | None = None  # an index only these come from (uv's explicit index)
    sources: tuple[str, ...] = ()  # the task files that declared them

    def command(self) -> list[str]:
        command = [*PIP, *self.requirements]
        for name in self.files:
            command += ["-r", name]
        if self.extra_index:
            command += ["--extra-index-url", self.extra_index]
        return command


@dataclass(frozen=True)
class Recipe:
    """What a task's image adds to the base; `inputs` are the files read, hashed with it."""

    packages: tuple[str, ...] = ()  # Debian packages, from the base image's own apt sources
    pip: tuple[PipInstall, ...] = ()
    inputs: tuple[tuple[str, str], ...] = ()  # (file, sha256)
    declared: tuple[str, ...] = ()  # one line per declared dependency, for validate

    @property
    def empty(self) -> bool:
        return not self.packages and not self.pip

    def digest(self, base_id: str, task_dir: Path) -> str:
        payload = {
            "base": base_id,
            "task": str(task_dir),
            "packages": self.packages,
            "pip": [[*p.command(), "@", *p.sources] for p in self.pip],
            "inputs": self.inputs,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Step:
    title: str
    sources: tuple[str, ...]  # the task files to fix when it fails
    commands: tuple[tuple[str, ...], ...]


def build_steps(recipe: Recipe, ca: bool) -> list[Step]:
    """The build container's commands, in order: apt first, then each pip install."""
    steps = []
    if recipe.packages:
        apt = ("apt-get", "-o", f"Acquire::https::CAInfo={CA_FILE}") if ca else ("apt-get",)
        steps.append(
            Step(
                f"apt-get install {' '.join(recipe.packages)}",
                ("overnight.toml",),
                (
                    (*apt, "-qq", "update"),
                    (*apt, "-qq", "install", "-y", "--no-install-recommends", *recipe.packages),
                    ("apt-get", "clean"),
                    ("find", "/var/lib/apt/lists", "-mindepth", "1", "-delete"),
                ),
            )
        )
    for install in recipe.pip:
        index = f" from {redact(install.extra_index)}" if install.extra_index else ""
        steps.append(
            Step(
                f"pip install ({', '.join(install.sources)}){index}",
                install.sources,
                (tuple(install.command()),),
            )
        )
    return steps


def build_script(steps: list[Step], host: HostPip) -> str:
    """The shell script the build container runs (from the read-only build folder)."""
    env = {"PIP_CONFIG_FILE": f"{BUILD_DIR}/pip.conf", "DEBIAN_FRONTEND": "noninteractive"}
    if host.ca_bundle is not None:
        env.update(SSL_CERT_FILE=CA_FILE, REQUESTS_CA_BUNDLE=CA_FILE)
    for name, value in host.proxies.items():
        env.update({name: value, name.lower(): value})
    lines = ["set -e", f"cd {TASK_DIR}"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    for number, step in enumerate(steps, start=1):
        lines.append(shlex.join(["echo", f"overnight: step {number}/{len(steps)}: {step.title}"]))
        lines += [shlex.join(command) for command in step.commands]
    lines.append("rm -rf /tmp/* /tmp/.[!.]* /root/.cache")
    return "\n".join(lines) + "\n"


def task_image_name(client: Any, recipe: Recipe, base: str, task_dir: Path) -> str:
    return f"{TASK_REPOSITORY}:{recipe.digest(client.images.get(base).id, task_dir)}"


def build_task_image(
    client: Any, recipe: Recipe, base: str, task_dir: Path, say: Any, timeout: float, **options: Any
) -> str:
    """The task's image, built now unless it exists; options: keep (names), force, log_dir."""
    name = task_image_name(client, recipe, base, task_dir)
    if not options.get("force") and image_exists(client, name):
        return name
    digest = name.split(":", 1)[1]
    log_path = Path(options.get("log_dir") or task_dir / ".overnight" / "images") / f"{digest}.log"
    say(f"building image {name} with the task's dependencies; log: {log_path}")
    started = time.monotonic()
    host = host_pip()
    steps = build_steps(recipe, ca=host.ca_bundle is not None)
    with BuildLog(log_path) as log, tempfile.TemporaryDirectory(prefix="overnight-build-") as tmp:
        log.line(f"overnight: image {name} for {task_dir}, from {base}")
        log.line(f"overnight: this machine's settings: {host.describe()}")
        mounts = _build_folder(Path(tmp), steps, host)
        image_id = _run_builder(client, name, base, task_dir, mounts, log, timeout)
    if image_id is None:
        raise ImageError(_failure(task_dir, steps, log_path))
    remove_replaced(client, task_dir, image_id, options.get("keep", ()))
    size = client.images.get(image_id).attrs.get("Size", 0) / 1e9
    say(f"built image {name} in {time.monotonic() - started:.0f}s ({size:.2f} GB)")
    return name


def _build_folder(folder: Path, steps: list[Step], host: HostPip) -> dict[str, dict[str, str]]:
    """Write the script, pip.conf and CA bundle; the mounts of the build container."""
    (folder / "build.sh").write_text(build_script(steps, host))
    (folder / "pip.conf").write_text(host.pip_conf())
    if host.ca_bundle is not None:
        shutil.copyfile(host.ca_bundle, folder / "ca.pem")
    mounts = {str(folder): {"bind": BUILD_DIR, "mode": "ro"}}
    for inside, outside in host.container_find_links():
        if outside is not None:
            mounts[outside] = {"bind": inside, "mode": "ro"}
    return mounts


def _run_builder(
    client: Any, name: Any, base: Any, task_dir: Any, mounts: Any, log: BuildLog, timeout: Any
) -> str | None:
    """Run the build container to its end and commit it; None when it failed."""
    import docker.errors
    import requests.exceptions

    try:
        return _build_and_commit(client, name, base, task_dir, mounts, log, timeout)
    except (docker.errors.APIError, requests.exceptions.RequestException) as err:
        log.line(f"overnight: the Docker engine failed: {err}")
        raise ImageError(
            f"the Docker engine failed while building {name} ({err}); check it and run again "
            f"(log: {log.path})"
        ) from err


def _build_and_commit(
    client: Any, name: Any, base: Any, task_dir: Any, mounts: Any, log: BuildLog, timeout: Any
) -> str | None:
    from sandbox.docker_sandbox import connect

    remove_stale_builders(client)
    builder = connect(max(timeout, 600.0))  # a commit of gigabytes outlasts the usual timeout
    masks = {
        f"{TASK_DIR}/{d}": "ro,size=4k" for d in (".overnight", ".git") if (task_dir / d).is_dir()
    }
    container = builder.containers.create(
        client.images.get(base).id,
        ["sh", f"{BUILD_DIR}/build.sh"],
        name=f"{BUILDER_PREFIX}{os.getpid()}-{name.split(':')[1]}",
        user="0:0",
        network_mode="bridge",
        volumes={str(task_dir): {"bind": TASK_DIR, "mode": "ro"}, **mounts},
        tmpfs=masks,  # never the runs' data, private data or the repository
        detach=True,
    )
    try:
        code = _wait(container, log, timeout)
        if code != 0:
            return None
        image = container.commit(
            repository=TASK_REPOSITORY, tag=name.split(":")[1], changes=_changes(task_dir, name)
        )
        return str(image.id)
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)
        builder.close()


def _wait(container: Any, log: BuildLog, timeout: float) -> int:
    def copy() -> None:
        with contextlib.suppress(Exception):
            for chunk in container.logs(stream=True, follow=True):
                log.write(chunk)

    container.start()
    reader = threading.Thread(target=copy, daemon=True)
    reader.start()
    try:
        code = int(container.wait(timeout=timeout)["StatusCode"])
    except Exception as err:  # the wait timed out (or the engine went away)
        with contextlib.suppress(Exception):
            container.kill()
        reader.join(timeout=10)
        log.line(f"overnight: stopped after {timeout:g}s ([image] build_timeout): {err}")
        return -1
    reader.join(timeout=30)
    return code


def _changes(task_dir: Path, name: str) -> list[str]:
    labels = {TASK_LABEL: str(task_dir), KIND_LABEL: "dependencies", RECIPE_LABEL: name}
    return ['CMD ["python3"]'] + [
        f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in labels.items()
    ]


def _failure(task_dir: Path, steps: list[Step], log_path: Path) -> str:
    """One line naming the file to fix and the log, then the log's last lines."""
    lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    marks = [n for n, line in enumerate(lines) if line.startswith("overnight: step ")]
    number = int(lines[marks[-1]].split()[2].split("/")[0]) if marks else 0
    last = [line for line in lines[marks[-1] if marks else 0 :] if line.strip()][-15:]
    step = steps[number - 1] if 0 < number <= len(steps) else None
    files = [source.split()[0] for source in step.sources] if step else []
    where = ", ".join(dict.fromkeys(str(task_dir / name) for name in files)) or str(task_dir)
    what = f"step {number}, {step.title}" if step else "the build"
    return (
        f"{where}: building the task's image failed at {what}; fix it and run again "
        f"(log: {log_path}). The log ends:\n" + "\n".join(last)
    )


def remove_replaced(client: Any, task_dir: Path, keep_id: str, keep_names: Any = ()) -> list[str]:
    """Remove the task's other images, except one a container or a live night uses."""
    import docker.errors

    removed = []
    for image in client.images.list(filters={"label": f"{TASK_LABEL}={task_dir}"}):
        if image.id == keep_id or set(image.tags) & set(keep_names):
            continue
        if client.containers.list(all=True, filters={"ancestor": image.id}):
            continue
        with contextlib.suppress(docker.errors.APIError):  # in use after all, or has children
            for ref in image.tags or [image.id]:
                client.images.remove(ref)
            removed.append(image.tags[0] if image.tags else image.id)
    return removed


def remove_stale_builders(client: Any) -> None:
    """Build containers whose overnight process is gone (it was killed mid-build)."""
    for container in client.containers.list(all=True, filters={"name": BUILDER_PREFIX}):
        pid = container.name.removeprefix(BUILDER_PREFIX).split("-")[0]
        if pid.isdigit() and not alive(int(pid)):
            with contextlib.suppress(Exception):
                container.remove(force=True)
