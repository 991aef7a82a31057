"""What a task folder declares it needs, as the recipe of its image; nothing is installed here.

Three places, all optional: `pyproject.toml`'s `[project].dependencies` (uv's `[tool.uv.sources]`
translated to pip: a package pinned to an index is installed on its own with that index as an
extra index; `url`, `git` and `path` sources become direct references), `requirements.txt`
(given to pip as the file, in the task folder, so relative references work) and the `[image]`
table of `overnight.toml` (`packages` for apt, `pip` for requirement strings). The project itself
is never installed.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

from harness.config import ImageConfig
from harness.errors import TaskError
from sandbox.task_image import TASK_DIR, PipInstall, Recipe

PYPROJECT, REQUIREMENTS = "pyproject.toml", "requirements.txt"
_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)")


def declared_sources(task_dir: Path, image: ImageConfig) -> list[str]:
    """Where the task declares dependencies, e.g. ["pyproject.toml", "requirements.txt"]."""
    found = []
    if _project_dependencies(task_dir):
        found.append(f"{PYPROJECT} [project].dependencies")
    if (task_dir / REQUIREMENTS).is_file():
        found.append(REQUIREMENTS)
    if image.packages:
        found.append("[image] packages")
    if image.pip:
        found.append("[image] pip")
    return found


def task_recipe(task_dir: Path, image: ImageConfig) -> Recipe:
    """The task's recipe; TaskError naming the file when one cannot be read."""
    pinned, main, declared = _pyproject(task_dir)
    files: list[str] = []
    sources = [f"{PYPROJECT} [project].dependencies"] if main else []
    inputs = _inputs(task_dir)
    if (task_dir / REQUIREMENTS).is_file():
        files.append(REQUIREMENTS)
        sources.append(REQUIREMENTS)
        declared += [f"{REQUIREMENTS}: {line}" for line in _requirement_lines(task_dir)]
    if image.pip:
        sources.append("overnight.toml [image] pip")
        declared += [f"[image] pip: {r}" for r in image.pip]
    declared += [f"[image] packages: {p} (apt)" for p in image.packages]
    installs = list(pinned)
    if main or files or image.pip:
        installs.append(PipInstall(tuple(main) + image.pip, tuple(files), None, tuple(sources)))
    return Recipe(tuple(image.packages), tuple(installs), tuple(inputs), tuple(declared))


def _project_dependencies(task_dir: Path) -> list[str]:
    project = _read_pyproject(task_dir).get("project")
    deps = project.get("dependencies", []) if isinstance(project, dict) else []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise TaskError(
            f"{task_dir / PYPROJECT}: [project].dependencies must be a list of requirement "
            'strings, like ["numpy>=2"]'
        )
    return deps


def _read_pyproject(task_dir: Path) -> dict[str, Any]:
    path = task_dir / PYPROJECT
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise TaskError(f"{path}: not valid TOML ({err}); fix the line it names") from err


def _pyproject(task_dir: Path) -> tuple[list[PipInstall], list[str], list[str]]:
    """(installs pinned to an index, the other requirements, lines for validate)."""
    deps = _project_dependencies(task_dir)
    uv = _read_pyproject(task_dir).get("tool", {}).get("uv", {})
    indexes = {i.get("name"): i.get("url") for i in uv.get("index", []) if isinstance(i, dict)}
    sources = {_normal(k): v for k, v in (uv.get("sources") or {}).items()}
    pinned: dict[str, list[str]] = {}
    main, declared = [], []
    for dep in deps:
        name = _requirement_name(dep, task_dir)
        entries = sources.get(_normal(name))
        if entries is None:
            main.append(dep)
            declared.append(f"{PYPROJECT}: {dep}")
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            index, requirement = _from_source(dep, name, entry, indexes, task_dir)
            if index:
                pinned.setdefault(index, []).append(requirement)
                declared.append(f"{PYPROJECT}: {requirement} (from index {index})")
            else:
                main.append(requirement)
                declared.append(f"{PYPROJECT}: {requirement}")
    where = (f"{PYPROJECT} [tool.uv.sources]",)
    installs = [PipInstall(tuple(reqs), (), url, where) for url, reqs in pinned.items()]
    return installs, main, declared


def _from_source(
    dep: str, name: str, entry: Any, indexes: dict[Any, Any], task_dir: Path
) -> tuple[str | None, str]:
    """(the index to install from or None, the requirement string) for one uv source."""
    fix = f"{task_dir / PYPROJECT}: [tool.uv.sources] {name}"
    if not isinstance(entry, dict):
        raise TaskError(f'{fix}: expected a table like {{ index = "name" }}')
    spec, _, own = dep.partition(";")
    markers = (own.strip(), str(entry.get("marker") or ""))
    if "index" in entry:
        if entry["index"] not in indexes:
            raise TaskError(f"{fix}: no [[tool.uv.index]] is named {entry['index']!r}; add it")
        return indexes[entry["index"]], _with_markers(spec.strip(), *markers)
    if "url" in entry:
        return None, _with_markers(f"{name} @ {entry['url']}", *markers)
    if "git" in entry:
        ref = next((entry[k] for k in ("rev", "tag", "branch") if k in entry), None)
        url = f"git+{entry['git']}" + (f"@{ref}" if ref else "")
        url += f"#subdirectory={entry['subdirectory']}" if "subdirectory" in entry else ""
        return None, _with_markers(f"{name} @ {url}", *markers)
    if "path" in entry:
        inside = (Path(TASK_DIR) / entry["path"]).as_posix()
        return None, _with_markers(f"{name} @ file://{inside}", *markers)
    raise TaskError(
        f"{fix}: overnight installs index, url, git and path sources only (this one has "
        f"{', '.join(sorted(entry)) or 'nothing'}); use one of those"
    )


def _with_markers(spec: str, *markers: str) -> str:
    """The requirement under every marker given (the dependency's own and its source's)."""
    kept = [m for m in markers if m]
    if not kept:
        return spec
    if len(kept) == 1:
        return f"{spec} ; {kept[0]}"
    return f"{spec} ; " + " and ".join(f"({m})" for m in kept)


def _requirement_name(requirement: str, task_dir: Path) -> str:
    match = _NAME.match(requirement)
    if not match:
        raise TaskError(
            f"{task_dir / PYPROJECT}: {requirement!r} in [project].dependencies is not a "
            "requirement string; write it like numpy>=2"
        )
    return match.group(1)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_lines(task_dir: Path) -> list[str]:
    text = (task_dir / REQUIREMENTS).read_text(encoding="utf-8", errors="replace")
    lines = [line.split(" #", 1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _inputs(task_dir: Path) -> list[tuple[str, str]]:
    """(file, sha256) of requirements.txt and the files it includes (-r, -c); pyproject.toml's
    dependencies are in the recipe's commands themselves."""
    seen: dict[str, str] = {}
    pending = [task_dir / REQUIREMENTS]
    while pending:
        path = pending.pop()
        if not path.is_file() or str(path) in seen or task_dir not in path.resolve().parents:
            continue
        data = path.read_bytes()
        seen[str(path)] = hashlib.sha256(data).hexdigest()
        for line in data.decode("utf-8", errors="replace").splitlines():
            match = _INCLUDE.match(line)
            if match:
                pending.append(path.parent / match.group(1))
    return sorted((str(Path(p).relative_to(task_dir)), h) for p, h in seen.items())
