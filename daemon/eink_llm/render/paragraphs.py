"""The paragraph classes the converter uses, and the one place that picks between them.

* :class:`Para` — reportlab's Paragraph plus inline formulas (see :mod:`eink_llm.render.mathblocks`);
* :class:`BidiPara` / :class:`RtlPara` — paragraphs with right-to-left text, left- or right-based
  (see :mod:`eink_llm.render.bidi`);
* :class:`Heading` — also records a PDF outline entry (bookmark) where it is drawn.

reportlab re-creates paragraphs with ``self.__class__`` when it splits them across pages, so everything that
must survive a split is either a class attribute or copied in :meth:`Heading.split`.
"""

from __future__ import annotations

from typing import Any

from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Paragraph

from eink_llm.render import bidi, mathblocks, shaping


class Para(Paragraph):  # type: ignore[misc]  # reportlab is untyped
    """A paragraph whose markup may hold inline formulas."""

    style: Any
    frags: Any

    def __init__(self, text: Any, style: Any = None, bulletText: Any = None, frags: Any = None, **kw: Any) -> None:
        super().__init__(text, style, bulletText=bulletText, frags=frags, **kw)
        if (isinstance(text, str) and mathblocks.MATH_CALLBACK in text) or frags is not None:
            leading = mathblocks.leading_for(self.frags, self.style.fontSize, self.style.leading)
            if leading > self.style.leading:
                self.style = ParagraphStyle(f"{self.style.name}-math", parent=self.style, leading=leading)


class BidiPara(Para):
    """Laid out in logical order like any paragraph; each line is reordered for display only when drawn."""

    base_level = 0
    blPara: Any

    def drawPara(self, debug: int = 0) -> None:
        logical = self.blPara
        self.blPara = bidi.visual_lines(logical, self.base_level)
        try:
            super().drawPara(debug)
        finally:
            self.blPara = logical


class RtlPara(BidiPara):
    """A paragraph whose first strong letter is right-to-left: it is also aligned to the right."""

    base_level = 1


class _HeadingMixin:
    """Records ``(title, level)`` for the PDF outline at the top of where it is drawn."""

    outline: tuple[str, int] | None = None

    def draw(self) -> None:
        canv: Any = getattr(self, "canv")  # noqa: B009  # set by reportlab before draw
        if self.outline is not None and hasattr(canv, "add_outline"):
            _, top = canv.absolutePosition(0, getattr(self, "height"))  # noqa: B009
            canv.add_outline(self.outline[0], self.outline[1], top)
        super().draw()  # type: ignore[misc]

    def split(self, availWidth: float, availHeight: float) -> list[Any]:
        parts: list[Any] = super().split(availWidth, availHeight)  # type: ignore[misc]
        if parts:
            parts[0].outline = self.outline  # only the first part is where the heading starts
        return parts


class Heading(_HeadingMixin, Para):
    pass


class BidiHeading(_HeadingMixin, BidiPara):
    pass


class RtlHeading(_HeadingMixin, RtlPara):
    pass


def right_aligned(style: ParagraphStyle) -> ParagraphStyle:
    if style.alignment != TA_LEFT:
        return style
    return ParagraphStyle(f"{style.name}-rtl", parent=style, alignment=TA_RIGHT)


def make_paragraph(
    markup: str, style: ParagraphStyle, bullet: str | None = None, *, plain: str = "", outline: int | None = None
) -> Para:
    """The right paragraph class for ``markup``; ``plain`` is its visible text (for direction and the outline)."""
    rtl = bidi.has_rtl(markup)
    base_rtl = rtl and bidi.base_is_rtl(plain or markup)
    if outline is not None:
        cls: type[Para] = RtlHeading if base_rtl else BidiHeading if rtl else Heading
    else:
        cls = RtlPara if base_rtl else BidiPara if rtl else Para
    if base_rtl:
        style = right_aligned(style)
    elif not rtl:  # reportlab shapes right-to-left text itself, differently from our bidi; keep ours
        style = shaping.shaped_style(style, markup)
    para = cls(markup, style, bulletText=bullet) if bullet is not None else cls(markup, style)
    if outline is not None:
        para.outline = (" ".join(plain.split())[:200] or "Untitled", outline)
    return para
