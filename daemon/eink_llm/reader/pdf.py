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
import functools
import math
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pypdfium2 as pdfium
from PIL import Image

from eink_llm.errors import CorruptInputError, EncryptedInputError, InputError, InputTooLargeError
from eink_llm.reader.limits import EXPORT_AGAIN, FEWER_PAGES, InputDocument, InputLimits, describe, fit
from eink_llm.reader.origin import PdfOrigin, find_origin, read_info
from eink_llm.reader.pagetree import page_count

#: Held around every pypdfium2 call in the process. Any other module that calls pdfium must hold it too.
PDFIUM_LOCK = threading.Lock()

#: Unicode control characters (category Cc) except tab and newline, and the two non-characters.
_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]")

_T = TypeVar("_T")


def _pdfium(call: Callable[[], _T]) -> _T:
    """Run one group of pdfium calls under the process-wide lock."""
    with PDFIUM_LOCK:
        return call()


def read_pdf(name: str, data: bytes, limits: InputLimits) -> InputDocument:
    document = _pdfium(lambda: _open_pdf(name, data))
    pages: list[Image.Image] = []
    texts: list[str] = []
    index = -1
    try:
        count: int = _pdfium(lambda: page_count(document, limits.max_pages))  # the real kids, not /Count
        if count == 0:
            raise CorruptInputError(f"{name} is a PDF without any pages.", EXPORT_AGAIN)
        if count > limits.max_pages:
            raise InputTooLargeError(f"{name} has {count} pages; the limit is {limits.max_pages}.", FEWER_PAGES)
        for index in range(count):
            image, text = _pdfium(functools.partial(_render_pdf_page, name, document, index, limits))
            pages.append(fit(image, limits))  # outside the lock
            if text:
                texts.append(text)
        origin = _origin(document, data)
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
    return InputDocument("pdf", tuple(pages), "\n\n".join(texts), count, origin)


def _origin(document: Any, data: bytes) -> PdfOrigin | None:
    """Which of our conversations this PDF belongs to, if it is one of our answers coming back (see
    :mod:`~eink_llm.reader.origin`). Damaged metadata only costs the recognition, never the page."""
    try:
        info = _pdfium(lambda: read_info(document))
    except Exception:
        info = {}
    try:
        return find_origin(info, data)  # outside the lock: the XMP scan is plain bytes
    except Exception:
        return None


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


def _render_pdf_page(name: str, document: Any, index: int, limits: InputLimits) -> tuple[Image.Image, str]:
    """Rasterise one page in grayscale and extract its text. Call with :data:`PDFIUM_LOCK` held."""
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
        textpage = page.get_textpage()
        try:
            text = _clean_text(textpage.get_text_range())
        finally:
            textpage.close()
        return image, text
    finally:
        page.close()


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
    """
    for picture in page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE]):
        try:
            width, height = picture.get_px_size()
        except pdfium.PdfiumError:
            continue  # no readable size: PDFium will refuse to draw it as well
        if width * height > limits.max_page_pixels:
            raise InputTooLargeError(
                f"Page {index + 1} of {name} contains a picture of {width}×{height} pixels "
                f"({width * height / 1e6:.0f} megapixels); the limit is {limits.max_page_pixels / 1e6:g} megapixels.",
                "Export or scan the page at a lower resolution, or raise input.max_page_megapixels in the config.",
            )


def _clean_text(text: str) -> str:
    """PDFium's text with ``\\n`` line ends and without control characters (it reports e.g. ``\\x02`` for
    hyphenation points), which would only confuse the model and the logs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_CHARACTERS.sub("", text).strip()
