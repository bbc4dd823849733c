"""What only one provider does: Anthropic's headers and limits, Gemini's URL and filters, Ollama's options.

The shared behaviour is in test_backends_contract.py; these tests cover each wire format's peculiarities against
the same real local fake server.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from eink_llm.backends import Backend, BackendSettings, LLMRequest, Message, ModelOptions, PageImage, create_backend
from eink_llm.backends._prompt import EARLIER_CONVERSATION, alternating_history
from eink_llm.errors import BackendError
from tests.fakes import FakeLLMServer, Fault, all_routes

KEY = "key-0123456789-abcdefghijklmnop"


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(routes=all_routes()) as server:
        yield server


@pytest.fixture
def server(shared_server: FakeLLMServer) -> Iterator[FakeLLMServer]:
    shared_server.reset()
    yield shared_server
    assert not shared_server.errors, shared_server.errors


@pytest.fixture
def make(server: FakeLLMServer) -> Iterator[Any]:
    opened: list[Backend] = []

    def build(name: str, **overrides: Any) -> Backend:
        fields: dict[str, Any] = {"backend": name, "base_url": server.url, "api_key": KEY, "model": "test-model"}
        fields["timeout_seconds"] = 5.0
        fields.update(overrides)
        backend = create_backend(BackendSettings(**fields))
        opened.append(backend)
        return backend

    yield build
    for backend in opened:
        backend.close()


def page() -> PageImage:
    buffer = io.BytesIO()
    Image.new("L", (20, 30), 255).save(buffer, "PNG")
    return PageImage(buffer.getvalue(), "image/png", 20, 30)


def ask(backend: Backend, **overrides: Any) -> str:
    fields: dict[str, Any] = {"system_prompt": "Be brief.", "pages": (page(),), "text": ""}
    fields.update(overrides)
    return backend.complete(LLMRequest(**fields)).text


def failure(backend: Backend) -> BackendError:
    with pytest.raises(BackendError) as caught:
        ask(backend)
    return caught.value


# --- Anthropic --------------------------------------------------------------------------------------------------


def test_anthropic_wire_format(server: FakeLLMServer, make: Any) -> None:
    ask(make("anthropic"), options=ModelOptions(max_output_tokens=321, temperature=1.7))
    sent = server.last_request
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    body = sent.body
    assert body["system"] == "Be brief." and body["max_tokens"] == 321
    assert body["temperature"] == 1.0  # Anthropic's range ends at 1
    [question] = body["messages"]
    assert [block["type"] for block in question["content"]] == ["image", "text"]
    assert question["content"][0]["source"]["type"] == "base64"


def test_anthropic_base_url_with_v1_and_version_option(server: FakeLLMServer, make: Any) -> None:
    ask(make("anthropic", base_url=server.url + "/v1/", extra={"anthropic_version": "2099-01-01"}))
    assert server.last_request.path == "/v1/messages"
    assert server.last_request.headers["anthropic-version"] == "2099-01-01"


def test_anthropic_529_overloaded_is_retryable(server: FakeLLMServer, make: Any) -> None:
    server.script(Fault.status(529, headers={"retry-after": "3"}))
    error = failure(make("anthropic"))
    assert error.retryable and error.retry_after == 3.0 and "overloaded" in error.what


def test_anthropic_refusal_is_permanent_and_cache_tokens_count_as_input(server: FakeLLMServer, make: Any) -> None:
    server.script(
        Fault.reply({"type": "message", "content": [], "stop_reason": "refusal", "usage": {}}),
        Fault.reply(
            {
                "type": "message",
                "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Four."}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 3},
            }
        ),
        Fault.reply({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
    backend = make("anthropic")
    error = failure(backend)
    assert not error.retryable and "declined" in error.what
    response = backend.complete(LLMRequest(system_prompt="", pages=(page(),)))
    assert response.text == "Four." and response.usage.input_tokens == 100 and response.model == "test-model"
    assert failure(backend).retryable


def test_anthropic_capabilities_measure_base64() -> None:
    caps = create_backend(BackendSettings("anthropic", model="m")).capabilities
    assert caps.bytes_measured == "base64" and caps.max_image_bytes == 5 * 1024 * 1024
    assert caps.fits(3 * 1024 * 1024) and not caps.fits(4 * 1024 * 1024)  # 4 MB raw is 5.3 MB of base64
    assert caps.long_edge_limit(1) == 8000 and caps.long_edge_limit(21) == 2000
    assert caps.recommended_long_edge_px == 1568


# --- Gemini -----------------------------------------------------------------------------------------------------


def test_gemini_wire_format(server: FakeLLMServer, make: Any) -> None:
    history = (Message("assistant", "Earlier answer."), Message("user", "a"), Message("user", "b"))
    ask(make("gemini", model="models/gemini-2.5-flash"), history=history, options=ModelOptions(max_output_tokens=99))
    sent = server.last_request
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY and not sent.query  # the key never goes into the URL
    body = sent.body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["generationConfig"] == {"maxOutputTokens": 99}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user", "model", "user"]
    assert body["contents"][0]["parts"][0]["text"] == EARLIER_CONVERSATION
    assert body["contents"][2]["parts"][0]["text"] == "a\n\nb"
    assert body["contents"][-1]["parts"][1]["inline_data"]["mime_type"] == "image/png"


def test_gemini_base_url_with_version(server: FakeLLMServer, make: Any) -> None:
    ask(make("gemini", base_url=server.url + "/v1beta"))
    assert server.last_request.path == "/v1beta/models/test-model:generateContent"


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        ({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}}, "refused"),
        ({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}, "prohibited content"),
        ({"candidates": [{"finishReason": "SAFETY", "content": {"parts": []}}]}, "withheld"),
        ({"candidates": [{"finishReason": "RECITATION"}]}, "recitation"),
    ],
)
def test_gemini_blocked_is_permanent(server: FakeLLMServer, make: Any, reply: dict[str, Any], words: str) -> None:
    server.script(Fault.reply(reply))
    error = failure(make("gemini"))
    assert not error.retryable and words in error.what


def test_gemini_invalid_key_400_reads_like_a_401(server: FakeLLMServer, make: Any) -> None:
    server.script(
        Fault.status(
            400,
            json={"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "X"}},
        )
    )
    error = failure(make("gemini"))
    assert not error.retryable and "did not accept the API key" in error.what and "llm.api_key" in error.todo


def test_gemini_thoughts_are_hidden_but_billed(server: FakeLLMServer, make: Any) -> None:
    parts = [{"text": "Let me think", "thought": True}, {"text": "Four."}]
    server.script(
        Fault.reply(
            {
                "candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2, "thoughtsTokenCount": 40},
            }
        )
    )
    response = make("gemini").complete(LLMRequest(system_prompt=""))
    assert response.text == "Four." and response.usage.output_tokens == 42 and response.model == "test-model"


# --- Ollama -----------------------------------------------------------------------------------------------------


def test_ollama_wire_format_and_options(server: FakeLLMServer, make: Any) -> None:
    backend = make("ollama", api_key=None, base_url=server.url + "/v1", extra={"num_ctx": "8192", "keep_alive": "10m"})
    ask(backend, options=ModelOptions(max_output_tokens=77))
    sent = server.last_request
    assert sent.path == "/api/chat" and "authorization" not in sent.headers
    body = sent.body
    assert body["stream"] is False and body["keep_alive"] == "10m"
    assert body["options"] == {"num_predict": 77, "num_ctx": 8192}
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert sent.image_payloads()[0][1] == page().data


def test_ollama_model_not_pulled_quotes_ollama(server: FakeLLMServer, make: Any) -> None:
    server.script(Fault.status(404, json={"error": "model 'llava' not found, try pulling it first"}))
    error = failure(make("ollama"))
    assert not error.retryable and "try pulling it first" in error.what and "downloaded" in error.todo


def test_ollama_rejects_a_non_numeric_num_ctx() -> None:
    with pytest.raises(BackendError) as caught:
        create_backend(BackendSettings("ollama", model="m", extra={"num_ctx": "lots"}))
    assert "llm.options.num_ctx" in caught.value.what


# --- shared helpers ---------------------------------------------------------------------------------------------


def test_alternating_history_keeps_every_word() -> None:
    turns = (
        Message("assistant", "A0"),
        Message("assistant", "A1"),
        Message("user", "U1"),
        Message("user", " "),
        Message("user", "U2"),
    )
    result = [(m.role, m.text) for m in alternating_history(turns)]
    assert result == [
        ("user", EARLIER_CONVERSATION),
        ("assistant", "A0\n\nA1"),
        ("user", "U1\n\nU2"),
        ("assistant", "…"),
    ]
    assert alternating_history(()) == []
