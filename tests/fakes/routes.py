"""The fake server's other dialects: Anthropic Messages, Gemini generateContent and Ollama /api/chat.

Each is a :class:`~tests.fakes.llm_server.Route` built from the provider's documented shapes (their API references):
what a successful answer looks like, what an error body looks like, and where the images sit in a request.
Usage numbers are estimates in the provider's own way, so tests can check they are passed through.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from tests.fakes.llm_server import RecordedRequest, Route, estimate_tokens, openai_route

# Anthropic Messages ---------------------------------------------------------------------------------------------


def _anthropic_images(body: Any) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for message in body.get("messages", []) if isinstance(body, dict) else []:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "image":
                source = block["source"]
                assert source["type"] == "base64", source
                found.append((source["media_type"], base64.b64decode(source["data"], validate=True)))
    return found


def _anthropic_answer(request: RecordedRequest, text: str, number: int) -> Any:
    body = request.body if isinstance(request.body, dict) else {}
    images = _anthropic_images(body)
    prompt = estimate_tokens(str(body.get("system", ""))) + 1500 * len(images) + 10
    return {
        "id": f"msg_fake{number:06d}",
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model") or "claude-fake"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": estimate_tokens(text)},
    }


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _anthropic_error(status: int, message: str) -> Any:
    kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_route() -> Route:
    """Anthropic Messages at ``/v1/messages``."""
    return Route(
        name="anthropic",
        method="POST",
        path=re.compile(r"/v1/messages"),
        answer=_anthropic_answer,
        error=_anthropic_error,
        images=_anthropic_images,
    )


# Gemini generateContent -----------------------------------------------------------------------------------------


def _gemini_images(body: Any) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for content in body.get("contents", []) if isinstance(body, dict) else []:
        for part in content.get("parts", []) if isinstance(content, dict) else []:
            inline = part.get("inline_data") or part.get("inlineData") if isinstance(part, dict) else None
            if isinstance(inline, dict):
                media = inline.get("mime_type") or inline.get("mimeType")
                found.append((str(media), base64.b64decode(inline["data"], validate=True)))
    return found


def _gemini_answer(request: RecordedRequest, text: str, number: int) -> Any:
    body = request.body if isinstance(request.body, dict) else {}
    model = re.search(r"/models/([^/:]+):generateContent", request.path)
    prompt = 258 * len(_gemini_images(body)) + 10
    candidates = estimate_tokens(text)
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + candidates,
        },
        "modelVersion": model.group(1) if model else "gemini-fake",
        "responseId": f"fake{number:06d}",
    }


_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _gemini_error(status: int, message: str) -> Any:
    return {"error": {"code": status, "message": message, "status": _GEMINI_STATUS.get(status, "UNKNOWN")}}


def gemini_route() -> Route:
    """Gemini at ``/v1beta/models/{model}:generateContent`` (and ``/v1/...``)."""
    return Route(
        name="gemini",
        method="POST",
        path=re.compile(r"/v1(beta)?/models/[^/:]+:generateContent"),
        answer=_gemini_answer,
        error=_gemini_error,
        images=_gemini_images,
    )


# Ollama /api/chat -----------------------------------------------------------------------------------------------


def _ollama_images(body: Any) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for message in body.get("messages", []) if isinstance(body, dict) else []:
        for data in message.get("images") or [] if isinstance(message, dict) else []:
            assert not str(data).startswith("data:"), "Ollama wants raw base64, not data URLs"
            raw = base64.b64decode(data, validate=True)
            media = "image/png" if raw.startswith(b"\x89PNG") else "image/jpeg"
            found.append((media, raw))
    return found


def _ollama_answer(request: RecordedRequest, text: str, number: int) -> Any:
    body = request.body if isinstance(request.body, dict) else {}
    assert body.get("stream") is False, "the fake only speaks the non-streaming API"
    prompt = sum(estimate_tokens(str(m.get("content", ""))) for m in body.get("messages", []))
    prompt += 576 * len(_ollama_images(body))
    return {
        "model": str(body.get("model") or "ollama-fake"),
        "created_at": "2025-01-01T00:00:00.000000Z",
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": "stop",
        "total_duration": 1_000_000,
        "load_duration": 1000,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": 1000,
        "eval_count": estimate_tokens(text),
        "eval_duration": 1000,
    }


def _ollama_error(status: int, message: str) -> Any:
    return {"error": message}


def ollama_route() -> Route:
    """Ollama's native chat at ``/api/chat``."""
    return Route(
        name="ollama",
        method="POST",
        path=re.compile(r"/api/chat"),
        answer=_ollama_answer,
        error=_ollama_error,
        images=_ollama_images,
    )


def all_routes() -> list[Route]:
    """Every provider the fake server can speak, for a server shared by tests of several backends."""
    return [openai_route(), anthropic_route(), gemini_route(), ollama_route()]
