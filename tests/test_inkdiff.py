"""Finding the user's new ink on pages that come back from the tablet, on real PDFs.

Answers are rendered with our renderer and rasterized with pypdfium2 as the reader would ("the page the tablet
shows"); notebook pages are vector PDFs drawn with reportlab like a tablet's export. Handwriting is drawn with PIL
on top. A re-export is simulated by rendering again at another resolution (226 ppi is the reMarkable screen) and
shifting by a few pixels.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from reportlab.lib.colors import Color
from reportlab.pdfgen import canvas

from eink_llm.inkdiff import (
    COMPARE_LONG_EDGE,
    FADE_LEVEL,
    NewInk,
    compare_pages,
    load_print,
    make_print,
    new_ink,
    print_digest,
    rasterize_pdf,
)
from eink_llm.reader import PDFIUM_LOCK
from eink_llm.render import RenderMeta, render_answer

Box = tuple[int, int, int, int]
Stroke = Callable[[ImageDraw.ImageDraw, float], Box]  # draws at a scale (1.0 = 150 dpi), returns its box

META = RenderMeta(
    title="Photosynthesis",
    conversation_id="conv_20260101_000000_abcdef12",
    exchange=1,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)
ANSWER = (
    "# Photosynthesis\n\n"
    "Plants convert light energy into chemical energy. The overall formula is "
    "$6CO_2 + 6H_2O \\to C_6H_{12}O_6 + 6O_2$, and it happens in the chloroplasts.\n\n"
    "- light reactions\n- the Calvin cycle\n"
)
COMMON_WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one had by word "
    "but not what all were we when your can said there use an each which she do how their if will up other about"
)
WORDS = COMMON_WORDS.split()
# Several pages of varied text (a line-for-line repeated text would make different pages look alike).
VARIED_ANSWER = "\n\n".join(
    " ".join(WORDS[(n * 7 + i * i * 3 + i) % len(WORDS)] for i in range(70)) + "." for n in range(14)
)
LONG_ANSWER = "\n\n".join(
    f"Paragraph {n}: the quick brown fox jumps over the lazy dog, while $E = mc^2$ and $a^2 + b^2 = c^2$ hold."
    for n in range(40)
)
PAGE_PT = (447.3, 596.4)  # reMarkable 2 page in points


# --- helpers ---------------------------------------------------------------------------------------------


def render_pages(pdf: bytes, dpi: float) -> list[Image.Image]:
    """Every page of ``pdf`` in grayscale at ``dpi``, as the reader rasterizes an export."""
    pages = []
    with PDFIUM_LOCK:
        document = pdfium.PdfDocument(pdf)
        try:
            for index in range(len(document)):
                page = document[index]
                bitmap = page.render(scale=dpi / 72, grayscale=True)
                pages.append(bitmap.to_pil().convert("L").copy())
                bitmap.close()
                page.close()
        finally:
            document.close()
    return pages


def word_box(pdf: bytes, word: str, dpi: float) -> Box:
    """Pixel box of the first occurrence of ``word`` on page 1, from the PDF's text layer."""
    with PDFIUM_LOCK:
        document = pdfium.PdfDocument(pdf)
        try:
            page = document[0]
            height = page.get_height()
            text = page.get_textpage()
            searcher = text.search(word)
            found = searcher.get_next()
            assert found is not None, f"{word!r} not on the page"
            start, count = found
            boxes = [text.get_charbox(i) for i in range(start, start + count)]
            searcher.close()
            text.close()
            page.close()
        finally:
            document.close()
    s = dpi / 72
    left, right = min(b[0] for b in boxes), max(b[2] for b in boxes)
    bottom, top = min(b[1] for b in boxes), max(b[3] for b in boxes)
    return (int(left * s), int((height - top) * s), math.ceil(right * s), math.ceil((height - bottom) * s))


def shifted(image: Image.Image, dx: int, dy: int) -> Image.Image:
    out = Image.new("L", image.size, 255)
    out.paste(image, (dx, dy))
    return out


def handwriting(x: float, y: float, length: float = 260, seed: int = 0) -> Stroke:
    """A cursive-looking line: loops of varying height along a slightly wavy baseline (150 dpi coordinates)."""

    def draw(d: ImageDraw.ImageDraw, scale: float) -> Box:
        points = []
        for i in range(int(length / 2)):
            t = i * 2.0
            h = 9 + 5 * math.sin(0.07 * t + seed)
            points.append(((x + t + 6 * math.sin(0.5 * t)) * scale, (y - h * abs(math.sin(0.25 * t + seed))) * scale))
        d.line(points, fill=0, width=max(3, round(3 * scale)), joint="curve")
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        return (int(min(xs)), int(min(ys)), math.ceil(max(xs)), math.ceil(max(ys)))

    return draw


