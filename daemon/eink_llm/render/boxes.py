"""The boxed notices above an answer: a note from the daemon, and the "You asked:" box.

Both are framed tables one column wide, so they split across pages like any table and stand apart from the
answer on a panel without colour. The note comes first: it says something about the answer as a whole (for
example that an archived conversation could not be continued, so this question started a new one).
"""

from __future__ import annotations

from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Flowable, Spacer, Table, TableStyle

from eink_llm.render import fonts
from eink_llm.render.flowables import SPLIT_IN_ROW
from eink_llm.render.markdown import text_markup
from eink_llm.render.paragraphs import Para, make_paragraph
from eink_llm.render.styles import Theme


def _framed(cell: list[Flowable], theme: Theme, width: float, pad: float, line_width: float) -> Table:
    box = Table([[cell]], colWidths=[width], splitInRow=SPLIT_IN_ROW, hAlign="LEFT")
    box.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), line_width, theme.line_colour),
                ("LEFTPADDING", (0, 0), (-1, -1), pad),
                ("RIGHTPADDING", (0, 0), (-1, -1), pad),
                ("TOPPADDING", (0, 0), (-1, -1), pad * 0.8),
                ("BOTTOMPADDING", (0, 0), (-1, -1), pad),
            ]
        )
    )
    return box


def _markup(text: str, face: str) -> str:
    return "<br/>".join(text_markup(line, face) for line in text.split("\n"))


def asked_box(transcription: str | None, theme: Theme, width: float) -> list[Flowable]:
    """The "You asked:" box, so the answer can be read without flipping back to the question."""
    text = fonts.clean_text(transcription).strip() if transcription is not None else ""
    if not text:
        return []
    styles = theme.styles
    cell = [
        Para("You asked:", styles["asked_label"]),
        make_paragraph(_markup(text, fonts.SANS_ITALIC), styles["asked"], plain=text),
    ]
    return [
        _framed(cell, theme, width, theme.font_size * 0.5, theme.line_width * 1.5),
        Spacer(1, theme.font_size * 0.4),
    ]


def note_box(note: str | None, theme: Theme, width: float) -> list[Flowable]:
    """A small boxed notice (in the note size), e.g. "Conversation … is archived, so this question started a
    new conversation." Empty when there is nothing to say."""
    text = fonts.clean_text(note).strip() if note is not None else ""
    if not text:
        return []
    markup = f"<b>Note:</b> {_markup(text, fonts.SANS)}"
    style = ParagraphStyle("note_box", parent=theme.styles["note"], spaceAfter=0)
    cell = [make_paragraph(markup, style, plain=f"Note: {text}")]
    return [_framed(cell, theme, width, theme.font_size * 0.4, theme.line_width), Spacer(1, theme.font_size * 0.4)]


#: The words in the box on an ERROR_ page whose failure was not the page's fault.
RETRY_BOX_TEXT = "Write anything here and sync to try again."


def retry_box(theme: Theme, width: float) -> list[Flowable]:
    """A box with room to write in: ink on an ERROR_ page asks for its question to be tried again."""
    style = ParagraphStyle("retry_box", parent=theme.styles["body"], spaceAfter=0)
    cell: list[Flowable] = [make_paragraph(f"<b>{RETRY_BOX_TEXT}</b>", style), Spacer(1, theme.font_size * 8)]
    return [Spacer(1, theme.font_size), _framed(cell, theme, width, theme.font_size * 0.6, theme.line_width * 1.5)]
