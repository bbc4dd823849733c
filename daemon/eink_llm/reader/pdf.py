"""PDFs → grayscale page images, the text layer and our own metadata, with pypdfium2 (PDFium).

Limits are checked before memory is committed: the page count before rendering any page, and each page's size
in points before rasterising it — a huge page is rendered at a lower scale rather than allocating gigabytes.
The pictures a page embeds are checked too, because PDFium decodes those at full size whatever the scale.

PDFium is not thread-safe, not even across different documents, and the daemon reads in two worker threads, so
every pdfium call runs under :data:`PDFIUM_LOCK`; PNG encoding, the slow part, runs outside it. pdfium objects
are closed explicitly, never left to the garbage collector, whose finalizers would call pdfium from whichever
thread happens to collect them, without the lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pypdfium2 as pdfium
from PIL import Image

from eink_llm.errors import CorruptInputError, EncryptedInputError, InputError, InputTooLargeError
from eink_llm.reader.limits import EXPORT_AGAIN, FEWER_PAGES, InputDocument, InputLimits, TextCut, describe, fit
from eink_llm.reader.origin import PdfOrigin, find_origin, is_status_page, read_info
from eink_llm.reader.pagetree import page_count
from eink_llm.text_tokens import cut_to_tokens, estimate_tokens, most_chars

#: Held around every pypdfium2 call in the process. Any other module that calls pdfium must hold it too.
PDFIUM_LOCK = threading.Lock()

#: Unicode control characters (category Cc) except tab and newline, and the two non-characters.
_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]")

_T = TypeVar("_T")

#: A page with more objects than this has its text read in growing prefixes of its objects (see _page_text).
_TEXT_PREFIX_OBJECTS = 16
#: How deep pictures are looked for in nested form XObjects.
_FORM_DEPTH = 15


def _pdfium(call: Callable[[], _T]) -> _T:
    """Run one group of pdfium calls under the process-wide lock."""
    with PDFIUM_LOCK:
        return call()


def read_pdf(name: str, data: bytes, limits: InputLimits) -> InputDocument:
    document = _pdfium(lambda: _open_pdf(name, data))
    pages: list[Image.Image] = []
    text = TextLayer(limits.max_text_tokens)
    index = -1
    try:
        count: int = _pdfium(lambda: page_count(document, limits.max_pages))  # the real kids, not /Count
        if count == 0:
            raise CorruptInputError(f"{name} is a PDF without any pages.", EXPORT_AGAIN)
        if count > limits.max_pages:
            raise InputTooLargeError(f"{name} has {count} pages; the limit is {limits.max_pages}.", FEWER_PAGES)
        for index in range(count):
            want = text.chars_wanted()
            image, page_text, page_chars, whole = _pdfium(
                functools.partial(_render_pdf_page, name, document, index, limits, want)
            )
            pages.append(fit(image, limits))  # outside the lock
            text.add(index + 1, page_text, page_chars, whole, want)
        origin, status_page = _origin(document, data)
    except InputError:
        raise
    except MemoryError as exc:
        raise InputTooLargeError(
            f"{name} needs more memory to draw than this computer has free.",
            "Export fewer or smaller pages, or lower input.render_dpi in the config.",
            detail=repr(exc),
        ) from None
    except Exception as exc:  # PdfiumError, or a ValueError from pypdfium2 on a nonsensical page
        where = f"page {index + 1}" if index >= 0 else "the page list"
        raise CorruptInputError(
            f"{name} is damaged: {where} could not be read.", EXPORT_AGAIN, detail=describe(exc)
        ) from None
    finally:
        _pdfium(document.close)
    return InputDocument("pdf", tuple(pages), text.text(), count, origin, status_page=status_page, text_cut=text.cut())


class TextLayer:
    """The text layer, read page by page within ``max_text_tokens`` (estimated as the history budget counts).

    Reading stops once the budget is spent: each page's text is read only as far as the budget still reaches
    (PDFium's bounded text range), and the pages after the one that spent it are not read at all — their text
    layer is never even loaded — so a page of millions of characters costs no more to read than a short one.
    Control characters are dropped before counting.
    """

    def __init__(self, budget: int) -> None:
        self.budget = max(budget, 0)
        self.left = self.budget
        self.texts: list[str] = []
        self.read_chars = 0
        self.exact = True  # read_chars is every character of the pages read
        self.cut_page: int | None = None
        self.spent = self.budget == 0  # 0 reads no text at all (and notes nothing: it is what was asked for)
        self.unread: list[int] = []

    def chars_wanted(self) -> int | None:
        """How many characters to read from the next page; 0: only count them; ``None``: do not read it."""
        if self.spent:
            return None
        return most_chars(self.left - (1 if self.texts else 0))  # a page break costs a token

    def add(self, page: int, raw: str | None, chars: int, whole: bool, wanted: int | None) -> None:
        """The next page's text as read (``None``: not read), how many characters were seen on it and whether
        that was all of them, and how many were asked for (:meth:`chars_wanted`)."""
        if raw is None or wanted is None:
            if self.budget:
                self.unread.append(page)
            return
        self.read_chars += chars
        self.exact = self.exact and whole
        room = self.left - (1 if self.texts else 0)
        cleaned = _clean_text(raw)
        kept = cut_to_tokens(cleaned, room)
        if kept:
            self.texts.append(kept)
            self.left = room - estimate_tokens(kept)
        if chars > wanted or len(kept) < len(cleaned):  # the page holds more than the budget took
            self.spent = True
            if kept:
                self.cut_page = page
            else:
                self.unread.append(page)

    def add_read(self, page: int, read: Callable[[], str]) -> None:
        """The next page when its whole text is at hand (a notebook's recognition or typed text): ``read`` is
        called only while the budget lasts, and a page without text costs nothing, not even a page break."""
        wanted = self.chars_wanted()
        if wanted is None:
            self.add(page, None, 0, True, None)
            return
        raw = read()
        cleaned = _clean_text(raw)
        if cleaned:
            self.add(page, raw, len(cleaned), True, len(raw))

    def text(self) -> str:
        return "\n\n".join(self.texts)

    def cut(self) -> TextCut | None:
        if not self.spent or not self.budget:
            return None
        text = self.text()
        return TextCut(
            budget_tokens=self.budget,
            kept_chars=len(text),
            kept_tokens=estimate_tokens(text),
            read_chars=self.read_chars,
            exact=self.exact and not self.unread,
            cut_page=self.cut_page,
            unread_pages=tuple(self.unread),
        )


def _origin(document: Any, data: bytes) -> tuple[PdfOrigin | None, bool]:
    """Which of our conversations this PDF belongs to, if it is one of our answers coming back, and whether it
    is our status page (see :mod:`~eink_llm.reader.origin`). Damaged metadata only costs the recognition, never
    the page."""
    try:
        info = _pdfium(lambda: read_info(document))
    except Exception:
        info = {}
    try:
        origin = find_origin(info, data)  # outside the lock: the XMP scan is plain bytes
    except Exception:
        origin = None
    return origin, is_status_page(info, data)


def _open_pdf(name: str, data: bytes) -> Any:
    """Open the document (and its form fields, so filled-in forms are drawn) or explain why it cannot be."""
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise _pdf_open_error(name, data, getattr(exc, "err_code", None), str(exc)) from None
    except Exception as exc:
        raise CorruptInputError(
            f"{name} is damaged and could not be opened as a PDF.", EXPORT_AGAIN, detail=describe(exc)
        ) from None
    # Without a form environment PDFium draws neither form fields nor the values typed into them. A broken form
    # only costs the form's appearance, never the page.
    with contextlib.suppress(Exception):
        document.init_forms()
    return document


def _pdf_open_error(name: str, data: bytes, code: object, detail: str) -> InputError:
    """Why PDFium refused a document, in words.

    PDFium's error code cannot be trusted alone: when it refuses a document for having no pages it sets no code,
    and reports the previous failure's (even another thread's, another file's "incorrect password"). So a
    password error counts only if the file has an encryption dictionary, and the other causes are read from the
    bytes.
    """
    encrypted = b"/Encrypt" in data  # in the trailer or the (never compressed) cross-reference stream dict
    if encrypted and code == pdfium.raw.FPDF_ERR_PASSWORD:
        return EncryptedInputError(
            f"{name} is protected by a password, so eink-llm cannot open it.",
            "Export the page from the tablet again without a password.",
            detail=detail,
        )
    if encrypted and code == pdfium.raw.FPDF_ERR_SECURITY:
        return EncryptedInputError(
            f"{name} is protected by an encryption scheme eink-llm cannot open.",
            "Export the page from the tablet again without a password or protection.",
            detail=detail,
        )
    if not _has_pdf_end(data):
        return CorruptInputError(
            f"{name} is damaged or incomplete: the end of the PDF is missing, so it may not have finished syncing.",
            EXPORT_AGAIN,
            detail=detail,
        )
    if re.search(rb"/Count\s+0\b", data) and not re.search(rb"/Type\s*/Page\b", data):
        return CorruptInputError(f"{name} is a PDF without any pages.", EXPORT_AGAIN, detail=detail)
    return CorruptInputError(f"{name} is damaged and could not be opened as a PDF.", EXPORT_AGAIN, detail=detail)


def _has_pdf_end(data: bytes) -> bool:
    """Whether the file ends with a PDF end-of-file marker (absent when a download or sync was cut short)."""
    return b"%%EOF" in data[-2048:].rstrip(b"\x00\t\n\r\f ")[-1024:]


def _render_pdf_page(
    name: str, document: Any, index: int, limits: InputLimits, text_chars: int | None
) -> tuple[Image.Image, str | None, int, bool]:
    """Rasterise one page in grayscale and read at most ``text_chars`` characters of its text (``None``: none),
    as :func:`_page_text` does. Call with :data:`PDFIUM_LOCK` held."""
    page = document[index]
    try:
        width_pt, height_pt = page.get_size()
        scale = _pdf_scale(name, index, float(width_pt), float(height_pt), limits)
        _check_embedded_images(name, index, page, limits)
        bitmap = page.render(scale=scale, grayscale=True)
        try:
            # to_pil() shares the bitmap's memory, which close() frees: copy before closing.
            rendered = bitmap.to_pil()
            image = rendered.copy() if rendered.mode == "L" else rendered.convert("L")
        finally:
            bitmap.close()
        if text_chars is None:
            return image, None, 0, True
        return (image, *_page_text(page, text_chars))  # after rendering: it hides page objects
    finally:
        page.close()


def _page_text(page: Any, wanted: int) -> tuple[str, int, bool]:
    """At most ``wanted`` characters of a page's text; how many characters were seen; whether that is all of them.

    PDFium's text page analyses every character on the page however few are read, which takes seconds for a
    page of millions. So a page of many objects is read in growing prefixes: all but its first objects are
    hidden (``FPDFPageObj_SetIsActive``, which text extraction respects), and more are shown only while the text
    found is still shorter than ``wanted``. Then the cost follows what is read, not what the page holds (one
    giant text object still costs its size). Call with :data:`PDFIUM_LOCK` held, after rendering, on a page that
    is closed afterwards: the hidden objects stay hidden.
    """
    handle = page.raw
    objects: int = pdfium.raw.FPDFPage_CountObjects(handle)
    set_active: Any = getattr(pdfium.raw, "FPDFPageObj_SetIsActive", None)  # PDFium from 2024 on
    shown = objects if set_active is None or objects <= _TEXT_PREFIX_OBJECTS else _TEXT_PREFIX_OBJECTS
    for index in range(shown, objects):
        set_active(pdfium.raw.FPDFPage_GetObject(handle, index), False)
    while True:
        textpage = page.get_textpage()
        try:
            chars: int = textpage.count_chars()
            if chars > wanted or shown == objects:
                count = min(chars, wanted)
                text: str = textpage.get_text_range(0, count) if count > 0 else ""
                return text, chars, shown == objects
        finally:
            textpage.close()
        more = min(objects, shown * 4)
        for index in range(shown, more):
            set_active(pdfium.raw.FPDFPage_GetObject(handle, index), True)
        shown = more


def _pdf_scale(name: str, index: int, width_pt: float, height_pt: float, limits: InputLimits) -> float:
    """The render scale (pixels per point) for a page: ``render_dpi``, reduced so that the long edge and the
    pixel count stay within the limits *before* pdfium allocates the bitmap.

    Rendering directly at the final size (rather than larger, then downscaling) is faster, needs less memory,
    and PDFium's anti-aliasing keeps pen strokes smooth. pypdfium2 sizes the bitmap as ``ceil(side * scale)``, so
    the pixel bound solves ``(w·s + 1)(h·s + 1) ≤ max_page_pixels`` rather than ``w·h·s² ≤ max_page_pixels``.
    """
    if not (math.isfinite(width_pt) and math.isfinite(height_pt) and width_pt > 0 and height_pt > 0):
        raise CorruptInputError(
            f"Page {index + 1} of {name} is damaged: it has no usable size ({width_pt:g}×{height_pt:g} points).",
            EXPORT_AGAIN,
        )
    area = width_pt * height_pt
    perimeter = width_pt + height_pt
    budget = float(limits.max_page_pixels)
    by_pixels = (-perimeter + math.sqrt((width_pt - height_pt) ** 2 + 4 * area * budget)) / (2 * area)
    by_edge = limits.max_long_edge_px / max(width_pt, height_pt) * (1 - 1e-9)  # float noise must not ceil up
    scale = min(limits.render_dpi / 72, by_edge, by_pixels)
    if not (math.isfinite(scale) and scale > 0):
        raise InputTooLargeError(
            f"Page {index + 1} of {name} ({width_pt:g}×{height_pt:g} points) cannot be drawn within the limit of "
            f"{limits.max_page_pixels} pixels per page.",
            "Export the page at a normal paper size, or raise input.max_page_megapixels in the config.",
        )
    return scale


def _check_embedded_images(name: str, index: int, page: Any, limits: InputLimits) -> None:
    """Refuse a page that embeds a picture larger than ``max_page_pixels``.

    Rendering small does not make PDFium decode embedded pictures small: it decodes each one at full size. A
    1 MB PDF can hold a compressed 32000×32000 picture, which costs a gigabyte to draw. The sizes come from the
    pictures' dictionaries (nothing is decoded); pictures inside form XObjects are included.

    The objects are walked with PDFium's own calls rather than pypdfium2's ``get_objects``, which builds a Python
    object for each: a page of tens of thousands of objects (text lines, pen strokes) is checked in a fraction of
    the time.
    """
    raw = pdfium.raw
    size_w, size_h = ctypes.c_uint(), ctypes.c_uint()
    for picture in _pictures(page.raw, raw.FPDFPage_CountObjects, raw.FPDFPage_GetObject, level=0):
        if not raw.FPDFImageObj_GetImagePixelSize(picture, size_w, size_h):
            continue  # no readable size: PDFium will refuse to draw it as well
        width, height = size_w.value, size_h.value
        if width * height > limits.max_page_pixels:
            raise InputTooLargeError(
                f"Page {index + 1} of {name} contains a picture of {width}×{height} pixels "
                f"({width * height / 1e6:.0f} megapixels); the limit is {limits.max_page_pixels / 1e6:g} megapixels.",
                "Export or scan the page at a lower resolution, or raise input.max_page_megapixels in the config.",
            )


def _pictures(parent: Any, count: Any, get: Any, *, level: int) -> Iterator[Any]:
    """The image objects of a page (or form XObject), including those in nested forms down to
    :data:`_FORM_DEPTH` levels (as pypdfium2's ``get_objects`` descends)."""
    raw = pdfium.raw
    for position in range(count(parent)):
        item = get(parent, position)
        kind = raw.FPDFPageObj_GetType(item)
        if kind == raw.FPDF_PAGEOBJ_IMAGE:
            yield item
        elif kind == raw.FPDF_PAGEOBJ_FORM and level < _FORM_DEPTH - 1:
            yield from _pictures(item, raw.FPDFFormObj_CountObjects, raw.FPDFFormObj_GetObject, level=level + 1)


def _clean_text(text: str) -> str:
    """PDFium's text with ``\\n`` line ends and without control characters (it reports e.g. ``\\x02`` for
    hyphenation points), which would only confuse the model and the logs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_CHARACTERS.sub("", text).strip()
