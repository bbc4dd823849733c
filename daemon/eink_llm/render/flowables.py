"""Custom flowables for the two things reportlab's stock ones get wrong on a narrow page.

* :class:`CodeBlock` — reportlab's ``Preformatted``/``XPreformatted`` never wrap, so a long code line runs
  off the page and is lost. Answers are read on a screen 10-14 cm wide, where 70 columns is already tight,
  so we wrap ourselves: at a space near the end of the line when there is one, else at any character.
  Continuation rows get a small hook drawn as vector art in the gutter — not as a character, so the text
  layer (search, copy) still holds the line exactly as written. Right-to-left runs in a row are reordered
  for display, as code editors do, and letters the mono font lacks come from fallback fonts.
* :class:`Barred` — a block quote's vertical bar that follows its content across page breaks.
"""

from __future__ import annotations

import functools
from typing import Any

from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus.flowables import Flowable

from eink_llm.render import fonts
from eink_llm.render.bidi import display, shape_arabic
from eink_llm.render.styles import BLACK, Theme

#: ``splitInRow`` for every Table: the minimum height (pt) of each part when a row is split across pages.
#: Any larger value makes a row whose remainder would be shorter than it unsplittable, and reportlab then
#: fails the whole layout ("too large on page") instead of breaking the row.
SPLIT_IN_ROW = 1

Row = tuple[str, bool]  # (text, is a continuation of the previous row)

#: Prefer breaking at a space only if it leaves the row at least this full; else break mid-word.
_SPACE_BREAK_MIN_FILL = 0.6


@functools.lru_cache(maxsize=16384)
def _char_width(char: str, size: float) -> float:
    font = fonts.mono_runs(char)[0][0]
    return float(stringWidth(char, font, size))


def wrap_line(line: str, width: float, size: float) -> list[str]:
    """Cut one line of code into pieces no wider than ``width``; joining the pieces gives ``line`` back."""
    fonts.ensure_fonts()  # widths come from the registered fonts; cheap after the first call
    pieces: list[str] = []
    start, used, last_space = 0, 0.0, -1
    i = 0
    while i < len(line):
        w = _char_width(line[i], size)
        if used + w > width and i > start:
            cut = i
            if last_space >= start and (last_space + 1 - start) >= _SPACE_BREAK_MIN_FILL * (i - start):
                cut = last_space + 1
            pieces.append(line[start:cut])
            start = cut
            last_space = line.rfind(" ", start, i)
            used = sum(_char_width(c, size) for c in line[start:i])
            continue
        if line[i] == " ":
            last_space = i
        used += w
        i += 1
    pieces.append(line[start:])
    return pieces


class CodeBlock(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """A fenced code block: monospaced, boxed, wrapped to the frame, splittable across pages."""

    def __init__(self, text: str, theme: Theme, *, rows: list[Row] | None = None) -> None:
        super().__init__()
        self.theme = theme
        self.size = theme.code_size
        self.leading = round(theme.code_size * 1.3, 2)
        self.pad = round(theme.code_size * 0.45, 2)
        self.gutter = round(theme.code_size * 0.75, 2)
        if rows is None:
            lines = shape_arabic(text).expandtabs(4).split("\n")
            rows = [(line, False) for line in lines]
        self._rows: list[Row] = rows or [("", False)]
        self._wrapped: list[Row] = self._rows
        self._wrapped_for: float | None = None

    def _text_width(self, avail_width: float) -> float:
        return max(avail_width - 2 * self.pad - self.gutter, self.size * 4)

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        if self._wrapped_for != availWidth:
            inner = self._text_width(availWidth)
            wrapped: list[Row] = []
            for text, cont in self._rows:
                for n, piece in enumerate(wrap_line(text, inner, self.size)):
                    wrapped.append((piece, cont or n > 0))
            self._wrapped, self._wrapped_for = wrapped, availWidth
        self.width = availWidth
        self.height = len(self._wrapped) * self.leading + 2 * self.pad
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:
        self.wrap(availWidth, availHeight)
        fit = int((availHeight - 2 * self.pad) // self.leading)
        if fit >= len(self._wrapped):
            return [self]
        # Leave at least two rows on each side of a page break; one orphaned row reads as a separate block.
        fit = min(fit, len(self._wrapped) - 2)
        if fit < 2:
            return []
        return [
            CodeBlock("", self.theme, rows=self._wrapped[:fit]),
            CodeBlock("", self.theme, rows=self._wrapped[fit:]),
        ]

    def draw(self) -> None:
        canv: Any = self.canv
        t = self.theme
        canv.saveState()
        canv.setLineWidth(t.line_width)
        canv.setStrokeColor(t.line_colour)
        canv.rect(0, 0, self.width, self.height, stroke=1, fill=0)
        canv.setFillColor(BLACK)
        x0 = self.pad + self.gutter
        # Baseline of the first row: a leading below the top, minus the descender share of the leading.
        y = self.height - self.pad - self.size * 1.02
        hook_w = self.gutter * 0.6
        for text, cont in self._wrapped:
            if cont:
                hx = self.pad + self.gutter * 0.2
                top, mid = y + self.size * 0.75, y + self.size * 0.3
                path = canv.beginPath()
                path.moveTo(hx, top)
                path.lineTo(hx, mid)
                path.lineTo(hx + hook_w, mid)
                canv.drawPath(path, stroke=1, fill=0)
            if text:
                obj = canv.beginText(x0, y)
                for font, run in fonts.mono_runs(display(text, 0)):
                    obj.setFont(font, self.size)
                    obj.textOut(run)
                canv.drawText(obj)
            y -= self.leading
        canv.restoreState()


class Barred(Flowable):  # type: ignore[misc]
    """Wraps one flowable of a block quote and draws the quote bar beside it.

    Each flowable of the quote is wrapped separately (instead of wrapping the whole quote in one box) so
    that the page breaks inside a long quote come from the ordinary frame logic, like anywhere else.
    """

    def __init__(self, child: Flowable, offsets: tuple[float, ...], theme: Theme) -> None:
        super().__init__()
        self.child = child
        self.offsets = offsets  # distance from the child's left edge back to each enclosing quote's bar
        self.theme = theme

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        self.width, self.height = self.child.wrapOn(self.canv, availWidth, availHeight)
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:
        return [Barred(p, self.offsets, self.theme) for p in self.child.splitOn(self.canv, availWidth, availHeight)]

    def getSpaceBefore(self) -> float:
        return float(self.child.getSpaceBefore())

    def getSpaceAfter(self) -> float:
        return float(self.child.getSpaceAfter())

    def draw(self) -> None:
        canv: Any = self.canv
        self.child.drawOn(canv, 0, 0)
        canv.saveState()
        canv.setLineWidth(max(self.theme.line_width * 2.5, 1.5))
        canv.setStrokeColor(self.theme.line_colour)
        for offset in self.offsets:
            canv.line(-offset, 0, -offset, self.height)
        canv.restoreState()
