"""Answers that draw: ```svg and ```plot blocks as vector drawings, the width of the text column.

A fenced block whose info string is ``svg`` or ``plot`` becomes a :class:`DrawingBlock`: the picture drawn as
PDF paths (never rasterised), scaled to the column width (and down, if needed, to fit the page height),
centred, in black and greys only, with the block's source written over it as invisible text (render mode 3),
so search and copy still find it, as with formulas (:mod:`eink_llm.render.mathblocks`).

* ``svg``: checked and cleaned by :mod:`eink_llm.render.svgsafe` (hostile input: no entities, no external
  references, size and count limits), then converted by svglib (the optional ``drawings`` extra) into a
  reportlab drawing, with a time limit checked at every element. svglib is never given a file name and gets
  a font map that only knows the answer's own fonts, so it reads no file and runs no ``fc-match``.
* ``plot``: function plots and data series from a small format of our own (:mod:`eink_llm.render.plots`).

Colours become greys: neutral colours keep their lightness; the distinct chromatic colours of one drawing are
ranked by lightness and spread over greys that stay apart on a 16-level panel (and away from black and white),
so a red and a green line remain two lines. On colour panels (which dither grey type) text is black.

Whatever cannot be drawn (svglib missing, a refused or broken SVG, a plot that does not parse, the time limit)
is shown as its source in a code block under a one-line note; an answer never fails because of a drawing.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import structlog
from reportlab.lib import colors
from reportlab.platypus.flowables import Flowable

from eink_llm.errors import DrawingRefused
from eink_llm.render import fonts, svgsafe
from eink_llm.render.bidi import display, shape_arabic
from eink_llm.render.styles import Theme

log = structlog.get_logger("eink_llm.render")

#: Fence languages drawn as pictures.
LANGUAGES = frozenset({"svg", "plot"})
#: Wall-clock limit for converting one SVG (checked at every element; the limits in svgsafe keep each small).
SVG_TIME_LIMIT = 3.0
#: Drawings per answer; later ones are shown as source.
MAX_DRAWINGS = 24
#: A refused drawing's source is shown up to this many lines and characters (a million-element SVG would
#: otherwise become thousands of pages of code).
SHOWN_LINES = 120
SHOWN_CHARS = 6_000
#: Greys that chromatic colours are spread over, dark to light (never black or white: those stay themselves).
CHROMATIC_GREYS = (0.22, 0.4, 0.56, 0.7, 0.82, 0.91)

_state: dict[str, Any] = {}
_lock = threading.Lock()


class Picture(Protocol):
    """Something :class:`DrawingBlock` can place: its natural size, and how to paint it into a box."""

    width: float
    height: float
    keep_aspect: bool  # svg: scaled as a whole; plot: laid out afresh for the box it gets

    def paint(self, canv: Any, width: float, height: float) -> None: ...


def _svglib() -> Any | None:
    """svglib's module, or None when the ``drawings`` extra is not installed (logged once)."""
    with _lock:
        if "svglib" not in _state:
            try:
                _state["svglib"] = importlib.import_module("svglib.svglib")
            except Exception as exc:  # ImportError, or a broken install
                _state["svglib"] = None
                log.warning(
                    "drawings_shown_as_source",
                    reason=f"svglib unavailable: {type(exc).__name__}: {exc}",
                    hint="pip install 'eink-llm[drawings]' to draw SVG in answers",
                )
        module: Any | None = _state["svglib"]
        return module


def available() -> bool:
    return _svglib() is not None


class _Fonts:
    """svglib's font map, answering every family with one of the answer's own (embedded) fonts."""

    def find_font(self, name: str, weight: str = "normal", style: str = "normal") -> tuple[str, bool]:
        family = name.lower()
        mono = any(word in family for word in ("mono", "courier", "code", "consol"))
        bold = weight.strip().lower() in ("bold", "bolder") or (weight.strip().isdigit() and int(weight) >= 600)
        italic = style.strip().lower() in ("italic", "oblique")
        return fonts.FACES[(mono, bold, italic)], True


def _renderer_class(svglib: Any) -> Any:
    """svglib's renderer with a deadline checked at every element (cached per process)."""
    cls = _state.get("renderer")
    if cls is None:

        class Renderer(svglib.SvgRenderer):  # type: ignore[misc]
            deadline = 0.0

            def renderNode(self, node: Any, parent: Any = None) -> None:
                if time.monotonic() > self.deadline:
                    raise DrawingRefused(f"the drawing took longer than {SVG_TIME_LIMIT:g} s to convert")
                super().renderNode(node, parent)

        cls = _state["renderer"] = Renderer
    return cls


def _walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        stack.extend(getattr(item, "contents", ()) or ())


def _grey_of(colour: Any) -> tuple[float, float] | None:
    """(lightness, chroma) of a reportlab colour, or None for anything that is not one."""
    if not isinstance(colour, colors.Color):
        return None
    r, g, b = (float(v) for v in colour.rgb())
    return 0.2126 * r + 0.7152 * g + 0.0722 * b, max(r, g, b) - min(r, g, b)


