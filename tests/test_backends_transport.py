"""The HTTP backends over an ``httpx.MockTransport``: what a local fake server makes awkward.

The wire formats and the failure mapping are tested against a real local server (test_backends*.py). These tests
hand a backend a transport instead (its constructor's ``transport=``), for what a server cannot show: each
provider's default address (no test can point it at 127.0.0.1 without changing it), every header a request
carries, failures that happen below HTTP (a connect timeout, a proxy refusing, an error quoting the key), and an
answer whose body is not in the encoding it claims.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from eink_llm.backends import BackendSettings, LLMRequest, Message, ModelOptions, PageImage
from eink_llm.backends._http import HttpService
from eink_llm.backends.anthropic import AnthropicBackend
from eink_llm.backends.gemini import GeminiBackend
from eink_llm.backends.ollama import OllamaBackend
from eink_llm.backends.openai import OpenAIBackend
from eink_llm.errors import BackendError

KEY = "key-Sup3rS3cret-0123456789abcdef"
Handler = Callable[[httpx.Request], httpx.Response]

#: backend class, the URL its default base_url makes, the headers it adds (all of them), a minimal answer "Hi".
PROVIDERS: dict[str, tuple[type[Any], str, dict[str, str], dict[str, Any]]] = {
    "openai": (
        OpenAIBackend,
        "https://api.openai.com/v1/chat/completions",
        {"authorization": f"Bearer {KEY}"},
        {"choices": [{"message": {"content": "Hi"}, "finish_reason": "stop"}]},
    ),
    "anthropic": (
        AnthropicBackend,
        "https://api.anthropic.com/v1/messages",
        {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        {"type": "message", "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn"},
    ),
    "gemini": (
        GeminiBackend,
        "https://generativelanguage.googleapis.com/v1beta/models/test-model:generateContent",
        {"x-goog-api-key": KEY},
        {"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP"}]},
    ),
    "ollama": (
        OllamaBackend,
        "http://localhost:11434/api/chat",
        {"authorization": f"Bearer {KEY}"},
        {"message": {"role": "assistant", "content": "Hi"}, "done_reason": "stop"},
    ),
}

#: What httpx itself puts on every request; everything else a backend sends is its own.
HTTPX_HEADERS = {"host", "accept", "accept-encoding", "connection", "user-agent", "content-length", "content-type"}


def build(name: str, handler: Handler, **fields: Any) -> Any:
    settings = BackendSettings(name, **{"api_key": KEY, "model": "test-model", "timeout_seconds": 5.0, **fields})
    return PROVIDERS[name][0](settings, transport=httpx.MockTransport(handler))


def request() -> LLMRequest:
    return LLMRequest(
        system_prompt="Be brief.",
        history=(Message("user", "Earlier question"), Message("assistant", "Earlier answer")),
        pages=(PageImage(b"\x89PNG fake", "image/png", 10, 20),),
        text="typed words",
        options=ModelOptions(max_output_tokens=300, temperature=0.5),
    )


def failure(name: str, handler: Handler) -> BackendError:
    backend = build(name, handler)
    try:
        with pytest.raises(BackendError) as caught:
            backend.complete(request())
    finally:
        backend.close()
    return caught.value


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_default_address_and_everything_a_request_carries(name: str) -> None:
    _backend_class, url, own_headers, answer = PROVIDERS[name]
    sent: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        sent.append(req)
        return httpx.Response(200, json=answer)

    backend = build(name, handler)  # base_url unset: the provider's default
    try:
        assert backend.complete(request()).text == "Hi"
        [req] = sent  # one attempt: retrying is the queue's job
        assert req.method == "POST" and str(req.url) == url
        assert req.headers["content-type"] == "application/json"
        assert {key: req.headers[key] for key in req.headers if key not in HTTPX_HEADERS} == own_headers
        assert json.loads(req.content) == backend.build_body(request())
        assert KEY not in str(req.url) and KEY not in req.content.decode()
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("exception", "retryable", "what"),
    [
        (httpx.ConnectTimeout("timed out"), True, "could not be reached within 5 seconds."),
        (httpx.ProxyError("407 Proxy Authentication Required"), True, "broke off the connection before answering."),
        (httpx.WriteError("[Errno 32] Broken pipe"), True, "broke off the connection before answering."),
    ],
)
def test_failures_below_http(exception: Exception, retryable: bool, what: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise exception

    error = failure("openai", handler)
    assert error.retryable is retryable and error.status is None
    assert error.what.endswith(what), error.what


def test_a_key_quoted_by_the_http_stack_is_masked() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {req.url} with {req.headers['x-goog-api-key']}")

    error = failure("gemini", handler)
    assert error.retryable and "could not be reached" in error.what
    assert "cannot connect to https://generativelanguage.googleapis.com" in (error.detail or "")
    assert KEY not in f"{error.what} {error.todo} {error.detail}"


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_a_body_not_in_its_claimed_encoding_is_not_understood(name: str) -> None:
    """A proxy that says gzip and sends plain text: httpx's DecodingError is not a transport error."""

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=b'{"not": "gzip"}')

    error = failure(name, handler)
    assert error.retryable and "could not be understood" in error.what
    assert (error.detail or "").startswith("DecodingError")


def test_post_json_merges_headers_and_returns_the_object() -> None:
    sent: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        sent.append(req)
        return httpx.Response(200, json={"ok": [1, 2]})

    service = HttpService(
        "https://llm.example/api/",
        timeout_seconds=3.0,
        headers={"x-one": "service", "x-two": "service"},
        transport=httpx.MockTransport(handler),
    )
    try:
        assert service.post_json("/ask", {"q": "é"}, headers={"x-two": "call"}) == {"ok": [1, 2]}
    finally:
        service.close()
    [req] = sent
    assert str(req.url) == "https://llm.example/api/ask"
    assert req.headers["x-one"] == "service" and req.headers["x-two"] == "call"
    assert json.loads(req.content) == {"q": "é"}
    assert service.label == "The AI service at llm.example"
