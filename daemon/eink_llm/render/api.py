"""The two entry points: an answer PDF, and the ERROR_ PDF that tells the user why there is no answer.

Both degrade rather than fail where they can, because a PDF in the folder is the only way the person at
the tablet learns anything:

* ``render_answer``: if the formatted layout fails (a reportlab limit, a bug in our conversion), the answer
  is laid out again as plain wrapped text with a one-line note. Only if that fails too is a
  :class:`RenderError` raised — and the pipeline then calls ``render_error``.
* ``render_error``: an unknown device or odd font size falls back to the defaults; if even the simple
  layout fails, a bare page in a built-in PDF font is drawn with nothing but ``drawString``.

Characters that no font on the system can draw are logged once per answer (``eink_llm.render`` logger,
event ``characters_without_font``), naming them, so a missing font package can be spotted and installed.
"""

from __future__ import annotations

import io
import textwrap
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pypdfium2 as pdfium
import structlog
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Spacer

from eink_llm.errors import RenderError
from eink_llm.fingerprint import seal
from eink_llm.render import boxes, fonts, metadata
from eink_llm.render.boxes import RETRY_BOX_TEXT, asked_box, note_box
from eink_llm.render.devices import DEFAULT_DEVICE, DEVICES, Device, resolve_device
from eink_llm.render.document import RenderMeta, build_pdf, date_text, page_layout
from eink_llm.render.flowables import CodeBlock
from eink_llm.render.markdown import Stats, markdown_flowables, text_markup
from eink_llm.render.paragraphs import Para, make_paragraph
from eink_llm.render.reply import reply_page as reply_flowables
from eink_llm.render.styles import Theme, check_font_size, make_theme

log = structlog.get_logger("eink_llm.render")

DeviceSpec = Device | str | Mapping[str, Any]


@dataclass
class Rendered:
    """A rendered answer and what happened on the way, for callers that report more than the PDF."""

    pdf: bytes
    stats: Stats = field(default_factory=Stats)
    missing_chars: list[str] = field(default_factory=list)  # characters no font could draw
    plain_fallback: bool = False  # the formatted layout failed; the answer is shown as plain text


def warn_missing(missing: set[str]) -> list[str]:
    chars = sorted(missing)
    if chars:
        log.warning(
            "characters_without_font",
            characters="".join(chars),
            codepoints=[f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in chars[:50]],
            hint="install a font that has them (e.g. fonts-noto-core, fonts-wqy-zenhei, fonts-symbola)",
        )
    return chars


_RETRY_TODO = "Try asking again; if it keeps happening, report it together with the daemon's log."


def body_width(device: Device, theme: Theme) -> float:
    body = page_layout(device, theme).body
    return body.x1 - body.x0


def body_height(device: Device, theme: Theme) -> float:
    body = page_layout(device, theme).body
    return body.y1 - body.y0


def render_answer(
    markdown: str,
    meta: RenderMeta,
    *,
    device: DeviceSpec = DEFAULT_DEVICE,
    font_size: float = 11.0,
    reply_page: bool = True,
) -> bytes:
    """The LLM's Markdown answer as a PDF sized for ``device`` (a name, a :class:`Device` or a mapping).

    With ``reply_page`` (the default) a last, ruled page invites the follow-up question (see
    :mod:`eink_llm.render.reply`)."""
    return render(markdown, meta, device=device, font_size=font_size, reply_page=reply_page).pdf


def render(
    markdown: str,
    meta: RenderMeta,
    *,
    device: DeviceSpec = DEFAULT_DEVICE,
    font_size: float = 11.0,
    reply_page: bool = False,
) -> Rendered:
    """Like :func:`render_answer`, also telling how many formulas were drawn and which characters had no font.

    Without a reply page by default: this is also the preview and gallery entry point, which show the answer."""
    dev = resolve_device(device)
    theme = make_theme(dev, font_size)
    fonts.ensure_fonts()
    width = body_width(dev, theme)
    text = fonts.clean_text(markdown)
    with fonts.collect_missing() as missing:
        result = _render(text, meta, dev, theme, width, reply_page)
    result.missing_chars = warn_missing(missing)
    return result


