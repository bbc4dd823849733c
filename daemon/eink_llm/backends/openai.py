"""Any OpenAI-compatible Chat Completions server: OpenAI, Ollama's /v1, vLLM, LM Studio, llama.cpp, OpenRouter.

One ``POST {base_url}/chat/completions`` per question, no streaming: the answer becomes a PDF only once it is
complete, so streaming would add failure modes (half answers) without anything to show early.

Settings (``llm:`` section): ``base_url`` (default ``https://api.openai.com/v1``), ``api_key`` (sent as a Bearer
token only when set: local servers need none), ``model`` (required), ``timeout_seconds``. ``llm.options``:

``detail``
    OpenAI image detail, ``auto``, ``low`` or ``high``, sent with every page. Unset (the default), each page gets
    the cheapest detail that shows it whole: ``low`` for a page within 512 × 512 on a tile-billed model (gpt-4o,
    gpt-4.1, gpt-5, o3 …: the flat base price, 85 tokens on gpt-4o instead of 255; OpenAI never enlarges an image,
    so the model sees the same pixels), ``auto`` otherwise. Patch-billed models (gpt-4.1-mini, o4-mini,
    gpt-5-mini …), whose price no detail changes, and unknown models on other servers always get ``auto``.
``max_tokens_field``
    Name of the output-length field: ``max_tokens`` (default; understood by every compatible server) or
    ``max_completion_tokens`` (OpenAI's newer name, required by its reasoning models).

An empty answer is treated as follows: cut off by the length limit → permanent (retrying with the same limit
spends the same tokens on the same thoughts; the user must raise ``llm.max_output_tokens``); withheld by a
content filter → permanent; otherwise → retryable, because an empty "stop" is what overloaded local servers and
flaky proxies produce, and a second attempt usually succeeds.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import httpx

from eink_llm.backends._http import HttpService, as_int, truncate
from eink_llm.backends._prompt import (
    CUT_OFF_NOTE,
    INSTRUCTION,
    TEXT_LAYER_INTRO,
    dumps,
    error_in_body,
    finish_answer,
    require_model,
    user_text,
)
from eink_llm.backends.base import (
    BackendSettings,
    Capabilities,
    LLMRequest,
    LLMResponse,
    PageImage,
    TokenFormula,
    Usage,
)
from eink_llm.errors import BackendError
from eink_llm.image_tokens import OPENAI_LOW_DETAIL_PX, OPENAI_MAX_PATCHES, OPENAI_PATCH_PX, openai_image_pricing

__all__ = ["CUT_OFF_NOTE", "DEFAULT_BASE_URL", "INSTRUCTION", "TEXT_LAYER_INTRO", "OpenAIBackend", "create"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_OPENAI_HOST = "api.openai.com"
_MB = 1024 * 1024


def token_formula(detail: str | None, host: str, model: str | None) -> TokenFormula:
    """How ``model`` at ``host`` bills the images this backend sends with ``detail`` (``None``: not configured,
    chosen per page). A model the pricing tables do not know is priced like gpt-4o at OpenAI itself; on other
    servers (Ollama, vLLM, llama.cpp …) its images are estimated as OpenAI would bill them, at the detail given."""
    pricing = openai_image_pricing(model)
    if pricing is not None and pricing.billing == "patches":
        return "openai-patches"
    if detail == "low":
        return "openai-low"
    if detail is None and (pricing is not None or host == _OPENAI_HOST):
        return "openai-tiles"
    return "openai-high"


def capabilities_for(detail: str | None, host: str, model: str | None = None) -> Capabilities:
    """OpenAI's documented image limits (its "Images and vision" guide) and the billing of ``model`` (see
    :func:`token_formula`); WebP and GIF only at OpenAI itself, since compatible servers (llama.cpp, some vLLM
    builds) decode PNG and JPEG only."""
    official = host == _OPENAI_HOST
    media = ("image/png", "image/jpeg", "image/webp", "image/gif") if official else ("image/png", "image/jpeg")
    formula = token_formula(detail, host, model)
    common = Capabilities(
        media_types=media,
        max_image_bytes=20 * _MB,
        max_images=500,
        max_request_bytes=50 * _MB,
        accepts_pdf=official,
        token_formula=formula,
        token_model=model,
    )
    if formula == "openai-low" or (formula == "openai-patches" and detail == "low"):
        return replace(common, recommended_long_edge_px=OPENAI_LOW_DETAIL_PX)
    if formula == "openai-patches":
        # OpenAI shrinks an image to at most 1536 patches; no other resizing is documented for these models.
        return replace(common, recommended_max_pixels=OPENAI_MAX_PATCHES * OPENAI_PATCH_PX**2)
    return replace(common, recommended_long_edge_px=2048, recommended_short_edge_px=768)


_DETAILS = ("auto", "low", "high")
_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


class OpenAIBackend:
    """Chat Completions over one pooled HTTP client; safe to call from several worker threads at once."""

    name = "openai"

    def __init__(self, settings: BackendSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        api_key = (settings.api_key or "").strip() or None
        detail = str(settings.extra.get("detail") or "").strip().lower() or None
        if detail is not None and detail not in _DETAILS:
            raise BackendError(
                f"The image detail “{detail}” in llm.options.detail is not one the OpenAI API knows.",
                "Set llm.options.detail to auto, low or high, or leave it out.",
            )
        #: The detail configured for every page, or ``None``: chosen per page (:meth:`page_detail`).
        self.detail = detail
        token_field = str(settings.extra.get("max_tokens_field") or "max_tokens").strip()
        if token_field not in _TOKEN_FIELDS:
            raise BackendError(
                f"llm.options.max_tokens_field is “{token_field}”, which no Chat Completions server understands.",
                "Set it to max_tokens (most servers) or max_completion_tokens (OpenAI's newer models).",
            )
        self.max_tokens_field = token_field
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = HttpService(
            settings.base_url or DEFAULT_BASE_URL,
            timeout_seconds=settings.timeout_seconds,
            headers=headers,
            secrets=[api_key, settings.api_key],
            transport=transport,
        )
        self.capabilities = capabilities_for(self.detail, self._http.host, settings.model)

    def close(self) -> None:
        self._http.close()

    def complete(self, request: LLMRequest) -> LLMResponse:
        body = self.build_body(request)
        data = self._http.post_json("chat/completions", body)
        return self.parse_response(data, requested_model=str(body["model"]))

    # --- wire format ------------------------------------------------------------------------------------

    def build_body(self, request: LLMRequest) -> dict[str, Any]:
        """The JSON body for one question; public so tests and ``eink-llm`` diagnostics can show it."""
        model = require_model(
            request, self.settings.model, "OpenAI-compatible", "gpt-4o-mini, or a vision model on your server"
        )
        messages: list[dict[str, Any]] = []
        if request.system_prompt.strip():
            messages.append({"role": "system", "content": request.system_prompt})
        messages.extend({"role": turn.role, "content": turn.text} for turn in request.history)
        parts: list[dict[str, Any]] = [{"type": "text", "text": user_text(request)}]
        formula = token_formula(self.detail, self._http.host, model)
        parts.extend(self._image_part(page, self.page_detail(page, formula)) for page in request.pages)
        messages.append({"role": "user", "content": parts})

        body: dict[str, Any] = {"model": model, "messages": messages}
        body[self.max_tokens_field] = request.options.max_output_tokens
        if request.options.temperature is not None:
            body["temperature"] = request.options.temperature
        return body

    def page_detail(self, page: PageImage, formula: TokenFormula) -> str:
        """The ``detail`` to send ``page`` with: the configured one; else ``low`` when the model bills by tiles and
        the page fits 512 × 512 (OpenAI would not enlarge it, so low detail shows every pixel for the base price
        alone), ``auto`` otherwise."""
        if self.detail is not None:
            return self.detail
        if formula == "openai-tiles" and max(page.width, page.height) <= OPENAI_LOW_DETAIL_PX:
            return "low"
        return "auto"

    @staticmethod
    def _image_part(page: PageImage, detail: str) -> dict[str, Any]:
        encoded = base64.b64encode(page.data).decode("ascii")
        return {
            "type": "image_url",
            "image_url": {"url": f"data:{page.media_type};base64,{encoded}", "detail": detail},
        }

    def parse_response(self, data: dict[str, Any], *, requested_model: str) -> LLMResponse:
        """Text, usage and model out of a Chat Completions response; a retryable error if it has no answer."""
        http = self._http
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise error_in_body(http, data) or http.not_understood(
                f"no choices in the response: {truncate(dumps(data), 200)}"
            )
        choice: dict[str, Any] = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            raise http.not_understood(f"choices[0] has no message: {truncate(dumps(choice), 200)}")
        raw = _content_text(message.get("content"))
        if raw is None:
            raise http.not_understood(f"choices[0].message.content is not text: {truncate(dumps(message), 200)}")
        refusal = message.get("refusal")
        finish = choice.get("finish_reason")
        text = finish_answer(
            http,
            raw,
            cut_off=finish == "length",
            withheld="content filter" if finish == "content_filter" else None,
            detail=f"finish_reason={finish}",
            fallback=refusal if isinstance(refusal, str) else None,
        )
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        model = data.get("model")
        return LLMResponse(
            text=text,
            usage=Usage(
                input_tokens=as_int(usage.get("prompt_tokens")), output_tokens=as_int(usage.get("completion_tokens"))
            ),
            model=model if isinstance(model, str) and model else requested_model,
        )


def _content_text(content: object) -> str | None:
    """``message.content`` as text: a string, ``null`` (empty), or a list of parts of which the text ones count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") in ("text", "output_text"):
                value = part.get("text")
                if isinstance(value, str):
                    texts.append(value)
        return "".join(texts)
    return None


def create(settings: BackendSettings) -> OpenAIBackend:
    """The factory the registry calls."""
    return OpenAIBackend(settings)
