"""A real, local, scriptable LLM server for tests.

Why a server and not a mock: the backends' job is to speak HTTP correctly (headers, JSON, timeouts, status codes),
so tests must exercise the real ``httpx`` stack over a real socket. The server runs in the test process on
``127.0.0.1`` (a free port) in a daemon thread, so a daemon started as a child process can talk to it too.

Typical use::

    with FakeLLMServer() as server:
        server.script(Fault.status(429, headers={"Retry-After": "1"}), Fault.status(500))
        ...  # point llm.base_url at server.base_url; the first two requests fail, then answers are normal
        assert server.requests[-1].body["model"] == "gpt-4o-mini"
        pages = server.requests[-1].images()  # Pillow images of the pages that reached "the AI"

Faults are consumed one per request, in order, before normal answers; :meth:`FakeLLMServer.outage` makes every
request fail until it is cleared. ``answer_fn(body) -> str`` decides the answer text.

Providers are :class:`Route` objects: a method, a path pattern, and three small functions (build an answer, build
an error body, find the images in a request). OpenAI Chat Completions is built in; Anthropic ``/v1/messages``,
Gemini ``generateContent`` and Ollama ``/api/chat`` are one ``Route`` each in ``tests/fakes/routes.py``
(``FakeLLMServer(routes=all_routes())`` speaks all four).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from PIL import Image

FaultKind = Literal["status", "timeout", "slow", "garbage", "disconnect"]
AnswerFn = Callable[[Any], str]

_DEFAULT_JSON: Any = object()  # "no JSON given": let the route write its own error body


# --- faults ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted misbehaviour. Build with the class methods, not the constructor."""

    kind: FaultKind
    status_code: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    json_body: Any = _DEFAULT_JSON
    raw_body: bytes | None = None
    content_type: str = "application/json"
    seconds: float = 0.0

    @classmethod
    def status(
        cls,
        code: int,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = _DEFAULT_JSON,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Fault:
        """Answer with HTTP ``code``. The body is ``json`` if given, else raw ``body`` if given, else the route's
        own error body (OpenAI: ``{"error": {"message": "Fake error: HTTP <code>", ...}}``)."""
        return cls(
            "status",
            status_code=code,
            headers=tuple((headers or {}).items()),
            json_body=json,
            raw_body=body,
            content_type=content_type,
        )

    @classmethod
    def reply(cls, json: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Fault:
        """Answer with exactly this JSON (e.g. content as a list of parts, a response without usage)."""
        return cls.status(status, json=json, headers=headers)

    @classmethod
    def timeout(cls, seconds: float = 30.0) -> Fault:
        """Hold the request ``seconds`` (ended early by ``stop()``), then hang up without answering."""
        return cls("timeout", seconds=seconds)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Answer normally, but only after ``seconds``."""
        return cls("slow", seconds=seconds)

    @classmethod
    def garbage(
        cls, body: bytes = b"<html><body>502 Bad Gateway</body></html> {not json", *, status: int = 200
    ) -> Fault:
        """A body that is not JSON, with status ``status`` (200 by default: a confused proxy)."""
        return cls("garbage", status_code=status, raw_body=body, content_type="text/html")

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without sending a response."""
        return cls("disconnect")


# --- requests and routes ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class RecordedRequest:
    """One request as the server saw it. ``status`` and ``reply`` are filled in once it has been answered
    (``status`` stays ``None`` for timeouts and disconnects)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    raw: bytes
    body: Any  # parsed JSON, or None if the body was not JSON
    route: Route | None
    fault: Fault | None = None
    status: int | None = None
    reply: Any = None
    received_at: float = field(default_factory=time.monotonic)

    def image_payloads(self) -> list[tuple[str, bytes]]:
        """``(media_type, bytes)`` of every image the request carried, in order."""
        if self.route is None or self.body is None:
            return []
        return self.route.images(self.body)

    def images(self) -> list[Image.Image]:
        """The images the request carried, decoded with Pillow (fully loaded)."""
        result: list[Image.Image] = []
        for _media_type, data in self.image_payloads():
            image = Image.open(io.BytesIO(data))
            image.load()
            result.append(image)
        return result


@dataclass(frozen=True, slots=True)
class Route:
    """How the server speaks one provider's API.

    ``answer(request, text, number)`` builds a successful response body around ``text`` (``number`` counts the
    answers given, from 1); ``error(status, message)`` builds the provider's error body; ``images(body)`` lists
    ``(media_type, bytes)`` of the images in a request body.
    """

    name: str
    method: str
    path: re.Pattern[str]
    answer: Callable[[RecordedRequest, str, int], Any]
    error: Callable[[int, str], Any]
    images: Callable[[Any], list[tuple[str, bytes]]]


def decode_data_url(url: str) -> tuple[str, bytes]:
    """``data:<media type>;base64,<data>`` → ``(media type, bytes)``; ValueError for anything else."""
    match = re.fullmatch(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", url, re.DOTALL)
    if match is None:
        raise ValueError(f"not a base64 data URL: {url[:60]!r}")
    try:
        return match.group(1), base64.b64decode(match.group(2), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64 in data URL: {exc}") from None


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


# OpenAI Chat Completions ----------------------------------------------------------------------------------------


def _openai_images(body: Any) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for message in body.get("messages", []) if isinstance(body, dict) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                found.append(decode_data_url(part["image_url"]["url"]))
    return found


def _openai_prompt_tokens(body: Any) -> int:
    tokens = 0
    for message in body.get("messages", []) if isinstance(body, dict) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            tokens += estimate_tokens(content) + 4
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    tokens += estimate_tokens(str(part.get("text", "")))
                elif isinstance(part, dict) and part.get("type") == "image_url":
                    tokens += 85 if part.get("image_url", {}).get("detail") == "low" else 765
            tokens += 4
    return tokens


def _openai_answer(request: RecordedRequest, text: str, number: int) -> Any:
    body = request.body if isinstance(request.body, dict) else {}
    prompt_tokens = _openai_prompt_tokens(body)
    completion_tokens = estimate_tokens(text)
    return {
        "id": f"chatcmpl-fake{number:06d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model") or "fake-model"),
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


_OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
}


def _openai_error(status: int, message: str) -> Any:
    kind, code = _OPENAI_ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def openai_route() -> Route:
    """OpenAI Chat Completions, at ``/v1/chat/completions`` and ``/chat/completions``."""
    return Route(
        name="openai",
        method="POST",
        path=re.compile(r"(/v1)?/chat/completions"),
        answer=_openai_answer,
        error=_openai_error,
        images=_openai_images,
    )


# --- the server -----------------------------------------------------------------------------------------------


def default_answer(body: Any, number: int, images: int) -> str:
    """A deterministic Markdown answer that shows the request arrived: numbered, with the image count."""
    model = body.get("model") if isinstance(body, dict) else None
    return (
        f"# Answer {number}\n\n"
        f"The fake LLM server (model `{model or 'unknown'}`) received {images} page image(s).\n\n"
        "- This is a list item\n- and another one\n"
    )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    fake: FakeLLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) makes writes fail; that is expected, not worth a traceback.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers, so the client's connection pool is exercised
    timeout = 30  # idle keep-alive connections do not pin a thread forever
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        try:
            self.server.fake._serve(self)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in a test's answer_fn: report it as a 500 and keep it for the test
            self.server.fake.errors.append(exc)
            with contextlib.suppress(OSError):
                self._send(500, {"error": {"message": f"fake server error: {exc!r}"}})

    def _send(
        self,
        status: int,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class FakeLLMServer:
    """A local HTTP server speaking LLM provider APIs, recording requests and misbehaving on demand."""

    def __init__(self, *, host: str = "127.0.0.1", routes: Iterable[Route] | None = None) -> None:
        self.host = host
        self.routes: list[Route] = list(routes) if routes is not None else [openai_route()]
        self.answer_fn: AnswerFn | None = None
        #: Exceptions raised inside the server while handling requests (e.g. by answer_fn); tests may assert empty.
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._outage: Fault | None = None
        self._answers = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> FakeLLMServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.name = f"fake-llm-{self.port}"
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by ``Fault.timeout``/``slow`` are released at once."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # addresses

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake LLM server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, ``http://127.0.0.1:PORT/v1``, as ``llm.base_url`` wants it."""
        return f"{self.url}/v1"

    # scripting

    def script(self, *faults: Fault) -> FakeLLMServer:
        """Queue faults: each of the next requests consumes one, in order; later requests are answered normally."""
        with self._lock:
            self._faults.extend(faults)
        return self

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def outage(self, fault: Fault | None = None) -> FakeLLMServer:
        """Fail every request with ``fault`` (default: HTTP 503) until :meth:`clear_outage`. Scripted faults wait."""
        with self._lock:
            self._outage = fault if fault is not None else Fault.status(503)
        return self

    def clear_outage(self) -> FakeLLMServer:
        with self._lock:
            self._outage = None
        return self

    def add_route(self, route: Route) -> FakeLLMServer:
        self.routes.append(route)
        return self

    def reset(self) -> None:
        """Forget requests, faults, the outage and answer_fn (for a server shared between tests)."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._outage = None
        self.answer_fn = None
        self.errors.clear()

    # what happened

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self._requests:
                raise AssertionError("the fake LLM server has received no request")
            return self._requests[-1]

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests arrived (e.g. from a daemon in another process)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.requests
            if len(seen) >= count:
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"the fake LLM server got {len(seen)} request(s), expected {count}")
            time.sleep(0.02)

    # serving (runs in handler threads)

    def _serve(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        route = next((r for r in self.routes if r.method == handler.command and r.path.fullmatch(split.path)), None)
        recorded = RecordedRequest(
            method=handler.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={name.lower(): value for name, value in handler.headers.items()},
            raw=raw,
            body=body,
            route=route,
        )
        with self._lock:
            self._requests.append(recorded)
            fault = None
            if route is not None:
                fault = self._outage or (self._faults.popleft() if self._faults else None)
            recorded.fault = fault

        if route is None:
            missing = {"error": {"message": f"No route for {handler.command} {split.path}", "type": "not_found"}}
            self._finish(handler, recorded, 404, missing)
            return
        if fault is not None and fault.kind in ("timeout", "disconnect"):
            if fault.kind == "timeout":
                self._stopping.wait(fault.seconds)
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "slow":
            self._stopping.wait(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "garbage":
            self._finish(
                handler, recorded, fault.status_code, None, raw=fault.raw_body, content_type=fault.content_type
            )
            return
        if fault is not None:  # "status"
            payload: Any
            raw_body: bytes | None
            if fault.json_body is not _DEFAULT_JSON:
                payload, raw_body = fault.json_body, None
            elif fault.raw_body is not None:
                payload, raw_body = None, fault.raw_body
            else:
                payload, raw_body = route.error(fault.status_code, f"Fake error: HTTP {fault.status_code}"), None
            self._finish(
                handler,
                recorded,
                fault.status_code,
                payload,
                raw=raw_body,
                content_type=fault.content_type,
                headers=fault.headers,
            )
            return

        number = next(self._answers)
        text = (
            self.answer_fn(body)
            if self.answer_fn is not None
            else default_answer(body, number, len(route.images(body)) if body is not None else 0)
        )
        self._finish(handler, recorded, 200, route.answer(recorded, text, number))

    def _finish(
        self,
        handler: _Handler,
        recorded: RecordedRequest,
        status: int,
        payload: Any,
        *,
        raw: bytes | None = None,
        content_type: str = "",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        with self._lock:
            recorded.status = status
            recorded.reply = payload if raw is None else raw
        handler._send(status, payload, raw=raw, content_type=content_type, headers=headers)
