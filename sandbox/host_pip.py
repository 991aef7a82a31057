"""This machine's package index settings, read at build time and handed to the build container.

What `pip install` on this machine would use: pip's config files and PIP_* variables, uv's
index variables as a fallback, the CA bundle and the proxy variables. Nothing of it is written
into the repository or left in an image: it goes into a temporary folder mounted read-only into
the build container, as a pip.conf and a copy of the CA bundle.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BUILD_DIR = "/overnight/build"  # the build container's view of the temporary folder
CA_FILE = f"{BUILD_DIR}/ca.pem"
LINKS_DIR = "/overnight/links"
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
_LIST_KEYS = ("extra-index-url", "trusted-host", "find-links")
_KEYS = ("index-url", "cert", "timeout", "proxy", "retries", "no-index", *_LIST_KEYS)


@dataclass(frozen=True)
class HostPip:
    """The index settings of this machine, as pip here would use them."""

    options: dict[str, str] = field(default_factory=dict)  # pip.conf keys -> values
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()  # URLs, and host folders that exist
    ca_bundle: Path | None = None
    proxies: dict[str, str] = field(default_factory=dict)

    def container_find_links(self) -> list[tuple[str, str | None]]:
        """(what pip inside sees, the host folder to mount there or None) per find-links entry."""
        out: list[tuple[str, str | None]] = []
        for n, link in enumerate(self.find_links):
            if "://" in link and not link.startswith("file://"):
                out.append((link, None))
            else:
                out.append((f"{LINKS_DIR}/{n}", link.removeprefix("file://")))
        return out

    def pip_conf(self) -> str:
        """The pip.conf the build container's pip reads (PIP_CONFIG_FILE)."""
        lines = ["[global]"]
        for key, value in self.options.items():
            lines.append(f"{key} = {value}")
        lists = {
            "extra-index-url": self.extra_index_urls,
            "trusted-host": self.trusted_hosts,
            "find-links": tuple(inside for inside, _ in self.container_find_links()),
        }
        for key, values in lists.items():
            if values:
                lines.append(f"{key} = " + "\n    ".join(values))
        if self.ca_bundle is not None:
            lines.append(f"cert = {CA_FILE}")
        return "\n".join(lines) + "\n"

    def describe(self) -> str:
        """One line for the log, without credentials."""
        index = self.options.get("index-url", "the default (pypi.org)")
        parts = [f"index {redact(index)}"]
        parts += [f"extra index {redact(u)}" for u in self.extra_index_urls]
        if self.ca_bundle is not None:
            parts.append(f"CA bundle {self.ca_bundle}")
        if self.proxies:
            parts.append(f"proxy variables {', '.join(sorted(self.proxies))}")
        return "; ".join(parts)


def host_pip(
    env: Mapping[str, str] | None = None, home: Path | None = None, etc: Path = Path("/etc")
) -> HostPip:
    """This machine's settings: pip's files in pip's order, then PIP_*, then uv's variables."""
    env = os.environ if env is None else env
    merged: dict[str, str] = {}
    for path in config_files(env, home or Path.home(), etc):
        merged.update(_read_config(path))
    for key in _KEYS:
        value = env.get("PIP_" + key.upper().replace("-", "_"))
        if value is not None:
            merged[key] = value
    if "timeout" not in merged and env.get("PIP_DEFAULT_TIMEOUT"):
        merged["timeout"] = env["PIP_DEFAULT_TIMEOUT"]
    uv_index = env.get("UV_DEFAULT_INDEX") or env.get("UV_INDEX_URL")
    if "index-url" not in merged and uv_index:
        merged["index-url"] = uv_index
    extra = merged.pop("extra-index-url", "").split()
    extra += env.get("UV_EXTRA_INDEX_URL", "").split()
    extra += [item.split("=", 1)[-1] for item in env.get("UV_INDEX", "").split()]
    links = [link for link in merged.pop("find-links", "").split() if _usable_link(link)]
    trusted = merged.pop("trusted-host", "").split()
    cert = merged.pop("cert", None)
    return HostPip(
        options={k: v for k, v in merged.items() if k in _KEYS},
        extra_index_urls=tuple(dict.fromkeys(extra)),
        trusted_hosts=tuple(dict.fromkeys(trusted)),
        find_links=tuple(links),
        ca_bundle=_ca_bundle(cert, env),
        proxies={
            name: env[variant]
            for name in PROXY_VARIABLES
            for variant in (name, name.lower())
            if env.get(variant)
        },
    )


def config_files(env: Mapping[str, str], home: Path, etc: Path = Path("/etc")) -> list[Path]:
    """pip's config files in the order pip reads them (a later one wins), those that exist."""
    xdg_dirs = env.get("XDG_CONFIG_DIRS", str(etc / "xdg")).split(":")
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs if d] + [etc / "pip.conf"]
    own = env.get("PIP_CONFIG_FILE")
    if not (own and Path(own).exists()):  # pip skips the user's files when it names one
        xdg_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        files += [home / ".pip" / "pip.conf", xdg_home / "pip" / "pip.conf"]
    files.append(Path(sys.prefix) / "pip.conf")
    if own:
        files.append(Path(own))
    return [path for path in files if path.is_file()]


def _read_config(path: Path) -> dict[str, str]:
    """[global], then [install] over it, with pip's key spelling."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return {}
    values: dict[str, str] = {}
    for section in ("global", "install"):
        if parser.has_section(section):
            for key, value in parser.items(section):
                key = key.replace("_", "-")
                values["timeout" if key == "default-timeout" else key] = value.strip()
    return values


def _usable_link(link: str) -> bool:
    """A URL, or a host folder that exists (a folder that does not is skipped, as pip warns)."""
    if "://" in link and not link.startswith("file://"):
        return True
    return Path(link.removeprefix("file://")).is_dir()


def _ca_bundle(cert: str | None, env: Mapping[str, str]) -> Path | None:
    for candidate in (cert, env.get("REQUESTS_CA_BUNDLE"), env.get("SSL_CERT_FILE")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return SYSTEM_CA if SYSTEM_CA.is_file() else None


def redact(url: str) -> str:
    """A URL without its password or token."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = "***@" + (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
