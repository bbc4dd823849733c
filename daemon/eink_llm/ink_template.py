"""The notebook's template on a page: which marks are its printed ruling, not the user's ink (used by
:func:`eink_llm.ink.find_ink`). Found by its regularity:

* **lines** (ruled paper, grids): rows (columns) whose marks cover at least :data:`LINE_COVERAGE` of the page's
  width (height), thin (at most :data:`MAX_LINE_PX` px), spanning what most of them span, at least
  :data:`MIN_LINES` of them at one spacing (or multiples of it); when a page has such lines, a single
  near-full-length line across them (a ruled page's margin rule) is template too. Where a stroke crosses or touches
  a template line, the line's pixels next to the stroke stay (the stroke is unbroken), and so do pixels clearly
  darker than the line (a word underlined along the rule, an axis drawn along a grid line);
* **dots** (dot grids): small isolated blobs that line up in rows *and* columns with at least :data:`MIN_LINES`
  others; a handwritten full stop or i-dot is kept unless it sits exactly on the lattice.

A thick full-width band (a highlighter stroke across the page) is not a line. Everything is Pillow C operations on
the page (box blurs, point tables, shifted copies; no numpy). The searches stop early where no template can be:
the line search when no row or column is covered enough, the dot search when a look at 2 × 2 blocks proves no
lattice can be found (:func:`_no_lattice`, same result); ~7 ms of CPU for a 150 dpi page without a template,
~40–55 ms with one, on a loaded 2-core machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

from PIL import Image, ImageChops, ImageFilter

#: A row (column) whose marks cover this share of the page's width (height) may be a template line.
LINE_COVERAGE = 0.5
#: A lone line across a page that has template lines in the other direction, covering this share: a margin rule.
MARGIN_RULE_COVERAGE = 0.85
#: Template lines and dots are at most this thick, in pixels at ~150 dpi (a highlighter band is thicker).
MAX_LINE_PX = 6
#: Fewest lines (dot rows) at one spacing that make a template.
MIN_LINES = 3
#: Template lines are at least this far apart (1 mm at 150 dpi; denser stripes are hatching or a fill).
MIN_SPACING_PX = 6
#: A template's lines start and end within this share of the page of where most of them do.
EXTENT_SLACK = 0.04
#: Template line pixels are kept where a mark is this much darker than the line's own grey, the grey below which
#: this share of the line's pixels lie (most of a line is line, even where an axis or underline runs along it).
DARKER_THAN_TEMPLATE = 48
LINE_GREY_QUANTILE = 0.95
#: A row of a line holding this share of the longest line rows' pixels is line all along.
FULL_ROW = 0.9

_ANY_LUT = [0] + [255] * 255

# --- template lines ---------------------------------------------------------------------------------------------


def template_lines(grey: Image.Image, marks: Image.Image) -> tuple[Image.Image, Image.Image]:
    """(the template line pixels, the rows and columns of the template lines)."""
    rows = _line_bands(marks, horizontal=True)
    columns = _line_bands(marks, horizontal=False)
    if not rows and not columns:  # no ruling (most pages): nothing to take out
        empty = Image.new("L", marks.size, 0)
        return empty, empty
    # A margin rule across a lined page.
    rows = rows or _line_bands(marks, horizontal=True, coverage=MARGIN_RULE_COVERAGE, regular=False)
    columns = columns or _line_bands(marks, horizontal=False, coverage=MARGIN_RULE_COVERAGE, regular=False)
    width, height = marks.size
    row_mask, column_mask = Image.new("L", marks.size, 0), Image.new("L", marks.size, 0)
    for first, last in rows:
        row_mask.paste(255, (0, first, width, last))
    for first, last in columns:
        column_mask.paste(255, (first, 0, last, height))
    areas = ImageChops.lighter(row_mask, column_mask)
    off_lines = ImageChops.subtract(marks, areas)
    crossings = ImageChops.darker(row_mask, column_mask)
    template = Image.new("L", marks.size, 0)
    for bands, band_mask, horizontal in ((rows, row_mask, True), (columns, column_mask, False)):
        if bands:
            pixels = _line_pixels(grey, marks, off_lines, band_mask, bands, crossings, horizontal)
            template = ImageChops.lighter(template, pixels)
    return template, areas


def _profile(mask: Image.Image, horizontal: bool) -> bytes:
    """Mean of a mask per row (``horizontal``) or per column, 0–255."""
    return mask.reduce((mask.width, 1) if horizontal else (1, mask.height)).tobytes()


def _line_bands(
    marks: Image.Image, *, horizontal: bool, coverage: float = LINE_COVERAGE, regular: bool = True
) -> list[tuple[int, int]]:
    """Thin full-length lines in one direction: (first, last + 1) rows or columns of each, widened by a row of
    partial cover on each side (their anti-aliased edge). With ``regular``, only lines at one common spacing, at
    least :data:`MIN_LINES` of them."""
    profile = _profile(marks, horizontal)
    level = coverage * 255
    bands = _runs_at_least(profile, level)
    edge = 0.15 * 255
    bands = [
        (first - (first > 0 and profile[first - 1] >= edge), last + (last < len(profile) and profile[last] >= edge))
        for first, last in bands
        if last - first <= MAX_LINE_PX
    ]
    if not regular:
        return bands
    bands = _same_extent(marks, bands, horizontal)
    if len(bands) < MIN_LINES:
        return []
    centres = [(first + last) / 2 for first, last in bands]
    gaps = [b - a for a, b in pairwise(centres)]
    spacing = sorted(gaps)[len(gaps) // 2]
    if spacing < MIN_SPACING_PX:  # hatching or a filled area, not ruled paper
        return []
    on_grid = [
        band
        for index, band in enumerate(bands)
        if (index > 0 and _on_grid(gaps[index - 1], spacing)) or (index < len(gaps) and _on_grid(gaps[index], spacing))
    ]
    if len(on_grid) < MIN_LINES:
        return []
    return sorted(on_grid + _faint_lines(profile, on_grid, spacing))


def _same_extent(marks: Image.Image, bands: list[tuple[int, int]], horizontal: bool) -> list[tuple[int, int]]:
    """The bands that start and end where most of them do (within :data:`EXTENT_SLACK` of the page): a template's
    lines all run across the same span, a ruler line or an axis drawn along one of them does not."""
    length = marks.width if horizontal else marks.height
    extents = []
    for first, last in bands:
        box = marks.crop((0, first, marks.width, last) if horizontal else (first, 0, last, marks.height)).getbbox()
        extents.append((box[0], box[2]) if box and horizontal else (box[1], box[3]) if box else (0, 0))
    if len(extents) < MIN_LINES:
        return bands
    starts, ends = sorted(e[0] for e in extents), sorted(e[1] for e in extents)
    start, end = starts[len(starts) // 2], ends[len(ends) // 2]
    slack = EXTENT_SLACK * length
    return [
        band
        for band, (first, last) in zip(bands, extents, strict=True)
        if abs(first - start) <= slack and abs(last - end) <= slack
    ]


def _faint_lines(profile: bytes, bands: list[tuple[int, int]], spacing: float) -> list[tuple[int, int]]:
    """The template lines between found ones that are too faint to cover half the page (a thin rule drawn across
    two pixel rows): rows of some cover where the spacing puts a line."""
    found: list[tuple[int, int]] = []
    edge = 0.1 * 255
    for (first, last), (after, _) in pairwise(bands):
        steps = round((after - first) / spacing)
        for step in range(1, steps):
            centre = round(first + (last - first - 1) / 2 + step * (after - first) / steps)
            rows = [row for row in range(centre - 2, centre + 3) if 0 <= row < len(profile) and profile[row] >= edge]
            if rows:
                found.append((min(rows), max(rows) + 1))
    return found


def _on_grid(gap: float, spacing: float) -> bool:
    """Whether ``gap`` is a whole number of ``spacing``s (a template line too faint to be a mark lies between)."""
    steps = round(gap / spacing) if spacing > 0 else 0
    return steps >= 1 and abs(gap - steps * spacing) <= 2 * steps


def _line_pixels(
    grey: Image.Image,
    marks: Image.Image,
    off_lines: Image.Image,
    band_mask: Image.Image,
    bands: list[tuple[int, int]],
    crossings: Image.Image,
    horizontal: bool,
) -> Image.Image:
    """The template pixels of one direction's line bands: their marks, except where a stroke crosses or touches
    them (``off_lines``: the marks off every template line) or darker ink lies."""
    on_lines = ImageChops.darker(marks, band_mask)
    thickest = max(last - first for first, last in bands)
    # Strokes touching a line from either side: the line's pixels next to them (up to its width away) are theirs.
    beside = ImageChops.subtract(grow(band_mask, 1, vertical=horizontal), band_mask)
    touching = grow(ImageChops.darker(off_lines, beside), 1, vertical=not horizontal)
    crossing = grow(touching, thickest + 1, vertical=horizontal)
    # Ink clearly darker than the line it lies on (each row of a line has its own grey, see _row_greys).
    darker = Image.new("L", marks.size, 0)
    much_darker = Image.new("L", marks.size, 0)
    full = max(_row_lengths(on_lines, bands, horizontal))
    for first, last in bands:
        for row, line_grey in _row_greys(grey, on_lines, first, last, horizontal, full):
            box = (0, row, marks.width, row + 1) if horizontal else (row, 0, row + 1, marks.height)
            region = grey.crop(box)
            for out, below in (
                (darker, line_grey - DARKER_THAN_TEMPLATE),
                (much_darker, line_grey - 2 * DARKER_THAN_TEMPLATE),
            ):
                out.paste(region.point([255 if v < below else 0 for v in range(256)]), box)
    # Where two lines cross they overlap darker: there only ink twice as much darker than the line is ink.
    darker = ImageChops.lighter(ImageChops.subtract(darker, crossings), ImageChops.darker(much_darker, crossings))
    return ImageChops.subtract(on_lines, ImageChops.lighter(crossing, darker))


def _row_lengths(on_lines: Image.Image, bands: list[tuple[int, int]], horizontal: bool) -> list[int]:
    """How many line pixels each row (column) of the bands holds."""
    profile = _profile(on_lines, horizontal)
    length = on_lines.width if horizontal else on_lines.height
    return [round(profile[row] * length / 255) for first, last in bands for row in range(first, last)]


def _row_greys(
    grey: Image.Image, on_lines: Image.Image, first: int, last: int, horizontal: bool, full: int
) -> list[tuple[int, int]]:
    """(row, the line's grey there) for the rows (columns) of one line. A row as long as the longest line rows
    (``full``) is line all along, with its own grey (a thin rule falls on pixel rows differently from line to line);
    a shorter row (a stroke drawn along the line, the line's faint edge) takes the grey of the line's full rows."""
    rows = []
    for row in range(first, last):
        box = (0, row, on_lines.width, row + 1) if horizontal else (row, 0, row + 1, on_lines.height)
        histogram = grey.crop(box).histogram(mask=on_lines.crop(box))
        rows.append((row, sum(histogram) >= FULL_ROW * full, _quantile(histogram, LINE_GREY_QUANTILE)))
    line = max((value for _, is_full, value in rows if is_full), default=None)
    return [(row, value if is_full or line is None else line) for row, is_full, value in rows]




def _quantile(histogram: list[int], share: float) -> int:
    """The value below which ``share`` of a histogram's counts lie (255 for an empty one)."""
    limit, seen = sum(histogram) * share, 0
    for value, count in enumerate(histogram):
        seen += count
        if seen >= limit and seen:
            return value
    return 255




def _runs_at_least(profile: bytes, level: float) -> list[tuple[int, int]]:
    """The runs of ``profile`` at or above ``level``, as (first, last + 1)."""
    runs: list[tuple[int, int]] = []
    start = None
    for index, value in enumerate([*profile, 0]):
        if value >= level and start is None:
            start = index
        elif value < level and start is not None:
            runs.append((start, index))
            start = None
    return runs


# --- template dots ----------------------------------------------------------------------------------------------

_INNER = 4  # radius of the window a dot must fit in (a 9 × 9 square holds a dot of up to 5 px from any pixel of it)
_OUTER = 9  # radius of the window whose ring around the inner one must be empty paper
_RING_MARKS = 2  # marks the ring may hold (a speck of noise), as :func:`_counts` counts them
#: How far :func:`_counts`' 19 × 19 count may be under the true count: its box blur rounds the mean twice (by at
#: most 1 of 255 in all, 1.4 marks of 361). The 9 × 9 and 5 × 5 counts are exact (1 of 255 is 0.3 marks of 81).
_COUNT_SLACK = 1


def _counts(mask: Image.Image, radius: int) -> Image.Image:
    """Marks within the (2·radius + 1)² square around each pixel, as a count clipped at 255."""
    area = (2 * radius + 1) ** 2
    return mask.filter(ImageFilter.BoxBlur(radius)).point([min(255, round(v * area / 255)) for v in range(256)])


def template_dots(marks: Image.Image, *, shortcut: bool = True) -> tuple[Image.Image, Image.Image]:
    """(the template dot pixels, the lattice points). With ``shortcut``, a page where :func:`_no_lattice` proves
    that no lattice can be found skips the search (same result, a quarter of the work)."""
    empty = Image.new("L", marks.size, 0)
    if shortcut and _no_lattice(marks):
        return empty, empty
    inner = _counts(marks, _INNER)
    ring = ImageChops.subtract(_counts(marks, _OUTER), inner)
    isolated = ring.point([255 if value <= _RING_MARKS else 0 for value in range(256)])
    small = inner.point([255 if value <= MAX_LINE_PX * MAX_LINE_PX else 0 for value in range(256)])
    dots = ImageChops.darker(marks, ImageChops.darker(isolated, small))
    if dots.getbbox() is None:
        return empty, empty
    rows, columns = _dot_bands(dots, horizontal=True), _dot_bands(dots, horizontal=False)
    if not rows or not columns:
        return empty, empty
    row_mask, column_mask = empty.copy(), empty.copy()
    for first, last in rows:
        row_mask.paste(255, (0, first, marks.width, last))
    for first, last in columns:
        column_mask.paste(255, (first, 0, last, marks.height))
    lattice = ImageChops.darker(row_mask, column_mask)
    # Every mark on a lattice point is template, except where a stroke comes in from outside the point: the marks
    # within a few pixels of where it enters are the stroke's.
    around = ImageChops.subtract(grow(grow(lattice, 2, vertical=True), 2, vertical=False), lattice)
    entering = ImageChops.darker(marks, around)
    stroke = grow(grow(entering, 3, vertical=True), 3, vertical=False)
    return ImageChops.subtract(ImageChops.darker(marks, lattice), stroke), lattice


def _no_lattice(marks: Image.Image) -> bool:
    """Whether :func:`template_dots` certainly finds no lattice on ``marks``, judged on 2 × 2 blocks (a quarter of
    the pixels): a page of handwriting or ruled lines has too few isolated marks in too few rows or columns.

    It never says so wrongly. A lattice dot is a mark whose 19 × 19 window holds at most :data:`_RING_MARKS`
    (+ :data:`_COUNT_SLACK`) marks outside its 9 × 9 one. Whatever the pixel's place in its block, the blocks within
    4 blocks of its block but more than 2 away lie wholly in that ring; so the dot's block holds a mark, and the
    blocks of that block ring hold at most that many marks, at least as many as they have blocks with a mark (and
    plus those with two: the second look, for the ends of ruled lines; the page padded with paper, as
    :func:`_counts` counts beyond the edge no less). A row of dots at :func:`_dot_bands`' level holds at least
    ``level`` − 1 (rounding) of its length in dots, half as many blocks of its row of blocks; and :data:`MIN_LINES`
    separate bands lie in as many rows of blocks.
    """
    outer, inner = (_OUTER - 1) // 2, (_INNER + 1) // 2
    marked = marks.reduce(2).point(_ANY_LUT)  # the blocks holding a mark (an edge's half blocks too)
    width, height = marked.size
    padded = Image.new("L", (width + 2 * outer, height + 2 * outer), 0)
    ring: Image.Image | None = None
    for least_marks in (1, 2):
        if least_marks == 1:
            holding = marked
        else:  # whole blocks (a half block's one mark would count as two): the mean of 4 pixels, 64 per mark
            even = Image.new("L", (2 * width, 2 * height), 0)
            even.paste(marks)
            holding = even.reduce(2).point([255 if value >= 64 * least_marks - 32 else 0 for value in range(256)])
        padded.paste(holding, (outer, outer))
        count = ImageChops.subtract(_counts(padded, outer), _counts(padded, inner))
        ring = count if ring is None else ImageChops.add(ring, count)
        isolated = ring.point([255 if value <= _RING_MARKS + _COUNT_SLACK else 0 for value in range(256)])
        dots = ImageChops.darker(marked, isolated.crop((outer, outer, outer + width, outer + height)))
        if not _dots_in_rows(dots, marks.size):
            return True
    return False


def _dots_in_rows(dots: Image.Image, size: tuple[int, int]) -> bool:
    """Whether ``dots`` (a mask of 2 × 2 blocks of a page of ``size``) may hold a lattice's rows and columns."""
    if dots.getbbox() is None:
        return False
    for horizontal in (True, False):
        length, block_length = (size[0], dots.width) if horizontal else (size[1], dots.height)
        least_dots = math.ceil(_dot_level(length) * length / 255 - length / 255)  # in one row of pixels
        least = math.floor(255 * math.ceil(least_dots / 2) / block_length)  # in its row of blocks, as a profile
        if sum(value >= least for value in _profile(dots, horizontal)) < MIN_LINES:
            return False
    return True


def _dot_level(length: int) -> float:
    """The profile level (0–255) of a row (column) of ``length`` px that holds enough dots for a lattice row."""
    return max(6.0, 0.015 * length) * 255 / length


def _dot_bands(dots: Image.Image, *, horizontal: bool) -> list[tuple[int, int]]:
    """Rows (columns) holding many isolated dots: at least 1.5 % of their length (and 6 px), in thin bands, at
    least :data:`MIN_LINES` of them."""
    profile = _profile(dots, horizontal)
    length = dots.width if horizontal else dots.height
    level = _dot_level(length)
    bands = _runs_at_least(profile, level)
    # A dot's edge rows hold less of it: widen each band by its anti-aliased rim.
    bands = [(max(0, first - 1), last + 1) for first, last in bands if last - first <= MAX_LINE_PX]
    return bands if len(bands) >= MIN_LINES else []


# --- mask helpers (shared with ink.py) -------------------------------------------------------------------------

def square(mask: Image.Image, combine: Callable[[Image.Image, Image.Image], Image.Image]) -> Image.Image:
    """A 0/255 mask grown (``ImageChops.lighter``) or shrunk (``ImageChops.darker``) by a 3 × 3 square, as shifted
    copies (Pillow's rank filters are ~10× slower); beyond the edge is paper."""
    out = mask
    for vertical in (False, True):
        base = out
        for step in (1, -1):
            shifted = Image.new("L", mask.size, 0)
            shifted.paste(base, (0, step) if vertical else (step, 0))
            out = combine(out, shifted)
    return out


def grow(mask: Image.Image, radius: int, *, vertical: bool) -> Image.Image:
    """A 0/255 mask grown by ``radius`` px up and down (``vertical``) or left and right, without wrapping."""
    out = mask
    for step in range(1, radius + 1):
        for sign in (step, -step):
            shifted = Image.new("L", mask.size, 0)
            shifted.paste(mask, (0, sign) if vertical else (sign, 0))
            out = ImageChops.lighter(out, shifted)
    return out
