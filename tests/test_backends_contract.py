"""ONE contract every backend passes: the same tests, parametrised over the backends, each against a real fake.

The HTTP backends (openai, anthropic, gemini, ollama) talk over a socket to ``tests.fakes.FakeLLMServer`` speaking
their wire format; the ``command`` backend runs a real program (``tests.fakes.FakeCommand``). A small adapter per
backend knows only how to read its wire format and how to make its transport misbehave; the assertions are shared.
Nothing is patched.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from eink_llm.backends import (
    Backend,
    BackendSettings,
    Capabilities,
    LLMRequest,
    Message,
    ModelOptions,
    PageImage,
    create_backend,
)
from eink_llm.backends._prompt import CUT_OFF_NOTE, INSTRUCTION
from eink_llm.errors import BackendError
from tests.fakes import FakeCommand, FakeLLMServer, Fault, all_routes, decode_data_url

KEY = "test-key-Sup3rS3cret-0123456789abcdef"
BACKENDS = ["openai", "anthropic", "gemini", "ollama", "command"]
HTTP_BACKENDS = ["openai", "anthropic", "gemini", "ollama"]


def png(width: int, height: int, shade: int) -> PageImage:
    image = Image.new("L", (width, height), shade)
    image.putpixel((1, 1), 255 - shade)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return PageImage(buffer.getvalue(), "image/png", width, height)


PAGES = (png(30, 40, 10), png(60, 80, 200))
HISTORY = (Message("user", "What is a monad?"), Message("assistant", "A monoid in the category of endofunctors."))
SYSTEM = "You are helpful.\nSecond line."


def make_request(**overrides: Any) -> LLMRequest:
    fields: dict[str, Any] = {
        "system_prompt": SYSTEM,
        "history": HISTORY,
        "pages": PAGES,
        "text": "What is 2 + 2?",
        "options": ModelOptions(max_output_tokens=500, temperature=0.3),
        "source_name": "question.pdf",
    }
    fields.update(overrides)
    return LLMRequest(**fields)


# --- one normalised view of a request, whatever the wire format -------------------------------------------------


@dataclass
class Seen:
    model: str | None
    system: str | None
    history: list[tuple[str, str]]
    text: str
    images: list[tuple[str, bytes]]
    max_tokens: int
    temperature: float | None
    credential: str | None  # the API key as it travelled, if it did


def _texts(parts: list[dict[str, Any]]) -> str:
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and "text" in p)


def seen_openai(body: dict[str, Any], headers: dict[str, str], path: str) -> Seen:
    messages = body["messages"]
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    turns = messages[1:] if system is not None else messages
    last = turns[-1]["content"]
    images = [decode_data_url(p["image_url"]["url"]) for p in last if p["type"] == "image_url"]
    auth = headers.get("authorization", "").removeprefix("Bearer ") or None
    return Seen(
        body["model"],
        system,
        [(m["role"], m["content"]) for m in turns[:-1]],
        _texts(last),
        images,
        body["max_tokens"],
        body.get("temperature"),
        auth,
    )


def seen_anthropic(body: dict[str, Any], headers: dict[str, str], path: str) -> Seen:
    assert headers["anthropic-version"] == "2023-06-01"
    messages = body["messages"]
    last = messages[-1]["content"]
    images = [(b["source"]["media_type"], base64.b64decode(b["source"]["data"])) for b in last if b["type"] == "image"]
    return Seen(
        body["model"],
        body.get("system"),
        [(m["role"], m["content"]) for m in messages[:-1]],
        _texts(last),
        images,
        body["max_tokens"],
        body.get("temperature"),
        headers.get("x-api-key"),
    )


def seen_gemini(body: dict[str, Any], headers: dict[str, str], path: str) -> Seen:
    contents = body["contents"]
    last = contents[-1]["parts"]
    images = [
        (p["inline_data"]["mime_type"], base64.b64decode(p["inline_data"]["data"])) for p in last if "inline_data" in p
    ]
    system = body.get("systemInstruction")
    roles = {"user": "user", "model": "assistant"}
    return Seen(
        path.split("/models/")[1].split(":")[0],
        _texts(system["parts"]) if system else None,
        [(roles[c["role"]], _texts(c["parts"])) for c in contents[:-1]],
        _texts(last),
        images,
        body["generationConfig"]["maxOutputTokens"],
        body["generationConfig"].get("temperature"),
        headers.get("x-goog-api-key"),
    )


def seen_ollama(body: dict[str, Any], headers: dict[str, str], path: str) -> Seen:
    assert body["stream"] is False
    messages = body["messages"]
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    turns = messages[1:] if system is not None else messages
    images = [("image/png", base64.b64decode(data, validate=True)) for data in turns[-1].get("images", [])]
    return Seen(
        body["model"],
        system,
        [(m["role"], m["content"]) for m in turns[:-1]],
        turns[-1]["content"],
        images,
        body["options"]["num_predict"],
        body["options"].get("temperature"),
        headers.get("authorization", "").removeprefix("Bearer ") or None,
    )


def seen_command(data: dict[str, Any]) -> Seen:
    assert data["version"] == 1
    text = data["instruction"] + ("\n\n" + data["text"] if data["text"].strip() else "")
    return Seen(
        data["options"]["model"],
        data["system_prompt"] or None,
        [(m["role"], m["text"]) for m in data["history"]],
        text,
        [(p["media_type"], base64.b64decode(p["data"])) for p in data["pages"]],
        data["options"]["max_output_tokens"],
        data["options"]["temperature"],
        None,
    )


# --- answers in each dialect ------------------------------------------------------------------------------------


def reply_json(name: str, text: str | None, usage: tuple[int, int], cut_off: bool) -> dict[str, Any]:
    prompt, output = usage
    if name == "openai":
        finish = "length" if cut_off else "stop"
        return {
            "model": "served-model",
            "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": output},
        }
    if name == "anthropic":
        return {
            "type": "message",
            "model": "served-model",
            "content": [{"type": "text", "text": text}] if text is not None else [],
            "stop_reason": "max_tokens" if cut_off else "end_turn",
            "usage": {"input_tokens": prompt, "output_tokens": output},
        }
    if name == "gemini":
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}] if text is not None else []},
                    "finishReason": "MAX_TOKENS" if cut_off else "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": output},
            "modelVersion": "served-model",
        }
    if name == "ollama":
        return {
            "model": "served-model",
            "message": {"role": "assistant", "content": text or ""},
            "done": True,
            "done_reason": "length" if cut_off else "stop",
            "prompt_eval_count": prompt,
            "eval_count": output,
        }
    raise AssertionError(name)


# --- the adapter: one per backend -------------------------------------------------------------------------------


@dataclass
class Harness:
    name: str
    make: Callable[..., Backend]
    push_reply: Callable[[str | None, tuple[int, int], bool], None]
    push_failure: Callable[[str], None]
    seen: Callable[[], list[Seen]]
    opened: list[Backend] = field(default_factory=list)

    def backend(self, **overrides: Any) -> Backend:
        backend = self.make(**overrides)
        self.opened.append(backend)
        return backend

    def fail(self, kind: str) -> BackendError:
        self.push_failure(kind)
        with pytest.raises(BackendError) as caught:
            self.backend(timeout_seconds=0.5 if kind == "timeout" else 5.0).complete(make_request())
        return caught.value


HTTP_FAULTS: dict[str, Fault] = {
    "rate_limit": Fault.status(429, headers={"Retry-After": "2"}),
    "server_error": Fault.status(500),
    "overloaded": Fault.status(503),
    "auth": Fault.status(401),
    "bad_request": Fault.status(400),
    "timeout": Fault.timeout(5),
    "garbage": Fault.garbage(),
}
#: The same failures as an answering program shows them: exit 75 means "later", other statuses are final.
COMMAND_FAULTS: dict[str, dict[str, Any]] = {
    "rate_limit": {"exit": 75, "stdout": json.dumps({"retry_after": 2}), "stderr": "rate limited"},
    "server_error": {"exit": 75, "stderr": "upstream 500"},
    "overloaded": {"exit": 75, "stderr": "busy"},
    "auth": {"exit": 1, "stderr": "no credentials"},
    "bad_request": {"exit": 2, "stderr": "usage: ask [--fast]"},
    "timeout": {"sleep": 5},
    "garbage": {"stdout": '{"text": "half an ans'},
}
#: kind → (retryable, retry_after)
EXPECTED: dict[str, tuple[bool, float | None]] = {
    "rate_limit": (True, 2.0),
    "server_error": (True, None),
    "overloaded": (True, None),
    "auth": (False, None),
    "bad_request": (False, None),
    "timeout": (True, None),
    "garbage": (True, None),
}
SEEN_HTTP = {"openai": seen_openai, "anthropic": seen_anthropic, "gemini": seen_gemini, "ollama": seen_ollama}


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(routes=all_routes()) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, shared_server: FakeLLMServer, tmp_path: Path) -> Iterator[Harness]:
    name: str = request.param
    if name == "command":
        command = FakeCommand(tmp_path / "command")

        def make_command(**overrides: Any) -> Backend:
            fields: dict[str, Any] = {"backend": "command", "model": "test-model", "timeout_seconds": 5.0}
            fields["extra"] = {"command": command.argv}
            fields.update(overrides)
            return create_backend(BackendSettings(**fields))

        def reply_command(text: str | None, usage: tuple[int, int], cut_off: bool) -> None:
            out = {"text": text or "", "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}
            out["model"] = "served-model"
            assert not cut_off, "an answering program reports a cut-off answer in its own text"
            command.script({"stdout": json.dumps(out)})

        harness = Harness(
            name,
            make_command,
            reply_command,
            lambda kind: command.script(COMMAND_FAULTS[kind]) and None,
            lambda: [seen_command(r) for r in command.requests],
        )
    else:
        server = shared_server
        server.reset()
        base = {"openai": server.base_url}.get(name, server.url)

        def make_http(**overrides: Any) -> Backend:
            fields: dict[str, Any] = {
                "backend": name,
                "base_url": base,
                "api_key": KEY,
                "model": "test-model",
                "timeout_seconds": 5.0,
            }
            fields.update(overrides)
            return create_backend(BackendSettings(**fields))

        harness = Harness(
            name,
            make_http,
            lambda text, usage, cut_off: server.script(Fault.reply(reply_json(name, text, usage, cut_off))) and None,
            lambda kind: server.script(HTTP_FAULTS[kind]) and None,
            lambda: [SEEN_HTTP[name](r.body, r.headers, r.path) for r in server.requests if r.route is not None],
        )
    yield harness
    for backend in harness.opened:
        backend.close()
    if name != "command":
        assert not shared_server.errors, shared_server.errors
        shared_server.reset()


# --- the contract -----------------------------------------------------------------------------------------------


def test_declares_capabilities(harness: Harness) -> None:
    backend = harness.backend()
    assert isinstance(backend, Backend) and backend.name == harness.name
    caps = backend.capabilities
    assert isinstance(caps, Capabilities)
    assert "image/png" in caps.media_types  # every backend takes the economy's PNG
    if caps.max_long_edge_px and caps.recommended_long_edge_px:
        assert caps.recommended_long_edge_px <= caps.max_long_edge_px


def test_request_carries_model_system_history_text_pages_and_options(harness: Harness) -> None:
    response = harness.backend().complete(make_request())
    [seen] = harness.seen()
    assert seen.model == "test-model"
    assert seen.system == SYSTEM
    assert seen.history == [(m.role, m.text) for m in HISTORY]
    assert seen.text.startswith(INSTRUCTION) and "What is 2 + 2?" in seen.text
    assert [data for _, data in seen.images] == [page.data for page in PAGES]  # bytes intact, in page order
    assert all(media == "image/png" for media, _ in seen.images)
    assert seen.max_tokens == 500
    assert seen.temperature == 0.3
    assert seen.credential == (None if harness.name == "command" else KEY)
    assert response.text.startswith("# Answer")
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


def test_minimal_request(harness: Harness) -> None:
    harness.backend(api_key=None).complete(
        make_request(system_prompt="", history=(), pages=(), text="", options=ModelOptions(max_output_tokens=64))
    )
    [seen] = harness.seen()
    assert seen.system is None and seen.history == [] and seen.images == []
    assert seen.text == INSTRUCTION and seen.max_tokens == 64 and seen.temperature is None
    assert seen.credential is None


def test_request_model_overrides_the_configured_one(harness: Harness) -> None:
    harness.backend().complete(make_request(options=ModelOptions(model="other-model")))
    assert harness.seen()[0].model == "other-model"


def test_usage_model_and_reasoning_are_parsed(harness: Harness) -> None:
    harness.push_reply("<think>The user wants\n2+2.</think>\n\n**4**", (1234, 56), False)
    response = harness.backend().complete(make_request())
    assert response.text == "**4**"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1234, 56)
    assert response.model == "served-model"


@pytest.mark.parametrize("harness", HTTP_BACKENDS, indirect=True)  # a program says so in its own text
def test_cut_off_answer_gets_a_note(harness: Harness) -> None:
    harness.push_reply("Partial answer", (10, 500), True)
    assert harness.backend().complete(make_request()).text == f"Partial answer\n\n{CUT_OFF_NOTE}"


def test_empty_answer_is_an_error(harness: Harness) -> None:
    harness.push_reply("<think>only thoughts</think>", (10, 5), False)
    with pytest.raises(BackendError) as caught:
        harness.backend().complete(make_request())
    # A server's empty answer is usually a hiccup; a program's is a bug that a retry will not fix.
    assert caught.value.retryable is (harness.name != "command")


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_failures_map_to_retryable_or_permanent(harness: Harness, kind: str) -> None:
    started = time.monotonic()
    error = harness.fail(kind)
    retryable, retry_after = EXPECTED[kind]
    assert error.retryable is retryable, error
    assert error.retry_after == retry_after
    assert error.what and error.todo
    assert ("usually temporary" in error.todo) is retryable
    assert time.monotonic() - started < 4
    if kind == "garbage":
        assert "could not be understood" in error.what
    if harness.name != "command" and kind not in ("timeout", "garbage"):
        assert error.status == HTTP_FAULTS[kind].status_code
        assert error.what.startswith("The AI service at 127.0.0.1")
    if harness.name != "command" and kind == "auth":
        assert "llm.api_key" in error.todo


@pytest.mark.parametrize("harness", HTTP_BACKENDS, indirect=True)
def test_missing_model_fails_before_sending(harness: Harness) -> None:
    with pytest.raises(BackendError) as caught:
        harness.backend(model=None).complete(make_request())
    assert not caught.value.retryable and "llm.model" in caught.value.todo
    assert harness.seen() == []


@pytest.mark.parametrize("harness", ["command"], indirect=True)
def test_an_answering_program_may_choose_its_own_model(harness: Harness) -> None:
    harness.push_reply("Answer", (10, 5), False)
    assert harness.backend(model=None).complete(make_request()).text == "Answer"
    assert len(harness.seen()) == 1


@pytest.mark.parametrize("backend_name", HTTP_BACKENDS)
def test_api_key_never_appears_in_errors(shared_server: FakeLLMServer, backend_name: str) -> None:
    shared_server.reset()
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}."}}
    shared_server.script(
        Fault.status(401, json=echo),
        Fault.status(400, json=echo),
        Fault.status(500, body=f"upstream said {KEY}".encode(), content_type="text/plain"),
        Fault.garbage(f"not json {KEY}".encode()),
        Fault.reply({"error": {"message": f"bad key {KEY}"}}),
    )
    base = shared_server.base_url if backend_name == "openai" else shared_server.url
    backend = create_backend(BackendSettings(backend_name, base_url=base, api_key=KEY, model="m", timeout_seconds=5))
    try:
        for _ in range(5):
            with pytest.raises(BackendError) as caught:
                backend.complete(make_request())
            error = caught.value
            for text in (str(error), error.what, error.todo, error.detail or "", repr(error.args)):
                assert KEY not in text, text
    finally:
        backend.close()
    assert KEY not in "".join(r.path + str(r.query) for r in shared_server.requests)  # never in the URL
    assert not shared_server.errors
