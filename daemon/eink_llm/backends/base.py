"""The LLM hook: one small typed contract between the pipeline and every provider.

A backend turns an :class:`LLMRequest` into an :class:`LLMResponse`, or raises
:class:`eink_llm.errors.BackendError` (``retryable`` set for timeouts, 429 and 5xx). Backends never touch files,
the database or the queue; they only speak their provider's wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Role = Literal["user", "assistant"]
#: How a provider counts image tokens, for :func:`eink_llm.image_tokens.estimate_image_tokens`. OpenAI has four: 512-px
#: tiles with images that fit 512 × 512 sent at ``detail: low`` (``openai-tiles``, the openai backend's default),
#: tiles with every image at high detail (``openai-high``), the flat low-detail price (``openai-low``), and 32-px
#: patches times a per-model multiplier (``openai-patches``: gpt-4.1-mini/nano, o4-mini, gpt-5-mini/nano).
TokenFormula = Literal[
    "openai-tiles", "openai-high", "openai-low", "openai-patches", "anthropic", "gemini-tiles", "unknown"
]


@dataclass(frozen=True, slots=True)
class PageImage:
    """One page as the backend will send it: encoded bytes plus what a provider needs to know."""

    data: bytes
    media_type: str  # "image/png", "image/jpeg" or "image/webp"
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Message:
    """A turn of earlier conversation, oldest first."""

    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class ModelOptions:
    model: str | None = None
    max_output_tokens: int = 2048
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """Everything a backend needs for one exchange.

    ``history`` holds earlier exchanges as alternating user/assistant turns; the current question is
    ``pages`` (images, in page order) plus ``text`` (the input's text layer, often empty for handwriting).
    """

    system_prompt: str
    history: tuple[Message, ...] = ()
    pages: tuple[PageImage, ...] = ()
    text: str = ""
    options: ModelOptions = field(default_factory=ModelOptions)
    #: The file name the question came from, for backends that want to mention it.
    source_name: str = ""
    #: What the user's turn says before the pages, when not the usual "here is my question" (e.g. "I wrote on
    #: your earlier answer; the first image shows only my new handwriting").
    instruction: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """The answer as Markdown, with what it cost and which model wrote it."""

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend's provider accepts as page images, so pages can be prepared to fit before sending.

    Hard limits (``max_*``) are refusals: an image over them makes the request fail. ``recommended_*`` sizes are
    what the provider downscales to anyway, so sending more pixels only costs bytes. ``None`` means "no limit
    known". See ``docs/page-economy.md`` (each provider's documented limits, with sources) and
    :mod:`eink_llm.economy`.
    """

    #: Image media types the provider accepts, most preferred first.
    media_types: tuple[str, ...] = ("image/png", "image/jpeg")
    #: Largest encoded image, in bytes, measured as ``bytes_measured`` says.
    max_image_bytes: int | None = None
    #: ``"raw"`` (the file's bytes) or ``"base64"`` (the length of its base64 text, 4/3 of raw: Anthropic).
    bytes_measured: Literal["raw", "base64"] = "raw"
    #: Largest width or height the provider accepts (a hard limit).
    max_long_edge_px: int | None = None
    #: A tighter hard limit when a request carries more than ``many_images_threshold`` images (Anthropic: 2000 px
    #: above 20 images).
    many_images_threshold: int | None = None
    many_images_max_long_edge_px: int | None = None
    #: What the provider scales images down to before the model sees them (soft: more only costs bytes).
    recommended_long_edge_px: int | None = None
    recommended_short_edge_px: int | None = None
    recommended_max_pixels: int | None = None
    #: Most images in one request.
    max_images: int | None = None
    #: Largest request body (all images together), measured like ``max_image_bytes``.
    max_request_bytes: int | None = None
    #: Whether the provider reads PDF documents directly (we still send page images).
    accepts_pdf: bool = False
    #: How the provider counts an image's tokens.
    token_formula: TokenFormula = "unknown"
    #: The model the token estimates are for, where the provider prices images differently per model (OpenAI:
    #: gpt-4o-mini's tiles cost 33 times gpt-4o's; patch multipliers differ); ``None``: the formula's usual prices.
    token_model: str | None = None

    def accepts(self, media_type: str) -> bool:
        return media_type in self.media_types

    def long_edge_limit(self, image_count: int = 1) -> int | None:
        """The hard limit on width and height for a request with ``image_count`` images."""
        limit = self.max_long_edge_px
        if (
            self.many_images_threshold is not None
            and self.many_images_max_long_edge_px is not None
            and image_count > self.many_images_threshold
        ):
            limit = min(limit or self.many_images_max_long_edge_px, self.many_images_max_long_edge_px)
        return limit

    def measured_size(self, raw_bytes: int) -> int:
        """``raw_bytes`` as this provider counts them against ``max_image_bytes``."""
        if self.bytes_measured == "base64":
            return 4 * ((raw_bytes + 2) // 3)
        return raw_bytes

    def fits(self, raw_bytes: int) -> bool:
        return self.max_image_bytes is None or self.measured_size(raw_bytes) <= self.max_image_bytes


#: For backends that say nothing more specific: PNG and JPEG, no known limits.
DEFAULT_CAPABILITIES = Capabilities()


@runtime_checkable
class Backend(Protocol):
    """What every backend implements. Construct once per configuration; ``complete`` may be called from
    several worker threads at once, so keep per-request state local.

    ``capabilities`` says which images the provider accepts (see :class:`Capabilities`); the pipeline prepares
    pages to fit them with :func:`eink_llm.economy.prepare_pages`.
    """

    name: str
    capabilities: Capabilities

    def complete(self, request: LLMRequest) -> LLMResponse: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BackendSettings:
    """What a backend factory receives from the ``llm:`` section of the config.

    Plain values only, so a plugin never needs to import the config schema. ``api_key`` is the real secret:
    never log it.
    """

    backend: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    timeout_seconds: float = 120.0
    extra: dict[str, object] = field(default_factory=dict)


class BackendFactory(Protocol):
    def __call__(self, settings: BackendSettings) -> Backend: ...
