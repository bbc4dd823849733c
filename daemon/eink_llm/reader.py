"""The input stage: an exported PDF or image becomes grayscale page images plus any text layer.

Input comes from a sync folder, so it can be anything: a truncated download, a password-protected export, a
text file named ``.pdf``, a decompression bomb. Each of those becomes a typed :class:`InputError` whose ``what``
names the file and whose ``todo`` says what to do on the tablet; nothing else escapes :func:`read_input`.

Limits are checked before memory is committed: the file size before reading, a PDF page's size in points before
rasterising (a huge page is rendered at a lower scale rather than allocating gigabytes), an image's header size
before decoding. PDFium is not thread-safe, so every pdfium call runs under one lock.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pypdfium2 as pdfium
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from eink_llm.backends.base import PageImage
from eink_llm.errors import (
    CorruptInputError,
    EncryptedInputError,
    InputError,
    InputTooLargeError,
    UnsupportedInputError,
)

SUPPORTED_SUFFIXES = frozenset({".pdf", ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"})
_PDFIUM_LOCK = threading.Lock()
_PDF_ERR_PASSWORD = 4
_EXPORT_AGAIN = "Export the page from the tablet again (as PDF or PNG) and let it sync completely."


@dataclass(frozen=True, slots=True)
class InputLimits:
    max_file_bytes: int = 50 * 1024 * 1024
    max_pages: int = 20
    max_page_pixels: int = 40_000_000
    render_dpi: int = 150
    max_long_edge_px: int = 1568


@dataclass(frozen=True, slots=True)
class InputDocument:
    kind: Literal["pdf", "image"]
    pages: tuple[PageImage, ...]
    text: str
    page_count: int


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_input(path: Path, limits: InputLimits = InputLimits()) -> InputDocument:
    name = path.name
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise InputTooLargeError(
                f"{name} is {size / 1048576:.1f} MB, more than the limit of {limits.max_file_bytes / 1048576:.0f} MB.",
                "Export fewer pages, or raise input.max_file_mb in the config.",
            )
        if size == 0:
            raise CorruptInputError(f"{name} is empty.", _EXPORT_AGAIN)
        data = path.read_bytes()
    except OSError as exc:
        raise CorruptInputError(f"{name} could not be opened.", _EXPORT_AGAIN, detail=str(exc)) from None
    if data.lstrip()[:5] == b"%PDF-":
        return _read_pdf(name, data, limits)
    if _looks_like_image(data):
        return _read_image(name, data, limits)
    if path.suffix.lower() == ".pdf":
        raise UnsupportedInputError(
            f"{name} is named .pdf but is not a PDF.",
            "Export the page again as PDF or PNG; a note saved as text cannot be read as handwriting.",
        )
    raise UnsupportedInputError(
        f"{name} is not a PDF or an image eink-llm can read.",
        "Export the page as PDF, PNG or JPEG.",
    )


def _looks_like_image(data: bytes) -> bool:
    head = data[:16]
    return (
        head.startswith(b"\x89PNG\r\n\x1a\n")
        or head.startswith(b"\xff\xd8\xff")
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or head[:4] in (b"II*\x00", b"MM\x00*")
    )


# --- PDF -----------------------------------------------------------------------------------------------


def _read_pdf(name: str, data: bytes, limits: InputLimits) -> InputDocument:
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if getattr(exc, "err_code", None) == _PDF_ERR_PASSWORD:
                raise EncryptedInputError(
                    f"{name} is protected by a password.",
                    "Export it again without a password.",
                    detail=str(exc),
                ) from None
            raise CorruptInputError(
                f"{name} is damaged or incomplete and could not be opened as a PDF.", _EXPORT_AGAIN, detail=str(exc)
            ) from None
        try:
            count = len(document)
            if count == 0:
                raise CorruptInputError(f"{name} has no pages.", _EXPORT_AGAIN)
            if count > limits.max_pages:
                raise InputTooLargeError(
                    f"{name} has {count} pages, more than the limit of {limits.max_pages}.",
                    "Export only the pages with your question, or raise input.max_pages in the config.",
                )
            pages: list[PageImage] = []
            texts: list[str] = []
            for index in range(count):
                image, text = _render_pdf_page(name, document, index, limits)
                pages.append(_encode(image, limits))
                if text.strip():
                    texts.append(text.strip())
        except pdfium.PdfiumError as exc:
            raise CorruptInputError(
                f"{name} is damaged: a page could not be drawn.", _EXPORT_AGAIN, detail=str(exc)
            ) from None
        finally:
            document.close()
    return InputDocument("pdf", tuple(pages), "\n\n".join(texts), count)


def _render_pdf_page(
    name: str, document: pdfium.PdfDocument, index: int, limits: InputLimits
) -> tuple[Image.Image, str]:
    page = document[index]
    try:
        width_pt, height_pt = page.get_size()
        if width_pt <= 0 or height_pt <= 0:
            raise CorruptInputError(f"Page {index + 1} of {name} has no size.", _EXPORT_AGAIN)
        scale = limits.render_dpi / 72
        # Never allocate more than the page-pixel limit, nor more than needed for the long-edge target (x2
        # for a sharp downscale): a poster-sized page is rendered smaller instead of exhausting memory.
        fit_pixels = math.sqrt(limits.max_page_pixels / (width_pt * height_pt))
        fit_edge = 2 * limits.max_long_edge_px / max(width_pt, height_pt)
        scale = min(scale, fit_pixels, fit_edge)
        if width_pt * scale < 1 or height_pt * scale < 1:
            raise InputTooLargeError(
                f"Page {index + 1} of {name} has an extreme shape that cannot be rendered.", _EXPORT_AGAIN
            )
        bitmap = page.render(scale=scale, grayscale=True)
        try:
            image = bitmap.to_pil().convert("L")
        finally:
            bitmap.close()
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
        finally:
            textpage.close()
        return image, text
    finally:
        page.close()


# --- images ----------------------------------------------------------------------------------------------


def _read_image(name: str, data: bytes, limits: InputLimits) -> InputDocument:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > limits.max_page_pixels:
                    raise _too_many_pixels(name, width, height, limits)
                frames = getattr(image, "n_frames", 1)
                if frames > limits.max_pages:
                    raise InputTooLargeError(
                        f"{name} has {frames} pages, more than the limit of {limits.max_pages}.",
                        "Export only the pages with your question, or raise input.max_pages in the config.",
                    )
                pages = tuple(_encode(_grayscale_upright(frame), limits) for frame in ImageSequence.Iterator(image))
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputTooLargeError(
            f"{name} declares an enormous picture size and was refused.",
            "Export the page again at the tablet's normal resolution.",
            detail=str(exc),
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, UnidentifiedImageError) as exc:
        raise CorruptInputError(
            f"{name} is damaged or incomplete and could not be read as an image.", _EXPORT_AGAIN, detail=str(exc)
        ) from None
    return InputDocument("image", pages, "", len(pages))


def _too_many_pixels(name: str, width: int, height: int, limits: InputLimits) -> InputTooLargeError:
    return InputTooLargeError(
        f"{name} is {width}×{height} pixels, more than the limit of {limits.max_page_pixels / 1e6:.0f} megapixels.",
        "Export it at a lower resolution, or raise input.max_page_megapixels in the config.",
    )


def _grayscale_upright(frame: Image.Image) -> Image.Image:
    """Apply EXIF orientation, flatten transparency onto white paper, and convert to 8-bit grayscale."""
    image = ImageOps.exif_transpose(frame) or frame
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L") if image.mode != "I" else image.convert("L")
    return image.convert("L")


# --- encoding --------------------------------------------------------------------------------------------


def _encode(image: Image.Image, limits: InputLimits) -> PageImage:
    """Downscale so the long edge fits, then encode as an optimised grayscale PNG (lossless: handwriting
    edges stay crisp, and mostly-white pages compress well)."""
    long_edge = max(image.size)
    if long_edge > limits.max_long_edge_px:
        factor = limits.max_long_edge_px / long_edge
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return PageImage(buffer.getvalue(), "image/png", image.width, image.height)