def _chromatic_levels(lightness: list[float]) -> list[float]:
    """Greys for distinct chromatic colours sorted by lightness: nearest grey, kept in order and apart."""
    n, m = len(lightness), len(CHROMATIC_GREYS)
    wanted = [min(range(m), key=lambda i: abs(CHROMATIC_GREYS[i] - value)) for value in lightness]
    if n > m:  # more colours than greys: nearest grey, shared
        return [CHROMATIC_GREYS[i] for i in wanted]
    slots: list[int] = []
    for k, index in enumerate(wanted):
        index = max(index, slots[-1] + 1 if slots else 0)
        slots.append(min(index, m - (n - k)))
    for k in range(n - 2, -1, -1):  # pushed against the light end: move earlier ones down to stay apart
        slots[k] = min(slots[k], slots[k + 1] - 1)
    return [CHROMATIC_GREYS[i] for i in slots]


_PAINTS = ("fillColor", "strokeColor")


def _key(colour: Any) -> tuple[int, int, int]:
    r, g, b = (round(float(v) * 255) for v in colour.rgb())
    return r, g, b


def to_greys(drawing: Any) -> None:
    """Every colour of a reportlab drawing replaced by a grey (see the module's docstring)."""
    shapes = list(_walk(drawing))
    chromatic: dict[tuple[int, int, int], float] = {}
    for shape in shapes:
        for colour in [getattr(shape, attr, None) for attr in _PAINTS] + list(getattr(shape, "colors", ()) or ()):
            seen = _grey_of(colour)
            if seen is not None and seen[1] >= 0.08:
                chromatic[_key(colour)] = seen[0]
    ranked = sorted(chromatic, key=lambda k: chromatic[k])
    level = dict(zip(ranked, _chromatic_levels([chromatic[k] for k in ranked]), strict=True))

    def grey(colour: Any) -> Any:
        seen = _grey_of(colour)
        if seen is None:
            return colour
        value = seen[0] if seen[1] < 0.08 else level[_key(colour)]
        alpha = float(getattr(colour, "alpha", 1.0))
        return colors.Color(value, value, value, alpha=alpha)

    for shape in shapes:
        for attr in _PAINTS:
            colour = getattr(shape, attr, None)
            if colour is not None:
                setattr(shape, attr, grey(colour))
        stops = getattr(shape, "colors", None)
        if isinstance(stops, list):
            shape.colors = [grey(c) for c in stops]


class SvgPicture:
    """A converted SVG: a reportlab drawing scaled as a whole into the box it is given."""

    keep_aspect = True

    def __init__(self, drawing: Any) -> None:
        self.drawing = drawing
        self.width = float(drawing.width)
        self.height = float(drawing.height)

    def paint(self, canv: Any, width: float, height: float) -> None:
        render_pdf = importlib.import_module("reportlab.graphics.renderPDF")
        canv.scale(width / self.width, height / self.height)
        render_pdf.draw(self.drawing, canv, 0, 0, showBoundary=False)


def svg_picture(source: str, *, colour_panel: bool = False) -> SvgPicture:
    """The ```svg block as a picture; :class:`DrawingRefused` (with a one-line reason) when it is not drawn."""
    svglib = _svglib()
    if svglib is None:
        raise DrawingRefused("drawing support is not installed (pip install 'eink-llm[drawings]')")
    fonts.ensure_fonts()  # svglib measures text with them
    root = svgsafe.sanitise(source)
    renderer = _renderer_class(svglib)(None, font_map=_Fonts())
    renderer.deadline = time.monotonic() + SVG_TIME_LIMIT
    try:
        drawing = renderer.render(root)
    except DrawingRefused:
        raise
    except Exception as exc:  # anything svglib trips over in odd input
        raise DrawingRefused(f"the drawing could not be converted ({type(exc).__name__})") from None
    if not (float(drawing.width) > 0 and float(drawing.height) > 0) and drawing.contents:
        try:
            _fit_contents(drawing)
        except Exception:  # nothing drawn at all: no bounds
            raise DrawingRefused("the drawing has no size (give the <svg> a viewBox)") from None
    width, height = float(drawing.width), float(drawing.height)
    if not (0 < width <= svgsafe.MAX_NUMBER and 0 < height <= svgsafe.MAX_NUMBER):
        raise DrawingRefused(f"the drawing has no usable size ({width:g} × {height:g})")
    if max(width, height) / min(width, height) > 100:
        raise DrawingRefused(f"the drawing is too thin to show ({width:g} × {height:g})")
    to_greys(drawing)
    _with_fallback_fonts(drawing)
    if colour_panel:  # colour panels dither grey type into mush: text in black, as everywhere on them
        for shape in _walk(drawing):
            if isinstance(shape, _shapes().String):
                shape.fillColor = colors.Color(0, 0, 0, alpha=float(getattr(shape.fillColor, "alpha", 1.0) or 1.0))
    return SvgPicture(drawing)


