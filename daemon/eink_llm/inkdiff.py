"""What ink is new on a page that comes back from the tablet?

Conversations continue on paper: the user writes on a RESPONSE_ PDF we rendered (or on a notebook page we
answered before) and the page comes back. Sending the whole page again would make the model re-read our own
answer as if the user had written it, so we find the *added* ink and send only that (plus, when the mark is about
our text, the page with the old content faded).

How: both pages are scaled to one comparison size and binarized. New ink must be darker than
:data:`INK_THRESHOLD` on the returned page; old content is everything darker than the lenient
:data:`FAINT_THRESHOLD` on the old page, grown by :data:`TOLERANCE` px (1 px for faint pixels, so writing on a
ruled template line keeps its shape). The asymmetry absorbs antialiasing and thin grey rules that resampling
pushes across a single threshold. Shifts of 1 px are covered by the tolerance; larger ones are estimated from
row/column ink profiles and applied when they explain the page better (measured on our answer page: shifted by
2 px at 150 dpi, 1484 px of false "new ink" without this, none with it). New ink is cut into coarse 8-connected
components (cells of 6 px, so strokes a millimetre apart stay together); specks below
:data:`MIN_COMPONENT_PIXELS` are dropped, and less than :data:`MIN_NEW_PIXELS` in all is nothing new. Everything
is one-pass Pillow C operations on ~1 megapixel masks (dilation is a maximum of shifted copies; Pillow's MaxFilter
is ~10x slower): about 25-50 ms per page on an idle core.

API (all pages are PIL images of any size and mode; grayscale "L" at ~150 dpi is what the reader gives):

* :func:`new_ink` ``(before, after)`` → :class:`NewInk` or ``None``: the added ink, with ``bbox`` in ``after``'s
  pixel coordinates, a ``crop`` where only the added ink is dark, ``touches_old`` when a mark circles or sits
  close to old content, and a ``context`` page with the old content faded to grey.
* :func:`compare_pages` ``(known, pages)`` → one :class:`PageChange` per returned page: ``same``, ``changed`` (with
  its :class:`NewInk`) or ``new``. ``known`` may be full pages or :func:`load_print` prints.
* :func:`make_print` / :func:`load_print`: a page as a 1-bit PNG at the comparison size (~5-20 KB), to store
  a notebook's pages in SQLite and compare against later. Given the page's ink as the page economy finds it, a
  page without a template is not searched for one again (the same print).
* :func:`print_digest`: SHA-256 of the binarized comparison raster. It is exact, not fuzzy: equal for a page and
  its print, for lossless re-encodings, and for a re-export that rasterizes to the same pixels (the same tablet
  exporting an unchanged page, read by the same reader settings). It is NOT stable across a re-render at another
  dpi or a 1 px shift: every coarse hash we measured (occupancy or darkness grids from 8x8 to 24x32 cells) flipped
  a cell between 150 and 226 dpi on ordinary text pages, and a grid coarse enough not to flip would also miss a
  small added note. So a digest match proves "same page, nothing new", and :func:`compare_pages` pairs the rest
  with the tolerant comparison, never trusting a digest mismatch.
* :func:`rasterize_pdf`: our own PDF's pages rendered straight at the comparison size (under ``PDFIUM_LOCK``).

:data:`COMPARE_LONG_EDGE` is 1200 px: the reMarkable 2 page at the reader's 150 dpi is 932x1243, so its pages are
compared at nearly native resolution (~145 dpi, 1 px ≈ 0.18 mm, a 2 px fineliner stroke stays solid after
scaling); an A4 page still gets ~100 dpi. Smaller turns thin strokes into grey that falls under the threshold,
larger costs time without finding more.

Pages whose old content is largely gone are not "the same page": :func:`compare_pages` asks that at least
:data:`SAME_PAGE_COVERAGE` of the known page's ink be found again, otherwise the page is ``new`` and is sent
whole, which is also what happens to a notebook page where the user erased their own earlier writing. Only
translation is corrected, not scale: an exporter that resizes the page content by more than a few tenths of a
percent would show old ink near the edges as new.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from operator import mul
from typing import Literal

import pypdfium2 as pdfium
from PIL import Image, ImageChops

# The one definition of ink, shared with what is sent.
from eink_llm.ink import DARK_THRESHOLD, INK_THRESHOLD, Ink, all_marks, find_ink
from eink_llm.reader import PDFIUM_LOCK, PRINT_LONG_EDGE

__all__ = [
    "COMPARE_LONG_EDGE",
    "INK_THRESHOLD",
    "NewInk",
    "PageChange",
    "compare_pages",
    "load_print",
    "make_print",
    "new_ink",
    "print_digest",
    "rasterize_pdf",
]

#: Long edge of the comparison raster in pixels (see the module docstring for the choice); the reader checks the
#: prints a reading process sends back against it.
COMPARE_LONG_EDGE = PRINT_LONG_EDGE
#: Lenient threshold for "was already there": a faint grey pixel on the old page is old content, not paper.
FAINT_THRESHOLD = 250
#: Radius in comparison pixels by which old ink is grown before subtracting it (antialiasing, misregistration).
TOLERANCE = 2
#: Light new ink (lighter than the economy's DARK_THRESHOLD) must lie this much farther from old content.
LIGHT_DISTANCE = 4
#: Largest shift (comparison pixels) the alignment considers.
MAX_SHIFT = 8
#: A component of new ink smaller than this many comparison pixels is a speck.
MIN_COMPONENT_PIXELS = 16
#: Less new ink than this in total (≈ a 2 px stroke 3.5 mm long) means nothing new.
MIN_NEW_PIXELS = 40
#: Distance (comparison pixels, ≈ 2 mm) within which new ink "touches" old content.
NEAR = 12
#: Grey level old content is faded to in :attr:`NewInk.context`.
FADE_LEVEL = 200
#: Share of the known page's ink that must still be there for a returned page to be that page.
SAME_PAGE_COVERAGE = 0.9

_CELL = 6  # component grid cell, comparison pixels
_LAYOUT = (24, 32)
_FAINT_LUT = [255 if v < FAINT_THRESHOLD else 0 for v in range(256)]
_DARK_LUT = [255 if v < DARK_THRESHOLD else 0 for v in range(256)]
_ANY_LUT = [0] + [255] * 255
_FADE_LUT = [FADE_LEVEL + v * (255 - FADE_LEVEL) // 255 for v in range(256)]
_NONZERO = re.compile(rb"[^\x00]")
_Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class NewInk:
    """Ink on a returned page that was not on the page before."""

    page_index: int
    bbox: _Box  # tight box of the new ink, in the returned page's pixel coordinates (x0, y0, x1, y1)
    ink_pixels: int  # amount of new ink, counted at the comparison size
    crop: Image.Image  # the returned page around ``bbox`` (+ margin); everything but the new ink is white
    crop_box: _Box  # where ``crop`` lies on the returned page
    touches_old: bool  # some new ink circles, crosses or lies within ~2 mm of old content: send ``context`` too
    context: Image.Image  # the whole returned page, old content faded to light grey, new ink as it was


@dataclass(frozen=True)
class PageChange:
    """What happened to one returned page."""

    index: int  # position in the returned document
    kind: Literal["same", "changed", "new"]  # new = no known counterpart: send the whole page (if not blank)
    known_index: int | None  # the matching known page, for same and changed
    ink: NewInk | None  # for changed


@dataclass(frozen=True)
class _Page:
    image: Image.Image  # the page as given, in "L"
    ink: Image.Image  # ink mask (255 = ink) at the comparison size
    faint: Image.Image  # anything visibly not paper (lenient threshold), same size
    gray_scaled: Image.Image  # the page in "L" at the comparison size


def _gray(page: Image.Image) -> Image.Image:
    """The page in "L"; transparent areas (some exports draw strokes on a transparent layer) become white."""
    if page.mode == "L":
        return page
    if "A" in page.getbands() or (page.mode == "P" and "transparency" in page.info):
        rgba = page.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    return page.convert("L")


def _scaled(page: Image.Image, width: int | None = None) -> Image.Image:
    """The page in "L" at the comparison size: long edge :data:`COMPARE_LONG_EDGE`, or the given width."""
    gray = _gray(page)
    w, h = gray.size
    if width is None:
        scale = COMPARE_LONG_EDGE / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
    else:
        size = (width, max(1, round(h * width / w)))
    if size != gray.size:
        gray = gray.resize(size, Image.Resampling.BILINEAR)
    return gray


def _ink(scaled: Image.Image, page_ink: Ink | None = None) -> Image.Image:
    """The ink mask of a page at the comparison size: the economy's rule (any grey, template removed). A print
    (only black and white) is ink already: taken as it is, so a print's digest is its page's. ``page_ink``, the
    page's ink at its own size (the economy's): when it found no template there, none is searched for again."""
    colours = scaled.getcolors(2)
    if colours is not None and {value for _, value in colours} <= {0, 255}:
        return scaled.point([255 if value < INK_THRESHOLD else 0 for value in range(256)])
    if page_ink is not None and page_ink.template.getbbox() is None:
        return all_marks(scaled)
    return find_ink(scaled).mask


def _prepare(page: Image.Image, ink: Ink | None = None) -> _Page:
    gray = _gray(page)
    scaled = _scaled(gray)
    return _Page(gray, _ink(scaled, ink if page.mode == "L" else None), scaled.point(_FAINT_LUT), scaled)


def _dilate(mask: Image.Image, radius: int) -> Image.Image:
    """Grow a 0/255 mask by ``radius`` px (a square) as the maximum of shifted copies. ``offset`` wraps around,
    which only moves the outermost ``radius`` pixels of a page to the other side, where pages have margins."""
    out = mask
    for vertical in (False, True):
        base = out
        for d in range(1, radius + 1):
            for step in (d, -d):
                out = ImageChops.lighter(
                    out, ImageChops.offset(base, 0, step) if vertical else ImageChops.offset(base, step, 0)
                )
    return out


def _count(mask: Image.Image) -> int:
    return mask.histogram()[255]


def _shift(mask: Image.Image, dx: int, dy: int) -> Image.Image:
    if dx == dy == 0:
        return mask
    out = Image.new("L", mask.size, 0)
    out.paste(mask, (dx, dy))
    return out


def make_print(page: Image.Image, ink: Ink | None = None) -> bytes:
    """A compact print of ``page``: its ink at the comparison size as a 1-bit PNG (ink black). ``ink``: the page's
    ink at its own size, as the page economy finds it (:func:`eink_llm.economy.page_inks`), for a grey (``L``)
    page: found once for both (a page without a template needs no second search; one with a template is searched
    at the comparison size, as before)."""
    mask = _ink(_scaled(page), ink if page.mode == "L" else None)
    buffer = io.BytesIO()
    # optimize=True would save ~4 % for 6x the time.
    ImageChops.invert(mask).convert("1", dither=Image.Dither.NONE).save(buffer, "PNG")
    return buffer.getvalue()


def load_print(data: bytes) -> Image.Image:
    """A print from :func:`make_print` as an "L" page (0 ink, 255 paper), usable wherever a page is."""
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("L")


def print_digest(page: bytes | Image.Image) -> str:
    """Exact-match key of a page or print: equal only for identical binarized comparison rasters (see module)."""
    return _mask_digest(_ink(_scaled(load_print(page) if isinstance(page, bytes) else page)))


def _mask_digest(mask: Image.Image) -> str:
    digest = hashlib.sha256(f"{mask.width}x{mask.height}:".encode())
    digest.update(mask.tobytes())
    return digest.hexdigest()[:32]


def rasterize_pdf(pdf: bytes, *, max_pages: int = 50) -> list[Image.Image]:
    """The first ``max_pages`` pages of one of our PDFs in grayscale, long edge :data:`COMPARE_LONG_EDGE`.

    Raises ``ValueError`` for bytes that are not a readable PDF.
    """
    try:
        with PDFIUM_LOCK:
            document = pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as exc:
        raise ValueError(f"not a readable PDF: {exc}") from exc
    pages: list[Image.Image] = []
    try:
        with PDFIUM_LOCK:
            count = min(len(document), max_pages)
        for index in range(count):
            with PDFIUM_LOCK:  # per page, so the reader's threads are not held up for a whole document
                pages.append(_render_page(document, index))
    finally:
        with PDFIUM_LOCK:
            document.close()
    return pages


def _render_page(document: pdfium.PdfDocument, index: int) -> Image.Image:
    page = document[index]
    try:
        width, height = page.get_size()
        # pdfium sizes the bitmap as ceil(side * scale): keep float noise from adding a pixel.
        bitmap = page.render(scale=COMPARE_LONG_EDGE / max(width, height) * (1 - 1e-9), grayscale=True)
        try:
            image: Image.Image = bitmap.to_pil()  # shares the bitmap's memory: copy before closing
            return image.copy() if image.mode == "L" else image.convert("L")
        finally:
            bitmap.close()
    finally:
        page.close()


def _profile(mask: Image.Image, rows: bool) -> list[int]:
    """Mean ink per row (or column)."""
    return list(mask.reduce((mask.width, 1) if rows else (1, mask.height)).tobytes())


def _best_offset(before: list[int], after: list[int]) -> int:
    """The shift d (|d| ≤ MAX_SHIFT) that best lines up ``before[i - d]`` with ``after[i]``."""

    def score(d: int) -> int:
        return sum(map(mul, after[d:], before)) if d >= 0 else sum(map(mul, after, before[-d:]))

    return max(range(-MAX_SHIFT, MAX_SHIFT + 1), key=lambda d: (score(d), -abs(d)))


def _align(before: Image.Image, grown: Image.Image, after: Image.Image) -> tuple[int, int]:
    """Translation of ``before`` onto ``after``: the profile estimate if it leaves less unexplained ink than none."""
    dx = _best_offset(_profile(before, rows=False), _profile(after, rows=False))
    dy = _best_offset(_profile(before, rows=True), _profile(after, rows=True))
    if dx == dy == 0:
        return 0, 0
    unexplained = _count(ImageChops.subtract(after, grown))
    shifted = _count(ImageChops.subtract(after, _shift(grown, dx, dy)))
    return (dx, dy) if shifted < unexplained else (0, 0)


def _components(new: Image.Image) -> tuple[Image.Image, list[_Box], int]:
    """Drop specks from a new-ink mask: (kept mask, kept components' boxes, kept pixel count)."""
    grid = new.reduce(_CELL)  # mean per cell
    gw, gh = grid.size
    values = grid.tobytes()
    unseen = {match.start() for match in _NONZERO.finditer(values)}
    kept_cells: list[int] = []
    boxes: list[_Box] = []
    total = 0.0
    while unseen:
        stack = [unseen.pop()]
        cells: list[int] = []
        while stack:
            cell = stack.pop()
            cells.append(cell)
            y, x = divmod(cell, gw)
            for ny in (y - 1, y, y + 1):
                for nx in (x - 1, x, x + 1):
                    other = ny * gw + nx
                    if 0 <= nx < gw and 0 <= ny < gh and other in unseen:
                        unseen.remove(other)
                        stack.append(other)
        pixels = sum(values[c] for c in cells) * _CELL * _CELL / 255
        if pixels < MIN_COMPONENT_PIXELS:
            continue
        total += pixels
        kept_cells += cells
        xs = [c % gw for c in cells]
        ys = [c // gw for c in cells]
        boxes.append((min(xs) * _CELL, min(ys) * _CELL, (max(xs) + 1) * _CELL, (max(ys) + 1) * _CELL))
    if len(kept_cells) < len(values) - values.count(0):  # some specks were dropped: clear their cells
        keep = bytearray(gw * gh)
        for cell in kept_cells:
            keep[cell] = 255
        keep_mask = Image.frombytes("L", (gw, gh), bytes(keep)).resize(
            (gw * _CELL, gh * _CELL), Image.Resampling.NEAREST
        )
        new = ImageChops.darker(new, keep_mask.crop((0, 0, *new.size)))
    return new, boxes, round(total)


def _diff(before: _Page, after: _Page, page_index: int, *, check_same: bool) -> tuple[bool, NewInk | None]:
    """(is ``after`` plausibly ``before`` with additions, the new ink). With ``check_same``, stops early if not."""
    # Asymmetric thresholds: new ink must be dark in ``after``, but anything faintly present in ``before`` (a thin
    # grey rule that resampling lightened past the threshold, antialiasing) is old; and vice versa for "missing".
    size = after.ink.size
    old, old_faint = before.ink, before.faint
    if abs(old.width - size[0]) > 0:  # even one pixel of rounding (pdfium rounds up) is ~1 px off at the far edge
        scaled = _scaled(before.image, size[0])
        old, old_faint = _ink(scaled), scaled.point(_FAINT_LUT)
    if old.size != size:  # another shape: compare the top-left-aligned overlap, the rest is new
        old, old_faint = old.crop((0, 0, *size)), old_faint.crop((0, 0, *size))  # crop pads with 0
    # Strong ink grows by TOLERANCE, faint content (template ruling, thin rules) by 1 px only, so writing on a ruled
    # line keeps its shape. (dilate(old, 2) | dilate(faint, 1) == dilate(dilate(old, 1) | faint, 1), cheaper.)
    grown = _dilate(ImageChops.lighter(_dilate(old, TOLERANCE - 1), old_faint), 1)
    dx, dy = _align(old, grown, after.ink)
    old, grown = _shift(old, dx, dy), _shift(grown, dx, dy)
    if check_same:
        old_pixels = _count(old)
        # Measured on a page of random words: the same page ≥ 0.997 (other dpi, shifted), other pages ≤ 0.68.
        missing = _count(ImageChops.subtract(old, _dilate(after.faint, 1)))
        if old_pixels and missing > old_pixels * (1 - SAME_PAGE_COVERAGE):
            return False, None
    # Light ink (a grey pen, a highlighter) is new only away from old content: near it, light pixels are as likely
    # the anti-aliasing or JPEG ringing of the old content rendered another way.
    light = ImageChops.subtract(after.ink, after.gray_scaled.point(_DARK_LUT))
    new = ImageChops.subtract(
        ImageChops.subtract(after.ink, grown), ImageChops.darker(light, _dilate(grown, LIGHT_DISTANCE))
    )
    kept, boxes, pixels = _components(new)
    if pixels < MIN_NEW_PIXELS:
        return True, None
    touches = any(_count(old.crop((x0 - NEAR, y0 - NEAR, x1 + NEAR, y1 + NEAR))) > 0 for x0, y0, x1, y1 in boxes)
    return True, _new_ink(after.image, kept, grown, pixels, touches, page_index)


def _new_ink(
    page: Image.Image, kept: Image.Image, grown: Image.Image, pixels: int, touches: bool, page_index: int
) -> NewInk:
    """Map the comparison-size result back onto the returned page and build its pictures."""
    sx, sy = page.width / kept.width, page.height / kept.height
    x0, y0, x1, y1 = kept.getbbox() or (0, 0, kept.width, kept.height)
    bbox = (int(x0 * sx), int(y0 * sy), min(page.width, int(x1 * sx + 0.999)), min(page.height, int(y1 * sy + 0.999)))
    # The new ink's own antialiased edge is shown; nothing within the tolerance of old ink is.
    shown = ImageChops.subtract(_dilate(kept, 1), grown).resize(page.size, Image.Resampling.NEAREST)
    m = max(8, max(page.size) // 60)  # margin
    crop_box = (max(0, bbox[0] - m), max(0, bbox[1] - m), min(page.width, bbox[2] + m), min(page.height, bbox[3] + m))
    region = page.crop(crop_box)
    crop = Image.composite(region, Image.new("L", region.size, 255), shown.crop(crop_box))
    context = Image.composite(page, page.point(_FADE_LUT), shown)
    return NewInk(page_index, bbox, pixels, crop, crop_box, touches, context)


def new_ink(before: Image.Image, after: Image.Image, *, page_index: int = 0) -> NewInk | None:
    """The ink on ``after`` that was not on ``before`` (a page or a print), or ``None`` if nothing real is new."""
    return _diff(_prepare(before), _prepare(after), page_index, check_same=False)[1]


def _layout(page: _Page) -> Image.Image:
    """Ink density on a coarse grid, to rank candidate pages."""
    return page.ink.resize(_LAYOUT, Image.Resampling.BOX)


def _candidates(index: int, page: _Page, layouts: Sequence[Image.Image | None], used: set[int]) -> list[int]:
    """Known pages to try for a returned page: the most alike by coarse ink layout, the same position, the first
    unmatched one (at most three, as each try is a full comparison)."""
    free = [j for j in range(len(layouts)) if j not in used and layouts[j] is not None]
    if not free:
        return []
    mine = _layout(page)

    def distance(j: int) -> int:
        layout = layouts[j]
        assert layout is not None
        histogram = ImageChops.difference(mine, layout).histogram()
        return sum(level * n for level, n in enumerate(histogram))

    order = [min(free, key=distance), index, free[0]]
    return [j for n, j in enumerate(order) if j in free and j not in order[:n]]


def compare_pages(
    known: Sequence[Image.Image | bytes],
    pages: Sequence[Image.Image],
    inks: Sequence[Ink] | None = None,
    *,
    taken: Collection[int] = (),
) -> list[PageChange]:
    """Match each returned page to a known page (pages, or prints as :func:`make_print` bytes) and say what is new
    on it. ``inks``: the returned pages' ink as the page economy finds it, as for :func:`make_print`. ``taken``:
    known pages already matched to pages not given here (a long notebook's unchanged pages, page_sieve.py).

    First exact :func:`print_digest` matches anywhere (pages may be reordered or inserted): ``same``. Then each
    remaining page is compared with up to three unmatched known pages (see :func:`_candidates`); the first whose
    ink is still all there is its counterpart: ``same`` if nothing was added, else ``changed``. A page without a
    counterpart is ``new``, blank or not. Known pages are prepared one at a time (a notebook may have hundreds):
    only their digests and coarse layouts are kept, and a candidate is prepared again when it is tried.
    """
    given: Sequence[Ink | None] = inks if inks is not None else [None] * len(pages)
    returned = [_prepare(page, ink) for page, ink in zip(pages, given, strict=True)]
    changes: list[PageChange | None] = [None] * len(returned)
    used: set[int] = set(taken)
    if not returned:
        return []
    known_digests: list[str | None] = [None] * len(known)
    layouts: list[Image.Image | None] = [None] * len(known)
    kept: dict[int, _Page] = {}  # known pages given as images are held by the caller anyway: prepared once

    def prepared(j: int) -> _Page:
        found = kept.get(j)
        if found is None:
            entry = known[j]
            found = _prepare(load_print(entry) if isinstance(entry, bytes) else entry)
            if not isinstance(entry, bytes):
                kept[j] = found
        return found

    for j in range(len(known)):
        if j not in used:
            page_j = prepared(j)
            known_digests[j], layouts[j] = _mask_digest(page_j.ink), _layout(page_j)
    for i, page in enumerate(returned):
        digest = _mask_digest(page.ink)
        equal = [j for j, d in enumerate(known_digests) if d == digest and j not in used]
        if equal:
            j = min(equal, key=lambda j: abs(j - i))
            used.add(j)
            changes[i] = PageChange(i, "same", j, None)
    for i, page in enumerate(returned):
        if changes[i] is not None:
            continue
        changes[i] = PageChange(i, "new", None, None)
        for j in _candidates(i, page, layouts, used):
            same_page, ink = _diff(prepared(j), page, i, check_same=True)
            if same_page:
                used.add(j)
                changes[i] = PageChange(i, "changed" if ink else "same", j, ink)
                break
    return [change for change in changes if change is not None]
