"""The whole request against a ceiling, before it is sent.

Each part of a request has its own budget — the page images the page economy, the conversation
``context.history_tokens``, the input's typed text ``context.question_tokens`` — but together they must still fit
the model's context window (``llm.context_tokens``, less ``llm.max_output_tokens`` kept for the answer) and what is
left of the profile's token or cost budget. :func:`fit_request` estimates the request (text as the history budget
counts it, images as :mod:`~eink_llm.image_tokens` prices them) and, while it is over the ceiling, leaves out in
this order: the input's typed text, the background (summary and relevant older exchanges), then the earlier
exchanges sent in full, oldest first. The handwriting on the pages is the question, so the page images are never
dropped: a request still over the ceiling without everything else is not sent at all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from eink_llm.backends.base import Capabilities, LLMRequest
from eink_llm.errors import RequestTooLargeError
from eink_llm.image_tokens import estimate_image_tokens
from eink_llm.text_tokens import estimate_tokens

#: What the backends add around the parts (the words introducing the question and its text, the JSON or chat
#: template of each message): a generous allowance rather than a count, since it differs per provider.
REQUEST_OVERHEAD_TOKENS = 64
MESSAGE_OVERHEAD_TOKENS = 8


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The most input tokens a request may be estimated at, and why (for the note and the error)."""

    tokens: int
    why: str
    #: Set when the profile's budget, not the model's context, is the tighter limit.
    budget_label: str | None = None
    resets_at: datetime | None = None


def model_ceiling(context_tokens: int, max_output_tokens: int) -> Ceiling:
    return Ceiling(
        context_tokens - max_output_tokens,
        f"the model's context of {context_tokens:,} tokens (llm.context_tokens), less {max_output_tokens:,} "
        "kept for the answer (llm.max_output_tokens)",
    )


def budget_ceiling(tokens: int, label: str, profile: str, resets_at: datetime) -> Ceiling:
    return Ceiling(
        tokens,
        f"the {tokens:,} tokens left in the {label} budget of the profile {profile!r}",
        budget_label=label,
        resets_at=resets_at,
    )


@dataclass(frozen=True, slots=True)
class Fitted:
    """The request to send, its estimate, and what was left out to make it fit."""

    request: LLMRequest
    estimated_tokens: int
    image_tokens: int
    ceiling: Ceiling
    original_tokens: int
    dropped_text: bool = False
    dropped_background: bool = False
    dropped_exchanges: int = 0

    @property
    def dropped(self) -> bool:
        return self.dropped_text or self.dropped_background or bool(self.dropped_exchanges)

    def note(self) -> str | None:
        """What the answer says at its top about what was left out; ``None`` when nothing was."""
        if not self.dropped:
            return None
        parts = []
        if self.dropped_text:
            parts.append("the typed text of your file")
        if self.dropped_background:
            parts.append("the summary and related older exchanges")
        if self.dropped_exchanges:
            earlier = "earlier exchange" if self.dropped_exchanges == 1 else "earlier exchanges"
            parts.append(f"{self.dropped_exchanges} {earlier} of this conversation")
        left_out = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
        return (
            f"Everything together came to about {self.original_tokens:,} tokens, more than {self.ceiling.why}, "
            f"so {left_out} {'were' if len(parts) > 1 or self.dropped_exchanges > 1 else 'was'} left out."
        )

    def record(self) -> dict[str, object]:
        """For the exchange's metadata."""
        data: dict[str, object] = {
            "estimated_tokens": self.estimated_tokens,
            "image_tokens": self.image_tokens,
            "limit": self.ceiling.tokens,
            "limited_by": self.ceiling.budget_label or "context",
        }
        if self.dropped:
            data.update(
                original_tokens=self.original_tokens,
                dropped_text=self.dropped_text,
                dropped_background=self.dropped_background,
                dropped_exchanges=self.dropped_exchanges,
            )
        return data


def text_tokens(request: LLMRequest) -> int:
    """The estimated tokens of everything in ``request`` but its images."""
    messages = len(request.history) + 2  # the system prompt and the question are messages too
    return (
        estimate_tokens(request.system_prompt)
        + sum(estimate_tokens(message.text) for message in request.history)
        + estimate_tokens(request.instruction)
        + estimate_tokens(request.text)
        + REQUEST_OVERHEAD_TOKENS
        + MESSAGE_OVERHEAD_TOKENS * messages
    )


def fit_request(request: LLMRequest, lean_system_prompt: str, capabilities: Capabilities, ceiling: Ceiling) -> Fitted:
    """``request`` within ``ceiling``, leaving out what the module docstring says, in that order.

    ``lean_system_prompt`` is the request's system prompt without the background (summary, relevant older
    exchanges). Raises :class:`RequestTooLargeError` when even the images and the system prompt alone are over.
    """
    images = sum(estimate_image_tokens(capabilities, page.width, page.height) for page in request.pages)
    original = images + text_tokens(request)
    fitted = Fitted(request, original, images, ceiling, original)

    def over(candidate: Fitted) -> bool:
        return candidate.estimated_tokens > ceiling.tokens

    def without(current: Fitted, **changes: object) -> Fitted:
        smaller = dataclasses.replace(current.request, **changes)  # type: ignore[arg-type]
        return dataclasses.replace(current, request=smaller, estimated_tokens=images + text_tokens(smaller))

    if over(fitted) and request.text:
        fitted = dataclasses.replace(without(fitted, text=""), dropped_text=True)
    if over(fitted) and request.system_prompt != lean_system_prompt:
        fitted = dataclasses.replace(without(fitted, system_prompt=lean_system_prompt), dropped_background=True)
    while over(fitted) and fitted.request.history:
        fitted = dataclasses.replace(
            without(fitted, history=fitted.request.history[2:]),  # one exchange: the user's turn and the answer
            dropped_exchanges=fitted.dropped_exchanges + 1,
        )
    if over(fitted):
        raise RequestTooLargeError(
            f"This question needs about {fitted.estimated_tokens:,} tokens even without its typed text and the "
            f"earlier conversation ({images:,} of them for {len(request.pages)} page images): more than "
            f"{ceiling.why}.",
            "Export fewer pages, or raise llm.context_tokens if your model takes more.",
        )
    return fitted
