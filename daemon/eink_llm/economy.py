"""Page economy: send each provider the fewest image tokens and bytes that still show every pen stroke.

A tablet page is mostly white paper. For each page (a grayscale ``L`` image, as the reader decodes it at about
150 dpi), :func:`prepare_pages`:

1. finds the ink (:mod:`eink_llm.ink`: every mark of any grey, less the notebook's template), crops to it with a
   margin, and drops blank pages — but never all of them: if every page is blank, the first one goes, small, and
   the model can say it sees nothing;
2. estimates the pen's stroke width (:func:`stroke_width`) and never scales a page so far that strokes become
   thinner than ``min_stroke_px`` (2 px): thinner strokes break up and handwriting stops being legible;
3. within that, picks the scale the provider bills least for (:func:`estimate_image_tokens`: per OpenAI model
   512-px tiles — a page within 512 × 512 going at ``detail: low`` for the base price — or 32-px patches;
   Anthropic's pixel area, Gemini's 768-px tiles), never above what the provider downscales to anyway (sending
   more pixels only costs bytes) and never above its hard limits — hard limits win over legibility;
4. encodes a page in black ink in black and white (when strokes stay at least 1.5 px wide) or else in four grey
   levels, a page with grey ink (light pens, pencil, highlighter, colour) in 16 grey levels that keep it, as
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

from PIL import Image, ImageChops

from eink_llm.backends.base import Capabilities, PageImage
from eink_llm.errors import InputTooLargeError
from eink_llm.image_tokens import estimate_image_tokens
from eink_llm.ink import INK_THRESHOLD, Ink, dark_mask, find_ink, has_grey_ink, pen_masks

__all__ = [
    "INK_THRESHOLD",
    "PreparedPage",
    "ink_mask",
    "is_blank",
    "page_inks",
    "plan_pages",
    "prepare_pages",
    "stroke_width",
]

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
#: A page with grey ink (light pens, pencil, highlighter, colour) goes in 16 grey levels: after scaling, anything
#: darker than this is ink and keeps at least the lightest grey below white, so no light stroke turns into paper.
GREY_PAPER = 248
#: Strokes at least this wide (after scaling) survive black-and-white encoding unbroken; thinner ones keep their
#: grey anti-aliasing, which carries their shape.
BILEVEL_MIN_STROKE_PX = 1.5
#: A pixel of at least this HSV saturation is colour ink, and no lighter than ``COLOUR_INK_GREY`` (a pale
#: yellow highlighter, luma ~240, would otherwise pass for paper).
COLOUR_SATURATION = 64
COLOUR_INK_GREY = 224
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


# --- analysis ---------------------------------------------------------------------------------------------------


def as_grey(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit grey on white (transparent areas become paper). Colours go to their luma (ITU-R 601,
    as Pillow and PDFium convert), so different colours keep different greys; a coloured mark, however light (a
    pastel highlighter), is at most :data:`COLOUR_INK_GREY`, so it stays ink."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba).convert("RGB")
    if image.mode == "L":
        return image
    if image.mode != "P" and len(image.getbands()) == 1:
        return image.convert("L")
    rgb = image.convert("RGB")
    grey = rgb.convert("L")
    saturation = rgb.convert("HSV").getchannel("S")
    coloured = saturation.point([255 if value >= COLOUR_SATURATION else 0 for value in range(256)])
    if coloured.getbbox() is None:
        return grey
    cap = Image.composite(Image.new("L", grey.size, COLOUR_INK_GREY), Image.new("L", grey.size, 255), coloured)
    return ImageChops.darker(grey, cap)


def page_inks(images: Sequence[Image.Image]) -> tuple[Ink, ...]:
    """Each page's ink (:func:`~eink_llm.ink.find_ink` of its grey), to find it once and carry it to every stage
    that needs it: the page prints (:func:`eink_llm.inkdiff.make_print`) and :func:`prepare_pages`."""
    return tuple(find_ink(as_grey(image)) for image in images)


def ink_mask(grey: Image.Image) -> Image.Image:
    """255 where there is ink, 0 elsewhere (mode ``L``): every mark of any grey that is not the notebook's
    template (:mod:`eink_llm.ink`)."""
    return find_ink(as_grey(grey)).mask


def is_blank(image: Image.Image, ink: Ink | None = None) -> bool:
    """Whether a page has too little ink to be worth sending (the rule that drops blank pages; a page written only
    in light grey is not blank). ``ink``: the page's :func:`page_inks`, when found already."""
    return (ink if ink is not None else find_ink(as_grey(image))).pixels() < BLANK_INK_PIXELS


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
    inks: Sequence[Ink | None] | None = None,
) -> tuple[PageImage, ...]:
    """The pages to send to a backend with capabilities ``caps``: cropped, blank ones dropped, scaled and encoded
    as compactly as legibility allows. At least one page always comes back (for a non-empty input).
    ``inks``: the pages' :func:`page_inks`, where an earlier stage found them already (``None`` for the others).

    ``crop_to_ink=False`` sends every page whole (a page shown for context, whose faded grey content is not ink):
    not cropped, never dropped as blank, encoded in 16 shades of grey so that light content stays visible; it is
    still scaled within the provider's limits and the legibility floor of whatever ink it carries. A sequence
    gives the choice per page (the pages still share the request's limits: image count, size, bytes)."""
    plans = plan_pages(
        images, caps, min_stroke_px=min_stroke_px, margin_px=margin_px, crop_to_ink=crop_to_ink, inks=inks
    )
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
    inks: Sequence[Ink | None] | None = None,
) -> tuple[PreparedPage, ...]:
    """Like :func:`prepare_pages`, with what was done to each page (dropped pages included)."""
    greys = [as_grey(image) for image in images]
    if inks is not None and len(inks) != len(images):
        raise ValueError("inks needs one ink (or None) per page")
    given: Sequence[Ink | None] = inks if inks is not None else [None] * len(greys)
    found = [ink if ink is not None else find_ink(grey) for grey, ink in zip(greys, given, strict=True)]
    crops = [crop_to_ink] * len(images) if isinstance(crop_to_ink, bool) else list(crop_to_ink)
    if len(crops) != len(images):
        raise ValueError("crop_to_ink needs one flag per page")
    inked = [not crop or ink.pixels() >= BLANK_INK_PIXELS for crop, ink in zip(crops, found, strict=True)]
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
        for index, (grey, ink) in enumerate(zip(greys, found, strict=True)):
            if inked[index]:
                plans.append(
                    _prepare(index, grey, ink, caps, long_edge_limit, min_stroke_px, margin_px, extra, crops[index])
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
    ink: Ink,
    caps: Capabilities,
    long_edge_limit: int | None,
    min_stroke_px: float,
    margin_px: int,
    extra: float,
    crop_to_ink: bool = True,
) -> PreparedPage:
    # A page with grey ink is cut around all of it; a page in black ink around its dark strokes (the margin holds
    # their anti-aliased rims), as before grey ink counted, so black pages cost no more than they did.
    inked = ink.mask.getbbox() if crop_to_ink else None
    grey_ink = inked is not None and has_grey_ink(grey.crop(inked), ink.mask.crop(inked), ink.lines.crop(inked))
    box = None
    if crop_to_ink:
        box = (ink.mask if grey_ink else dark_mask(grey, ink.mask)).getbbox() or ink.mask.getbbox()
    box = box or (0, 0, grey.width, grey.height)
    margin = max(margin_px, 0)
    crop = (
        max(0, box[0] - margin),
        max(0, box[1] - margin),
        min(grey.width, box[2] + margin),
        min(grey.height, box[3] + margin),
    )
    # A page sent whole keeps everything (its faded context too); a cropped page only its ink, on white paper.
    region = ink.clean(grey).crop(crop) if crop_to_ink else grey.crop(crop)
    mask = ink.mask.crop(crop)
    # The pen width comes from the dark ink (the grey rim of a black stroke is no pen of its own); with grey ink,
    # from the thinnest of its black, mid grey and light grey pens (a thick grey marker beside a thin black pen).
    if grey_ink:
        pens = [pen for pen in pen_masks(region, mask) if pen.histogram()[255] >= BLANK_INK_PIXELS]
    else:
        dark = dark_mask(grey.crop(crop), mask if crop_to_ink else None)
        pens = [dark] if dark.histogram()[255] >= BLANK_INK_PIXELS or not crop_to_ink else []
    stroke = min(stroke_width(pen) for pen in pens) if pens else stroke_width(mask)
    width, height = region.size
    ceiling = max_useful_scale(caps, width, height, long_edge_limit) * extra
    floor = min(ceiling, min_stroke_px / stroke) if stroke > 0 else ceiling
    scale = _cheapest_scale(caps, width, height, floor, ceiling)
    for _attempt in range(12):
        bilevel = crop_to_ink and not grey_ink and stroke * scale >= BILEVEL_MIN_STROKE_PX
        shades = 16 if grey_ink or not crop_to_ink else 4
        image = _encode(_resize(region, scale), caps, bilevel=bilevel, shades=shades)
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
    it, else four grey levels (``shades`` 4: black ink with thin strokes) or 16 (grey ink, or a page sent whole:
    everything darker than :data:`GREY_PAPER` keeps a grey below white); as PNG or lossless WebP. Candidates are
    compared at a fast zlib level, and only the PNG that wins is compressed harder."""
    if bilevel:
        compact = image.point([255 if value >= BILEVEL_THRESHOLD else 0 for value in range(256)]).convert("1")
    elif shades == len(GREY_LEVELS):
        compact = image.point([min(shades - 1, value * shades // 256) for value in range(256)]).convert("P")
        compact.putpalette([level for level in GREY_LEVELS for _ in range(3)])
    else:
        top = shades - 1
        table = [top if value >= GREY_PAPER else min(top - 1, round(value * top / 255)) for value in range(256)]
        compact = image.point(table).convert("P")
        compact.putpalette([255 * i // top for i in range(shades) for _ in range(3)])
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
