"""The page: where the body, running header and footer go, and the PDF's metadata.

Geometry (PDF points, origin bottom-left), for a device with margins (top, right, bottom, left):

* the **body box** is the page minus the margins (top/bottom at least ``MIN_TOP_BOTTOM_MM``); every
  flowable of the answer is laid out in one frame of exactly that size, with no padding;
* the **header band** sits in the top margin, from ``BAND_GAP`` above the body box upwards: conversation
  id, exchange number and date, over a thin rule;
* the **footer band** mirrors it in the bottom margin: the title and "page / pages".

Nothing else is drawn outside the body box; the tests rasterise pages and check exactly this.

The page numbers need the total page count, known only after layout. Instead of laying out twice, the
canvas keeps each finished page's state and draws all headers and footers when the document is saved. PDF
outline entries (one per heading) are kept with their page the same way and written as each page is
finished, because a bookmark refers to the page being written.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Flowable, Frame, PageTemplate

from eink_llm import __version__
from eink_llm.fingerprint import seal
from eink_llm.render import fonts, mathblocks, metadata
from eink_llm.render.bidi import display, shape_arabic
from eink_llm.render.devices import MIN_TOP_BOTTOM_MM, Device
from eink_llm.render.styles import Theme

#: Distance between the body box and the header/footer bands, in points.
BAND_GAP = 4.0


@dataclass(frozen=True, slots=True)
class RenderMeta:
    """Who and when an answer belongs to; shown in the running header and the PDF metadata."""

    title: str
    conversation_id: str
    exchange: int
    created_at: datetime
    model: str = ""
    transcription: str | None = None
    #: A notice shown in a small box at the very top (e.g. "this question started a new conversation").
    note: str | None = None
    #: SHA-256 of the input file answered, written into the PDF's metadata (render/metadata.py).
    input_sha256: str | None = None


class Box(NamedTuple):
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True, slots=True)
class PageLayout:
    width: float
    height: float
    body: Box
    header: Box
    footer: Box
    band_size: float  # font size of header and footer text


def band_font_size(theme: Theme) -> float:
    """Header/footer text follows the body size a little, but stays small enough to fit the margin band."""
    return min(9.0, theme.small_size)


def page_layout(device: Device, theme: Theme) -> PageLayout:
    top, right, bottom, left = device.margin_mm
    width, height = device.width_mm * mm, device.height_mm * mm
    body = Box(
        left * mm,
        max(bottom, MIN_TOP_BOTTOM_MM) * mm,
        width - right * mm,
        height - max(top, MIN_TOP_BOTTOM_MM) * mm,
    )
    size = band_font_size(theme)
    header_y0 = body.y1 + BAND_GAP
    header = Box(body.x0, header_y0, body.x1, header_y0 + size * 1.35 + 2.5)
    footer_y1 = body.y0 - BAND_GAP
    footer = Box(body.x0, footer_y1 - size * 1.35 - 1.0, body.x1, footer_y1)
    return PageLayout(width, height, body, header, footer, size)


def date_text(value: object) -> str:
    """The exchange's time as shown in the header. Never raises: a bad timestamp must not cost the page."""
    if not isinstance(value, datetime):
        return ""
    try:
        when = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, OverflowError, OSError):
        return ""


def fit_text(text: str, font: str, size: float, width: float) -> str:
    """Cut ``text`` with an ellipsis so it fits ``width``; a long conversation id must not overprint the date."""
    if fonts.text_width(text, font, size) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # longest prefix that fits together with the ellipsis
        mid = (lo + hi + 1) // 2
        if fonts.text_width(text[:mid] + "…", font, size) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…" if lo else ""


@dataclass(frozen=True, slots=True)
class _Decor:
    layout: PageLayout
    theme: Theme
    conversation: str
    label: str  # after the conversation id in the header: "Exchange 3", "12 exchanges"
    header_right: str
    footer_left: str


def draw_line(canv: Any, x: float, y: float, text: str, font: str, size: float, *, right: bool = False) -> None:
    """One line of any script at (x, y) (or ending at x with ``right``): shaped, reordered, with fallbacks."""
    visual = display(shape_arabic(text))
    if right:
        x -= fonts.text_width(visual, font, size)
    obj = canv.beginText(x, y)
    for run_font, run in fonts.runs(visual, font):
        obj.setFont(run_font, size)
        obj.textOut(run)
    canv.drawText(obj)


def _draw_decor(canv: Any, decor: _Decor, page: int, pages: int) -> None:
    lay, t = decor.layout, decor.theme
    size = lay.band_size
    canv.saveState()
    canv.setFillColor(t.muted)
    canv.setStrokeColor(t.line_colour)
    canv.setLineWidth(t.line_width)
    h, f = lay.header, lay.footer
    width = h.x1 - h.x0
    # Header: conversation and exchange on the left, date on the right, a rule underneath.
    baseline = h.y0 + size * 0.3 + 1.5
    right_w = fonts.text_width(decor.header_right, fonts.SANS, size)
    # The exchange number is what the reader looks for, so only the conversation id is shortened.
    label = decor.label
    room = width - right_w - size - fonts.text_width(f"{label} · ", fonts.SANS_BOLD, size)
    conversation = fit_text(decor.conversation, fonts.SANS_BOLD, size, room)
    left = f"{conversation} · {label}" if conversation else label
    draw_line(canv, h.x0, baseline, left, fonts.SANS_BOLD, size)
    draw_line(canv, h.x1, baseline, decor.header_right, fonts.SANS, size, right=True)
    canv.line(h.x0, h.y0 + 0.5, h.x1, h.y0 + 0.5)
    # Footer: title on the left, page number on the right.
    baseline = f.y1 - size * 0.95 - 0.5
    number = f"{page} / {pages}"
    number_w = stringWidth(number, fonts.SANS, size)
    draw_line(
        canv, f.x0, baseline, fit_text(decor.footer_left, fonts.SANS, size, width - number_w - size), fonts.SANS, size
    )
    draw_line(canv, f.x1, baseline, number, fonts.SANS, size, right=True)
    canv.restoreState()


