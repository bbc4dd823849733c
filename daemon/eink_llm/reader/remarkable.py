"""reMarkable v6 pages (``.rm``) and documents (``.rmdoc``) → grey pages drawn from their strokes, plus typed text.

``rmscene`` (the optional ``notebooks`` extra, MIT) parses the scene; the strokes are drawn here with Pillow,
point by point with the width the tablet recorded (pressure and tilt are already in it), the tool's character
kept: the fineliner even and thin, the marker wide, the pencils lighter with less pressure, highlighter and
shader as light grey behind the ink. Colours become greys dark enough to read on e-ink. Hidden layers and
deleted strokes are not drawn. A ``.rmdoc`` is a zip (hostile: names, counts and sizes are checked before
anything is inflated, and inflating stops at the limit whatever the zip declares) whose ``.content`` gives the
page order; a page without a ``.rm`` file is a blank page.

Strokes written beside typed text are anchored to a character of it: they are placed on that character's line,
laid out as the tablet lays out paragraphs (line heights per paragraph style, as measured by the rmc project);
the text itself is drawn in a plain font, not the tablet's. Not drawn: a PDF or ebook underneath annotations
(only the ink is).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFont

from eink_llm.errors import CorruptInputError, InputError, InputTooLargeError, UnsupportedInputError
from eink_llm.reader.limits import EXPORT_SUPPORTED, InputDocument, InputLimits, describe, fit
from eink_llm.reader.notebook_common import NOTEBOOK_PAGES, SYNC_AGAIN, TextLayer, missing_extra

#: The reMarkable 1/2 screen in its own pixels; x is centred on the page, y counts from the top.
PAGE_WIDTH, PAGE_HEIGHT = 1404, 1872
#: Around the ink when it reaches beyond the page (a page scrolled down, strokes left of the margin).
_MARGIN = 40
#: A .rmdoc holds per page at most a .rm and a few small JSON files, plus the document's own.
_MEMBERS_PER_PAGE = 4
_JSON_BYTES = 4 * 1024 * 1024
_MAX_GROUP_DEPTH = 64

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
    rmscene = _rmscene(name, "a reMarkable notebook page (.rm)")
    page, text = _draw_page(name, data, limits, rmscene)
    layer = TextLayer(limits.max_text_tokens)
    layer.add(1, lambda: text)
    return InputDocument("notebook", (fit(page, limits),), layer.text(), 1, text_cut=layer.cut())


def read_rmdoc(name: str, data: bytes, limits: InputLimits) -> InputDocument:
    """A document exported by the reMarkable app: its pages in the ``.content`` order."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CorruptInputError(
            f"{name} is a ZIP archive that could not be opened: it is damaged or not completely synced.",
            SYNC_AGAIN,
            detail=describe(exc),
        ) from None
    with archive:
        members = _members(name, archive, limits)
        content = [m for m in members if m.count("/") == 0 and m.endswith(".content")]
        if len(content) != 1:
            raise UnsupportedInputError(
                f"{name} is a ZIP archive but not a reMarkable document (.rmdoc): it has "
                f"{'no' if not content else 'more than one'} .content file.",
                EXPORT_SUPPORTED,
            )
        doc_id = content[0][: -len(".content")]
        page_ids = _page_order(name, _json(name, archive, content[0], limits))
        if len(page_ids) > limits.max_pages:
            raise InputTooLargeError(
                f"{name} is a reMarkable document of {len(page_ids)} pages; the limit is {limits.max_pages}.",
                NOTEBOOK_PAGES,
            )
        rmscene = _rmscene(name, "a reMarkable document (.rmdoc)")
        text = TextLayer(limits.max_text_tokens)
        pages: list[Image.Image] = []
        for number, page_id in enumerate(page_ids, start=1):
            member = f"{doc_id}/{page_id}.rm"
            if member in members:
                raw = _inflate(name, archive, member, limits.max_file_bytes)
                page, page_text = _draw_page(f"{name} (page {number})", raw, limits, rmscene)
            else:  # a page never written on has no scene file
                page, page_text = Image.new("L", (PAGE_WIDTH, PAGE_HEIGHT), 255), ""
            pages.append(fit(page, limits))
            text.add(number, functools.partial(str, page_text))
    if not pages:
        raise CorruptInputError(f"{name} is a reMarkable document without pages.", SYNC_AGAIN)
    return InputDocument("notebook", tuple(pages), text.text(), len(pages), text_cut=text.cut())


@dataclass(frozen=True, slots=True)
class _Rmscene:
    read_tree: Any
    scene_items: Any
    text_document: Any
    crdt_id: Any


def _rmscene(name: str, what: str) -> _Rmscene:
    try:
        from rmscene import CrdtId, read_tree, scene_items
        from rmscene.text import TextDocument
    except ImportError as exc:
        raise missing_extra(name, what, exc) from None
    # rmscene warns for each block a newer tablet wrote that it does not know; it still reads what it knows.
    logging.getLogger("rmscene").setLevel(logging.ERROR)
    return _Rmscene(read_tree, scene_items, TextDocument, CrdtId)