def _with_fallback_fonts(drawing: Any) -> None:
    """SVG text shaped and reordered (Arabic, Hebrew) and split into runs of fonts that have its letters (CJK…),
    as the answer's own text is; each run keeps the original's place, anchor, size and colour."""
    shapes = _shapes()
    for group in list(_walk(drawing)):
        contents = getattr(group, "contents", None)
        if not contents:
            continue
        replaced: list[Any] = []
        for item in contents:
            if not isinstance(item, shapes.String) or not item.text:
                replaced.append(item)
                continue
            text = display(shape_arabic(str(item.text)))
            pieces = fonts.runs(text, item.fontName)
            if len(pieces) == 1 and pieces[0][0] == item.fontName:
                item.text = text
                replaced.append(item)
                continue
            size = float(item.fontSize)
            widths = [fonts.text_width(run, font, size) for font, run in pieces]
            x = float(item.x) - {"middle": 0.5, "end": 1.0}.get(str(item.textAnchor), 0.0) * sum(widths)
            for (font, run), width in zip(pieces, widths, strict=True):
                piece = shapes.String(x, item.y, run, fontName=font, fontSize=size, fillColor=item.fillColor)
                replaced.append(piece)
                x += width
        group.contents = replaced


def _shapes() -> Any:
    return importlib.import_module("reportlab.graphics.shapes")


def shown_source(source: str) -> str:
    """The start of a refused block's source, cut at :data:`SHOWN_LINES` lines or :data:`SHOWN_CHARS` characters."""
    text = source.rstrip("\n")
    lines = text.split("\n", SHOWN_LINES)[:SHOWN_LINES]
    shown = "\n".join(lines)[:SHOWN_CHARS]
    if len(shown) < len(text):
        shown += f"\n… ({len(text) - len(shown):,} more characters not shown)"
    return shown


def _fit_contents(drawing: Any) -> None:
    """An SVG without a size (no viewBox, width or height) gets the size of what it draws."""
    x0, y0, x1, y1 = (float(v) for v in drawing.getBounds())
    group = _shapes().Group(*drawing.contents)
    group.translate(-x0, -y0)
    drawing.contents = [group]
    drawing.width, drawing.height = x1 - x0, y1 - y0


def picture(language: str, source: str, theme: Theme) -> Picture:
    """The fenced block as a picture, or :class:`DrawingRefused` with the reason it is shown as source."""
    if language == "svg":
        return svg_picture(source, colour_panel=theme.colour_panel)
    from eink_llm.render import plots  # on first use: answers without plots do not pay for importing YAML

    return plots.plot_picture(source, theme)


class DrawingBlock(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """A picture the width of the column (or less, to fit ``max_height``), centred, its source as hidden text."""

    def __init__(self, pic: Picture, source: str, theme: Theme, max_height: float) -> None:
        super().__init__()
        self.picture = pic
        self.source = source
        self.theme = theme
        self.max_height = max_height
        self.spaceBefore = theme.font_size * 0.4
        self.spaceAfter = theme.font_size * 0.8
        self.box = (0.0, 0.0)

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        pic = self.picture
        if pic.keep_aspect:
            scale = min(availWidth / pic.width, self.max_height / pic.height)
            self.box = (pic.width * scale, pic.height * scale)
        else:
            self.box = (availWidth, min(availWidth * pic.height / pic.width, self.max_height))
        self.width, self.height = availWidth, self.box[1]
        return self.width, self.height

    def draw(self) -> None:
        canv: Any = self.canv
        width, height = self.box
        x = (self.width - width) / 2
        canv.saveState()
        clip = canv.beginPath()
        clip.rect(x, 0, width, height)
        canv.clipPath(clip, stroke=0, fill=0)
        canv.translate(x, 0)
        self.picture.paint(canv, width, height)
        canv.restoreState()
        self._hidden_source(canv, x, width, height)

    def _hidden_source(self, canv: Any, x: float, width: float, height: float) -> None:
        """The block's source as invisible text over the drawing, one line of it per line of source."""
        lines = [line for line in (fonts.clean_text(raw).rstrip() for raw in self.source.split("\n")) if line]
        if not lines:
            return
        step = height / len(lines)
        size = max(0.5, min(self.theme.code_size, step))
        text = canv.beginText()
        text.setTextRenderMode(3)
        y = height - size
        for line in lines:
            natural = fonts.text_width(line, fonts.MONO, size)
            text.setTextOrigin(x, y)
            text.setHorizScale(min(100.0, 100.0 * width / natural) if natural > 0 else 100.0)
            for font, run in fonts.mono_runs(line):
                text.setFont(font, size)
                text.textOut(run)
            y -= step
        canv.drawText(text)
