"""Tables too wide for the page, even in the smallest legible type: turned sideways, or stacked.

A table whose longest words do not fit across the text column at ~7 pt is laid out across the column's
*height* instead and drawn turned 90° counter-clockwise, as books print landscape tables: the header is at the
left edge of the page, and the reader turns the tablet a quarter clockwise to read it. It starts on a page of
its own and fills whole pages (the room beside a sideways table cannot hold ordinary lines of text); its rows
are split across as many such pages as needed, each with the header rows repeated; a row longer than a page is
split too. The text after the table continues on the next page, upright.

Only when the longest words do not fit even along the page's height is the table *stacked*: one record per
row, "column name | value" pairs, which reads better than words split mid-letter.

The choice needs the frame's height, which the Markdown converter does not know; :class:`WideTable` makes
it when reportlab first lays it out, from the frame it is being laid out in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reportlab.platypus import Flowable, Table

#: Points of slack when checking whether the frame has room for a whole sideways page.
_FUZZ = 0.5


def _split_rows(table: Table, canv: Any, width: float, height: float) -> list[Table]:
    """``table`` (``width`` wide) cut into pieces no taller than ``height``; header rows repeat on each."""
    pieces: list[Table] = []
    rest = table
    while True:
        _, h = rest.wrapOn(canv, width, height)
        if h <= height + _FUZZ:
            pieces.append(rest)
            return pieces
        parts = rest.splitOn(canv, width, height)
        if len(parts) < 2:  # cannot happen with splitInRow; keep the rest whole rather than lose it
            pieces.append(rest)
            return pieces
        pieces.append(parts[0])
        rest = parts[1]


class SidewaysPage(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """One page's worth of a sideways table, drawn turned 90° counter-clockwise; takes the rest of the frame."""

    def __init__(self, piece: Table, length: float) -> None:
        super().__init__()
        self.piece = piece
        self.length = length  # the table's width once turned: (nearly) the frame's height

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        # All the room left, so that nothing upright is set below the turned table on the same page.
        self.width = availWidth
        self.height = availHeight if availHeight >= self.length - _FUZZ else self.length
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:
        return []  # a whole page or nothing: reportlab then moves it to the next page

    def draw(self) -> None:
        canv: Any = self.canv
        _, tall = self.piece.wrapOn(canv, self.length, self.width)
        canv.saveState()
        # Table (x, y) -> page (tall - y, x): the table's top at the page's left edge, its first column at
        # the bottom, which is the top-left corner once the tablet is turned clockwise.
        canv.translate(tall, 0)
        canv.rotate(90)
        self.piece.drawOn(canv, 0, 0)
        canv.restoreState()


class WideTable(Flowable):  # type: ignore[misc]
    """A table too wide for the column: sideways pages (:class:`SidewaysPage`) if it fits that way, else stacked.

    ``sideways(length)`` returns the table laid out ``length`` points wide, or None if it cannot fit;
    ``stacked(width)`` returns the stacked layout for a column ``width`` points wide. The sideways table is
    ``slack`` points shorter than the frame is high, so that a spacer left at the top of the page by the end of
    a list or quote does not push it onto yet another page.
    """

    def __init__(
        self, sideways: Callable[[float], Table | None], stacked: Callable[[float], Table], slack: float = 0.0
    ) -> None:
        super().__init__()
        self._slack = slack  # room left for spacers (the end of a list or quote) at the top of the page
        self._sideways = sideways
        self._stacked = stacked
        self._for: tuple[float, float] | None = None
        self._pages: list[SidewaysPage] = []
        self._stack: Table | None = None

    def _frame_height(self, availHeight: float) -> float:
        frame = self._doctemplateAttr("frame")
        height = getattr(frame, "_aH", None)
        return float(height) if isinstance(height, int | float) else availHeight

    def _prepare(self, availWidth: float, availHeight: float) -> None:
        length = self._frame_height(availHeight) - self._slack
        if self._for == (availWidth, length):
            return
        self._for = (availWidth, length)
        table = self._sideways(length)
        if table is None:
            self._pages, self._stack = [], self._stacked(availWidth)
        else:
            pieces = _split_rows(table, self.canv, length, availWidth)
            self._pages, self._stack = [SidewaysPage(p, length) for p in pieces], None

    @property
    def stacked(self) -> bool:
        """Whether the table was stacked (known once laid out)."""
        return self._stack is not None

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        self._prepare(availWidth, availHeight)
        if self._stack is not None:
            self.width, self.height = self._stack.wrapOn(self.canv, availWidth, availHeight)
        else:
            self.width = availWidth
            first = self._pages[0].wrap(availWidth, availHeight)[1]
            self.height = first + sum(page.length for page in self._pages[1:])
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Flowable]:
        self._prepare(availWidth, availHeight)
        if self._stack is not None:
            parts: list[Flowable] = self._stack.splitOn(self.canv, availWidth, availHeight)
            return parts
        if availHeight < self._pages[0].length - _FUZZ:
            return []  # not at the top of a page: start on the next one
        return list(self._pages)

    def draw(self) -> None:  # only when everything fits here: one sideways page, or a short stacked table
        if self._stack is not None:
            self._stack.drawOn(self.canv, 0, 0)
        else:
            self._pages[0].drawOn(self.canv, 0, 0)
