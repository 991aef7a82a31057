"""A scripted model behind a real HTTP server on 127.0.0.1, speaking the providers' wire formats.

The real `anthropic`, `openai` and `litellm` clients talk to it over HTTP: nothing patches an SDK.
Each request gets the next scripted step, whatever the endpoint, rendered in that endpoint's
format: Anthropic `/v1/messages`, OpenAI `/v1/chat/completions` and `/v1/responses`. A step is a
tool call, a final text, an HTTP error (with headers such as `retry-after`), a dropped connection
or a slow answer; a `responder` can answer from the request instead, like a model that reacts. `raw_arguments` sends a tool call's arguments as written, even JSON no
encoder would produce (nested 100,000 deep, say), in every format. Every request is recorded (path, headers, JSON body, time), and so is the
usage of every answer served, so a test can add up what the calls cost.

    with FakeLLM([tool({"command": "view"}), text("done")]) as llm:
        ... ANTHROPIC_BASE_URL=llm.url, or base_url=llm.url + "/v1" for OpenAI ...
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Usage:
    input: int = 1000  # the whole prompt, cached tokens included
    cached: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    output: int = 50


@dataclass(frozen=True)
class Step:
    kind: str  # tool | text | error | drop | slow
    tool_input: dict[str, Any] | None = None
    tool_name: str = "edit"
    raw_arguments: str | None = None  # the arguments as sent, if no encoder would write them
    text: str = ""
    thinking: str = ""  # a thinking block (Anthropic) or reasoning summary (responses) first
    stop: str = ""  # "max_tokens": the turn was cut; "refusal": the model declined (text says why)
    status: int = 200
    error_type: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    usage: Usage = Usage()
    delay: float = 0.0
    then: Step | None = None  # slow: the answer after the delay


def tool(
    tool_input: dict[str, Any],
    *,
    name: str = "edit",
    text: str = "",
    usage: Usage = Usage(),
    raw_arguments: str | None = None,
    thinking: str = "",
) -> Step:
    return Step(
        "tool",
        tool_input=tool_input,
        tool_name=name,
        text=text,
        usage=usage,
        raw_arguments=raw_arguments,
        thinking=thinking,
    )


def text(answer: str, usage: Usage = Usage(), thinking: str = "") -> Step:
    return Step("text", text=answer, usage=usage, thinking=thinking)


def cut(step: Step) -> Step:
    """The step as a turn cut at max_tokens (its tool call and text still sent)."""
    return Step(**{**step.__dict__, "stop": "max_tokens"})


def refusal(reason: str = "I can't help with that.", usage: Usage = Usage()) -> Step:
    return Step("text", text=reason, usage=usage, stop="refusal")


def error(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> Step:
    return Step(
        "error", status=status, error_type=error_type, message=message, headers=headers or {}
    )


def drop() -> Step:
    """Close the connection without an answer."""
    return Step("drop")


def slow(delay: float, then: Step) -> Step:
    return Step("slow", delay=delay, then=then)


def edit_session(old: str, new: str, description: str, usage: Usage = Usage()) -> list[Step]:
    """One proposal: view train.py, replace `old` with `new`, end the turn with a description."""
    return [
        tool({"command": "view"}, usage=usage),
        tool({"command": "str_replace", "old_str": old, "new_str": new}, usage=usage),
        text(description, usage=usage),
    ]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    step: Step | None = None


class FakeLLM:
    """The scripted model and its server; a context manager that starts and stops it."""

    def __init__(
        self,
        steps: list[Step] | None = None,
        responder: Callable[[Request], Step | None] | None = None,
    ) -> None:
        self.steps: list[Step] = list(steps or [])
        self.responder = responder  # answers once the scripted steps are used up
        self.requests: list[Request] = []
        self.served: list[Step] = []  # steps answered with a model turn (their usage is billed)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, *steps: Step) -> None:
        with self._lock:
            self.steps.extend(steps)

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def model_requests(self) -> list[Request]:
        return [r for r in self.requests if r.step is not None and r.step.kind in ("tool", "text")]

    def _next(self, request: Request) -> Step | None:
        with self._lock:
            self.requests.append(request)
            step = self.steps.pop(0) if self.steps else None
            if step is None and self.responder is not None:
                step = self.responder(request)
            request.step = step.then if step and step.kind == "slow" else step
            return step

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw or b"{}")
                request = Request(self.path, dict(self.headers), body, time.monotonic())
                step = fake._next(request)
                if step is None:
                    step = error(400, "invalid_request_error", "fake server: the script has ended")
                if step.kind == "slow":
                    time.sleep(step.delay)
                    assert step.then is not None
                    step = step.then
                if step.kind == "drop":
                    self.close_connection = True
                    return
                if step.kind == "error":
                    self._send(step.status, _error_body(self.path, step), step.headers)
                    return
                with fake._lock:
                    fake.served.append(step)
                    number = next(fake._ids)
                raw = step.raw_arguments if self.path.endswith("/messages") else None
                self._send(200, _render(self.path, body, step, number), {}, raw)

            def _send(
                self,
                status: int,
                payload: dict[str, Any],
                headers: dict[str, str],
                raw_input: str | None = None,
            ) -> None:
                data = json.dumps(payload).encode()
                if raw_input is not None:  # an Anthropic tool input exactly as written
                    data = data.replace(json.dumps(_RAW).encode(), raw_input.encode())
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        return Handler


def _render(path: str, body: dict[str, Any], step: Step, number: int) -> dict[str, Any]:
    if path.endswith("/messages"):
        return _anthropic(body, step, number)
    if path.endswith("/responses"):
        return _responses(body, step, number)
    return _chat(body, step, number)


_RAW = "<raw tool input>"


def _anthropic(body: dict[str, Any], step: Step, number: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if step.thinking:
        content.append({"type": "thinking", "thinking": step.thinking, "signature": "sig"})
    if step.text:
        content.append({"type": "text", "text": step.text})
    if step.kind == "tool":
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{number:04d}",
                "name": step.tool_name,
                "input": _RAW if step.raw_arguments is not None else step.tool_input,
            }
        )
    u = step.usage
    return {
        "id": f"msg_{number:04d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": content,
        "stop_reason": step.stop or ("tool_use" if step.kind == "tool" else "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": u.input - u.cached - u.cache_write,
            "cache_read_input_tokens": u.cached,
            "cache_creation_input_tokens": u.cache_write,
            "cache_creation": {
                "ephemeral_5m_input_tokens": u.cache_write - u.cache_write_1h,
                "ephemeral_1h_input_tokens": u.cache_write_1h,
            },
            "output_tokens": u.output,
        },
    }


def _arguments(step: Step) -> str:
    return step.raw_arguments if step.raw_arguments is not None else json.dumps(step.tool_input)


def _chat(body: dict[str, Any], step: Step, number: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.text or None}
    finish = "tool_calls" if step.kind == "tool" else "stop"
    if step.stop == "max_tokens":
        finish = "length"
    elif step.stop == "refusal":
        message = {"role": "assistant", "content": None, "refusal": step.text}
    if step.kind == "tool":
        message["tool_calls"] = [
            {
                "id": f"call_{number:04d}",
                "type": "function",
                "function": {"name": step.tool_name, "arguments": _arguments(step)},
            }
        ]
    u = step.usage
    return {
        "id": f"chatcmpl-{number:04d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": u.input,
            "completion_tokens": u.output,
            "total_tokens": u.input + u.output,
            "prompt_tokens_details": {"cached_tokens": u.cached},
        },
    }


def _responses(body: dict[str, Any], step: Step, number: int) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if step.thinking:
        output.append(
            {
                "type": "reasoning",
                "id": f"rs_{number:04d}",
                "summary": [{"type": "summary_text", "text": step.thinking}],
            }
        )
    if step.stop == "refusal":
        output.append(
            {
                "type": "message",
                "id": f"msg_{number:04d}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "refusal", "refusal": step.text}],
            }
        )
    elif step.text:
        output.append(
            {
                "type": "message",
                "id": f"msg_{number:04d}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": step.text, "annotations": []}],
            }
        )
    if step.kind == "tool":
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{number:04d}",
                "call_id": f"call_{number:04d}",
                "name": step.tool_name,
                "arguments": _arguments(step),
                "status": "completed",
            }
        )
    u = step.usage
    return {
        "id": f"resp_{number:04d}",
        "object": "response",
        "created_at": int(time.time()),
        "model": body.get("model", ""),
        "status": "incomplete" if step.stop == "max_tokens" else "completed",
        **(
            {"incomplete_details": {"reason": "max_output_tokens"}}
            if step.stop == "max_tokens"
            else {}
        ),
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": body.get("tools", []),
        "usage": {
            "input_tokens": u.input,
            "input_tokens_details": {"cached_tokens": u.cached},
            "output_tokens": u.output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.input + u.output,
        },
    }


def _error_body(path: str, step: Step) -> dict[str, Any]:
    if path.endswith("/messages"):
        return {"type": "error", "error": {"type": step.error_type, "message": step.message}}
    return {
        "error": {
            "message": step.message,
            "type": step.error_type,
            "code": step.error_type,
            "param": None,
        }
    }


_guarding = [False]
_hooked = [False]


def _loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple) -> None:
    if not _guarding[0]:
        return
    if event == "socket.connect":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise ConnectionRefusedError(
                f"a test tried to reach {address}: only 127.0.0.1 is allowed"
            )
    elif event == "socket.getaddrinfo" and not _loopback(args[0]):
        raise ConnectionRefusedError(
            f"a test tried to resolve {args[0]}: only 127.0.0.1 is allowed"
        )


@contextlib.contextmanager
def guard_network() -> Iterator[None]:
    """Refuse any connection or name lookup beyond this host while the block runs."""
    if not _hooked[0]:
        sys.addaudithook(_audit)
        _hooked[0] = True
    _guarding[0] = True
    try:
        yield
    finally:
        _guarding[0] = False
