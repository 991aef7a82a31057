"""The setup's folders carried to another machine as a tar stream in chunks: how a Ray node gets
what `python prepare.py` left on the head (task/, home/, data/, private/, runner/), without a
shared filesystem.

`pack` streams the folder into chunks of at most CHUNK_BYTES, each handed to `put` (ray.put), so
no more than one chunk is ever held in memory. `unpack` rebuilds it once per machine, in a folder
named by the stream's digest, from chunks fetched with `get` (ray.get) only when that folder is
not there yet. Modes and owners are kept: the containers run as particular uids, and what the
packing machine's runs owned is given to the uids runs use here (see sandbox/users.py).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from harness.errors import InfrastructureFault
from sandbox import tree
from sandbox.labels import alive
from sandbox.users import run_ids

CHUNK_BYTES = 32 * 2**20
_PARTIAL = ".partial"


@dataclass(frozen=True)
class Archive:
    """A packed setup folder: its name, the sha256 of its tar stream, and its chunks (what `put`
    returned for each, in order)."""

    name: str
    digest: str
    size: int
    owner: tuple[int, int]  # the (uid, gid) runs used where it was packed
    chunks: tuple[Any, ...]


class _ChunkSink:
    """A write-only file for tarfile's stream mode that hands on every full chunk."""

    def __init__(self, put: Callable[[bytes], Any]) -> None:
        self.put, self.buffer = put, bytearray()
        self.chunks: list[Any] = []
        self.digest, self.size = hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.buffer += data
        self.digest.update(data)
        self.size += len(data)
        while len(self.buffer) >= CHUNK_BYTES:
            self.chunks.append(self.put(bytes(self.buffer[:CHUNK_BYTES])))
            del self.buffer[:CHUNK_BYTES]
        return len(data)

    def flush_last(self) -> None:
        if self.buffer:
            self.chunks.append(self.put(bytes(self.buffer)))
            self.buffer.clear()


class _ChunkSource:
    """A read-only file over the chunks, fetched one at a time, hashed as they are read."""

    def __init__(self, chunks: tuple[Any, ...], get: Callable[[Any], bytes]) -> None:
        self.pending, self.get = list(chunks), get
        self.buffer, self.offset = b"", 0
        self.digest, self.size = hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        parts = []
        while size != 0:
            if self.offset == len(self.buffer):
                if not self.pending:
                    break
                self.buffer, self.offset = self.get(self.pending.pop(0)), 0
                self.digest.update(self.buffer)
                self.size += len(self.buffer)
            end = len(self.buffer) if size < 0 else min(len(self.buffer), self.offset + size)
            parts.append(self.buffer[self.offset : end])
            size = size if size < 0 else size - (end - self.offset)
            self.offset = end
        return b"".join(parts)

    def drain(self) -> None:
        while self.read(CHUNK_BYTES):
            pass


def pack(folder: Path, put: Callable[[bytes], Any]) -> Archive:
    """`folder` (a finished setup) as an archive of chunks, each already handed to `put`."""
    sink = _ChunkSink(put)
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
        for entry in sorted(folder.iterdir()):
            archive.add(entry, arcname=entry.name)
    sink.flush_last()
    return Archive(folder.name, sink.digest.hexdigest(), sink.size, run_ids(), tuple(sink.chunks))


def unpack(archive: Archive, root: Path, get: Callable[[Any], bytes]) -> Path:
    """The archive's folder under `root`, extracted unless an earlier call (of any process on
    this machine) did; the chunks are fetched only then."""
    target = root / f"{archive.name}-{archive.digest[:16]}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(root)
    partial = root / f"{_PARTIAL}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial.mkdir(mode=0o755)
    try:
        source = _ChunkSource(archive.chunks, get)
        with tarfile.open(fileobj=source, mode="r|") as stream:  # type: ignore[call-overload]
            stream.extractall(partial, numeric_owner=True, filter=_owners_mapped(archive))
        source.drain()
        if source.digest.hexdigest() != archive.digest or source.size != archive.size:
            raise InfrastructureFault(
                f"the setup archive {archive.name} arrived damaged ({source.size} of "
                f"{archive.size} bytes, sha256 {source.digest.hexdigest()[:12]}, expected "
                f"{archive.digest[:12]})"
            )
        try:
            os.rename(partial, target)
        except OSError:
            if not target.is_dir():
                raise
            tree.remove(partial)  # another process of this machine unpacked it first
    except BaseException:
        tree.remove(partial)
        raise
    return target


def _owners_mapped(archive: Archive) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo]:
    """The extraction filter: every member's path checked, its mode kept as it was (tarfile's own
    filters clear bits), and what the packing machine's runs owned given to this one's runs."""
    (head_uid, head_gid), (uid, gid) = archive.owner, run_ids()

    def mapped(member: tarfile.TarInfo, _: str) -> tarfile.TarInfo:
        _check_inside(member.name)
        if member.islnk():
            _check_inside(member.linkname)
        return member.replace(
            uid=uid if member.uid == head_uid else member.uid,
            gid=gid if member.gid == head_gid else member.gid,
            deep=False,
        )

    return mapped


def _check_inside(name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise InfrastructureFault(f"the setup archive holds a path outside its folder: {name!r}")


def _remove_abandoned(root: Path) -> None:
    """Half-extracted folders whose process is gone (a Ray worker killed mid-extraction)."""
    for entry in root.glob(f"{_PARTIAL}-*"):
        pid = entry.name.split("-")[1]
        if pid.isdigit() and not alive(int(pid)):
            tree.remove(entry)
