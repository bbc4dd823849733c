"""Google's Gemini API (``generateContent``), spoken directly over HTTP: no SDK needed.

One ``POST {base_url}/v1beta/models/{model}:generateContent`` per question, no streaming. Settings (``llm:``
section): ``base_url`` (default ``https://generativelanguage.googleapis.com``; a root ending in ``/v1beta`` or
``/v1`` is used as it is), ``api_key`` (sent as ``x-goog-api-key``, never in the URL), ``model`` (required, e.g.
``gemini-2.5-flash``; a leading ``models/`` is accepted), ``timeout_seconds``.

A prompt or answer blocked by Google's safety filters is a permanent failure (the same page would be blocked
again). Google reports a wrong API key as HTTP 400 ``API_KEY_INVALID``; that is mapped to the same words as a 401.
Output tokens include the model's thinking tokens, which Google bills as output.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx

from eink_llm.backends._http import HttpService, as_int, truncate
from eink_llm.backends._prompt import alternating_history, dumps, error_in_body, finish_answer, require_model, user_text
from eink_llm.backends.base import BackendSettings, Capabilities, LLMRequest, LLMResponse, PageImage, Usage
from eink_llm.errors import BackendError

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
_MB = 1024 * 1024

CAPABILITIES = Capabilities(
    media_types=("image/png", "image/jpeg", "image/webp"),
    # Inline data may make up a request of at most 20 MB, so that is also the most one image can be.
    max_image_bytes=20 * _MB,
    bytes_measured="base64",
    recommended_long_edge_px=3072,
    max_images=3000,
    max_request_bytes=20 * _MB,
    accepts_pdf=True,
    token_formula="gemini-tiles",
)

#: finishReason / blockReason values that mean "withheld by a filter": permanent.
_BLOCKED = {
    "SAFETY": "safety filter",
    "RECITATION": "recitation filter",
    "BLOCKLIST": "blocked terms",
    "PROHIBITED_CONTENT": "prohibited content",
    "SPII": "sensitive personal information",
    "IMAGE_SAFETY": "image safety filter",
    "OTHER": "blocked by the service",
}


class GeminiBackend:
    """generateContent over one pooled HTTP client; safe to call from several worker threads at once."""

    name = "gemini"
    capabilities = CAPABILITIES

    def __init__(self, settings: BackendSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        api_key = (settings.api_key or "").strip() or None
        headers = {"x-goog-api-key": api_key} if api_key else {}
        base_url = (settings.base_url or DEFAULT_BASE_URL).strip().rstrip("/")
        self._prefix = "" if base_url.endswith(("/v1beta", "/v1")) else "v1beta/"
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
        model = self._model(request)
        body = self.build_body(request)
        try:
            data = self._http.post_json(f"{self._prefix}models/{quote(model, safe='.-_')}:generateContent", body)
        except BackendError as error:
            if error.status == 400 and "api key" in (error.detail or "").lower():
                raise self._http.error(
                    f"{self._http.label} did not accept the API key.",
                    "Check llm.api_key in the configuration: it may be missing, mistyped or revoked.",
                    detail=error.detail,
                    status=error.status,
                ) from None
            raise
        return self.parse_response(data, requested_model=model)

    # --- wire format ------------------------------------------------------------------------------------

    def _model(self, request: LLMRequest) -> str:
        model = require_model(request, self.settings.model, "Gemini", "gemini-2.5-flash").removeprefix("models/")
        if not model:
            raise BackendError("The Gemini model name is empty.", "Set llm.model, e.g. gemini-2.5-flash.")
        return model

    def build_body(self, request: LLMRequest) -> dict[str, Any]:
        """The JSON body for one question (the model goes in the URL); public so tests can show it."""
        self._model(request)
        contents: list[dict[str, Any]] = [
            {"role": "model" if turn.role == "assistant" else "user", "parts": [{"text": turn.text}]}
            for turn in alternating_history(request.history)
        ]
        parts: list[dict[str, Any]] = [{"text": user_text(request)}]
        parts.extend(_image_part(page) for page in request.pages)
        contents.append({"role": "user", "parts": parts})
        config: dict[str, Any] = {"maxOutputTokens": request.options.max_output_tokens}
        if request.options.temperature is not None:
            config["temperature"] = request.options.temperature
        body: dict[str, Any] = {"contents": contents, "generationConfig": config}
        if request.system_prompt.strip():
            body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
        return body

    def parse_response(self, data: dict[str, Any], *, requested_model: str) -> LLMResponse:
        """Text, usage and model out of a generateContent response."""
        http = self._http
        feedback = data.get("promptFeedback")
        block = feedback.get("blockReason") if isinstance(feedback, dict) else None
        candidates = data.get("candidates")
        if block and not candidates:
            reason = _BLOCKED.get(str(block), str(block).lower().replace("_", " "))
            raise http.error(
                f"{http.label} refused the question ({reason}).",
                "Rephrase the question, then export the page again.",
                detail=f"promptFeedback.blockReason={block}",
            )
        if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
            raise error_in_body(http, data) or http.not_understood(f"no candidates: {truncate(dumps(data), 200)}")
        candidate: dict[str, Any] = candidates[0]
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        texts: list[str] = []
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought"):
                texts.append(part["text"])
        if content is not None and not isinstance(parts, list | None):
            raise http.not_understood(f"candidate parts are not a list: {truncate(dumps(candidate), 200)}")
        finish = candidate.get("finishReason")
        text = finish_answer(
            http,
            "".join(texts),
            cut_off=finish == "MAX_TOKENS",
            withheld=_BLOCKED.get(str(finish)),
            detail=f"finishReason={finish}",
        )
        usage = data.get("usageMetadata")
        usage = usage if isinstance(usage, dict) else {}
        output = as_int(usage.get("candidatesTokenCount")) + as_int(usage.get("thoughtsTokenCount"))
        model = data.get("modelVersion")
        return LLMResponse(
            text=text,
            usage=Usage(input_tokens=as_int(usage.get("promptTokenCount")), output_tokens=output),
            model=model if isinstance(model, str) and model else requested_model,
        )


def _image_part(page: PageImage) -> dict[str, Any]:
    return {"inline_data": {"mime_type": page.media_type, "data": base64.b64encode(page.data).decode()}}


def create(settings: BackendSettings) -> GeminiBackend:
    """The factory the registry calls."""
    return GeminiBackend(settings)
