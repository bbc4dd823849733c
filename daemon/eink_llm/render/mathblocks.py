"""Formulas on the page: inline in a paragraph's line, or displayed on their own, centred.

reportlab's paragraphs can only put raster images inline, and they make each image a separate "word", so a
comma after a formula can wrap onto the next line alone. An inline formula is therefore written into the
paragraph markup as a run of no-break spaces exactly as wide as the formula (it sticks to the text around
it, like any letters, and never breaks), followed by a zero-width ``<onDraw>`` callback. When the line is
drawn, the callback fills the formula's outline over those spaces and writes its TeX source there as
invisible text, so the text layer still holds every formula (search, copy and the tests read it), in
reading order. Paragraphs with formulas taller than a line get a larger leading (see
:func:`leading_for`), so formulas never overprint the lines above and below.
"""

from __future__ import annotations

import math
from typing import Any

from reportlab.lib.rl_accel import fp_str
from reportlab.platypus.flowables import Flowable

from eink_llm.render import fonts, formulas
from eink_llm.render.formulas import Formula
from eink_llm.render.styles import Theme

#: Name of the canvas callback (see :func:`install`).
MATH_CALLBACK = "eink_math"
_NBSP = "\u00a0"
_NBSP_EM = 0.318359375  # advance width of U+00A0 in DejaVu Sans, in em (652 / 2048)


def inline_markup(tex: str, size: float) -> str | None:
    """Paragraph markup for an inline formula at ``size`` pt, or None if it cannot be drawn."""
    rows = formulas.formulas(tex)
    if rows is None or len(rows) != 1 or rows[0].path is None:
        return None
    row = rows[0]
    width = row.width * size
    # As many no-break spaces as needed at up to the text size, scaled so that together they are exactly as
    # wide as the formula (and never taller than the text, so the line height does not change).
    count = max(1, math.ceil(width / (_NBSP_EM * size)))
    space_size = width / (count * _NBSP_EM)
    # size | length of the laid-out TeX | laid-out TeX (to find the cached outline) + source (for the text layer)
    source = " ".join(tex.split())
    label = fonts.escape_attr(f"{size:g}|{width:.4f}|{len(row.tex)}|{row.tex}{source}")
    return (
        f'<font name="{fonts.SANS}" size="{space_size:.4f}">{_NBSP * count}</font>'
        f'<onDraw name="{MATH_CALLBACK}" label="{label}"/>'
    )


def _parse_label(label: str) -> tuple[float, float, Formula, str] | None:
    size, width, length, texts = label.split("|", 3)
    row = formulas.formula(texts[: int(length)])
    if row is None:
        return None
    return float(size), float(width), row, texts[int(length) :]


def leading_for(frags: list[Any], font_size: float, leading: float) -> float:
    """The leading a paragraph needs so that its tallest inline formula clears the lines above and below."""
    need = leading
    for frag in frags:
        defn = getattr(frag, "cbDefn", None)
        if defn is None or getattr(defn, "name", "") != MATH_CALLBACK:
            continue
        parsed = _parse_label(str(getattr(defn, "label", "")))
        if parsed is not None:
            size, _, row, _ = parsed
            need = max(need, row.ascent * size + 0.3 * font_size, row.depth * size + 0.95 * font_size)
    return round(need, 2)


def _hidden_text(text_obj: Any, tex: str, width: float, size: float) -> None:
    """The TeX source as invisible text (render mode 3) squeezed to the formula's width."""
    natural = fonts.text_width(tex, fonts.SANS, size)
    if natural <= 0 or width <= 0:
        return
    text_obj.setTextRenderMode(3)
    text_obj.setHorizScale(100.0 * width / natural)
    for font, run in fonts.runs(tex, fonts.SANS):
        text_obj.setFont(font, size)
        text_obj.textOut(run)
    text_obj.setHorizScale(100.0)
    text_obj.setTextRenderMode(0)


def draw_inline(canv: Any, kind: str, label: str | None) -> None:
    """The ``onDraw`` callback: fill the formula at the current text position, and add its source as text."""
    info = getattr(canv, "_curr_tx_info", None)
    parsed = _parse_label(label) if label and info is not None else None
    if parsed is None or info is None:
        return
    size, width, row, source = parsed
    # Called after the no-break spaces that hold the formula's place: it starts ``width`` to the left.
    x, y = info["cur_x"] - width, info["cur_y"]
    row.draw(canv, x, y, size)
    _hidden_text_in_line(info["tx"], source, x, y, width, size)


def _hidden_text_in_line(tx: Any, source: str, x: float, y: float, width: float, size: float) -> None:
    """The source as invisible text inside the paragraph's own text object, so it is in reading order.

    The paragraph's text object must be left as reportlab expects it: the line matrix at the start of the
    line (``T*`` moves to the next line from there) and the text position at the end of the formula's spaces.
    ``Tm`` sets both, so after the hidden text the line start is restored with ``Tm`` and the text position
    moved on with a ``TJ`` that only displaces. Failing that, the formula is still drawn, just not searchable.
    """
    try:
        line_x = float(tx._x0)
        code: list[str] = tx._code
        code.append(f"1 0 0 1 {fp_str(x, y)} Tm")
        natural = fonts.text_width(source, fonts.SANS, size)
        if natural > 0 and width > 0:
            tx.setTextRenderMode(3)
            tx.setHorizScale(100.0 * width / natural)
            for font, run in fonts.runs(source, fonts.SANS):
                tx._setFont(font, size)
                tx._textOut(run)
            tx.setHorizScale(100.0)
            tx.setTextRenderMode(0)
        else:
            tx._setFont(fonts.SANS, size)
        code.append(f"1 0 0 1 {fp_str(line_x, y)} Tm")
        code.append(f"[{fp_str(-(x + width - line_x) * 1000.0 / size)}] TJ")
    except Exception:  # reportlab internals changed: keep the drawn formula, lose only its text
        return


def install(canv: Any) -> None:
    canv.setNamedCB(MATH_CALLBACK, draw_inline)


class MathBlock(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """A displayed formula (one or more rows), centred, shrunk to the frame width if it is wider."""

    def __init__(self, rows: list[Formula], theme: Theme, source: str) -> None:
        super().__init__()
        self.rows = rows
        self.source = " ".join(source.split())
        self.size = round(theme.font_size * 1.1, 2)
        self.gap = theme.font_size * 0.35
        self.spaceBefore = theme.font_size * 0.3
        self.spaceAfter = theme.font_size * 0.7
        self.scale = 1.0

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        natural = max(row.width for row in self.rows) * self.size
        self.scale = min(1.0, availWidth / natural) if natural > 0 else 1.0
        size = self.size * self.scale
        self.width = availWidth
        self.height = sum((row.ascent + row.depth) * size for row in self.rows) + self.gap * (len(self.rows) - 1)
        return self.width, self.height

    def draw(self) -> None:
        canv: Any = self.canv
        size = self.size * self.scale
        y = self.height
        for n, row in enumerate(self.rows):
            y -= row.ascent * size
            x = (self.width - row.width * size) / 2
            row.draw(canv, x, y, size)
            if n == 0:  # the whole source once, over the first row
                text = canv.beginText(x, y)
                _hidden_text(text, self.source, row.width * size, size)
                canv.drawText(text)
            y -= row.depth * size + self.gap