def _members(name: str, archive: zipfile.ZipFile, limits: InputLimits) -> set[str]:
    """The archive's file names, refused before anything is inflated when they are too many or too large, or
    when a name tries to leave the archive (nothing is extracted to disk, but such a file is not a real export)."""
    infos = archive.infolist()
    if len(infos) > limits.max_pages * _MEMBERS_PER_PAGE + 16:
        raise InputTooLargeError(
            f"{name} holds {len(infos)} files, more than a reMarkable document of at most {limits.max_pages} pages.",
            NOTEBOOK_PAGES,
        )
    total = 0
    names: set[str] = set()
    for info in infos:
        member = info.filename
        parts = member.split("/")
        if member.startswith(("/", "\\")) or "\\" in member or ".." in parts or ":" in parts[0]:
            raise UnsupportedInputError(
                f"{name} is not a reMarkable document: it holds a file named {member[:80]!r}, which points outside it.",
                EXPORT_SUPPORTED,
            )
        total += info.file_size
        if total > limits.max_file_bytes:
            raise InputTooLargeError(
                f"{name} would unpack to more than the limit of {limits.max_file_bytes // (1024 * 1024)} MB.",
                "Export fewer pages, or raise input.max_file_mb in the config.",
            )
        if not info.is_dir():
            names.add(member)
    return names


def _inflate(name: str, archive: zipfile.ZipFile, member: str, limit: int) -> bytes:
    """A member's bytes, at most ``limit`` of them whatever its header claims (a zip bomb lies about its size)."""
    try:
        with archive.open(member) as handle:
            data = handle.read(limit + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError, EOFError) as exc:
        raise CorruptInputError(
            f"{name} is damaged: its part {member[:80]!r} could not be unpacked.", SYNC_AGAIN, detail=describe(exc)
        ) from None
    if len(data) > limit:
        raise InputTooLargeError(
            f"{name} unpacks to more than it declares (its part {member[:80]!r} exceeds "
            f"{limit // (1024 * 1024)} MB): it is not a real reMarkable export.",
            EXPORT_SUPPORTED,
        )
    return data


def _json(name: str, archive: zipfile.ZipFile, member: str, limits: InputLimits) -> Any:
    raw = _inflate(name, archive, member, min(limits.max_file_bytes, _JSON_BYTES))
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptInputError(
            f"{name} is damaged: its page list ({member[:80]}) is not readable.", SYNC_AGAIN, detail=describe(exc)
        ) from None


def _page_order(name: str, content: Any) -> list[str]:
    """The page ids in the document's order: ``cPages.pages`` (software 3.x, ordered by their ``idx``; deleted
    pages left out), else the older plain ``pages`` list."""
    if not isinstance(content, dict):
        raise CorruptInputError(f"{name} is damaged: its page list is not a JSON object.", SYNC_AGAIN)
    c_pages = content.get("cPages")
    if isinstance(c_pages, dict) and isinstance(c_pages.get("pages"), list):
        entries = [p for p in c_pages["pages"] if isinstance(p, dict) and isinstance(p.get("id"), str)]
        entries = [p for p in entries if not _deleted(p)]
        keys = [_value(p.get("idx")) for p in entries]
        if all(isinstance(k, str) for k in keys):
            entries = [p for _, p in sorted(zip(keys, entries, strict=True), key=lambda pair: str(pair[0]))]
        ids = [str(p["id"]) for p in entries]
    elif isinstance(content.get("pages"), list):
        ids = [p for p in content["pages"] if isinstance(p, str)]
    else:
        raise CorruptInputError(f"{name} is damaged: its .content lists no pages.", SYNC_AGAIN)
    for page_id in ids:
        if not page_id or "/" in page_id or "\\" in page_id or page_id in (".", ".."):
            raise UnsupportedInputError(f"{name} is not a reMarkable document: a page id is not a name.", SYNC_AGAIN)
    return ids


def _value(field: Any) -> Any:
    return field.get("value") if isinstance(field, dict) else None


def _deleted(page: dict[str, Any]) -> bool:
    deleted = page.get("deleted")
    return isinstance(deleted, dict) and bool(deleted.get("value"))


# --- drawing -------------------------------------------------------------------------------------------------


def _draw_page(name: str, data: bytes, limits: InputLimits, rm: _Rmscene) -> tuple[Image.Image, str]:
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
        raise CorruptInputError("the page's layers nest too deeply", SYNC_AGAIN)
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
                (p.x + dx, p.y + dy, max(p.width, 0) / 4.0, min(max(p.pressure, 0), 255) / 255.0) for p in child.points
            ]
            yield _Stroke(int(child.tool), int(child.color), float(child.thickness_scale or 1.0), points)


def _anchored(group: Any, anchors: dict[Any, float], offset: tuple[float, float]) -> tuple[float, float]:
    anchor_id = getattr(group, "anchor_id", None)
    origin_x = getattr(group, "anchor_origin_x", None)
    if anchor_id is None or origin_x is None:
        return offset
    return offset[0] + float(origin_x.value), offset[1] + anchors.get(anchor_id.value, 0.0)


@dataclass(frozen=True, slots=True)
class _Text:
    plain: str  # the text layer
    lines: list[tuple[float, float, str, int]]  # x, baseline y, paragraph, style
    anchors: dict[Any, float]  # character id -> its line's baseline y


def _typed_text(tree: Any, rm: _Rmscene) -> _Text:
    """The page's typed text: its paragraphs laid out line by line, and where each character's line is."""
    root = tree.root_text
    if root is None:
        return _Text("", [], {rm.crdt_id(0, 281474976710654): 100.0, rm.crdt_id(0, 281474976710655): 100.0})
    x, y = float(root.pos_x), float(root.pos_y) + _TEXT_TOP
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
