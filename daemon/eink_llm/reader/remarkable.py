"""reMarkable v6 pages (``.rm``) → grey pages drawn from their strokes, plus typed text (``.rmdoc`` documents
are unpacked by :mod:`~eink_llm.reader.rmdoc` and drawn here page by page).

``rmscene`` (the optional ``notebooks`` extra, MIT) parses the scene; the strokes are drawn here with Pillow,
point by point with the width the tablet recorded (pressure and tilt are already in it), the tool's character
kept: the fineliner even and thin, the marker wide, the pencils lighter with less pressure, highlighter and
shader as light grey behind the ink. Colours become greys dark enough to read on e-ink. Hidden layers and
deleted strokes are not drawn.

Strokes written beside typed text are anchored to a character of it: they are placed on that character's line,
laid out as the tablet lays out paragraphs (line heights per paragraph style, as measured by the rmc project);
the text itself is drawn in a plain font, not the tablet's. Not drawn: a PDF or ebook underneath annotations
(only the ink is).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFont

from eink_llm.errors import CorruptInputError, InputError, InputTooLargeError, UnsupportedInputError
from eink_llm.reader.limits import InputDocument, InputLimits, describe, fit
from eink_llm.reader.notebook_common import SYNC_AGAIN, TextLayer, missing_extra

#: The reMarkable 1/2 screen in its own pixels; x is centred on the page, y counts from the top.
PAGE_WIDTH, PAGE_HEIGHT = 1404, 1872
#: Around the ink when it reaches beyond the page (a page scrolled down, strokes left of the margin).
_MARGIN = 40
_MAX_GROUP_DEPTH = 64
#: No pen is wider than this many page pixels (a damaged point may claim any width).
_MAX_WIDTH = 200.0

# Tool ids (rmscene.scene_items.Pen) by how they are drawn.
_HIGHLIGHTERS = {5, 18, 23}  # highlighter 1/2, shader
_ERASERS = {6}  # an eraser stroke paints the paper colour
_AREA_ERASERS = {8}
_FINELINERS = {4, 17}
_MARKERS = {3, 16}
_PENCILS = {1, 14, 7, 13}  # pencil, mechanical pencil
#: PenColor ids → grey. Black and the dark colours near black, grey and light colours mid-grey, white paper.
_GREYS = {0: 0, 1: 125, 2: 255, 3: 170, 4: 90, 5: 120, 6: 60, 7: 80, 8: 125, 9: 200, 10: 90, 11: 110, 12: 100, 13: 170}
_HIGHLIGHT_GREY = 210

#: Typed text: the first line's baseline relative to the text block's ``pos_y``, each paragraph style's line
#: height (ParagraphStyle ids; others 70), and the font size in page pixels.
_TEXT_TOP = -88.0
_LINE_HEIGHTS = {1: 71.0, 2: 150.0, 3: 70.0, 4: 35.0, 5: 35.0, 6: 35.0, 7: 35.0}
_TEXT_SIZE = 34
_HEADING_SIZE = 50


def read_rm(name: str, data: bytes, limits: InputLimits) -> InputDocument:
    """One v6 page file."""
    rmscene = load_rmscene(name, "a reMarkable notebook page (.rm)")
    page, text = draw_page(name, data, limits, rmscene)
    layer = TextLayer(limits.max_text_tokens)
    layer.add_read(1, lambda: text)
    return InputDocument("notebook", (fit(page, limits),), layer.text(), 1, text_cut=layer.cut())


@dataclass(frozen=True, slots=True)
class Rmscene:
    read_tree: Any
    scene_items: Any
    text_document: Any
    crdt_id: Any


def load_rmscene(name: str, what: str) -> Rmscene:
    try:
        from rmscene import CrdtId, read_tree, scene_items
        from rmscene.text import TextDocument
    except ImportError as exc:
        raise missing_extra(name, what, exc) from None
    # rmscene warns for each block a newer tablet wrote that it does not know; it still reads what it knows.
    logging.getLogger("rmscene").setLevel(logging.ERROR)
    return Rmscene(read_tree, scene_items, TextDocument, CrdtId)


def draw_page(name: str, data: bytes, limits: InputLimits, rm: Rmscene) -> tuple[Image.Image, str]:
    if not data.startswith(b"reMarkable .lines file, version=6"):
        version = data[:43].decode("ascii", "replace") if data.startswith(b"reMarkable .lines file") else ""
        raise UnsupportedInputError(
            f"{name} is not a reMarkable page eink-llm can read"
            + (f" (it is an older format: {version.strip()})." if version else "."),
            "Update the tablet to software 3 or newer, or export the page as PDF.",
        )
    try:
        tree = rm.read_tree(io.BytesIO(data))
        text = _typed_text(tree, rm)
        strokes = list(_strokes(tree.root, rm.scene_items, 0, text.anchors, (0.0, 0.0)))
    except (InputError, MemoryError):
        raise
    except Exception as exc:  # a truncated or damaged scene fails anywhere inside rmscene
        raise CorruptInputError(
            f"{name} is a reMarkable page that could not be read: it is damaged or not completely synced.",
            SYNC_AGAIN,
            detail=describe(exc),
        ) from None
    left, top, width, height = _canvas(strokes, text)
    if width * height > limits.max_page_pixels:
        raise InputTooLargeError(
            f"{name} has ink spread over {width}×{height} pixels; the limit is {limits.max_page_pixels:,} pixels.",
            "Export the page from the tablet as PDF instead, or raise input.max_page_megapixels in the config.",
        )
    ink = Image.new("L", (width, height), 255)
    highlight = Image.new("L", (width, height), 255)
    draw_ink, draw_highlight = ImageDraw.Draw(ink), ImageDraw.Draw(highlight)
    for stroke in strokes:
        target = draw_highlight if stroke.tool in _HIGHLIGHTERS else draw_ink
        _draw_stroke(target, stroke, -left, -top)
    if text.lines:
        _draw_text(draw_ink, text, -left, -top)
    return ImageChops.darker(ink, highlight), text.plain


@dataclass(frozen=True, slots=True)
class _Stroke:
    tool: int
    color: int
    thickness: float
    points: list[tuple[float, float, float, float]]  # x, y, width (px), pressure (0..1)


def _strokes(
    group: Any, si: Any, depth: int, anchors: dict[Any, float], offset: tuple[float, float]
) -> Iterator[_Stroke]:
    """The visible strokes in drawing order: layers (top-level groups) in order, hidden ones left out; a group
    anchored to a character of the typed text moved to that character's line."""
    if depth > _MAX_GROUP_DEPTH:
        raise ValueError("the page's layers nest too deeply")  # a damaged page, said so by draw_page
    for child in group.children.values():
        if child is None:
            continue
        if isinstance(child, si.Group):
            visible = getattr(child, "visible", None)
            if visible is not None and visible.value is False:
                continue
            yield from _strokes(child, si, depth + 1, anchors, _anchored(child, anchors, offset))
        elif isinstance(child, si.Line) and child.points:
            dx, dy = offset
            points = [
                (p.x + dx, p.y + dy, min(max(p.width, 0) / 4.0, _MAX_WIDTH), min(max(p.pressure, 0), 255) / 255.0)
                for p in child.points
                if math.isfinite(p.x + dx) and math.isfinite(p.y + dy)
            ]
            if points:
                yield _Stroke(int(child.tool), int(child.color), float(child.thickness_scale or 1.0), points)