def circle(box: Box, pad: int = 7) -> Stroke:
    """An ellipse around ``box`` (given at 150 dpi)."""

    def draw(d: ImageDraw.ImageDraw, scale: float) -> Box:
        x0, y0, x1, y1 = (round((v - pad if i < 2 else v + pad) * scale) for i, v in enumerate(box))
        d.ellipse((x0, y0, x1, y1), outline=0, width=max(3, round(3 * scale)))
        return (x0, y0, x1, y1)

    return draw


def annotate(page: Image.Image, strokes: Sequence[Stroke], scale: float = 1.0) -> tuple[Image.Image, Image.Image, Box]:
    """(the page with the strokes, the strokes alone on white, the strokes' union box)."""
    annotated, alone = page.copy(), Image.new("L", page.size, 255)
    boxes = [stroke(ImageDraw.Draw(annotated), scale) for stroke in strokes]
    for stroke in strokes:
        stroke(ImageDraw.Draw(alone), scale)
    union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    return annotated, alone, union


def dark(image: Image.Image, below: int = 128) -> Image.Image:
    return image.point([255 if v < below else 0 for v in range(256)])


def count_dark(image: Image.Image, below: int = 128) -> int:
    return sum(image.histogram()[:below])


def contains(outer: Box, inner: Box, slack: int = 3) -> bool:
    return (
        outer[0] <= inner[0] + slack
        and outer[1] <= inner[1] + slack
        and outer[2] >= inner[2] - slack
        and outer[3] >= inner[3] - slack
    )


def around(box: Box, n: int = 8) -> Box:
    return (box[0] - n, box[1] - n, box[2] + n, box[3] + n)


def assert_only_strokes_in_crop(found: NewInk, alone: Image.Image) -> None:
    """Every dark pixel of the crop lies on (or within 2 px of) a drawn stroke: nothing of the original shows."""
    allowed = dark(alone.filter(ImageFilter.MinFilter(5))).crop(found.crop_box)
    stray = ImageChops.subtract(dark(found.crop), allowed)
    assert stray.getbbox() is None, f"crop has dark pixels that are not new ink at {stray.getbbox()}"


def notebook_pdf(pages: Sequence[Sequence[tuple[float, float, float]]]) -> bytes:
    """A tablet-like notebook export: light-grey template lines, and per page "handwritten" lines given as
    (x, y, length) in points from the top left, drawn as vector pen strokes."""
    buffer = io.BytesIO()
    c = canvas.Canvas(buffer, pagesize=PAGE_PT, invariant=1)
    width, height = PAGE_PT
    for lines in pages:
        c.setStrokeColor(Color(0.82, 0.82, 0.82))  # template ruling: not ink
        c.setLineWidth(0.6)
        for rule in range(60, int(height) - 30, 24):
            c.line(30, height - rule, width - 30, height - rule)
        c.setStrokeColor(Color(0, 0, 0))
        c.setLineWidth(1.5)
        c.setLineCap(1)
        c.setLineJoin(1)
        for n, (x, y, length) in enumerate(lines):
            path = c.beginPath()
            path.moveTo(x, height - y)
            for i in range(1, int(length / 1.5)):
                t = i * 1.5
                path.lineTo(x + t + 3 * math.sin(0.5 * t), height - (y - 5 * abs(math.sin(0.2 * t + n))))
            c.drawPath(path, stroke=1, fill=0)
        c.showPage()
    c.save()
    return buffer.getvalue()


NOTEBOOK = [
    [(40, 80, 300), (40, 104, 220), (40, 128, 260)],
    [(40, 80, 180), (60, 152, 330), (40, 176, 120)],
    [(40, 80, 90), (200, 80, 150), (40, 200, 320), (40, 224, 200), (40, 248, 250)],
]


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def answer_pdf() -> bytes:
    return render_answer(ANSWER, META, device="remarkable2")


@pytest.fixture(scope="module")
def shown(answer_pdf: bytes) -> Image.Image:
    """The answer page as the tablet shows it and the reader rasterizes it (150 dpi)."""
    return render_pages(answer_pdf, 150)[0]


@pytest.fixture(scope="module")
def known(answer_pdf: bytes) -> Image.Image:
    return rasterize_pdf(answer_pdf)[0]


