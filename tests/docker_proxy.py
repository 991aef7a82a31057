"""A unix-socket proxy in front of the real Docker engine, to make the engine vanish or hang on cue.

Point DOCKER_HOST at `proxy.url`. Modes: "forward" passes bytes both ways; "hang" accepts
connections and holds every request without an answer; `hang_on_create(n, seconds)` forwards
until the n-th `POST .../containers/create`, then hangs for that long.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from pathlib import Path

ENGINE = "/var/run/docker.sock"


class DockerProxy:
    def __init__(self, path: Path, mode: str = "forward") -> None:
        self.path = path
        self.mode = mode
        self.creates_seen = 0
        self._hang_at: int | None = None
        self._hang_for = 0.0
        self._hang_until = 0.0
        self._server: socket.socket | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> DockerProxy:
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(self.path))
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def hang_on_create(self, nth: int, seconds: float) -> None:
        self._hang_at, self._hang_for = nth, seconds

    def _hanging(self) -> bool:
        return self.mode == "hang" or time.monotonic() < self._hang_until

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        engine.connect(ENGINE)
        pair = {client: engine, engine: client}
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(list(pair), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client and self._should_hold(data):
                        self._hold(client)
                        return
                    pair[sock].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            engine.close()

    def _should_hold(self, request: bytes) -> bool:
        if b"/containers/create" in request:
            self.creates_seen += 1
            if self._hang_at is not None and self.creates_seen == self._hang_at:
                self._hang_until = time.monotonic() + self._hang_for
        return self._hanging()

    def _hold(self, client: socket.socket) -> None:
        """Never answer: wait while hanging (the caller's timeout fires), then drop the line."""
        while self._hanging() and not self._stop.is_set():
            time.sleep(0.05)