def _anchored(group: Any, anchors: dict[Any, float], offset: tuple[float, float]) -> tuple[float, float]:
    anchor_id = getattr(group, "anchor_id", None)
    origin_x = getattr(group, "anchor_origin_x", None)
    if anchor_id is None or origin_x is None:
        return offset
    x, y = offset[0] + float(origin_x.value), offset[1] + anchors.get(anchor_id.value, 0.0)
    return (x, y) if math.isfinite(x) and math.isfinite(y) else offset


@dataclass(frozen=True, slots=True)
class _Text:
    plain: str  # the text layer
    lines: list[tuple[float, float, str, int]]  # x, baseline y, paragraph, style
    anchors: dict[Any, float]  # character id -> its line's baseline y


def _typed_text(tree: Any, rm: Rmscene) -> _Text:
    """The page's typed text: its paragraphs laid out line by line, and where each character's line is."""
    root = tree.root_text
    if root is None:
        return _Text("", [], {rm.crdt_id(0, 281474976710654): 100.0, rm.crdt_id(0, 281474976710655): 100.0})
    x, y = float(root.pos_x), float(root.pos_y) + _TEXT_TOP
    if not (math.isfinite(x) and math.isfinite(y)):  # damaged: where the tablet puts a new page's text
        x, y = -468.0, 234.0 + _TEXT_TOP
    lines: list[tuple[float, float, str, int]] = []
    # Two special anchors found in the tablet's own notebooks (as rmc places them).
    anchors: dict[Any, float] = {rm.crdt_id(0, 281474976710654): 100.0, rm.crdt_id(0, 281474976710655): 100.0}
    for paragraph in rm.text_document.from_scene_item(root).contents:
        style = int(paragraph.style.value)
        anchors[paragraph.start_id] = y
        for span in paragraph.contents:
            for char_id in span.i:
                anchors[char_id] = y
        lines.append((x, y, str(paragraph).rstrip("\n"), style))
        y += _LINE_HEIGHTS.get(style, 70.0)
    while lines and not lines[-1][2].strip():
        lines.pop()
    return _Text("\n".join(line[2] for line in lines).strip(), lines, anchors)