@pytest.fixture(scope="module")
def blank_line_y(shown: Image.Image) -> int:
    """A baseline in the empty lower part of the answer page (checked empty, so the test means something)."""
    y = int(shown.height * 0.62)
    assert shown.crop((60, y - 40, shown.width - 60, y + 80)).getextrema() == (255, 255)
    return y


# --- new_ink on an answer page ---------------------------------------------------------------------------


@pytest.mark.parametrize(("dpi", "dx", "dy"), [(150, 0, 0), (226, 1, 1), (150, 2, -2)])
def test_finds_exactly_the_added_strokes(
    answer_pdf: bytes, known: Image.Image, blank_line_y: int, dpi: int, dx: int, dy: int
) -> None:
    page = shifted(render_pages(answer_pdf, dpi)[0], dx, dy)
    word = word_box(answer_pdf, "formula", 150)
    strokes = [handwriting(80, blank_line_y), handwriting(80, blank_line_y + 40, 180, seed=2), circle(word)]
    annotated, alone, union = annotate(page, strokes, dpi / 150)

    found = new_ink(known, annotated, page_index=3)

    assert found is not None
    assert found.page_index == 3
    assert contains(found.bbox, union), (found.bbox, union)
    assert contains(around(union), found.bbox, 0), (found.bbox, union)
    assert found.touches_old  # the circle is around our text
    assert_only_strokes_in_crop(found, alone)
    assert count_dark(found.crop) > 0.6 * count_dark(alone)  # the strokes are there, minus where they cross text
    assert found.crop.size == (found.crop_box[2] - found.crop_box[0], found.crop_box[3] - found.crop_box[1])
    assert found.context.size == annotated.size


def test_writing_in_empty_space_does_not_touch_old(known: Image.Image, shown: Image.Image, blank_line_y: int) -> None:
    annotated, alone, union = annotate(shown, [handwriting(80, blank_line_y), handwriting(90, blank_line_y + 40)])
    found = new_ink(known, annotated)
    assert found is not None
    assert not found.touches_old
    assert contains(found.bbox, union)
    assert_only_strokes_in_crop(found, alone)


def test_circle_around_a_word_touches_old(answer_pdf: bytes, known: Image.Image, shown: Image.Image) -> None:
    word = word_box(answer_pdf, "chloroplasts", 150)
    annotated, alone, union = annotate(shown, [circle(word, pad=9)])
    found = new_ink(known, annotated)
    assert found is not None
    assert found.touches_old
    assert contains(found.bbox, union)
    assert_only_strokes_in_crop(found, alone)
    # The word itself is not in the crop (checked above) but is in the context, faded.
    word_ink = ImageChops.subtract(dark(shown), dark(alone.filter(ImageFilter.MinFilter(7)))).crop(word)
    assert word_ink.getbbox() is not None
    low, _ = Image.composite(found.context.crop(word), Image.new("L", word_ink.size, 255), word_ink).getextrema()
    assert isinstance(low, int) and low >= FADE_LEVEL - 1


def test_context_fades_old_content_and_keeps_new_ink(known: Image.Image, shown: Image.Image, blank_line_y: int) -> None:
    annotated, alone, _ = annotate(shown, [handwriting(80, blank_line_y)])
    found = new_ink(known, annotated)
    assert found is not None
    old_text = ImageChops.subtract(dark(shown), dark(alone.filter(ImageFilter.MinFilter(7))))
    faded = Image.composite(found.context, Image.new("L", shown.size, 255), old_text)
    low, _ = faded.getextrema()
    assert isinstance(low, int) and low >= FADE_LEVEL - 1  # every old ink pixel is light grey now
    assert count_dark(found.context, 100) > 0.8 * count_dark(alone, 100)  # the new ink is still black


@pytest.mark.parametrize(
    ("dpi", "dx", "dy"), [(150, 0, 0), (226, 0, 0), (100, 0, 0), (150, 1, 1), (226, -1, 1), (150, 3, -2)]
)
def test_same_page_re_exported_is_nothing_new(
    answer_pdf: bytes, known: Image.Image, dpi: int, dx: int, dy: int
) -> None:
    page = shifted(render_pages(answer_pdf, dpi)[0], dx, dy)
    assert new_ink(known, page) is None
    assert new_ink(load_print(make_print(render_pages(answer_pdf, 150)[0])), page) is None  # against a print


