"""Every mark the user made reaches the model (issue 19): grey pens, pencil, highlighter and colour.

Pages are generated with known strokes (black and greys 120/160/200/220, a highlighter band under black words) on
blank, lined, grid and dotted templates; each goes through the page economy, the image sent is decoded and scaled
back onto the page, and every stroke must be there (ink recall ≥ 0.98 against the known stroke mask) while the
template is gone (≤ 2 % of its pixels kept). The Supernote's own PDF exports (tests/data/supernote, Apache-2.0)
keep every pen, the light grey one included.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from eink_llm.backends import Capabilities
from eink_llm.backends.base import PageImage
from eink_llm.config import DEFAULT_SYSTEM_PROMPT
from eink_llm.economy import (
    BLANK_INK_PIXELS,
    PreparedPage,
    as_grey,
    ink_mask,
    is_blank,
    plan_pages,
    prepare_encoded_pages,
)
from eink_llm.ink import find_ink
from eink_llm.inkdiff import new_ink
from eink_llm.reader import read_input

SIZE = (932, 1243)  # a reMarkable 2 page at the reader's 150 dpi
PNG_ONLY = Capabilities(media_types=("image/png",))
WEBP_TOO = Capabilities(media_types=("image/png", "image/webp"), recommended_max_pixels=1_150_000)
STROKE_GREYS = (0, 120, 160, 200, 220)
HIGHLIGHTER_GREY = 215
SUPERNOTE = Path(__file__).parent / "data" / "supernote"
#: A pixel of the sent image (scaled back) darker than this shows a mark.
SHOWN = 240


def template(kind: str) -> Image.Image:
    """A notebook template as tablets export it."""
    image = Image.new("L", SIZE, 255)
    draw = ImageDraw.Draw(image)
    if kind == "lined":  # ruled lines with a margin at each side
        for y in range(120, 1200, 42):
            draw.line([(40, y), (SIZE[0] - 40, y)], fill=190, width=2)
    elif kind == "grid":  # 5 mm squares over the whole page
        for y in range(10, SIZE[1], 30):
            draw.line([(0, y), (SIZE[0], y)], fill=205, width=1)
        for x in range(10, SIZE[0], 30):
            draw.line([(x, 0), (x, SIZE[1])], fill=205, width=1)
    elif kind == "dotted":  # 3 px dots every 5 mm
        for y in range(15, SIZE[1], 30):
            for x in range(15, SIZE[0], 30):
                draw.rectangle([x - 1, y - 1, x + 1, y + 1], fill=150)
    return image


class Page:
    """A generated page and what is on it: the strokes' masks (one per grey, and the highlighter band)."""

    def __init__(self, kind: str, *, greys: tuple[int, ...] = STROKE_GREYS, highlight: bool = True, seed: int = 1):
        self.image = template(kind)
        self.template = ImageChops.invert(self.image).point([0] + [255] * 255)
        self.strokes = Image.new("L", SIZE, 0)
        self.marks: dict[str, Image.Image] = {}
        rng = random.Random(seed)
        if highlight:
            self._draw("highlight", [(80, 800), (600, 800)], HIGHLIGHTER_GREY, 26)
        y = 140
        for grey in greys:
            for word in range(4):  # four "words" of zigzag handwriting per grey, crossing the template
                x0 = 60 + word * 200
                self._draw(f"grey {grey}", [(x0 + i * 6, y + rng.uniform(-18, 18)) for i in range(25)], grey, 3)
            y += 110
        if highlight:  # black words over the band
            self._draw("over the band", [(100 + i * 6, 800 + (i % 3 - 1) * 8) for i in range(80)], 0, 3)

    def _draw(self, name: str, points: list[tuple[float, float]], grey: int, width: int) -> None:
        ImageDraw.Draw(self.image).line(points, fill=grey, width=width, joint="curve")
        for mask in (self.strokes, self.marks.setdefault(name, Image.new("L", SIZE, 0))):
            ImageDraw.Draw(mask).line(points, fill=255, width=width, joint="curve")

    def template_alone(self, distance: int = 3) -> Image.Image:
        """Template pixels farther than ``distance`` px from every stroke (a stroke's blurred edge is the stroke's)."""
        near = self.strokes.filter(ImageFilter.MaxFilter(2 * distance + 1))
        return ImageChops.subtract(self.template, near)