def _render(text: str, meta: RenderMeta, dev: Device, theme: Theme, width: float, reply: bool) -> Rendered:
    top = [*note_box(meta.note, theme, width), *asked_box(meta.transcription, theme, width)]
    end = reply_flowables(theme, meta.exchange) if reply else []
    if not text.strip():
        empty = Para("<i>The model sent an empty answer.</i>", theme.styles["body"])
        return Rendered(_build_or_raise([*top, empty, *end], meta, dev, theme))
    stats = Stats()
    try:
        story = [*top, *markdown_flowables(text, theme, width, stats, body_height(dev, theme)), *end]
        pdf = build_pdf(story, meta, dev, theme)
        if 0 < stats.links <= INLINE_LINKS_UP_TO:
            pdf = _fewer_pages(pdf, text, meta, dev, theme, width, reply)
        return Rendered(pdf, stats)
    except RenderError:
        raise
    except Exception as exc:  # RecursionError, reportlab LayoutError, ...: try the plain layout below
        first_failure = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("answer_shown_as_plain_text", error=first_failure)
    note = Para(
        "<i>The formatting of this answer could not be laid out, so it is shown as plain text.</i>",
        theme.styles["body"],
    )
    end = reply_flowables(theme, meta.exchange) if reply else []  # fresh flowables: the first ones were used
    pdf = _build_or_raise([*top, note, CodeBlock(text, theme), *end], meta, dev, theme, first_failure)
    return Rendered(pdf, plain_fallback=True)


#: With this many links or fewer, the addresses may go inline when the list at the end would need a page.
INLINE_LINKS_UP_TO = 3


def _fewer_pages(
    pdf: bytes, text: str, meta: RenderMeta, dev: Device, theme: Theme, width: float, reply: bool
) -> bytes:
    """The answer with its few addresses in brackets after the links, when the list at the end would start a
    page of its own (or the inline form saves a page): a short list of links must not take a whole page."""
    pages, alone = _list_alone(pdf, reply)
    top = [*note_box(meta.note, theme, width), *asked_box(meta.transcription, theme, width)]
    end = reply_flowables(theme, meta.exchange) if reply else []
    story = [*top, *markdown_flowables(text, theme, width, Stats(), body_height(dev, theme), inline_links=True), *end]
    inline = build_pdf(story, meta, dev, theme)
    fewer = _list_alone(inline, reply)[0] < pages
    return inline if alone or fewer else pdf


def _list_alone(pdf: bytes, reply: bool) -> tuple[int, bool]:
    """The page count, and whether the last page of the answer (before the reply page) starts with the list of
    links, i.e. holds nothing else of the answer. Under the reader's PDFium lock: PDFium is not thread-safe."""
    from eink_llm.reader.pdf import PDFIUM_LOCK

    with PDFIUM_LOCK:
        document = pdfium.PdfDocument(pdf)
        try:
            count = len(document)
            index = count - 1 - (1 if reply and count > 1 else 0)
            if index < 1:
                return count, False
            page_text = document[index].get_textpage().get_text_range().lstrip()
            return count, page_text.startswith(("Links", "[1]"))
        finally:
            document.close()


def _build_or_raise(
    story: Sequence[Flowable], meta: RenderMeta, dev: Device, theme: Theme, earlier: str | None = None
) -> bytes:
    try:
        return build_pdf(story, meta, dev, theme)
    except RenderError:
        raise
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"[:500]
        raise RenderError(
            "The answer arrived but could not be laid out as a PDF.",
            _RETRY_TODO,
            detail=f"{earlier}; then plain layout: {detail}" if earlier else detail,
        ) from exc


def render_error(
    meta: RenderMeta,
    *,
    title: str,
    what: str,
    todo: str,
    detail: str | None = None,
    device: DeviceSpec = DEFAULT_DEVICE,
    font_size: float = 11.0,
    retry_box: bool = False,
) -> bytes:
    """A PDF that explains a failure: what happened, what to do, and the technical detail; ``retry_box`` adds a
    box to write in when trying again may help (ink there retries the question)."""
    try:
        dev = resolve_device(device)
    except Exception:  # the failure being reported may be this very setting
        dev = DEVICES[DEFAULT_DEVICE]
    try:
        size = check_font_size(font_size)
    except Exception:
        size = 11.0
    try:
        return _error_pdf(meta, title, what, todo, detail, dev, size, retry_box)
    except Exception as exc:
        first_failure = exc
    try:
        return _bare_error_pdf(meta, title, what, f"{todo} {RETRY_BOX_TEXT}" if retry_box else todo, detail, dev)
    except Exception as exc:
        raise RenderError(
            "Even the error page could not be laid out.",
            "Check the daemon's log for the original problem; it has been recorded there.",
            detail=f"{type(first_failure).__name__}: {first_failure}; then {type(exc).__name__}: {exc}"[:1000],
        ) from exc


