"""Image tokens: how many input tokens each provider bills for one image of a given size, per model.

The economy (economy.py) picks the scale a provider bills least for with :func:`estimate_image_tokens`; the
pipeline records the estimate with each exchange; the openai backend chooses each page's ``detail`` from
:func:`openai_image_pricing`. The formulas and their sources are in docs/page-economy.md ("Token estimates").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from eink_llm.backends.base import Capabilities, TokenFormula

#: OpenAI sends images that fit this square at ``detail: low`` for the flat base price: it never enlarges an image,
#: so a page this small loses nothing at low detail (the openai backend does this unless ``detail`` is configured).
OPENAI_LOW_DETAIL_PX = 512
#: OpenAI's patch billing: 32-px patches, at most 1536 of them (larger images are shrunk to fit).
OPENAI_PATCH_PX = 32
OPENAI_MAX_PATCHES = 1536


@dataclass(frozen=True, slots=True)
class OpenAIImagePricing:
    """How OpenAI prices one model's images (its "Images and vision" guide, "Calculating costs")."""

    #: ``"tiles"``: ``base_tokens`` + ``tile_tokens`` per 512-px tile at high detail, ``base_tokens`` at low;
    #: ``"patches"``: ``multiplier`` × the 32-px patches covering the image, whatever the detail.
    billing: Literal["tiles", "patches"]
    base_tokens: int = 85
    tile_tokens: int = 170
    multiplier: float = 1.0


def _tiles(base: int, tile: int) -> OpenAIImagePricing:
    return OpenAIImagePricing("tiles", base, tile)


def _patches(multiplier: float) -> OpenAIImagePricing:
    return OpenAIImagePricing("patches", multiplier=multiplier)


#: Model name (or its dated snapshots, ``name-…``) → pricing. Patch multipliers are OpenAI's documented ones;
#: measurements reported on its forum bill gpt-5-mini at 1.2 and gpt-5-nano at 1.5 per patch (docs/page-economy.md).
OPENAI_PRICING: dict[str, OpenAIImagePricing] = {
    "gpt-4.1-mini": _patches(1.62),
    "gpt-4.1-nano": _patches(2.46),
    "gpt-5-mini": _patches(1.62),
    "gpt-5-nano": _patches(2.46),
    "o4-mini": _patches(1.72),
    "codex-mini-latest": _patches(1.72),
    "gpt-5": _tiles(70, 140),
    "gpt-4o": _tiles(85, 170),
    "chatgpt-4o-latest": _tiles(85, 170),
    "gpt-4o-mini": _tiles(2833, 5667),
    "gpt-4.1": _tiles(85, 170),
    "gpt-4.5": _tiles(85, 170),
    "gpt-4-turbo": _tiles(85, 170),
    "o1": _tiles(75, 150),
    "o3": _tiles(75, 150),
    "computer-use-preview": _tiles(65, 129),
}
#: Unknown models at OpenAI: priced like gpt-4o.
OPENAI_DEFAULT_PRICING = OPENAI_PRICING["gpt-4o"]


def openai_image_pricing(model: str | None) -> OpenAIImagePricing | None:
    """The image pricing of an OpenAI model, or ``None`` if the name is not one of OpenAI's.

    Accepts dated snapshots (``gpt-4o-2024-08-06``), fine-tunes (``ft:gpt-4o-mini:…``) and router prefixes
    (``openai/gpt-4.1-mini``); the longest known name wins, so ``gpt-4o-mini`` is not priced as ``gpt-4o``, and
    ``gpt-5.2`` is not ``gpt-5``.
    """
    name = (model or "").strip().lower().rsplit("/", 1)[-1].removeprefix("ft:")
    for known in sorted(OPENAI_PRICING, key=len, reverse=True):
        if name == known or name.startswith((known + "-", known + ":")):
            return OPENAI_PRICING[known]
    return None


_FORMULAS: dict[str, TokenFormula] = {
    "openai": "openai-tiles",
    "openai-tiles": "openai-tiles",
    "openai-high": "openai-high",
    "openai-low": "openai-low",
    "openai-patches": "openai-patches",
    "anthropic": "anthropic",
    "claude": "anthropic",
    "gemini": "gemini-tiles",
    "gemini-tiles": "gemini-tiles",
}