def sent_page(plan: PreparedPage, size: tuple[int, int]) -> Image.Image:
    """The image sent for ``plan``, scaled back onto a white page of ``size`` where it was cut out."""
    page = Image.new("L", size, 255)
    if plan.image is not None:
        x0, y0, x1, y1 = plan.crop
        with Image.open(io.BytesIO(plan.image.data)) as image:
            back = image.convert("L").resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR)
        page.paste(back, (x0, y0))
    return page


def shown(image: Image.Image) -> Image.Image:
    return image.point([255 if value < SHOWN else 0 for value in range(256)])


def share(part: Image.Image, whole: Image.Image) -> float:
    """Share of ``whole``'s pixels (a 0/255 mask) that are also in ``part``."""
    total = whole.histogram()[255]
    return ImageChops.darker(part, whole).histogram()[255] / total if total else 1.0


def median_grey(image: Image.Image, mask: Image.Image) -> int:
    histogram = image.histogram(mask=mask)
    half, seen = sum(histogram) / 2, 0
    for value, count in enumerate(histogram):
        seen += count
        if seen >= half:
            return value
    return 255


def encoded_levels(plan: PreparedPage) -> int:
    """How many grey levels the sent image uses."""
    assert plan.image is not None
    with Image.open(io.BytesIO(plan.image.data)) as image:
        colours = image.convert("L").getcolors(256)
    assert colours is not None
    return len(colours)


# --- generated pages ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("caps", [PNG_ONLY, WEBP_TOO], ids=["png", "webp-shrunk"])
@pytest.mark.parametrize("kind", ["blank", "lined", "grid", "dotted"])
def test_every_stroke_is_sent_and_the_template_is_not(kind: str, caps: Capabilities) -> None:
    page = Page(kind)
    [plan] = plan_pages([page.image], caps)
    assert plan.image is not None
    sent = sent_page(plan, SIZE)
    ink = shown(sent)
    assert share(ink, page.strokes) >= 0.98, f"recall {share(ink, page.strokes):.4f}"
    for name, mask in page.marks.items():  # each pen on its own, not just on average
        assert share(ink, mask) >= 0.98, f"{name}: recall {share(ink, mask):.4f}"
    if kind != "blank":
        alone = page.template_alone()
        assert alone.histogram()[255] > 5000  # the template is really there to remove
        assert share(ink, alone) <= 0.02, f"template kept {share(ink, alone):.4f}"


@pytest.mark.parametrize("kind", ["blank", "lined", "grid", "dotted"])
def test_greys_stay_distinct_from_black_and_the_highlighter_band_visible(kind: str) -> None:
    page = Page(kind)
    [plan] = plan_pages([page.image], PNG_ONLY)
    sent = sent_page(plan, SIZE)
    assert encoded_levels(plan) > 4  # grey ink goes out in enough grey levels
    cores = {name: mask.filter(ImageFilter.MinFilter(3)) for name, mask in page.marks.items() if name != "highlight"}
    medians = {name: median_grey(sent, core) for name, core in cores.items()}
    for grey in STROKE_GREYS:
        assert abs(medians[f"grey {grey}"] - grey) <= 12, medians  # each pen keeps its own grey
    # The band where no word lies over it: visible, light, and far from the black words on it.
    words = page.marks["over the band"].filter(ImageFilter.MaxFilter(7))
    band = ImageChops.subtract(page.marks["highlight"], words).filter(ImageFilter.MinFilter(3))
    assert 190 <= median_grey(sent, band) <= 232
    assert median_grey(sent, cores["over the band"]) <= 40


def test_black_ink_keeps_the_compact_one_bit_encoding() -> None:
    for kind in ("blank", "lined", "grid", "dotted"):
        page = Page(kind, greys=(0,), highlight=False)
        [plan] = plan_pages([page.image], PNG_ONLY)
        assert encoded_levels(plan) == 2, kind
        assert share(shown(sent_page(plan, SIZE)), page.strokes) >= 0.98


