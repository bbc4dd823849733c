"""Ollama's native chat API (``/api/chat``): local vision models without an API key.

One ``POST {base_url}/api/chat`` with ``"stream": false`` per question. Why not Ollama's OpenAI endpoint (which
the ``openai`` backend can use too)? The native one reports token counts reliably, takes ``num_ctx`` (Ollama's
default context is too small for a few page images plus history) and ``keep_alive``, and carries images as plain
base64 without a data: prefix.

Settings (``llm:`` section): ``base_url`` (default ``http://localhost:11434``; a trailing ``/v1`` or ``/api`` is
ignored, so an address copied from the OpenAI set-up works), ``model`` (required, e.g. ``llama3.2-vision`` or
``qwen2.5vl``), ``api_key`` (optional: sent as a Bearer token, for Ollama behind an authenticating proxy),
``timeout_seconds`` (a local model loading from disk can take a minute). ``llm.options``:

``num_ctx``
    Context window in tokens (Ollama's ``options.num_ctx``).
``keep_alive``
    How long Ollama keeps the model loaded after answering, e.g. ``10m`` or ``-1`` (forever).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from eink_llm.backends._http import HttpService, as_int, truncate
from eink_llm.backends._prompt import dumps, error_in_body, finish_answer, require_model, user_text
from eink_llm.backends.base import BackendSettings, Capabilities, LLMRequest, LLMResponse, Usage
from eink_llm.errors import BackendError

DEFAULT_BASE_URL = "http://localhost:11434"

#: Ollama decodes PNG and JPEG for every vision model; local models rescale to a fixed grid (llama3.2-vision:
#: 560-px tiles up to 1120; qwen2.5vl: about a megapixel), so sending more than ~1344 px only costs time.
CAPABILITIES = Capabilities(
    media_types=("image/png", "image/jpeg"),
    recommended_long_edge_px=1344,
    recommended_max_pixels=1_200_000,
    token_formula="unknown",
)


class OllamaBackend:
    """/api/chat over one pooled HTTP client; safe to call from several worker threads at once."""

    name = "ollama"
    capabilities = CAPABILITIES

    def __init__(self, settings: BackendSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        api_key = (settings.api_key or "").strip() or None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        base_url = (settings.base_url or DEFAULT_BASE_URL).strip().rstrip("/")
        for suffix in ("/v1", "/api"):
            base_url = base_url.removesuffix(suffix)
        self.num_ctx = _optional_int(settings.extra.get("num_ctx"), "num_ctx")
        keep_alive = settings.extra.get("keep_alive")
        self.keep_alive = None if keep_alive is None else keep_alive if isinstance(keep_alive, int) else str(keep_alive)
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
        data = self._http.post_json("api/chat", body)
        return self.parse_response(data, requested_model=str(body["model"]))

    # --- wire format ------------------------------------------------------------------------------------

    def build_body(self, request: LLMRequest) -> dict[str, Any]:
        """The JSON body for one question; public so tests and diagnostics can show it."""
        model = require_model(request, self.settings.model, "Ollama", "a vision model you have pulled: llama3.2-vision")
        messages: list[dict[str, Any]] = []
        if request.system_prompt.strip():
            messages.append({"role": "system", "content": request.system_prompt})
        messages.extend({"role": turn.role, "content": turn.text} for turn in request.history)
        question: dict[str, Any] = {"role": "user", "content": user_text(request)}
        if request.pages:
            question["images"] = [base64.b64encode(page.data).decode() for page in request.pages]
        messages.append(question)
        options: dict[str, Any] = {"num_predict": request.options.max_output_tokens}
        if request.options.temperature is not None:
            options["temperature"] = request.options.temperature
        if self.num_ctx is not None:
            options["num_ctx"] = self.num_ctx
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": False, "options": options}
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return body

    def parse_response(self, data: dict[str, Any], *, requested_model: str) -> LLMResponse:
        """Text, usage and model out of an /api/chat response."""
        http = self._http
        message = data.get("message")
        if not isinstance(message, dict):
            raise error_in_body(http, data) or http.not_understood(f"no message: {truncate(dumps(data), 200)}")
        raw = message.get("content")
        if raw is None:
            raw = ""
        if not isinstance(raw, str):
            raise http.not_understood(f"message.content is not text: {truncate(dumps(message), 200)}")
        reason = data.get("done_reason")
        text = finish_answer(http, raw, cut_off=reason == "length", withheld=None, detail=f"done_reason={reason}")
        model = data.get("model")
        return LLMResponse(
            text=text,
            usage=Usage(
                input_tokens=as_int(data.get("prompt_eval_count")), output_tokens=as_int(data.get("eval_count"))
            ),
            model=model if isinstance(model, str) and model else requested_model,
        )


def _optional_int(value: object, option: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise BackendError(
            f"llm.options.{option} is “{value}”, which is not a whole number.",
            f"Set llm.options.{option} to a number of tokens, e.g. 8192, or remove it.",
        )
    return int(value)


def create(settings: BackendSettings) -> OllamaBackend:
    """The factory the registry calls."""
    return OllamaBackend(settings)
