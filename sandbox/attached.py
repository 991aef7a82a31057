"""One container's exit code and output, caught although the engine removes it when it exits.

Containers are created with AutoRemove, so none outlives its end even when the harness is dead.
The harness therefore asks for both before it starts the container, as `docker run --rm` does:
a wait for the container's removal (the engine registers it before it answers the headers) and
an attach to its output streams. The output is read as it comes, keeping only its tail.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

_STDERR_KEPT = 64 * 1024  # the enforcer's status line, or a fallback run's stderr


class Attached:
    """A removal wait and an output reader for one created, not yet started, container."""

    def __init__(self, client: Any, container: Any, cap: int, wait_timeout: float) -> None:
        api = client.api
        url = api._url("/containers/{0}/wait", container.id)
        self._response = api._post(
            url, params={"condition": "removed"}, timeout=wait_timeout, stream=True
        )
        api._raise_for_status(self._response)
        self._stream = api.attach(
            container.id, stdout=True, stderr=True, stream=True, logs=True, demux=True
        )
        self._cap = cap
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.merged = bytearray()  # both, in arrival order: a fallback run's output
        self._exit: dict[str, Any] = {}
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._waiter.start()
        self._reader.start()

    def _wait(self) -> None:
        try:
            self._exit["code"] = int(self._response.json()["StatusCode"])
        except Exception as err:  # handed to the caller's thread by exit_code()
            self._exit["error"] = err

    def _read(self) -> None:
        try:
            for out, err in self._stream:
                for chunk, into, cap in ((out, self.stdout, self._cap), (err, self.stderr, None)):
                    if chunk:
                        _append(into, chunk, cap or _STDERR_KEPT)
                        _append(self.merged, chunk, self._cap)
        except Exception:  # the stream broke with the engine: the wait says so
            return

    def exit_code(self, timeout: float) -> int | None:
        """The exit code once the container is gone, None while it runs; engine faults raise."""
        self._waiter.join(timeout)
        if "error" in self._exit:
            raise self._exit["error"]
        return self._exit.get("code")

    def finish(self, timeout: float) -> None:
        """Let the reader take what is left of the output (the streams close at the exit)."""
        self._reader.join(timeout)

    def close(self) -> None:
        """Cut both connections at the socket: closing a response that another thread still
        reads would wait for that read (an abort, say, while the container still runs)."""
        from docker.types.daemon import CancellableStream

        for stream in (self._stream, CancellableStream(None, self._response)):
            with contextlib.suppress(Exception):  # already closed by the engine
                stream.close()


def _append(buffer: bytearray, chunk: bytes, cap: int) -> None:
    buffer += chunk
    if len(buffer) > 2 * cap:
        del buffer[: len(buffer) - cap]
