"""Page economy: send each provider the fewest image tokens and bytes that still show every pen stroke.

A tablet page is mostly white paper. For each page (a grayscale ``L`` image, as the reader decodes it at about
150 dpi), :func:`prepare_pages`:

1. finds the ink (pixels darker than :data:`INK_THRESHOLD`; light template lines are not ink), crops to it with a
   margin, and drops blank pages — but never all of them: if every page is blank, the first one goes, small, and
   the model can say it sees nothing;
2. estimates the pen's stroke width (:func:`stroke_width`) and never scales a page so far that strokes become
   thinner than ``min_stroke_px`` (2 px): thinner strokes break up and handwriting stops being legible;
3. within that, picks the scale the provider bills least for (:func:`estimate_image_tokens`: per OpenAI model
   512-px tiles — a page within 512 × 512 going at ``detail: low`` for the base price — or 32-px patches;
   Anthropic's pixel area, Gemini's 768-px tiles), never above what the provider downscales to anyway (sending
   more pixels only costs bytes) and never above its hard limits — hard limits win over legibility;
4. encodes the page in black and white (when strokes stay at least 1.5 px wide) or else in four grey levels, as
   a PNG or a lossless WebP (when the provider takes WebP), whichever is smaller; then checks the provider's byte
   limits (measured raw or as base64, as :class:`~eink_llm.backends.base.Capabilities` says) and shrinks further if
   needed.

Everything uses Pillow's C routines (no numpy); a page takes tens of milliseconds.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageChops

from eink_llm.backends.base import Capabilities, PageImage, TokenFormula
from eink_llm.errors import InputTooLargeError

#: Pixels darker than this are ink. Tablet templates (lines, grids) are drawn in light grey and stay out.
INK_THRESHOLD = 160
#: A page with fewer ink pixels than this (at ~150 dpi: a dot or two, a stray tap of the pen) is blank.
BLANK_INK_PIXELS = 40
#: White space kept around the ink, in pixels of the page as decoded.
MARGIN_PX = 16
#: Thinnest stroke, in pixels after scaling, that still reads reliably.
MIN_STROKE_PX = 2.0
#: Long edge of the page sent when every page is blank: enough for the model to see that it is empty.
BLANK_PAGE_LONG_EDGE = 512
#: The four grey levels of the compact grey encoding, and the threshold of the 1-bit one (a little bolder than
#: INK_THRESHOLD, so the grey rim of a thin or downscaled stroke stays black).
GREY_LEVELS = (0, 85, 170, 255)
BILEVEL_THRESHOLD = 180
#: Strokes at least this wide (after scaling) survive black-and-white encoding unbroken; thinner ones keep their
#: grey anti-aliasing, which carries their shape.
BILEVEL_MIN_STROKE_PX = 1.5
#: Tile snapping: below the legibility floor, a page may shrink by at most this factor more, and only when that
#: saves at least ``SNAP_SAVING`` of the tokens (a whole row or column of OpenAI/Gemini tiles); a smooth formula
#: such as Anthropic's never saves that much, so there the floor holds exactly.
SNAP_SLACK = 0.9
SNAP_SAVING = 0.25
#: Steps of the scale search; 0.5 % apart.
_SCALE_STEP = 0.995


@dataclass(frozen=True, slots=True)
class PreparedPage:
    """What became of one input page, for logs, diagnostics and the benchmark."""

    index: int
    #: The image to send, or ``None`` if the page was dropped as blank.
    image: PageImage | None
    blank: bool
    #: The region kept, in the input page's pixels: (left, top, right, bottom).
    crop: tuple[int, int, int, int]
    #: Estimated pen stroke width in the input page's pixels (0 for a blank page).
    stroke_px: float
    #: Scale applied to the cropped region (1.0 = unchanged).
    scale: float
    #: Estimated image tokens for the provider (0 when dropped).
    tokens: int


# --- token estimates --------------------------------------------------------------------------------------------

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
    Models the provider's own resizing first (reference.md §2):

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


# --- analysis ---------------------------------------------------------------------------------------------------


def as_grey(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit grey on white (transparent areas become paper)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("L")
    return image if image.mode == "L" else image.convert("L")


def ink_mask(grey: Image.Image) -> Image.Image:
    """255 where there is ink, 0 elsewhere (mode ``L``)."""
    return grey.point([255 if value < INK_THRESHOLD else 0 for value in range(256)])


def is_blank(image: Image.Image) -> bool:
    """Whether a page has too little ink to be worth sending (the rule that drops blank pages)."""
    return ink_mask(as_grey(image)).histogram()[255] < BLANK_INK_PIXELS


def stroke_width(mask: Image.Image) -> float:
    """Typical pen stroke width in pixels, from an ink mask: twice the ink area over its boundary length.

    A stroke of width w and length L has area w·L and about 2·L boundary, so 2·area/boundary ≈ w. The boundary is
    counted as horizontal plus vertical ink/paper transitions, which overcounts slanted edges (by up to √2), so the
    estimate errs thin: the page is then scaled down less, never too much. 0 if there is no ink.
    """
    width, height = mask.size
    area = mask.histogram()[255]
    if area == 0:
        return 0.0
    transitions = _changes(mask, (0, 0, width - 1, height), (1, 0, width, height)) if width > 1 else 0
    transitions += _changes(mask, (0, 0, width, height - 1), (0, 1, width, height)) if height > 1 else 0
    # Ink touching the image's edge has a boundary there too.
    transitions += sum(mask.crop(box).histogram()[255] for box in _edges(width, height))
    return 2.0 * area / max(1, transitions)


def _changes(mask: Image.Image, first: tuple[int, int, int, int], second: tuple[int, int, int, int]) -> int:
    """Pixels where the mask differs between two equally sized regions (its ink/paper transitions)."""
    return ImageChops.difference(mask.crop(first), mask.crop(second)).histogram()[255]


def _edges(width: int, height: int) -> list[tuple[int, int, int, int]]:
    return [(0, 0, width, 1), (0, height - 1, width, height), (0, 0, 1, height), (width - 1, 0, width, height)]


# --- the economy ------------------------------------------------------------------------------------------------


def prepare_pages(
    images: Sequence[Image.Image],
    caps: Capabilities,
    *,
    min_stroke_px: float = MIN_STROKE_PX,
    margin_px: int = MARGIN_PX,
    crop_to_ink: bool | Sequence[bool] = True,
) -> tuple[PageImage, ...]:
    """The pages to send to a backend with capabilities ``caps``: cropped, blank ones dropped, scaled and encoded
    as compactly as legibility allows. At least one page always comes back (for a non-empty input).

    ``crop_to_ink=False`` sends every page whole (a page shown for context, whose faded grey content is not ink):
    not cropped, never dropped as blank, encoded in 16 shades of grey so that light content stays visible; it is
    still scaled within the provider's limits and the legibility floor of whatever ink it carries. A sequence
    gives the choice per page (the pages still share the request's limits: image count, size, bytes)."""
    plans = plan_pages(images, caps, min_stroke_px=min_stroke_px, margin_px=margin_px, crop_to_ink=crop_to_ink)
    return tuple(page.image for page in plans if page.image is not None)


def prepare_encoded_pages(
    pages: Sequence[PageImage],
    caps: Capabilities,
    *,
    min_stroke_px: float = MIN_STROKE_PX,
    margin_px: int = MARGIN_PX,
    crop_to_ink: bool | Sequence[bool] = True,
) -> tuple[PageImage, ...]:
    """:func:`prepare_pages` for pages already encoded (as the reader's ``InputDocument.pages`` are): decodes
    them (a few milliseconds a page) and prepares them. A page Pillow cannot decode is sent unchanged."""
    decoded: list[Image.Image] = []
    for page in pages:
        try:
            with Image.open(io.BytesIO(page.data)) as image:
                image.load()
                decoded.append(as_grey(image))
        except (OSError, ValueError, Image.DecompressionBombError):
            return tuple(pages)
    return prepare_pages(decoded, caps, min_stroke_px=min_stroke_px, margin_px=margin_px, crop_to_ink=crop_to_ink)


def plan_pages(
    images: Sequence[Image.Image],
    caps: Capabilities,
    *,
    min_stroke_px: float = MIN_STROKE_PX,
    margin_px: int = MARGIN_PX,
    crop_to_ink: bool | Sequence[bool] = True,
) -> tuple[PreparedPage, ...]:
    """Like :func:`prepare_pages`, with what was done to each page (dropped pages included)."""
    greys = [as_grey(image) for image in images]
    masks = [ink_mask(grey) for grey in greys]
    crops = [crop_to_ink] * len(images) if isinstance(crop_to_ink, bool) else list(crop_to_ink)
    if len(crops) != len(images):
        raise ValueError("crop_to_ink needs one flag per page")
    inked = [not crop or mask.histogram()[255] >= BLANK_INK_PIXELS for crop, mask in zip(crops, masks, strict=True)]
    kept = sum(inked) or (1 if images else 0)
    if caps.max_images is not None and kept > caps.max_images:
        raise InputTooLargeError(
            f"The question has {kept} pages with writing, but this AI service accepts at most {caps.max_images} "
            "images at once.",
            f"Send at most {caps.max_images} pages per question.",
        )
    long_edge_limit = caps.long_edge_limit(kept)
    extra = 1.0
    for _attempt in range(8):
        plans: list[PreparedPage] = []
        for index, (grey, mask) in enumerate(zip(greys, masks, strict=True)):
            if inked[index]:
                plans.append(
                    _prepare(index, grey, mask, caps, long_edge_limit, min_stroke_px, margin_px, extra, crops[index])
                )
            elif index == 0 and not any(inked):
                plans.append(_prepare_blank(grey, caps, long_edge_limit, extra))
            else:
                plans.append(PreparedPage(index, None, True, (0, 0, 0, 0), 0.0, 0.0, 0))
        total = sum(caps.measured_size(len(p.image.data)) for p in plans if p.image is not None)
        if caps.max_request_bytes is None or total <= caps.max_request_bytes:
            return tuple(plans)
        extra *= 0.8 * math.sqrt(caps.max_request_bytes / total)
    raise InputTooLargeError(
        "The pages are too large for this AI service even after shrinking them.",
        "Send fewer pages per question.",
    )


def _prepare(
    index: int,
    grey: Image.Image,
    mask: Image.Image,
    caps: Capabilities,
    long_edge_limit: int | None,
    min_stroke_px: float,
    margin_px: int,
    extra: float,
    crop_to_ink: bool = True,
) -> PreparedPage:
    box = (mask.getbbox() if crop_to_ink else None) or (0, 0, grey.width, grey.height)
    margin = max(margin_px, 0)
    crop = (
        max(0, box[0] - margin),
        max(0, box[1] - margin),
        min(grey.width, box[2] + margin),
        min(grey.height, box[3] + margin),
    )
    region = grey.crop(crop)
    stroke = stroke_width(mask.crop(crop))
    width, height = region.size
    ceiling = max_useful_scale(caps, width, height, long_edge_limit) * extra
    floor = min(ceiling, min_stroke_px / stroke) if stroke > 0 else ceiling
    scale = _cheapest_scale(caps, width, height, floor, ceiling)
    for _attempt in range(12):
        bilevel = crop_to_ink and stroke * scale >= BILEVEL_MIN_STROKE_PX
        image = _encode(_resize(region, scale), caps, bilevel=bilevel, shades=4 if crop_to_ink else 16)
        if caps.max_image_bytes is None or caps.fits(len(image.data)):
            tokens = estimate_image_tokens(caps, image.width, image.height)
            return PreparedPage(index, image, False, crop, stroke, scale, tokens)
        scale *= 0.85 * math.sqrt(caps.max_image_bytes / caps.measured_size(len(image.data)))
    raise InputTooLargeError(
        f"Page {index + 1} is too large for this AI service even after shrinking it.",
        "Split the question over more pages.",
    )


def _prepare_blank(grey: Image.Image, caps: Capabilities, long_edge_limit: int | None, extra: float) -> PreparedPage:
    scale = min(max_useful_scale(caps, grey.width, grey.height, long_edge_limit), BLANK_PAGE_LONG_EDGE / max(grey.size))
    scale *= extra
    image = _encode(_resize(grey, scale), caps, bilevel=True)
    tokens = estimate_image_tokens(caps, image.width, image.height)
    return PreparedPage(0, image, True, (0, 0, grey.width, grey.height), 0.0, scale, tokens)


def max_useful_scale(caps: Capabilities, width: int, height: int, long_edge_limit: int | None = None) -> float:
    """The largest useful scale for a ``width`` × ``height`` image: never upscale, never past a hard limit
    (``long_edge_limit``) or the size the provider shrinks images to anyway, so also the scale at which the
    provider's model sees an image sent larger."""
    scale = 1.0
    long_side, short_side = max(width, height), min(width, height)
    for limit, side in (
        (long_edge_limit, long_side),
        (caps.recommended_long_edge_px, long_side),
        (caps.recommended_short_edge_px, short_side),
    ):
        if limit is not None:
            scale = min(scale, limit / side)
    if caps.recommended_max_pixels is not None:
        scale = min(scale, math.sqrt(caps.recommended_max_pixels / (width * height)))
    return scale


def _cheapest_scale(caps: Capabilities, width: int, height: int, floor: float, ceiling: float) -> float:
    """The largest scale in [floor, ceiling] among those with the fewest estimated tokens; or, by tile snapping,
    a scale up to ``SNAP_SLACK`` below that range when it saves ``SNAP_SAVING`` of the tokens."""

    def tokens(scale: float) -> int:
        return estimate_image_tokens(caps, _px(width * scale), _px(height * scale))

    best_scale, best_tokens = ceiling, tokens(ceiling)
    scale = ceiling
    while scale > floor:
        scale = max(floor, scale * _SCALE_STEP)
        if (count := tokens(scale)) < best_tokens:
            best_scale, best_tokens = scale, count
    at_floor = best_tokens
    while scale > floor * SNAP_SLACK:
        scale = max(floor * SNAP_SLACK, scale * _SCALE_STEP)
        if (count := tokens(scale)) <= at_floor * (1 - SNAP_SAVING) and count < best_tokens:
            best_scale, best_tokens = scale, count
    return best_scale


def _px(value: float) -> int:
    return max(1, round(value))


def _resize(image: Image.Image, scale: float) -> Image.Image:
    if scale >= 0.999:
        return image
    size = (_px(image.width * scale), _px(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(image: Image.Image, caps: Capabilities, *, bilevel: bool, shades: int = 4) -> PageImage:
    """The smallest legible encoding the provider accepts: black and white when strokes are wide enough to survive
    it, else four grey levels (``shades``: 4 or 16); as PNG or lossless WebP. Candidates are compared at a fast
    zlib level, and only the PNG that wins is compressed harder."""
    if bilevel:
        compact = image.point([255 if value >= BILEVEL_THRESHOLD else 0 for value in range(256)]).convert("1")
    else:
        levels = GREY_LEVELS if shades == len(GREY_LEVELS) else tuple(255 * i // (shades - 1) for i in range(shades))
        compact = image.point([min(shades - 1, value * shades // 256) for value in range(256)]).convert("P")
        compact.putpalette([level for level in levels for _ in range(3)])
    png_options: dict[str, object] = {} if bilevel else {"bits": 2 if shades <= 4 else 4}
    candidates: list[tuple[bytes, str]] = []
    if caps.accepts("image/png"):
        candidates.append((_save(compact, "PNG", compress_level=6, **png_options), "image/png"))
    if caps.accepts("image/webp"):
        candidates.append((_save(compact.convert("L"), "WEBP", lossless=True, quality=100, method=2), "image/webp"))
    if not candidates:  # a provider that takes neither PNG nor WebP: JPEG of the grey page
        candidates.append((_save(image, "JPEG", quality=85, optimize=True), "image/jpeg"))
    data, media_type = min(candidates, key=lambda candidate: len(candidate[0]))
    if media_type == "image/png":
        data = min(data, _save(compact, "PNG", optimize=True, **png_options), key=len)
    return PageImage(data, media_type, image.width, image.height)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()