def estimate_image_tokens(backend: str | Capabilities, width: int, height: int, *, model: str | None = None) -> int:
    """Estimated input tokens for one ``width`` × ``height`` image sent to ``backend`` (a backend's name, a token
    formula's name, or its :class:`Capabilities`) for ``model`` (default: the capabilities' ``token_model``).
    Models the provider's own resizing first (the providers' vision guides; figures and sources in
    ``docs/page-economy.md``):

    * OpenAI tiles (gpt-4o, gpt-4.1, gpt-5, o3 …): fit in 2048², shortest side down to 768, then base + tile tokens
      per 512-px tile (gpt-4o: 85 + 170); an image within 512 × 512 costs the base alone, because the openai backend
      sends it at ``detail: low`` (``openai-high``: it does not; ``openai-low``: every image costs the base).
    * OpenAI patches (gpt-4.1-mini/nano, o4-mini, gpt-5-mini/nano): the 32-px patches covering the image, at most
      1536 (a larger image is shrunk to fit), times the model's multiplier; the detail changes nothing. For OpenAI
      formulas the model's own billing wins, so ``("openai", w, h, model="gpt-4.1-mini")`` counts patches.
    * Anthropic: long edge down to 1568 and area to ~1.2 MP (951 × 1268 is kept), then width × height / 750.
    * Gemini (before Gemini 3): 258 if both sides ≤ 384, else 258 per 768-px tile (after fitting in 3072²).
    * Unknown (Ollama, command, plugins): width × height / 784, one token per 28-px patch as Qwen2.5-VL counts,
      after the downscaling the capabilities recommend.
    """
    if width <= 0 or height <= 0:
        return 0
    w, h = float(width), float(height)
    if isinstance(backend, Capabilities):
        formula = backend.token_formula
        model = model if model is not None else backend.token_model
        if formula == "unknown" and (backend.recommended_long_edge_px or backend.recommended_max_pixels):
            # What such a provider's model sees, as far as its capabilities say.
            w, h = _fit(
                w, h, long_edge=backend.recommended_long_edge_px or max(w, h), pixels=backend.recommended_max_pixels
            )
    else:
        formula = _FORMULAS.get(backend.strip().lower(), "unknown")
    if formula.startswith("openai"):
        pricing = openai_image_pricing(model)
        if pricing is not None and pricing.billing == "patches":
            formula = "openai-patches"
        return _openai_tokens(formula, pricing, width, height)
    if formula == "anthropic":
        w, h = _fit(w, h, long_edge=1568, pixels=1_210_000)
        return max(1, math.ceil(w * h / 750))
    if formula == "gemini-tiles":
        w, h = _fit(w, h, long_edge=3072)
        if w <= 384 and h <= 384:
            return 258
        return 258 * math.ceil(w / 768) * math.ceil(h / 768)
    return max(1, math.ceil(w * h / 784))


def _openai_tokens(formula: str, pricing: OpenAIImagePricing | None, width: int, height: int) -> int:
    if formula == "openai-patches":
        multiplier = pricing.multiplier if pricing is not None else 1.0
        return math.ceil(openai_patches(width, height) * multiplier - 1e-9)
    pricing = pricing if pricing is not None and pricing.billing == "tiles" else OPENAI_DEFAULT_PRICING
    if formula == "openai-low" or (formula == "openai-tiles" and max(width, height) <= OPENAI_LOW_DETAIL_PX):
        return pricing.base_tokens
    w, h = _fit(float(width), float(height), long_edge=2048)
    if min(w, h) > 768:
        factor = 768 / min(w, h)
        w, h = w * factor, h * factor
    return pricing.base_tokens + pricing.tile_tokens * math.ceil(w / 512) * math.ceil(h / 512)


def openai_patches(width: int, height: int) -> int:
    """The 32-px patches OpenAI bills for a ``width`` × ``height`` image: those covering it; if that is over 1536,
    those covering it once shrunk so that a whole number of patches (at most 1536) covers it."""
    if width <= 0 or height <= 0:
        return 0
    side = OPENAI_PATCH_PX
    patches = math.ceil(width / side) * math.ceil(height / side)
    if patches <= OPENAI_MAX_PATCHES:
        return patches
    w, h = float(width), float(height)
    factor = math.sqrt(side * side * OPENAI_MAX_PATCHES / (w * h))
    across, down = w * factor / side, h * factor / side  # patches, fractional
    factor *= min(math.floor(across) / across, math.floor(down) / down)
    resized = (max(1, round(w * factor)), max(1, round(h * factor)))
    return min(OPENAI_MAX_PATCHES, math.ceil(resized[0] / side) * math.ceil(resized[1] / side))


def _fit(w: float, h: float, *, long_edge: float, pixels: float | None = None) -> tuple[float, float]:
    factor = min(1.0, long_edge / max(w, h))
    if pixels is not None:
        factor = min(factor, math.sqrt(pixels / (w * h)))
    return w * factor, h * factor