def _error_pdf(
    meta: RenderMeta, title: str, what: str, todo: str, detail: str | None, dev: Device, size: float, retry: bool
) -> bytes:
    fonts.ensure_fonts()
    theme = make_theme(dev, size)
    styles = theme.styles

    def para(text: object, face: str = fonts.SANS) -> str:
        return "<br/>".join(text_markup(line, face) for line in fonts.clean_text(text).strip().split("\n"))

    title_markup = para(title, fonts.SANS_BOLD) or "Something went wrong"
    note = getattr(meta, "note", None)
    story: list[Flowable] = note_box(note, theme, body_width(dev, theme)) if isinstance(note, str) else []
    story.append(make_paragraph(title_markup, styles["error_title"], plain=fonts.clean_text(title)))
    if fonts.clean_text(what).strip():
        story.append(make_paragraph(para(what), styles["body"], plain=fonts.clean_text(what)))
    if fonts.clean_text(todo).strip():
        story.append(make_paragraph(f"<b>What to do:</b> {para(todo)}", styles["body"]))
    if detail is not None and fonts.clean_text(detail).strip():
        story.append(Para("Details", styles["h4"]))
        story.append(CodeBlock(fonts.clean_text(detail).strip(), theme))
    transcription = getattr(meta, "transcription", None)
    if isinstance(transcription, str) and transcription.strip():
        story.append(Spacer(1, theme.font_size))
        story.extend(asked_box(transcription, theme, body_width(dev, theme)))
    if retry:
        story.extend(boxes.retry_box(theme, body_width(dev, theme)))
    return build_pdf(story, meta, dev, theme)


def _ascii(value: object) -> str:
    text = fonts.clean_text(value)
    return text.encode("ascii", "replace").decode("ascii")


def _bare_error_pdf(meta: RenderMeta, title: str, what: str, todo: str, detail: str | None, dev: Device) -> bytes:
    """Last resort: built-in Helvetica, ASCII only, hand-wrapped. Depends on nothing that could be broken."""
    width, height = dev.width_mm * mm, dev.height_mm * mm
    margin = 15 * mm
    size, leading = 11.0, 15.0
    columns = max(20, int((width - 2 * margin) / (size * 0.55)))
    lines: list[tuple[str, str]] = [("Helvetica-Bold", _ascii(title) or "Something went wrong"), ("Helvetica", "")]
    note = getattr(meta, "note", None)
    blocks = (
        f"Note: {note}" if isinstance(note, str) and note.strip() else "",
        what,
        f"What to do: {todo}" if todo else "",
    )
    for block in (*blocks, detail or ""):
        if not block:
            continue
        for paragraph in _ascii(block).split("\n"):
            lines.extend(("Helvetica", row) for row in textwrap.wrap(paragraph, columns, break_long_words=True))
        lines.append(("Helvetica", ""))
    conversation = _ascii(getattr(meta, "conversation_id", ""))
    exchange = _ascii(getattr(meta, "exchange", ""))
    lines.append(
        ("Helvetica", f"{conversation} - Exchange {exchange} - {date_text(getattr(meta, 'created_at', None))}")
    )

    buffer = io.BytesIO()
    canv = Canvas(buffer, pagesize=(width, height), invariant=1)
    canv.setTitle(_ascii(getattr(meta, "title", "")) or "eink-llm error")
    canv.setAuthor("eink-llm")
    canv.setSubject(conversation)
    canv.setKeywords(["eink-llm", f"exchange {exchange}", f"conversation {conversation}"])
    created = getattr(meta, "created_at", None)
    number = getattr(meta, "exchange", None)
    metadata.stamp(
        canv,
        metadata.Identity(
            conversation,
            number if isinstance(number, int) and not isinstance(number, bool) else None,
            created if isinstance(created, datetime) and date_text(created) else None,
            sha if isinstance(sha := getattr(meta, "input_sha256", None), str) else None,
        ),
    )
    y = height - margin
    for font, text in lines:
        if y < margin:
            canv.showPage()
            y = height - margin
        canv.setFont(font, size)
        canv.drawString(margin, y, text[: columns + 5])
        y -= leading
    canv.showPage()
    canv.save()
    return seal(buffer.getvalue())