class _DecoratedCanvas(Canvas):  # type: ignore[misc]  # reportlab is untyped
    """Defers each page's header and footer to ``save()``, when the page count is known."""

    decor: _Decor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []
        self._outline: list[tuple[str, int, float]] = []  # this page's headings: (title, level, top)
        mathblocks.install(self)

    def add_outline(self, title: str, level: int, top: float) -> None:
        """Called by headings as they are drawn; written out with the page in :meth:`save`."""
        self._outline.append((title, level, top))

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._outline = []
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            _draw_decor(self, self.decor, number, total)
            for n, (title, level, top) in enumerate(self._outline):
                key = f"p{number}h{n}"
                self.bookmarkPage(key, fit="XYZ", left=0, top=top + 2)
                self.addOutlineEntry(title, key, level=level, closed=False)
            super().showPage()
        super().save()


def _canvas_factory(decor: _Decor, identity: metadata.Identity) -> Callable[..., Canvas]:
    def make(*args: Any, **kwargs: Any) -> Canvas:
        canv = _DecoratedCanvas(*args, **kwargs)
        canv.decor = decor
        metadata.stamp(canv, identity)
        return canv

    return make


def one_line(value: object, limit: int = 200) -> str:
    """``value`` as a safe single line of at most ``limit`` characters (for headers and metadata)."""
    return " ".join(fonts.clean_text(value).split())[:limit]


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """What the running header, footer and PDF metadata of one document say (already cleaned)."""

    title: str
    conversation: str
    label: str  # header text after the conversation id
    created: datetime | None  # None: no usable time (the header shows none, the metadata a fixed date)
    keywords: tuple[str, ...]
    exchange: int | None = None  # written as metadata, read back when the PDF returns
    input_sha256: str | None = None  # likewise: which input an answer or error page answers
    kind: str | None = None  # what a PDF that is no answer is (render/metadata.py), e.g. the status page


def answer_info(meta: RenderMeta) -> DocumentInfo:
    """The header, footer and metadata of an answer or error page, from a possibly odd :class:`RenderMeta`."""
    exchange = meta.exchange if isinstance(meta.exchange, int) and not isinstance(meta.exchange, bool) else None
    shown = str(exchange) if exchange is not None else one_line(meta.exchange, 20)
    conversation, model = one_line(meta.conversation_id), one_line(meta.model)
    keywords = ["eink-llm", f"exchange {shown}"]
    if model:
        keywords.append(f"model {model}")
    if conversation:
        keywords.append(f"conversation {conversation}")
    created = meta.created_at if isinstance(meta.created_at, datetime) and date_text(meta.created_at) else None
    sha = meta.input_sha256 if isinstance(meta.input_sha256, str) else None
    return DocumentInfo(
        one_line(meta.title), conversation, f"Exchange {shown}", created, tuple(keywords), exchange, sha
    )


#: reportlab shares each TrueType font's parsed file between documents, and subsetting it when a PDF is saved
#: moves a read position inside that shared object: two PDFs built at once in two threads (the daemon's workers)
#: corrupt each other's subsets (KeyError/IndexError in ``makeSubset``, and a plain-text answer). One PDF is
#: built at a time; a build takes ~0.1 s.
_BUILD_LOCK = threading.Lock()


def build_pdf(story: Sequence[Flowable], meta: RenderMeta, device: Device, theme: Theme) -> bytes:
    """Lay ``story`` out on the device's pages as an answer (or error page) and return the finished PDF."""
    return build_document(story, answer_info(meta), device, theme)


def build_document(story: Sequence[Flowable], info: DocumentInfo, device: Device, theme: Theme) -> bytes:
    """Lay ``story`` out on the device's pages, with running header, footer and metadata from ``info``."""
    fonts.ensure_fonts()
    layout = page_layout(device, theme)
    decor = _Decor(layout, theme, info.conversation, info.label, date_text(info.created), info.title)
    identity = metadata.Identity(info.conversation, info.exchange, info.created, info.input_sha256, info.kind)
    body = layout.body
    buffer = io.BytesIO()
    doc = BaseDocTemplate(
        buffer,
        pagesize=(layout.width, layout.height),
        leftMargin=body.x0,
        rightMargin=layout.width - body.x1,
        topMargin=layout.height - body.y1,
        bottomMargin=body.y0,
        title=info.title or "eink-llm answer",
        author="eink-llm",
        subject=info.conversation,
        keywords=list(info.keywords),
        creator=f"eink-llm {__version__}",
        invariant=1,
    )
    frame = Frame(
        body.x0,
        body.y0,
        body.x1 - body.x0,
        body.y1 - body.y0,
        leftPadding=0,
        rightPadding=0,
        topPadding=0,
        bottomPadding=0,
        id="body",
    )
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    with _BUILD_LOCK:
        doc.build(list(story), canvasmaker=_canvas_factory(decor, identity))
    return seal(buffer.getvalue())
