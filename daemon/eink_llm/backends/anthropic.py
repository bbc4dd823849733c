"""Anthropic's Messages API (Claude), spoken directly over HTTP: no SDK needed.

One ``POST {base_url}/v1/messages`` per question, no streaming. Settings (``llm:`` section): ``base_url`` (default
``https://api.anthropic.com``; a proxy's root, with or without ``/v1``), ``api_key`` (sent as ``x-api-key``),
``model`` (required, e.g. ``claude-sonnet-4-5``), ``timeout_seconds``. ``llm.options``:

``anthropic_version``
    The ``anthropic-version`` header, default ``2023-06-01`` (the only stable version).

``llm.temperature`` above 1 is sent as 1, the highest Anthropic accepts. HTTP 529 (overloaded) is retryable,
like 429 and the other 5xx.

Images: 5 MB each, measured on the base64 text; at most 8000 px a side (2000 px when a request has more than 20
images); anything over 1568 px on the long edge or about 1.2 megapixels is scaled down by Anthropic before the
model sees it, and costs about ``width × height / 750`` tokens (Anthropic's "Vision" guide).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from eink_llm.backends._http import HttpService, as_int, truncate
from eink_llm.backends._prompt import alternating_history, dumps, error_in_body, finish_answer, require_model, user_text
from eink_llm.backends.base import BackendSettings, Capabilities, LLMRequest, LLMResponse, PageImage, Usage

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
MAX_TEMPERATURE = 1.0

CAPABILITIES = Capabilities(
    media_types=("image/png", "image/jpeg", "image/webp", "image/gif"),
    max_image_bytes=5 * 1024 * 1024,
    bytes_measured="base64",
    max_long_edge_px=8000,
    many_images_threshold=20,
    many_images_max_long_edge_px=2000,
    recommended_long_edge_px=1568,
    recommended_max_pixels=1_210_000,
    max_images=100,
    max_request_bytes=32 * 1024 * 1024,
    accepts_pdf=True,
    token_formula="anthropic",
)

#: stop_reason values meaning "the model declined", with the words the user reads.
_WITHHELD = {"refusal": "the model declined to answer"}


class AnthropicBackend:
    """Messages API over one pooled HTTP client; safe to call from several worker threads at once."""

    name = "anthropic"
    capabilities = CAPABILITIES

    def __init__(self, settings: BackendSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        api_key = (settings.api_key or "").strip() or None
        version = str(settings.extra.get("anthropic_version") or DEFAULT_VERSION).strip()
        headers = {"anthropic-version": version}
        if api_key:
            headers["x-api-key"] = api_key
        base_url = (settings.base_url or DEFAULT_BASE_URL).strip().rstrip("/")
        self._path = "messages" if base_url.endswith("/v1") else "v1/messages"
        self._http = HttpService(
            base_url,
            timeout_seconds=settings.timeout_seconds,
            headers=headers,
            secrets=[api_key, settings.api_key],
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def complete(self, request: LLMRequest) -> LLMResponse:
        body = self.build_body(request)
        data = self._http.post_json(self._path, body)
        return self.parse_response(data, requested_model=str(body["model"]))

    # --- wire format ------------------------------------------------------------------------------------

    def build_body(self, request: LLMRequest) -> dict[str, Any]:
        """The JSON body for one question; public so tests and diagnostics can show it."""
        model = require_model(request, self.settings.model, "Anthropic", "claude-sonnet-4-5")
        messages: list[dict[str, Any]] = [
            {"role": turn.role, "content": turn.text} for turn in alternating_history(request.history)
        ]
        content: list[dict[str, Any]] = [_image_block(page) for page in request.pages]
        content.append({"type": "text", "text": user_text(request)})  # Anthropic advises images before the text
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": request.options.max_output_tokens,
            "messages": messages,
        }
        if request.system_prompt.strip():
            body["system"] = request.system_prompt
        if request.options.temperature is not None:
            body["temperature"] = min(request.options.temperature, MAX_TEMPERATURE)
        return body

    def parse_response(self, data: dict[str, Any], *, requested_model: str) -> LLMResponse:
        """Text, usage and model out of a Messages response; a retryable error if it has no answer."""
        http = self._http
        if data.get("type") == "error" or ("content" not in data and "error" in data):
            raise error_in_body(http, data) or http.not_understood(truncate(dumps(data), 200))
        content = data.get("content")
        if not isinstance(content, list):
            raise http.not_understood(f"no content in the response: {truncate(dumps(data), 200)}")
        texts: list[str] = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                value = block.get("text")
                if not isinstance(value, str):
                    raise http.not_understood(f"a text block without text: {truncate(dumps(block), 200)}")
                texts.append(value)
        stop = data.get("stop_reason")
        text = finish_answer(
            http,
            "".join(texts),
            cut_off=stop == "max_tokens",
            withheld=_WITHHELD.get(str(stop)),
            detail=f"stop_reason={stop}",
        )
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        # Prompt caching moves input tokens into two more counters; all three are input the account pays for.
        input_tokens = sum(
            as_int(usage.get(key)) for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        model = data.get("model")
        return LLMResponse(
            text=text,
            usage=Usage(input_tokens=input_tokens, output_tokens=as_int(usage.get("output_tokens"))),
            model=model if isinstance(model, str) and model else requested_model,
        )


def _image_block(page: PageImage) -> dict[str, Any]:
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": page.media_type, "data": base64.b64encode(page.data).decode()},
    }


def create(settings: BackendSettings) -> AnthropicBackend:
    """The factory the registry calls."""
    return AnthropicBackend(settings)
