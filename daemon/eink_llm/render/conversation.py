"""A whole conversation as one e-ink PDF: every exchange's question and answer, in order.

Individual answers are scattered over the synced folder under names the tablet may have changed; the export
puts a conversation back together to read, archive or print. Each exchange opens with a heading ("Exchange 3
· 2026-11-25 14:02 UTC") that is a top-level PDF outline entry, so a long conversation can be navigated from
the tablet's table of contents; the answer's own headings are nested below it. The question is shown in the
same "You asked:" box as on an answer, the answer with the full Markdown renderer, a failed exchange with its
error. There is no reply page (a follow-up belongs on the newest answer), but the file carries the
conversation id in its metadata like every PDF we write, without an exchange number.

If the formatted layout fails (a reportlab limit, a bug in our conversion), the export is laid out again with
every answer as plain text, as :func:`eink_llm.render.render_answer` does for one answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import CondPageBreak, Flowable, Spacer
from reportlab.platypus.flowables import HRFlowable

from eink_llm.errors import RenderError
from eink_llm.render import fonts
from eink_llm.render.api import DeviceSpec, body_height, body_width, warn_missing
from eink_llm.render.boxes import asked_box
from eink_llm.render.devices import DEFAULT_DEVICE, Device, resolve_device
from eink_llm.render.document import DocumentInfo, build_document, date_text, one_line
from eink_llm.render.flowables import Barred, CodeBlock
from eink_llm.render.markdown import markdown_flowables, text_markup
from eink_llm.render.paragraphs import Para, make_paragraph
from eink_llm.render.styles import Theme, make_theme

log = structlog.get_logger("eink_llm.render")


@dataclass(frozen=True, slots=True)
class ConversationEntry:
    """One exchange as the export shows it. ``question`` is the transcription (or typed text), ``answer`` the
    model's Markdown; a failed exchange has ``error`` instead."""

    sequence: int
    created_at: datetime
    question: str | None = None
    answer: str | None = None
    error: str | None = None
    model: str = ""


def render_conversation(
    title: str,
    conversation_id: str,
    entries: Sequence[ConversationEntry],
    *,
    device: DeviceSpec = DEFAULT_DEVICE,
    font_size: float = 11.0,
) -> bytes:
    """The whole conversation as one PDF sized for ``device``; raises :class:`RenderError` if it cannot be laid
    out even with plain-text answers."""
    dev = resolve_device(device)
    theme = make_theme(dev, font_size)
    fonts.ensure_fonts()
    ordered = sorted(entries, key=lambda entry: entry.sequence)
    info = _info(title, conversation_id, ordered)
    with fonts.collect_missing() as missing:
        try:
            pdf = build_document(_story(info, ordered, dev, theme, plain=False), info, dev, theme)
        except RenderError:
            raise
        except Exception as exc:  # RecursionError, reportlab LayoutError, ...: every answer as plain text
            first = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("conversation_shown_as_plain_text", error=first)
            try:
                pdf = build_document(_story(info, ordered, dev, theme, plain=True), info, dev, theme)
            except Exception as again:
                raise RenderError(
                    "The conversation could not be laid out as a PDF.",
                    "Try exporting it again; if it keeps happening, report it together with the daemon's log.",
                    detail=f"{first}; then plain layout: {type(again).__name__}: {again}"[:1000],
                ) from again
    warn_missing(missing)
    return pdf


def _info(title: str, conversation_id: str, entries: Sequence[ConversationEntry]) -> DocumentInfo:
    conversation = one_line(conversation_id)
    dates = [e.created_at for e in entries if isinstance(e.created_at, datetime) and date_text(e.created_at)]
    count = len(entries)
    keywords: tuple[str, ...] = ("eink-llm", "conversation export", f"exchanges {count}")
    if conversation:
        keywords += (f"conversation {conversation}",)
    return DocumentInfo(
        title=one_line(title) or "eink-llm conversation",
        conversation=conversation,
        label=f"{count} exchange{'' if count == 1 else 's'}",
        created=max(dates, key=_utc_key) if dates else None,
        keywords=keywords,
    )


