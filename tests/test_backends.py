"""Backends against a real local HTTP server: wire format, failure mapping, secrets, the echo backend, the registry.

Nothing here patches httpx or our code: the OpenAI backend talks over a socket to ``tests.fakes.FakeLLMServer``,
which records what arrived and misbehaves on cue.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from PIL import Image

from eink_llm.backends import (
    Backend,
    BackendSettings,
    LLMRequest,
    Message,
    ModelOptions,
    PageImage,
    available_backends,
    create_backend,
)
from eink_llm.backends._http import parse_retry_after, provider_message, strip_reasoning
from eink_llm.backends.echo import EchoBackend
from eink_llm.backends.openai import CUT_OFF_NOTE, INSTRUCTION, OpenAIBackend
from eink_llm.errors import BackendError
from tests.fakes import FakeLLMServer, Fault, decode_data_url, default_answer

KEY = "sk-test-Sup3rS3cret-0123456789abcdef"


# --- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def server(shared_server: FakeLLMServer) -> Iterator[FakeLLMServer]:
    shared_server.reset()
    yield shared_server
    assert not shared_server.errors, shared_server.errors
    shared_server.reset()


@pytest.fixture
def make_backend(server: FakeLLMServer) -> Iterator[Any]:
    opened: list[Backend] = []

    def make(**overrides: Any) -> OpenAIBackend:
        fields: dict[str, Any] = {
            "backend": "openai",
            "base_url": server.base_url,
            "api_key": KEY,
            "model": "gpt-test",
            "timeout_seconds": 5.0,
        }
        fields.update(overrides)
        backend = create_backend(BackendSettings(**fields))
        assert isinstance(backend, OpenAIBackend)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


def png(width: int, height: int, shade: int) -> PageImage:
    image = Image.new("L", (width, height), shade)
    image.putpixel((1, 1), 255 - shade)  # not uniform, so a mix-up of pages shows
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return PageImage(buffer.getvalue(), "image/png", width, height)


PAGES = (png(30, 40, 10), png(60, 80, 200))
HISTORY = (
    Message("user", "First question: what is a monad?"),
    Message("assistant", "A monad is a monoid in the category of endofunctors."),
)


def request(**overrides: Any) -> LLMRequest:
    fields: dict[str, Any] = {
        "system_prompt": "You are helpful.\nSecond line of the prompt.",
        "history": HISTORY,
        "pages": PAGES,
        "text": "What is 2 + 2?",
        "options": ModelOptions(model=None, max_output_tokens=500, temperature=0.3),
        "source_name": "question.pdf",
    }
    fields.update(overrides)
    return LLMRequest(**fields)


def failure(backend: Backend, req: LLMRequest | None = None) -> BackendError:
    with pytest.raises(BackendError) as caught:
        backend.complete(req or request())
    return caught.value


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- request shape ----------------------------------------------------------------------------------------------


def test_request_carries_model_system_history_text_and_pages(server: FakeLLMServer, make_backend: Any) -> None:
    backend = make_backend(extra={"detail": "high"})
    response = backend.complete(request())

    sent = server.last_request
    assert sent.method == "POST" and sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    body = sent.body
    assert body["model"] == "gpt-test"
    assert body["max_tokens"] == 500 and "max_completion_tokens" not in body
    assert body["temperature"] == 0.3
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert body["messages"][0]["content"] == "You are helpful.\nSecond line of the prompt."
    assert body["messages"][1]["content"] == HISTORY[0].text
    assert body["messages"][2]["content"] == HISTORY[1].text

    parts = body["messages"][3]["content"]
    assert parts[0]["type"] == "text"
    assert parts[0]["text"].startswith(INSTRUCTION) and "What is 2 + 2?" in parts[0]["text"]
    images = parts[1:]
    assert [p["type"] for p in images] == ["image_url", "image_url"]
    assert all(p["image_url"]["detail"] == "high" for p in images)
    assert [decode_data_url(p["image_url"]["url"]) for p in images] == [("image/png", page.data) for page in PAGES]
    assert [im.size for im in sent.images()] == [(30, 40), (60, 80)]
    assert sent.images()[1].getpixel((0, 0)) == 200

    reply = sent.reply
    assert response.text == default_answer(body, 1, 2).strip()
    assert response.model == "gpt-test"
    assert response.usage.input_tokens == reply["usage"]["prompt_tokens"] > 0
    assert response.usage.output_tokens == reply["usage"]["completion_tokens"] > 0


def test_minimal_request_without_key_text_history_or_temperature(server: FakeLLMServer, make_backend: Any) -> None:
    backend = make_backend(
        api_key=None,
        base_url=server.base_url + "/",
        model="local-model",
        extra={"max_tokens_field": "max_completion_tokens"},
    )
    backend.complete(request(history=(), text="  \n", options=ModelOptions(max_output_tokens=64)))

    sent = server.last_request
    assert sent.path == "/v1/chat/completions"  # a trailing slash in base_url does not double up
    assert "authorization" not in sent.headers
    body = sent.body
    assert body["model"] == "local-model"
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body
    assert "temperature" not in body
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    parts = body["messages"][1]["content"]
    assert parts[0] == {"type": "text", "text": INSTRUCTION}
    assert [p["image_url"]["detail"] for p in parts[1:]] == ["auto", "auto"]


def test_base_url_without_v1_prefix_path(server: FakeLLMServer, make_backend: Any) -> None:
    make_backend(base_url=server.url).complete(request())
    assert server.last_request.path == "/chat/completions"


def test_request_model_overrides_settings_model(server: FakeLLMServer, make_backend: Any) -> None:
    make_backend().complete(request(options=ModelOptions(model="other-model")))
    assert server.last_request.body["model"] == "other-model"


def test_missing_model_is_a_permanent_error_before_any_request(server: FakeLLMServer, make_backend: Any) -> None:
    error = failure(make_backend(model=None))
    assert not error.retryable
    assert "llm.model" in error.todo
    assert server.requests == []


@pytest.mark.parametrize("extra", [{"detail": "ultra"}, {"max_tokens_field": "tokens"}])
def test_invalid_options_are_refused_when_the_backend_is_built(extra: dict[str, object]) -> None:
    with pytest.raises(BackendError) as caught:
        create_backend(BackendSettings(backend="openai", model="m", extra=extra))
    assert not caught.value.retryable and "llm.options" in str(caught.value)


def test_one_backend_serves_two_threads_at_once(server: FakeLLMServer, make_backend: Any) -> None:
    barrier = threading.Barrier(2, timeout=3)

    def answer(body: Any) -> str:
        barrier.wait()  # breaks (→ HTTP 500 → test failure) unless both requests are in flight together
        return f"answer to {body['messages'][-1]['content'][0]['text'][-1]}"

    server.answer_fn = answer
    backend = make_backend()
    results: dict[str, str] = {}

    def ask(name: str) -> None:
        results[name] = backend.complete(request(text=name)).text

    threads = [threading.Thread(target=ask, args=(name,)) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == {"A": "answer to A", "B": "answer to B"}


# --- answers ----------------------------------------------------------------------------------------------------


def completion(content: Any, *, finish: str = "stop", usage: Any = None, **message: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "x",
        "object": "chat.completion",
        "model": "served-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content, **message}, "finish_reason": finish}
        ],
    }
    if usage is not None:
        data["usage"] = usage
    return data


def test_think_blocks_are_stripped_and_usage_parsed(server: FakeLLMServer, make_backend: Any) -> None:
    server.script(
        Fault.reply(
            completion(
                "<think>The user wants\n2+2.</think>\n\n**4**", usage={"prompt_tokens": 1234, "completion_tokens": 56}
            )
        )
    )
    response = make_backend().complete(request())
    assert response.text == "**4**"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (1234, 56, 1290)
    assert response.model == "served-model"


def test_content_as_list_of_parts_and_missing_usage(server: FakeLLMServer, make_backend: Any) -> None:
    server.script(
        Fault.reply(
            completion(
                [
                    {"type": "text", "text": "Hello, "},
                    {"type": "reasoning", "text": "hmm"},
                    {"type": "text", "text": "world."},
                ]
            )
        )
    )
    response = make_backend().complete(request())
    assert response.text == "Hello, world."
    assert response.usage.total_tokens == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<think>a</think>answer", "answer"),
        ("<THINK>a</THINK> one <think>b</think> two", "one  two"),
        ("reasoning without opening tag</think>\nanswer", "answer"),
        ("answer <think>cut off mid-thought", "answer"),
        ("no thoughts at all", "no thoughts at all"),
    ],
)
def test_strip_reasoning(raw: str, expected: str) -> None:
    assert strip_reasoning(raw) == expected


def test_answer_cut_off_by_length_gets_a_note(server: FakeLLMServer, make_backend: Any) -> None:
    server.script(Fault.reply(completion("Partial answer", finish="length")))
    assert make_backend().complete(request()).text == f"Partial answer\n\n{CUT_OFF_NOTE}"


def test_refusal_is_shown_as_the_answer(server: FakeLLMServer, make_backend: Any) -> None:
    server.script(Fault.reply(completion(None, refusal="I can't help with that.")))
    assert make_backend().complete(request()).text == "I can't help with that."


@pytest.mark.parametrize(
    ("content", "finish", "retryable", "words"),
    [
        ("", "stop", True, "empty answer"),
        ("<think>only thoughts</think>", "stop", True, "empty answer"),
        (None, "length", False, "length limit"),
        ("", "content_filter", False, "content filter"),
    ],
)
def test_empty_answers(
    server: FakeLLMServer, make_backend: Any, content: Any, finish: str, retryable: bool, words: str
) -> None:
    server.script(Fault.reply(completion(content, finish=finish)))
    error = failure(make_backend())
    assert error.retryable is retryable
    assert words in error.what


# --- failures ---------------------------------------------------------------------------------------------------


def http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize(
    ("fault", "retryable", "retry_after", "words"),
    [
        (Fault.status(429, headers={"Retry-After": "1"}), True, 1.0, "too many requests"),
        (Fault.status(429, headers={"retry-after-ms": "1500", "Retry-After": "9"}), True, 1.5, "too many requests"),
        (Fault.status(429, headers={"Retry-After": "99999"}), True, 120.0, "too many requests"),
        (Fault.status(429, headers={"Retry-After": "-5"}), True, None, "too many requests"),
        (Fault.status(429, headers={"Retry-After": "soon"}), True, None, "too many requests"),
        (Fault.status(500), True, None, "internal problem"),
        (Fault.status(502, body=b"<html>Bad gateway</html>", content_type="text/html"), True, None, "internal problem"),
        (Fault.status(503, headers={"Retry-After": "7"}), True, 7.0, "overloaded"),
        (Fault.status(529), True, None, "overloaded"),
        (Fault.status(408), True, None, "gave up waiting"),
        (Fault.status(409), True, None, "conflict"),
        (Fault.status(401), False, None, "did not accept the API key"),
        (Fault.status(403), False, None, "refused access"),
        (Fault.status(404), False, None, "does not know this model"),
        (Fault.status(413, body=b"", content_type="text/plain"), False, None, "too large"),
        (Fault.status(422), False, None, "rejected the request (HTTP 422)"),
        (Fault.status(500, headers={"x-should-retry": "false"}), False, None, "internal problem"),
        (Fault.status(400, headers={"x-should-retry": "true"}), True, None, "rejected the request"),
        (
            Fault.status(
                429, json={"error": {"message": "You exceeded your current quota.", "code": "insufficient_quota"}}
            ),
            False,
            None,
            "run out of credit",
        ),
    ],
)
def test_http_status_mapping(
    server: FakeLLMServer,
    make_backend: Any,
    fault: Fault,
    retryable: bool,
    retry_after: float | None,
    words: str,
) -> None:
    server.script(fault)
    error = failure(make_backend())
    assert error.status == fault.status_code
    assert error.retryable is retryable
    assert error.retry_after == retry_after
    assert words in error.what
    assert error.what.startswith(("The AI service at 127.0.0.1", "The pages were too large for"))
    assert error.todo
    assert ("usually temporary" in error.todo) is retryable


def test_retry_after_as_http_date(server: FakeLLMServer, make_backend: Any) -> None:
    server.script(Fault.status(429, headers={"Retry-After": http_date(30)}))
    error = failure(make_backend())
    assert error.retryable and error.retry_after is not None and 27 <= error.retry_after <= 30
    assert parse_retry_after({"Retry-After": http_date(-60)}) is None
    assert parse_retry_after({"Retry-After": "nan"}) is None
    assert parse_retry_after({"retry-after-ms": "garbage", "Retry-After": "2"}) == 2.0
    assert parse_retry_after({}) is None


def test_400_quotes_the_providers_message(server: FakeLLMServer, make_backend: Any) -> None:
    message = "Invalid image: the image data you provided does not represent a valid image. " + "x" * 1000
    server.script(Fault.status(400, json={"error": {"message": message, "type": "invalid_request_error"}}))
    error = failure(make_backend())
    assert not error.retryable and error.status == 400
    assert "Invalid image: the image data you provided" in error.what
    assert "x" * 400 not in error.what and "…" in error.what
    assert error.detail is not None and error.detail.startswith("HTTP 400: Invalid image")
    assert "llm.model" in error.todo


def test_specific_advice_for_401_404_413(server: FakeLLMServer, make_backend: Any) -> None:
    backend = make_backend()
    server.script(Fault.status(401), Fault.status(404), Fault.status(413))
    assert "llm.api_key" in failure(backend).todo
    not_found = failure(backend).todo
    assert "llm.model" in not_found and "llm.base_url" in not_found
    assert "fewer pages" in failure(backend).todo


@pytest.mark.parametrize(
    "body",
    [
        {"error": "model 'llava' not found, try pulling it first"},  # Ollama
        {"error": {"message": "model 'llava' not found, try pulling it first"}},  # OpenAI, vLLM, Gemini
        {"object": "error", "message": "model 'llava' not found, try pulling it first"},  # older vLLM
        {"detail": "model 'llava' not found, try pulling it first"},  # FastAPI servers
    ],
)
def test_provider_message_dialects(body: dict[str, Any]) -> None:
    import json

    assert provider_message(json.dumps(body).encode()) == "model 'llava' not found, try pulling it first"


def test_timeout_is_retryable_and_quick(server: FakeLLMServer, make_backend: Any) -> None:
    server.script(Fault.timeout(5))
    started = time.monotonic()
    error = failure(make_backend(timeout_seconds=0.5))
    assert time.monotonic() - started < 3
    assert error.retryable and error.status is None
    assert error.what == "The AI service at 127.0.0.1 did not answer within 0.5 seconds."
    assert "llm.timeout_seconds" in error.todo


def test_connection_refused_is_retryable(make_backend: Any) -> None:
    error = failure(make_backend(base_url=f"http://127.0.0.1:{closed_port()}/v1"))
    assert error.retryable and error.status is None
    assert error.what == "The AI service at 127.0.0.1 could not be reached."
    assert "network" in error.todo


def test_disconnect_is_retryable(server: FakeLLMServer, make_backend: Any) -> None:
    server.script(Fault.disconnect())
    error = failure(make_backend())
    assert error.retryable and "broke off the connection" in error.what


@pytest.mark.parametrize(
    "fault",
    [
        Fault.garbage(),
        Fault.reply(["a", "list"]),
        Fault.reply({"id": "x", "object": "chat.completion"}),
        Fault.reply({"choices": [{"message": {"content": 42}}]}),
        Fault.reply({"choices": [{"text": "legacy completions shape"}]}),
    ],
)
def test_unintelligible_answers_are_retryable(server: FakeLLMServer, make_backend: Any, fault: Fault) -> None:
    server.script(fault)
    error = failure(make_backend())
    assert error.retryable and error.status == 200
    assert "could not be understood" in error.what
    assert error.detail


def test_error_inside_a_200_response_is_retryable(server: FakeLLMServer, make_backend: Any) -> None:
    server.script(Fault.reply({"error": {"message": "Upstream provider overloaded", "code": 502}}))
    error = failure(make_backend())
    assert error.retryable and "Upstream provider overloaded" in error.what


def test_base_url_without_scheme_is_a_permanent_error(make_backend: Any) -> None:
    error = failure(make_backend(base_url="localhost:11434/v1"))
    assert not error.retryable and "llm.base_url" in error.todo


def test_the_api_key_never_appears_in_errors(server: FakeLLMServer, make_backend: Any) -> None:
    echoing = {"error": {"message": f"Incorrect API key provided: {KEY}. Find your key at https://example"}}
    server.script(
        Fault.status(401, json=echoing),
        Fault.status(400, json=echoing),
        Fault.status(500, body=f"upstream said {KEY}".encode(), content_type="text/plain"),
        Fault.garbage(f"not json, but here is the key {KEY}".encode()),
        Fault.reply({"error": {"message": f"bad key {KEY}"}}),
        Fault.reply({"unexpected": KEY}),
    )
    backend = make_backend()
    errors = [failure(backend) for _ in range(6)]
    errors.append(failure(make_backend(base_url=f"http://127.0.0.1:{closed_port()}/v1")))
    errors.append(failure(make_backend(api_key=f"{KEY}\nX-Injected: 1")))
    for error in errors:
        for text in (str(error), error.what, error.todo, error.detail or "", repr(error.args)):
            assert KEY not in text, text
    assert "********" in (errors[0].detail or "")
    assert "llm.api_key" in errors[-1].todo and not errors[-1].retryable
    assert all(KEY in r.headers.get("authorization", "") for r in server.requests)  # it was sent, though


# --- the fake server's own scripting ----------------------------------------------------------------------------


def test_outage_and_script_order(server: FakeLLMServer, make_backend: Any) -> None:
    backend = make_backend()
    server.outage(Fault.status(503)).script(Fault.status(500))
    assert failure(backend).status == 503
    assert failure(backend).status == 503
    assert server.pending_faults == 1  # scripted faults wait for the outage to end
    server.clear_outage()
    assert failure(backend).status == 500
    assert backend.complete(request()).text.startswith("# Answer")
    assert [r.status for r in server.requests] == [503, 503, 500, 200]
    assert server.wait_for_requests(4, timeout=0.1)


def test_unknown_route_is_404(server: FakeLLMServer, make_backend: Any) -> None:
    error = failure(make_backend(base_url=server.url + "/nope"))
    assert error.status == 404 and not error.retryable
    assert server.last_request.route is None


def test_decode_data_url_rejects_non_data_urls() -> None:
    with pytest.raises(ValueError):
        decode_data_url("https://example.com/a.png")
    assert decode_data_url("data:image/webp;base64,AAEC") == ("image/webp", b"\x00\x01\x02")


# --- echo -------------------------------------------------------------------------------------------------------


def test_echo_describes_what_it_received() -> None:
    backend = create_backend(BackendSettings(backend="echo"))
    assert isinstance(backend, EchoBackend) and backend.name == "echo"
    long_text = "What is 2 + 2?\n" + "word " * 400
    response = backend.complete(request(text=long_text))
    text = response.text
    assert text.startswith("# Echo")
    assert "2 pages" in text
    assert "1. 30 × 40 pixels, image/png" in text and "2. 60 × 80 pixels, image/png" in text
    assert f"{len(PAGES[0].data)} bytes" in text
    assert "> What is 2 + 2?" in text and " …" in text and "word " * 200 not in text
    assert "2 earlier turns" in text
    assert "> A monad is a monoid in the category of endofunctors." in text
    assert "> You are helpful." in text and "Second line" not in text
    assert "question.pdf" in text
    assert response.model == "echo"
    assert response.usage.input_tokens > 2 * 765 and response.usage.output_tokens > 0
    assert backend.complete(request(text=long_text)) == response  # deterministic
    backend.close()


def test_echo_first_question_without_text_or_pages() -> None:
    text = EchoBackend(BackendSettings(backend="echo")).complete(request(history=(), pages=(), text="")).text
    assert "No page images." in text
    assert "No text layer" in text
    assert "first question" in text


# --- registry ---------------------------------------------------------------------------------------------------


def test_registry_knows_the_built_in_backends() -> None:
    assert available_backends(include_plugins=False) == ["anthropic", "command", "echo", "gemini", "ollama", "openai"]
    assert isinstance(create_backend(BackendSettings(backend=" Echo ")), EchoBackend)
    backend = create_backend(BackendSettings(backend="openai", model="m"))
    assert isinstance(backend, Backend) and backend.name == "openai"
    backend.close()


def test_unknown_backend_is_a_permanent_error_listing_known_names() -> None:
    with pytest.raises(BackendError) as caught:
        create_backend(BackendSettings(backend="gpt5-turbo-max"))
    error = caught.value
    assert not error.retryable
    assert "gpt5-turbo-max" in error.what
    assert "echo" in error.todo and "openai" in error.todo and "llm.backend" in error.todo