def test_specks_are_not_new_ink(known: Image.Image, shown: Image.Image, blank_line_y: int) -> None:
    page = shown.copy()
    specks = [(300, blank_line_y), (700, blank_line_y + 120), (850, 1100)]
    for x, y in specks:  # dots of dust, 3 px across
        ImageDraw.Draw(page).ellipse((x, y, x + 2, y + 2), fill=0)
    assert new_ink(known, page) is None
    # With real writing elsewhere, the specks neither widen the box nor show in the crop.
    annotated, alone, union = annotate(page, [handwriting(80, blank_line_y + 60, 150)])
    found = new_ink(known, annotated)
    assert found is not None
    assert contains(found.bbox, union) and contains(around(union), found.bbox, 0)
    assert_only_strokes_in_crop(found, alone)


@pytest.mark.parametrize("quality", [85, 40])
def test_jpeg_export_of_the_same_page_is_nothing_new(known: Image.Image, shown: Image.Image, quality: int) -> None:
    data = io.BytesIO()
    shown.save(data, "JPEG", quality=quality)
    assert new_ink(known, Image.open(io.BytesIO(data.getvalue()))) is None


# --- compare_pages on notebooks ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def notebook_prints() -> list[Image.Image]:
    """The notebook as answered before, stored as prints."""
    return [load_print(make_print(page)) for page in render_pages(notebook_pdf(NOTEBOOK), 150)]


@pytest.mark.parametrize("dpi", [150, 226])
def test_re_export_with_a_fourth_page(notebook_prints: list[Image.Image], dpi: int) -> None:
    pages = render_pages(notebook_pdf([*NOTEBOOK, [(40, 80, 250)]]), dpi)
    changes = compare_pages(notebook_prints, pages)
    assert [c.kind for c in changes] == ["same", "same", "same", "new"]
    assert [c.known_index for c in changes] == [0, 1, 2, None]
    assert [c.index for c in changes] == [0, 1, 2, 3]
    assert all(c.ink is None for c in changes)


@pytest.mark.parametrize("dpi", [150, 226])
def test_extra_line_on_page_two(notebook_prints: list[Image.Image], dpi: int) -> None:
    extra = (60, 300, 280)
    pages = render_pages(notebook_pdf([NOTEBOOK[0], [*NOTEBOOK[1], extra], NOTEBOOK[2]]), dpi)
    changes = compare_pages(notebook_prints, pages)
    assert [c.kind for c in changes] == ["same", "changed", "same"]
    ink = changes[1].ink
    assert ink is not None and changes[1].known_index == 1 and ink.page_index == 1
    # Only the extra line: x from 60 pt for 280 pt, y between 295 and 300 pt (see notebook_pdf).
    s = dpi / 72
    line = (round(60 * s), round(295 * s), round(338 * s), round(300 * s))
    assert contains(ink.bbox, line), (ink.bbox, line)
    assert contains(around(line), ink.bbox, 0), (ink.bbox, line)
    assert not ink.touches_old  # a line of its own, below the earlier writing


@pytest.mark.parametrize("dpi", [150, 226])
def test_reordered_and_inserted_pages_still_match(notebook_prints: list[Image.Image], dpi: int) -> None:
    pages = render_pages(notebook_pdf([NOTEBOOK[2], NOTEBOOK[0], [(40, 140, 200)], NOTEBOOK[1]]), dpi)
    changes = compare_pages(notebook_prints, pages)
    assert [(c.kind, c.known_index) for c in changes] == [("same", 2), ("same", 0), ("new", None), ("same", 1)]


def test_blank_new_page_is_new(notebook_prints: list[Image.Image]) -> None:
    pages = [*render_pages(notebook_pdf(NOTEBOOK), 150), Image.new("L", (932, 1243), 255)]
    assert [c.kind for c in compare_pages(notebook_prints, pages)] == ["same", "same", "same", "new"]


def test_multi_page_answer_with_a_circle_on_page_two() -> None:
    """Case 1 in full: our answer rasterized from the PDF against the tablet's re-export of it at 226 ppi,
    pages reordered, with the user's circle around a word on what was page 2."""
    pdf = render_answer(VARIED_ANSWER, META, device="remarkable2")
    pages = render_pages(pdf, 226)
    assert len(pages) >= 3
    ink = Image.new("L", (200, 60), 255)
    ImageDraw.Draw(ink).ellipse((5, 5, 195, 55), outline=0, width=6)
    marked = pages[1].copy()
    marked.paste(ink, (400, 700), ImageChops.invert(ink))  # only the circle's dark pixels
    returned = [pages[2], marked, pages[0], *pages[3:]]
    changes = compare_pages(rasterize_pdf(pdf), returned)
    expected = [("same", 2), ("changed", 1), ("same", 0)] + [("same", n) for n in range(3, len(pages))]
    assert [(c.kind, c.known_index) for c in changes] == expected
    found = changes[1].ink
    assert found is not None and found.touches_old and contains(found.bbox, (405, 705, 595, 755))


