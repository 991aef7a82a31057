"""Images without a registry: the default image built offline with debootstrap, image checks.

The default image is a minimal Debian root with Python 3, numpy and pip from Debian's own
packages, made by debootstrap from the mirror this machine's apt already uses, then
`docker import`ed. Nothing is ever pulled.

pip works for root in derived images through /etc/pip.conf (`break-system-packages`): packages
go to /usr/local, beside Debian's, for the one `python3` every step runs. A venv would need its
own PATH and `--system-site-packages` to keep Debian's numpy, and a second Python to reason about.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import OvernightError

DEFAULT_IMAGE = "overnight/python:2"
PACKAGES = ("python3", "python3-numpy", "python3-pip")
# Written into the image: pip installs as root without a venv, leaves no cache in a layer and
# does not warn about root (a build container is root by design).
PIP_CONF = """[global]
break-system-packages = true
no-cache-dir = true
root-user-action = ignore
disable-pip-version-check = true
"""
RECIPE_LABEL = "org.overnight.recipe"
_FALLBACK_SUITE = "bookworm"


class ImageError(OvernightError):
    """An image is missing or cannot be built; the message says what to do."""


def recipe_hash(suite: str, mirror: str) -> str:
    text = "|".join([DEFAULT_IMAGE, suite, mirror, *PACKAGES, PIP_CONF])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with here (deb822 `.sources` or one-line `.list`)."""
    candidates: list[Path] = []
    if (apt_dir / "sources.list").exists():
        candidates.append(apt_dir / "sources.list")
    candidates += sorted((apt_dir / "sources.list.d").glob("*.sources"))
    candidates += sorted((apt_dir / "sources.list.d").glob("*.list"))
    for path in candidates:
        for uri in _uris(path.read_text(errors="replace"), deb822=path.suffix == ".sources"):
            if "security" not in uri and re.search(r"/debian/?$", uri):
                return uri.rstrip("/")
    raise ImageError(
        f"no Debian mirror found in {apt_dir}/sources.list*: add one to apt's sources, "
        'or set image = "..." in the task\'s overnight.toml'
    )


def _uris(text: str, deb822: bool) -> list[str]:
    uris = []
    for line in text.splitlines():
        line = line.strip()
        if deb822 and line.startswith("URIs:"):
            uris += line.split(":", 1)[1].split()
        elif not deb822 and line.startswith("deb "):
            parts = [p for p in line.split() if not p.startswith("[")]
            if len(parts) > 1:
                uris.append(parts[1])
    return uris


def host_suite(os_release: Path = Path("/etc/os-release")) -> str:
    if os_release.exists():
        fields = dict(
            line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line
        )
        if fields.get("ID", "").strip('"') == "debian" and fields.get("VERSION_CODENAME"):
            return fields["VERSION_CODENAME"].strip('"')
    return _FALLBACK_SUITE


def image_exists(client: Any, name: str) -> bool:  # client: docker.DockerClient
    import docker.errors

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_default_image(client: Any, log: Any = print, force: bool = False) -> str:
    """Build DEFAULT_IMAGE with debootstrap (needs root and the debootstrap package)."""
    suite, mirror = host_suite(), debian_mirror()
    recipe = recipe_hash(suite, mirror)
    if not force and image_exists(client, DEFAULT_IMAGE):
        labels = client.images.get(DEFAULT_IMAGE).labels or {}
        if labels.get(RECIPE_LABEL) == recipe:
            log(f"image {DEFAULT_IMAGE} is already built")
            return DEFAULT_IMAGE
    if os.geteuid() != 0:
        raise ImageError("building the default image needs root: run `sudo overnight image build`")
    if shutil.which("debootstrap") is None:
        raise ImageError(
            "debootstrap is not installed: run `apt-get install debootstrap`, then try again"
        )
    with tempfile.TemporaryDirectory(prefix="overnight-rootfs-") as tmp:
        root = Path(tmp) / "root"
        log(f"debootstrap {suite} from {mirror} with {', '.join(PACKAGES)} (a few minutes)")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                suite,
                str(root),
                mirror,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        _trim(root)
        tarball = Path(tmp) / "root.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "."], check=True)
        client.api.import_image_from_file(
            str(tarball),
            repository=DEFAULT_IMAGE.split(":")[0],
            tag=DEFAULT_IMAGE.split(":")[1],
            changes=[
                f"LABEL {RECIPE_LABEL}={recipe}",
                "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp",
                'CMD ["python3"]',
            ],
        )
    log(f"built image {DEFAULT_IMAGE}")
    return DEFAULT_IMAGE


def _trim(root: Path) -> None:
    for sub in (
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
    ):
        target = root / sub
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    # `python` as well as `python3`, as task authors type both.
    python = root / "usr/bin/python"
    if not python.exists():
        python.symlink_to("python3")
    (root / "etc/pip.conf").write_text(PIP_CONF)


def configured_image(client: Any, name: str, task_dir: Path) -> str:
    """An image the task names; it must already be on this machine (nothing is ever pulled)."""
    if not image_exists(client, name):
        raise ImageError(
            f"{task_dir / 'overnight.toml'}: image {name!r} is not on this machine; "
            f"load or build it first (`docker images` lists what you have)"
        )
    return name


def base_image(client: Any) -> str:
    """DEFAULT_IMAGE, which must have been built (`overnight image build`)."""
    if not image_exists(client, DEFAULT_IMAGE):
        raise ImageError(
            f"the default image {DEFAULT_IMAGE} is not built yet: run `overnight image build` "
            "(needs root and debootstrap), or set image in the task's overnight.toml"
        )
    return DEFAULT_IMAGE