def _utc_key(when: datetime) -> float:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _story(
    info: DocumentInfo, entries: Sequence[ConversationEntry], dev: Device, theme: Theme, *, plain: bool
) -> list[Flowable]:
    styles = theme.styles
    width = body_width(dev, theme)
    # The exchange heading is one step above the answer's own "##" headings; the title one above that.
    heading = ParagraphStyle("exchange", parent=styles["h1"], spaceBefore=0)
    title_style = ParagraphStyle(
        "export_title", parent=styles["h1"], fontSize=heading.fontSize * 1.25, leading=heading.leading * 1.25
    )
    small = ParagraphStyle("exchange_model", parent=styles["note"], textColor=theme.muted, spaceAfter=theme.font_size)
    story: list[Flowable] = [
        Para(text_markup(info.title, fonts.SANS_BOLD), title_style),
        Para(text_markup(_summary(info.label, entries)), small),
    ]
    if not entries:
        story.append(Para("<i>This conversation has no exchanges yet.</i>", styles["body"]))
    for n, entry in enumerate(entries):
        # The heading must not end a page: room for it, the rule and a few lines, or a new page.
        story.append(CondPageBreak(heading.leading * 2 + 4 * theme.leading))
        if n:
            story.append(HRFlowable(width="100%", thickness=max(1.0, theme.line_width * 1.5), color=theme.line_colour))
            story.append(Spacer(1, theme.font_size * 0.8))
        label = " · ".join(part for part in (f"Exchange {entry.sequence}", date_text(entry.created_at)) if part)
        story.append(make_paragraph(text_markup(label, fonts.SANS_BOLD), heading, plain=label, outline=0))
        model = one_line(entry.model)
        if model:
            answered = entry.answer is not None and bool(entry.answer.strip())
            story.append(Para(text_markup(f"Answered by {model}" if answered else f"Model: {model}"), small))
        story.extend(asked_box(entry.question, theme, width))
        story.extend(_answer(entry, theme, width, body_height(dev, theme), plain=plain))
    return story


def _summary(label: str, entries: Sequence[ConversationEntry]) -> str:
    """ "12 exchanges · 2026-11-20 09:15 UTC – 2026-11-25 14:02 UTC" (the id is in the running header)."""
    dates = [date_text(e.created_at) for e in entries]
    first, last = next((d for d in dates if d), ""), next((d for d in reversed(dates) if d), "")
    span = first if first == last else f"{first} – {last}"
    return " · ".join(part for part in (label, span) if part)


def _answer(entry: ConversationEntry, theme: Theme, width: float, height: float, *, plain: bool) -> list[Flowable]:
    body = theme.styles["body"]
    answer = fonts.clean_text(entry.answer) if entry.answer is not None else ""
    out: list[Flowable] = []
    if answer.strip():
        flowables: list[Flowable] | None = None
        if not plain:
            try:
                flowables = _nested(markdown_flowables(answer, theme, width, height=height))
            except Exception as exc:  # NestingTooDeep and the like: this answer as plain text
                log.warning("answer_shown_as_plain_text", exchange=entry.sequence, error=f"{type(exc).__name__}")
        out.extend(flowables if flowables is not None else [CodeBlock(answer, theme)])
    error = fonts.clean_text(entry.error).strip() if entry.error is not None else ""
    if error:
        lines = "<br/>".join(text_markup(line) for line in error.split("\n"))
        out.append(make_paragraph(f"<b>No answer:</b> {lines}", body, plain=f"No answer: {error}"))
    if not out:
        out.append(Para("<i>No answer was recorded for this exchange.</i>", body))
    return out


def _nested(flowables: list[Flowable]) -> list[Flowable]:
    """Move the answer's headings one outline level down, under their exchange's entry."""
    for flowable in flowables:
        target: Any = flowable.child if isinstance(flowable, Barred) else flowable
        outline = getattr(target, "outline", None)
        if isinstance(outline, tuple):
            target.outline = (outline[0], outline[1] + 1)
    return flowables