def test_answer_pages_compared_with_our_pdf(answer_pdf: bytes, shown: Image.Image, blank_line_y: int) -> None:
    annotated, _, union = annotate(shown, [handwriting(80, blank_line_y)])
    changes = compare_pages(rasterize_pdf(answer_pdf), [annotated])
    assert changes[0].kind == "changed" and changes[0].known_index == 0
    assert changes[0].ink is not None and contains(changes[0].ink.bbox, union)


# --- prints and digests --------------------------------------------------------------------------------


def test_print_roundtrip_is_small_and_binary() -> None:
    page = render_pages(render_answer(LONG_ANSWER, META, device="remarkable2"), 150)[0]
    data = make_print(page)
    assert data.startswith(b"\x89PNG")
    assert len(data) < 30_000  # a full page of text
    loaded = load_print(data)
    assert loaded.mode == "L"
    assert max(loaded.size) == COMPARE_LONG_EDGE
    assert {value for _, value in loaded.getcolors() or []} == {0, 255}
    assert print_digest(data) == print_digest(loaded) == print_digest(page)
    assert make_print(loaded) == data  # a print of a print is the same print


def test_template_lines_are_not_ink() -> None:
    page = render_pages(notebook_pdf([[]]), 150)[0]
    low, _ = page.getextrema()
    assert isinstance(low, int) and low < 230  # the ruling is there on the page…
    assert load_print(make_print(page)).getextrema() == (255, 255)  # …but not in the print


def test_digest_exact_for_identical_rasters(shown: Image.Image, answer_pdf: bytes, blank_line_y: int) -> None:
    png = io.BytesIO()
    shown.save(png, "PNG")
    reread = Image.open(io.BytesIO(png.getvalue()))
    assert print_digest(reread) == print_digest(shown)
    assert print_digest(render_pages(answer_pdf, 150)[0]) == print_digest(shown)  # the same export read again
    assert print_digest(shown.convert("RGB")) == print_digest(shown)
    annotated, _, _ = annotate(shown, [handwriting(80, blank_line_y, 40)])
    assert print_digest(annotated) != print_digest(shown)


# --- rasterize_pdf and edge cases ----------------------------------------------------------------------


def test_rasterize_pdf_pages_at_comparison_size() -> None:
    pdf = notebook_pdf(NOTEBOOK)
    pages = rasterize_pdf(pdf)
    assert len(pages) == 3
    assert all(p.mode == "L" and max(p.size) == COMPARE_LONG_EDGE for p in pages)
    assert len(rasterize_pdf(pdf, max_pages=2)) == 2
    with pytest.raises(ValueError):
        rasterize_pdf(b"%PDF-1.4 not really")


def test_page_of_another_size_and_shape(known: Image.Image, shown: Image.Image) -> None:
    small = shown.resize((shown.width // 2, shown.height // 2), Image.Resampling.LANCZOS)
    assert new_ink(known, small) is None  # another resolution, same page
    # The page extended downwards (a taller export) with writing in the new part.
    taller = Image.new("L", (shown.width, shown.height + 300), 255)
    taller.paste(shown, (0, 0))
    annotated, alone, union = annotate(taller, [handwriting(80, shown.height + 150)])
    found = new_ink(known, annotated)
    assert found is not None and contains(found.bbox, union) and not found.touches_old
    assert_only_strokes_in_crop(found, alone)
    # Landscape against portrait: no crash.
    assert new_ink(known, shown.rotate(90, expand=True, fillcolor=255)) is not None


def test_totally_different_page(known: Image.Image) -> None:
    other = render_pages(render_answer(LONG_ANSWER, META, device="remarkable2"), 150)[0]
    found = new_ink(known, other)
    assert found is not None
    assert found.ink_pixels > 10_000
    assert compare_pages([known], [other])[0].kind == "new"


def test_transparent_strokes_image() -> None:
    """An export drawn on a transparent layer must not read as a black page."""
    strokes = Image.new("RGBA", (932, 1243), (0, 0, 0, 0))
    ImageDraw.Draw(strokes).line([(100, 600), (400, 640)], fill=(0, 0, 0, 255), width=4)
    found = new_ink(Image.new("L", (932, 1243), 255), strokes)
    assert found is not None
    assert contains(found.bbox, (100, 598, 400, 642)) and found.bbox[2] - found.bbox[0] < 320