def _canvas(strokes: list[_Stroke], text: _Text) -> tuple[int, int, int, int]:
    """Left and top edge (in scene coordinates) and size of the image: the page, grown to hold all the ink."""
    left, top, right, bottom = -PAGE_WIDTH / 2, 0.0, PAGE_WIDTH / 2, float(PAGE_HEIGHT)
    xs = [x for s in strokes for x, _, _, _ in s.points]
    ys = [y for s in strokes for _, y, _, _ in s.points]
    if text.lines:
        ys += [text.lines[0][1] - _HEADING_SIZE, text.lines[-1][1] + _TEXT_SIZE / 3]
    if xs:
        left, right = min(left, min(xs) - _MARGIN), max(right, max(xs) + _MARGIN)
    if ys:
        top, bottom = min(top, min(ys) - _MARGIN), max(bottom, max(ys) + _MARGIN)
    left, top = math.floor(left), math.floor(top)
    return left, top, math.ceil(right) - left, math.ceil(bottom) - top


def _draw_stroke(draw: ImageDraw.ImageDraw, stroke: _Stroke, dx: float, dy: float) -> None:
    grey = _GREYS.get(stroke.color, 0)
    if stroke.tool in _HIGHLIGHTERS:
        grey = _HIGHLIGHT_GREY
    elif stroke.tool in _ERASERS or stroke.tool in _AREA_ERASERS:
        grey = 255
    points = [(x + dx, y + dy) for x, y, _, _ in stroke.points]
    if stroke.tool in _AREA_ERASERS and len(points) > 2:
        draw.polygon(points, fill=255)
        return
    for index, (x, y) in enumerate(points):
        width = _width(stroke, index)
        shade = grey
        if stroke.tool in _PENCILS and grey < 200:  # graphite: lighter with less pressure
            shade = int(grey + (200 - grey) * (1.0 - stroke.points[index][3]) * 0.6)
        if index:
            draw.line([points[index - 1], (x, y)], fill=shade, width=max(1, round(width)))
        radius = width / 2
        if radius >= 1:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=shade)
        elif len(points) == 1:
            draw.point((x, y), fill=shade)


def _width(stroke: _Stroke, index: int) -> float:
    """The stroke's width at a point, in page pixels."""
    recorded = stroke.points[index][2]
    if stroke.tool in _FINELINERS:  # even, whatever the pressure
        return max(1.0, 1.8 * stroke.thickness)
    if stroke.tool in _HIGHLIGHTERS:
        return max(recorded, 15.0 * stroke.thickness)
    if stroke.tool in _MARKERS:
        return max(2.0, recorded * 1.2)
    return max(1.0, recorded)


def _draw_text(draw: ImageDraw.ImageDraw, text: _Text, dx: float, dy: float) -> None:
    plain, heading = ImageFont.load_default(size=_TEXT_SIZE), ImageFont.load_default(size=_HEADING_SIZE)
    for x, y, line, style in text.lines:
        if line.strip():
            font = heading if style == 2 else plain
            draw.text((x + dx, y + dy), line[:500], fill=0, font=font, anchor="ls")  # on its baseline
