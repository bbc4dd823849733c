"""The LLM hook: one small typed contract between the pipeline and every provider.

A backend turns an :class:`LLMRequest` into an :class:`LLMResponse`, or raises
:class:`eink_llm.errors.BackendError` (``retryable`` set for timeouts, 429 and 5xx). Backends never touch files,
the database or the queue; they only speak their provider's wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Role = Literal["user", "assistant"]


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


@runtime_checkable
class Backend(Protocol):
    """What every backend implements. Construct once per configuration; ``complete`` may be called from
    several worker threads at once, so keep per-request state local."""

    name: str

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