def jpeg(image: Image.Image, quality: int = 75) -> Image.Image:
    """``image`` after a round trip through JPEG (a tablet that exports pictures, a scan)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return decoded.convert("L")


def test_jpeg_ringing_is_not_grey_ink_but_a_light_word_is() -> None:
    black = Page("lined", greys=(0,), highlight=False)
    [plan] = plan_pages([jpeg(black.image)], PNG_ONLY)
    assert encoded_levels(plan) == 2  # the specks around black strokes do not make it a grey page
    assert share(shown(sent_page(plan, SIZE)), black.strokes) >= 0.98
    mixed = Page("lined", greys=(0, 0, 0, 201), highlight=False)
    [plan] = plan_pages([jpeg(mixed.image)], PNG_ONLY)
    assert encoded_levels(plan) > 4
    assert share(shown(sent_page(plan, SIZE)), mixed.marks["grey 201"]) >= 0.98


def test_blank_and_crop_use_the_same_ink_rule() -> None:
    light = Page("lined", greys=(220,), highlight=False)
    assert not is_blank(light.image)  # a page written only in light grey is not blank
    [plan] = plan_pages([light.image], PNG_ONLY)
    box = light.strokes.getbbox()
    assert box is not None and not plan.blank
    assert plan.crop[0] <= box[0] and plan.crop[1] <= box[1] and plan.crop[2] >= box[2] and plan.crop[3] >= box[3]
    assert plan.crop[2] - plan.crop[0] < SIZE[0] - 60  # cropped to the writing, not to the template's lines
    for kind in ("lined", "grid", "dotted"):
        empty = template(kind)
        assert is_blank(empty), kind  # a template alone asks nothing
        assert ink_mask(empty).histogram()[255] < BLANK_INK_PIXELS
        [dropped, kept] = plan_pages([empty, light.image], PNG_ONLY)
        assert dropped.blank and dropped.image is None and not kept.blank


def test_a_handwritten_full_stop_is_not_a_template_dot() -> None:
    image = template("dotted")
    draw = ImageDraw.Draw(image)
    draw.line([(200, 400), (400, 420)], fill=0, width=3)
    draw.rectangle([406, 418, 408, 420], fill=0)  # a full stop between the lattice's dots
    ink = find_ink(image)
    assert ink.mask.getpixel((407, 419)) == 255
    assert ink.mask.getpixel((405, 405)) == 0  # a lattice dot


def test_a_highlighter_band_across_the_page_is_not_a_ruled_line() -> None:
    image = Page("lined", greys=(0,), highlight=False).image
    ImageDraw.Draw(image).line([(20, 600), (SIZE[0] - 20, 600)], fill=HIGHLIGHTER_GREY, width=24)
    band = Image.new("L", SIZE, 0)
    ImageDraw.Draw(band).line([(20, 600), (SIZE[0] - 20, 600)], fill=255, width=24)
    assert share(find_ink(image).mask, band.filter(ImageFilter.MinFilter(5))) >= 0.98


def test_colour_ink_stays_ink_and_colours_stay_apart() -> None:
    colours = {"red": (217, 7, 7), "blue": (0, 98, 204), "green": (0, 170, 0), "yellow": (255, 237, 0)}
    image = Image.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for n, colour in enumerate(colours.values()):
        draw.line([(100, 200 + 150 * n), (800, 230 + 150 * n)], fill=colour, width=5)
    draw.line([(100, 900), (800, 900)], fill=(255, 250, 150), width=20)  # a pale highlighter
    grey = as_grey(image)
    greys = [grey.getpixel((450, 215 + 150 * n)) for n in range(len(colours))]
    assert len(set(greys)) == len(greys)  # distinct colours, distinct greys
    assert grey.getpixel((450, 900)) < 236  # the pale highlighter is ink, not paper
    [plan] = plan_pages([image], PNG_ONLY)
    sent = sent_page(plan, SIZE)
    sent_greys = [sent.getpixel((450, 215 + 150 * n)) for n in range(len(colours))]
    pairs = [(i, j) for i in range(len(greys)) for j in range(len(greys)) if greys[i] < greys[j]]
    assert len(pairs) == len(greys) * (len(greys) - 1) // 2
    for i, j in pairs:  # still apart, and in the same order
        assert sent_greys[j] - sent_greys[i] >= 8, sent_greys
    assert sent.getpixel((450, 900)) < SHOWN


def test_new_ink_in_light_grey_is_new_ink() -> None:
    before = Page("lined", greys=(0,), highlight=False).image
    after = before.copy()
    # Supernote light grey, between two ruled lines (y 1002 and 1044)
    ImageDraw.Draw(after).line([(100, 1020), (500, 1032), (700, 1012)], fill=201, width=3)
    found = new_ink(before, after)
    assert found is not None
    assert found.bbox[0] <= 101 and found.bbox[2] >= 699 and 1005 <= found.bbox[1] <= 1012


def test_the_prompt_says_highlights_are_emphasis() -> None:
    prompt = DEFAULT_SYSTEM_PROMPT.lower()
    assert "highlight" in prompt and "emphasis" in prompt and "grey" in prompt


# --- the Supernote's own exports ------------------------------------------------------------------------------

#: The Supernote's pen greys as its PDF export draws them: black, dark grey, light grey.
SUPERNOTE_PENS = (0, 157, 201)


def supernote_pages(name: str) -> list[Image.Image]:
    document = read_input(SUPERNOTE / name)
    pages = []
    for page in document.pages:
        with Image.open(io.BytesIO(page.data)) as image:
            image.load()
            pages.append(as_grey(image))
    return pages


@pytest.mark.parametrize(
    "name", ["stroke-n5-20260016-isolation-tools-colors-widths.pdf", "erase-n5-20260016-mixed-colors.pdf"]
)
def test_supernote_exports_keep_every_pen(name: str) -> None:
    pages = supernote_pages(name)
    plans = plan_pages(pages, PNG_ONLY)
    seen: set[int] = set()
    for page, plan in zip(pages, plans, strict=True):
        sent = shown(sent_page(plan, page.size))
        for pen in SUPERNOTE_PENS:
            # The pen's own pixels (its grey, ±3), not the anti-aliased rim of another pen.
            core = page.point([255 if abs(value - pen) <= 3 else 0 for value in range(256)])
            if core.histogram()[255] < 200:
                continue
            seen.add(pen)
            assert share(sent, core) >= 0.98, (plan.index, pen, share(sent, core))
    assert seen == set(SUPERNOTE_PENS)  # the files do hold all three pens


def test_supernote_light_grey_stroke_reaches_the_model_distinct_from_black() -> None:
    """Issue 19's case: page 3 holds one stroke each in black, dark grey and light grey (201)."""
    page = supernote_pages("stroke-n5-20260016-isolation-tools-colors-widths.pdf")[2]
    encoded = io.BytesIO()
    page.save(encoded, "PNG")
    [image] = prepare_encoded_pages([PageImage(encoded.getvalue(), "image/png", *page.size)], PNG_ONLY)
    [plan] = plan_pages([page], PNG_ONLY)
    assert plan.image is not None and plan.image.data == image.data
    sent = sent_page(plan, page.size)
    medians = {}
    for pen in SUPERNOTE_PENS:
        core = page.point([255 if value == pen else 0 for value in range(256)]).filter(ImageFilter.MinFilter(3))
        assert core.histogram()[255] > 100
        medians[pen] = median_grey(sent, core)
    assert medians[0] <= 30 and 140 <= medians[157] <= 175 and 190 <= medians[201] <= 225, medians


