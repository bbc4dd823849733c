"""Ink or paper: which marks on a page the user made, whatever their grey.

A mark is ink because of what it is, not how dark it is. Every pixel clearly darker than the paper is a mark
(:func:`ink_threshold`: :data:`INK_THRESHOLD` on white paper, lower on a grey scan), so a light grey pen (the
Supernote's grey 201), pencil texture, a highlighter band or colour ink mapped to a light grey are all marks. Of the
marks, the notebook's *template* (ruled lines, grids, dot lattices) is taken out, found by its regularity
(:mod:`eink_llm.ink_template`). Callers find a page's ink once and carry it (:func:`eink_llm.economy.page_inks`).

:func:`has_grey_ink` says whether a page carries ink that a 1-bit image would lose or turn black (light strokes,
a highlighter band, pencil grain, a grey pen), not just the anti-aliased rim of black strokes or JPEG ringing;
:func:`pen_masks` splits ink by pen grey, so a page's thinnest pen sets how far it may shrink.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageChops

from eink_llm.ink_template import grow, square, template_dots, template_lines

#: On white paper, pixels darker than this are marks: every grey a pen draws (the Supernote's lightest pen is
#: 201, a yellow highlighter ~226), not the faint anti-aliasing at a stroke's edge or a scanner's paper noise.
INK_THRESHOLD = 236
#: A mark must be this much darker than the paper (the commonest light grey), for scans and photos of grey paper.
PAPER_MARGIN = 20
#: Dark ink: the core of a pen stroke (and the ink that sets the pen width the page is scaled for).
DARK_THRESHOLD = 160
#: Upper bounds of the pens' greys told apart when measuring pen widths: black, mid grey, light grey.
PEN_GREYS = (100, 180)
#: A page has grey ink when at least this many of its ink pixels lie away from black ink (a light word or two).
GREY_INK_PIXELS = 40
#: Ink at least this light disappears from a 1-bit image (its threshold is 180).
LIGHT_INK = 180
#: Light ink this many pixels or more from black ink is writing of its own, not a black stroke's halo.
LIGHT_APART = 3
#: Light ink holding this share of a page's ink darkness (a highlighter band, pencil grain) is worth keeping.
LIGHT_INK_SHARE = 0.1



@dataclass(frozen=True, slots=True)
class Ink:
    """The ink of one page (all images the page's size, mode ``L``)."""

    #: 255 where there is ink (template removed), 0 elsewhere.
    mask: Image.Image
    #: 255 where a template line or dot was removed.
    template: Image.Image
    #: Pixels darker than this were marks.
    threshold: int
    #: 255 on the rows and columns of template lines and the points of a dot lattice (where ink crossing the
    #: template keeps a little of it).
    lines: Image.Image

    def pixels(self) -> int:
        return self.mask.histogram()[255]

    def clean(self, grey: Image.Image) -> Image.Image:
        """``grey`` with everything that is not ink (paper, template) made white."""
        return Image.composite(grey, Image.new("L", grey.size, 255), self.mask)


def ink_threshold(grey: Image.Image) -> int:
    """Pixels darker than this are marks on ``grey``: :data:`INK_THRESHOLD`, or lower on grey paper."""
    histogram = grey.histogram()
    paper = max(range(128, 256), key=lambda value: (histogram[value], value))
    return max(64, min(INK_THRESHOLD, paper - PAPER_MARGIN + 1))


def all_marks(grey: Image.Image) -> Image.Image:
    """255 where ``grey`` has a mark (darker than its :func:`ink_threshold`): its ink when it has no template."""
    threshold = ink_threshold(grey)
    return grey.point([255 if value < threshold else 0 for value in range(256)])


def find_ink(grey: Image.Image) -> Ink:
    """The ink on a grey page: every mark darker than the paper that is not the notebook's template."""
    threshold = ink_threshold(grey)
    marks = grey.point([255 if value < threshold else 0 for value in range(256)])
    empty = Image.new("L", grey.size, 0)
    if marks.getbbox() is None:
        return Ink(marks, empty, threshold, empty)
    lines, line_areas = template_lines(grey, marks)
    dots, lattice = template_dots(marks)
    template = ImageChops.lighter(lines, dots)
    if template.getbbox() is None:
        return Ink(marks, empty, threshold, empty)
    return Ink(ImageChops.subtract(marks, template), template, threshold, ImageChops.lighter(line_areas, lattice))


def dark_mask(grey: Image.Image, ink: Image.Image | None = None) -> Image.Image:
    """255 where ``grey`` is dark ink (darker than :data:`DARK_THRESHOLD`), within ``ink`` when given."""
    dark = grey.point([255 if value < DARK_THRESHOLD else 0 for value in range(256)])
    return dark if ink is None else ImageChops.darker(dark, ink)


def grey_ink_mask(grey: Image.Image, ink: Image.Image) -> Image.Image:
    """The ink of ``ink`` (a mask over ``grey``) that is grey ink of its own: more than a pixel away from any black
    ink (the anti-aliased rim of a black stroke lies within a pixel of its core)."""
    black = grey.point([255 if value < PEN_GREYS[0] else 0 for value in range(256)])
    return ImageChops.subtract(ink, square(ImageChops.darker(black, ink), ImageChops.lighter))


def pen_masks(grey: Image.Image, ink: Image.Image) -> list[Image.Image]:
    """The ink of ``ink`` split by pen: black, mid grey and light grey (:data:`PEN_GREYS`), each without the
    anti-aliased rim of the darker ones, so that a page written with a thin black pen and a thick grey marker
    has the thin pen's width measured on its own."""
    masks: list[Image.Image] = []
    darker = Image.new("L", ink.size, 0)
    low = 0
    for high in (*PEN_GREYS, 256):
        band = grey.point([255 if low <= value < high else 0 for value in range(256)])
        band = ImageChops.darker(band, ink)
        masks.append(ImageChops.subtract(band, square(darker, ImageChops.lighter)))
        darker = ImageChops.lighter(darker, band)
        low = high
    return masks


def has_grey_ink(grey: Image.Image, ink: Image.Image, lines: Image.Image | None = None) -> bool:
    """Whether ``ink`` (a mask over ``grey``) has marks a black-and-white image would lose or blacken. Of the
    :func:`grey_ink_mask` pixels (not counting those on template ``lines``, what is left of a line where a black
    stroke crosses it), any of these:

    * at least :data:`GREY_INK_PIXELS` light ones (a 1-bit image drops them) more than :data:`LIGHT_APART` px from
      black ink, in strokes at least 2 px wide: a light pen's writing (the faint anti-aliasing of black strokes
      stays closer, JPEG ringing is specks);
    * light ones holding :data:`LIGHT_INK_SHARE` of the page's ink darkness: a highlighter band, pencil grain;
    * at least :data:`GREY_INK_PIXELS` mid grey ones in areas at least 3 px across: a grey pen (a thin black
      stroke's anti-aliasing is mid grey too, and a 1-bit image draws it right).
    """
    apart = grey_ink_mask(grey, ink)
    if lines is not None:
        apart = ImageChops.subtract(apart, lines)
    if apart.getbbox() is None:
        return False
    light = ImageChops.darker(apart, grey.point([255 if value >= LIGHT_INK else 0 for value in range(256)]))
    black = ImageChops.darker(grey.point([255 if value < PEN_GREYS[0] else 0 for value in range(256)]), ink)
    near_black = grow(grow(black, LIGHT_APART, vertical=False), LIGHT_APART, vertical=True)
    if _pairs(ImageChops.subtract(light, near_black)).histogram()[255] >= GREY_INK_PIXELS:
        return True
    if _darkness(grey, light) >= LIGHT_INK_SHARE * _darkness(grey, ink):
        return True
    mid = square(ImageChops.subtract(apart, light), ImageChops.darker)
    return mid.histogram()[255] >= GREY_INK_PIXELS


def _pairs(mask: Image.Image) -> Image.Image:
    """A 0/255 mask shrunk to the pixels whose right, lower and lower-right neighbours are in it too: strokes at
    least 2 px wide stay, the scattered specks of JPEG ringing go."""
    out = mask
    for dx, dy in ((-1, 0), (0, -1), (-1, -1)):
        shifted = Image.new("L", mask.size, 0)
        shifted.paste(mask, (dx, dy))
        out = ImageChops.darker(out, shifted)
    return out


def _darkness(grey: Image.Image, mask: Image.Image) -> int:
    """How much ink there is under ``mask``: the sum of its pixels' darkness (255 − grey)."""
    return sum((255 - value) * count for value, count in enumerate(grey.histogram(mask=mask)))
