"""Finding a page's ink once and cheaply changes nothing: the dot-lattice search's shortcut (``ink._no_lattice``)
changes no pixel of ink (where it skips the search, the full search finds no lattice either; where it does not,
the search runs as before), and a page print made with the ink the page economy found is the print made without
(stored prints keep matching), as are the economy's pages, the blank page rule and the comparison of pages.

Pages: the generated blank, lined, grid and dotted pages of test_ink (handwriting in several greys, a highlighter
band), the Supernote's own exports (a lined template among them), the benchmark's pen strokes, a page scattered
with full stops, a lattice running off the page's edges, and random lattices of every density with specks and
strokes in their rings.
"""

from __future__ import annotations

import random

import pytest
from PIL import Image, ImageDraw

from eink_llm.economy import is_blank, page_inks, plan_pages
from eink_llm.ink import find_ink, ink_threshold
from eink_llm.ink_template import _no_lattice, template_dots
from eink_llm.inkdiff import COMPARE_LONG_EDGE, compare_pages, load_print, make_print
from tests.test_ink import PNG_ONLY, SIZE, Page, supernote_pages, template


def marks_of(grey: Image.Image) -> Image.Image:
    """The marks find_ink searches for a template (every pixel darker than the paper)."""
    threshold = ink_threshold(grey)
    return grey.point([255 if value < threshold else 0 for value in range(256)])


def comparison_size(grey: Image.Image) -> Image.Image:
    """The page as inkdiff sees it (long edge COMPARE_LONG_EDGE): the other size find_ink runs at."""
    scale = COMPARE_LONG_EDGE / max(grey.size)
    return grey.resize((round(grey.width * scale), round(grey.height * scale)), Image.Resampling.BILINEAR)


def full_stops() -> Image.Image:
    """Handwriting with many full stops and i-dots: isolated dots, but in no lattice."""
    rng = random.Random(7)
    image = Image.new("L", SIZE, 255)
    draw = ImageDraw.Draw(image)
    for _ in range(200):
        x, y, r = rng.randrange(SIZE[0]), rng.randrange(SIZE[1]), rng.choice((1, 1, 2))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=rng.choice((0, 90, 200)))
    for _ in range(40):
        x, y = rng.randrange(SIZE[0] - 30), rng.randrange(SIZE[1] - 30)
        draw.line([(x, y), (x + rng.randrange(5, 60), y + rng.randrange(-10, 10))], fill=0, width=3)
    return image


def edge_lattice() -> Image.Image:
    """A dot grid whose outer dots are cut by the page's edges."""
    image = Image.new("L", SIZE, 255)
    draw = ImageDraw.Draw(image)
    for y in range(0, SIZE[1], 30):
        for x in range(0, SIZE[0], 30):
            draw.rectangle([x - 1, y - 1, x + 1, y + 1], fill=160)
    return image


def pen_strokes() -> Image.Image:
    """Long smooth pen strokes (the benchmark's page): no isolated marks at all."""
    image = Image.new("L", SIZE, 255)
    draw = ImageDraw.Draw(image)
    for row in range(6):
        y = 180 + 106 * row
        draw.line([(118 + 4 * i, y + 30 * ((i % 40) / 40 - 0.5)) for i in range(160)], fill=0, width=5)
    return image


#: (page, whether it holds a dot lattice)
PAGES = {
    "blank": (lambda: Page("blank").image, False),
    "lined": (lambda: Page("lined").image, False),
    "grid": (lambda: Page("grid").image, False),
    "dotted": (lambda: Page("dotted").image, True),
    "dotted template alone": (lambda: template("dotted"), True),
    "pen strokes": (pen_strokes, False),
    "full stops": (full_stops, False),
    "lattice cut by the edges": (edge_lattice, True),
    "supernote lined": (lambda: supernote_pages("ink-a5x-2.14.28-old-pen-width.pdf")[0], False),
    "supernote pens": (lambda: supernote_pages("stroke-n5-20260016-isolation-tools-colors-widths.pdf")[0], False),
}


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", list(PAGES))
def test_the_shortcut_finds_the_same_template_dots(name: str) -> None:
    make, lattice = PAGES[name]
    page = make()
    for grey in (page, comparison_size(page)):  # the page economy's size and the page prints' size
        marks = marks_of(grey)
        full = template_dots(marks, shortcut=False)
        assert (full[1].getbbox() is not None) == lattice, name
        quick = template_dots(marks)
        assert same(quick[0], full[0]) and same(quick[1], full[1]), name
    ink = find_ink(page)
    assert (ink.template.getbbox() is not None) == (lattice or name in ("lined", "grid", "supernote lined"))


@pytest.mark.parametrize("name", ["blank", "lined", "grid", "pen strokes", "supernote lined", "supernote pens"])
def test_pages_without_a_lattice_skip_the_search(name: str) -> None:
    """The shortcut is taken where it matters: handwriting and ruled pages (else the test above proves nothing)."""
    make, _ = PAGES[name]
    assert _no_lattice(marks_of(make()))


@pytest.mark.parametrize("name", ["dotted", "dotted template alone", "lattice cut by the edges"])
def test_pages_with_a_lattice_are_searched(name: str) -> None:
    make, _ = PAGES[name]
    assert not _no_lattice(marks_of(make()))


def random_page(rng: random.Random) -> Image.Image:
    """A mask with a lattice of some density, dot size and offset, and specks and strokes in the dots' rings."""
    width, height = rng.randrange(60, 400), rng.randrange(60, 400)
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    spacing, offset = rng.randrange(10, 40), rng.randrange(-5, 12)
    size, density = rng.choice((0, 1, 1, 2, 3)), rng.choice((0.05, 0.1, 0.2, 0.3, 0.5, 1.0))
    for y in range(offset, height, spacing):
        for x in range(offset + rng.choice((0, 0, 1)), width, spacing):
            if rng.random() < density:
                draw.rectangle([x, y, x + size, y + size], fill=255)
    for _ in range(rng.randrange(0, 40)):
        x, y = rng.randrange(width), rng.randrange(height)
        if rng.random() < 0.7:
            draw.point((x, y), fill=255)
        else:
            end = (x + rng.randrange(-30, 30), y + rng.randrange(-30, 30))
            draw.line([(x, y), end], fill=255, width=rng.choice((1, 2, 3)))
    return mask


def test_random_lattices_skipped_only_when_none_is_found() -> None:
    rng = random.Random(19)
    skipped = found = 0
    for case in range(150):
        marks = random_page(rng)
        full = template_dots(marks, shortcut=False)
        skip = _no_lattice(marks)
        assert not (skip and full[1].getbbox() is not None), case
        assert same(template_dots(marks)[0], full[0]), case
        skipped += skip
        found += full[1].getbbox() is not None
    assert skipped >= 20 and found >= 20  # both sides of the shortcut were tried


@pytest.mark.parametrize("name", list(PAGES))
def test_ink_found_once_makes_the_same_print_and_pages(name: str) -> None:
    """With and without a template: the print (compared with prints stored before) and the pages sent."""
    make, _ = PAGES[name]
    page = make()
    [ink] = page_inks([page])
    assert make_print(page, ink) == make_print(page)
    assert plan_pages([page], PNG_ONLY, inks=[ink]) == plan_pages([page], PNG_ONLY)
    assert is_blank(page, ink) == is_blank(page)
    known = [load_print(make_print(template("lined"))), page]
    assert compare_pages(known, [page], [ink]) == compare_pages(known, [page])