def test_supernote_lined_template_is_removed_and_the_writing_kept() -> None:
    """The A5X's own lined template: rules in many greys (thin rules fall across pixel rows), a margin rule."""
    [page] = supernote_pages("ink-a5x-2.14.28-old-pen-width.pdf")
    [plan] = plan_pages([page], PNG_ONLY)
    assert plan.image is not None
    x0, y0, _, y1 = plan.crop
    assert (y1 - y0) < 0.3 * page.height and x0 > 60  # the writing at the top, not the ruled page and its margin
    sent = shown(sent_page(plan, page.size))
    black = page.point([255 if value <= 3 else 0 for value in range(256)])
    assert share(sent, black) >= 0.98
    # The rules (and the margin rule) away from the writing: many on the page, none of them sent.
    rules = ImageChops.subtract(
        page.point([255 if 100 <= value < 236 else 0 for value in range(256)]), black.filter(ImageFilter.MaxFilter(9))
    )
    assert rules.histogram()[255] > 20_000
    assert share(sent, rules) <= 0.02


def test_dense_hatching_is_ink_not_a_template() -> None:
    hatched = Image.new("L", (400, 400), 255)
    draw = ImageDraw.Draw(hatched)
    for y in range(0, 400, 4):  # a filled area drawn as stripes 4 px apart: nothing like ruled paper
        draw.line([(0, y), (400, y)], fill=0, width=2)
    assert not is_blank(hatched)
    assert share(ink_mask(hatched), hatched.point([255 if v < 128 else 0 for v in range(256)])) == 1.0
