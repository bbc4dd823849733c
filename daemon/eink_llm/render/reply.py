"""The reply page: one last, ruled page where the follow-up question is written by hand.

Writing the follow-up on the answer itself keeps the conversation in one file on the tablet, and the file
carries its conversation id in its metadata (see :mod:`eink_llm.render.metadata`), so it continues the
conversation even after the tablet renamed it on export.

The rules are a writing guide, not content: the page economy counts a pixel as ink below grey 160 (of 255),
so the rules are drawn light enough (grey ~204, darkest pixel ≥ 200 when rasterised at 150 dpi) that a
returned reply page shows only the handwriting. They are at least 1 pt wide, so they survive an e-ink panel's
rendering instead of vanishing like hairlines. Colour panels are the one place we otherwise draw nothing
grey (they dither grey into a fuzzy pattern), but for a faint guide that pattern is fine, and a black rule
would be taken for ink. The page keeps the running header and footer; its one outline entry is "Your reply".
"""

from __future__ import annotations

from typing import Any

from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, PageBreakIfNotEmpty, Spacer

from eink_llm.render import fonts
from eink_llm.render.markdown import text_markup
from eink_llm.render.paragraphs import make_paragraph
from eink_llm.render.styles import Theme, grey

#: The rules' grey: after rasterisation no pixel is darker than this (0 black … 1 white).
RULE_GREY = 0.8
#: Distance between rules: about a college-ruled line, roomy for a stylus.
RULE_SPACING_MM = 8.0
REPLY_TITLE = "Your reply"


class RuledLines(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """Light horizontal rules filling the rest of the frame, one every ``spacing`` points."""

    def __init__(self, spacing: float, line_width: float) -> None:
        super().__init__()
        self.spacing = spacing
        self.line_width = line_width
        self.count = 0

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        self.width = availWidth
        self.height = max(0.0, availHeight - 1.0)  # a point of slack: float noise must not push it off the page
        self.count = int(self.height // self.spacing)
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Any]:
        return []  # fills whatever room there is, so it never needs splitting

    def draw(self) -> None:
        canv: Any = self.canv
        canv.saveState()
        canv.setStrokeColor(grey(RULE_GREY))
        canv.setLineWidth(self.line_width)
        canv.setLineCap(0)
        for n in range(1, self.count + 1):
            y = self.height - n * self.spacing
            canv.line(0, y, self.width, y)
        canv.restoreState()


def hint_text(exchange: object) -> str:
    after = f" after exchange {exchange}" if isinstance(exchange, int) and not isinstance(exchange, bool) else ""
    return f"Write your follow-up here, then sync this file back — it continues this conversation{after}."


def reply_page(theme: Theme, exchange: object) -> list[Flowable]:
    """A page break, a "Your reply" heading (an outline entry), the hint, and the rules."""
    styles = theme.styles
    title_style = ParagraphStyle("reply_title", parent=styles["h3"], spaceBefore=0)
    hint_style = ParagraphStyle(
        "reply_hint", parent=styles["note"], fontName=fonts.SANS_ITALIC, textColor=theme.muted, spaceAfter=0
    )
    hint = hint_text(exchange)
    return [
        PageBreakIfNotEmpty(),
        make_paragraph(text_markup(REPLY_TITLE, fonts.SANS_BOLD), title_style, plain=REPLY_TITLE, outline=0),
        make_paragraph(text_markup(hint, fonts.SANS_ITALIC), hint_style, plain=hint),
        Spacer(1, theme.font_size * 0.3),
        RuledLines(RULE_SPACING_MM * mm, max(1.0, theme.line_width * 1.5)),
    ]
