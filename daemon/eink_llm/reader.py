"""The input stage: an exported PDF or image becomes grayscale page images plus any text layer.

Input comes from a sync folder, so it can be anything: a half-synced download, a password-protected export, a
text file or an HTML error page named ``.pdf``, a phone photo lying on its side, a decompression bomb. Each bad
file becomes a typed :class:`~eink_llm.errors.InputError` whose ``what`` names the file and says in plain words
what is wrong, and whose ``todo`` says what to do on the tablet. Nothing else escapes :func:`read_input` for bad
input: a page that cannot be read must become an ERROR_ PDF, never a crashed worker.

The type is decided by the file's first bytes, not its name, because sync tools and tablets get names wrong.

Limits are checked before memory is committed, because the pixel count of a decoded page, not the file size, is
what exhausts memory (a 1 kB PNG can declare 30000×30000 pixels, a one-page PDF can be 5 m wide):

* the file size before reading it (and the read itself is bounded, in case the file grows meanwhile);
* a PDF's page count before rendering any page, and each page's size in points before rasterising it: a huge
  page is rendered at a lower scale rather than allocating gigabytes; the pictures a page embeds are checked
  too, because PDFium decodes those at full size whatever the scale;
* an image's size from its header before decoding (and each TIFF frame's, as frames have their own headers),
  with Pillow's decompression-bomb guard turned into an error.

PDFium is not thread-safe, not even across different documents, and the daemon reads in two worker threads, so
every pdfium call runs under :data:`PDFIUM_LOCK`; PNG encoding, the slow part, runs outside it. pdfium objects
are closed explicitly, never left to the garbage collector, whose finalizers would call pdfium from whichever
thread happens to collect them, without the lock.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import math
import re
import stat
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import pypdfium2 as pdfium
from PIL import Image, ImageOps

from eink_llm.backends.base import PageImage
from eink_llm.errors import (
    CorruptInputError,
    EncryptedInputError,
    InputError,
    InputTooLargeError,
    UnsupportedInputError,
)

__all__ = [
    "PDFIUM_LOCK",
    "SUPPORTED_SUFFIXES",
    "InputDocument",
    "InputLimits",
    "read_input",
    "sha256_file",
]

#: File name endings the watcher picks up. The reader itself trusts the content, not the name.
SUPPORTED_SUFFIXES = frozenset({".pdf", ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"})

#: Held around every pypdfium2 call in the process. Any other module that calls pdfium must hold it too.
PDFIUM_LOCK = threading.Lock()

#: ``warnings.catch_warnings`` swaps the process-wide filter list and restores it on exit; two threads doing so
#: at once can restore each other's state and leave a filter behind. One lock keeps our own uses in sequence.
_WARNINGS_LOCK = threading.Lock()

#: A hostile TIFF can chain millions of pages, and counting them walks the chain; stop counting here.
_MAX_FRAMES_COUNTED = 1000

_EXPORT_AGAIN = "Export the page from the tablet again (as PDF or PNG) and let it sync completely."
_EXPORT_SUPPORTED = "Export the page from the tablet again as PDF, PNG or JPEG."
_FEWER_PAGES = "Export only the pages with your question, or raise input.max_pages in the config."

#: Unicode control characters (category Cc) except tab and newline, and the two non-characters.
_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]")

_T = TypeVar("_T")
_Kind = Literal["pdf", "png", "jpeg", "webp", "tiff"]
_PILLOW_FORMAT: dict[str, str] = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "tiff": "TIFF"}


@dataclass(frozen=True, slots=True)
class InputLimits:
    """What one input may cost. The defaults fit a tablet page with room to spare."""

    max_file_bytes: int = 50 * 1024 * 1024
    max_pages: int = 20
    #: Width × height of one decoded page or image. PDF pages are rendered smaller to fit; images, and pictures
    #: embedded in PDF pages, over it are refused (for images Pillow's own bomb limit, ~89 megapixels, also applies).
    max_page_pixels: int = 40_000_000
    #: PDF rasterisation resolution (before the long-edge limit).
    render_dpi: int = 150
    #: Pages are scaled down so that their longer side is at most this many pixels.
    max_long_edge_px: int = 1568


@dataclass(frozen=True, slots=True)
class InputDocument:
    """A readable input: its pages as grayscale PNGs (in page order) and its text layer.

    ``text`` is the PDF's own text, pages separated by a blank line; it is empty for images and for scanned or
    handwritten pages, which have no text layer.
    """

    kind: Literal["pdf", "image"]
    pages: tuple[PageImage, ...]
    text: str
    page_count: int


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks so a large file never sits in memory (the queue's identity)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_input(path: Path, limits: InputLimits = InputLimits()) -> InputDocument:
    """Read ``path`` (a PDF or an image) into grayscale pages, or raise an :class:`InputError` saying why not."""
    name = path.name
    data = _read_bytes(path, limits)
    kind = _sniff(data)
    if kind == "pdf":
        return _read_pdf(name, data, limits)
    if kind is not None:
        return _read_image(name, data, kind, limits)
    looks_like = _describe_unknown(data)
    if path.suffix.lower() == ".pdf":
        raise UnsupportedInputError(
            f"{name} is named .pdf but is not a PDF: it is {looks_like}.",
            "Export the page from the tablet again as PDF or PNG.",
        )
    raise UnsupportedInputError(
        f"{name} is not a PDF or an image eink-llm can read: it is {looks_like}.", _EXPORT_SUPPORTED
    )


# --- reading the file -----------------------------------------------------------------------------------


def _read_bytes(path: Path, limits: InputLimits) -> bytes:
    """The file's bytes, refusing non-files and oversized files before reading them into memory."""
    name = path.name
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the worker forever; a folder is not a page
            raise UnsupportedInputError(f"{name} is not a regular file (it is a folder or a device).", _EXPORT_AGAIN)
        _check_file_size(name, info.st_size, limits)
        with path.open("rb") as handle:
            # Bounded: a file still being written may have grown since stat().
            data = handle.read(limits.max_file_bytes + 1)
    except InputError:
        raise
    except FileNotFoundError as exc:
        raise CorruptInputError(
            f"{name} disappeared before it could be read.",
            "If you moved or deleted it on purpose, nothing needs doing; otherwise export the page again.",
            detail=str(exc),
        ) from None
    except PermissionError as exc:
        raise CorruptInputError(
            f"{name} could not be opened: eink-llm is not allowed to read it.",
            "Check that the synced folder is readable by the user eink-llm runs as, then export the page again.",
            detail=str(exc),
        ) from None
    except OSError as exc:
        raise CorruptInputError(f"{name} could not be read from the disk.", _EXPORT_AGAIN, detail=str(exc)) from None
    if len(data) > limits.max_file_bytes:
        raise InputTooLargeError(
            f"{name} grew beyond the limit of {_bytes_text(limits.max_file_bytes)} while it was being read.",
            "Let the export finish syncing; if it is really this large, export fewer pages or raise "
            "input.max_file_mb in the config.",
        )
    if not data:
        raise CorruptInputError(f"{name} is empty (0 bytes); it may not have finished syncing.", _EXPORT_AGAIN)
    return data


def _check_file_size(name: str, size: int, limits: InputLimits) -> None:
    if size > limits.max_file_bytes:
        raise InputTooLargeError(
            f"{name} is {_bytes_text(size)}; the limit is {_bytes_text(limits.max_file_bytes)}.",
            "Export fewer pages or at a lower resolution, or raise input.max_file_mb in the config.",
        )


def _bytes_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} kB"
    return f"{size} bytes"


def _sniff(data: bytes) -> _Kind | None:
    """The format the bytes are in, from their magic numbers."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic and BigTIFF, both byte orders
        return "tiff"
    # The PDF header may follow up to 1024 bytes of junk (a byte-order mark, a mail header); PDFium accepts that.
    # Checked after the image signatures, which sit at offset 0: a PNG may mention "%PDF-" in a text chunk.
    if b"%PDF-" in data[:1024]:
        return "pdf"
    return None


def _describe_unknown(data: bytes) -> str:
    """What an unreadable file seems to be, in words a tablet user recognises."""
    head = data[:64]
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF picture"
    if head[:2] == b"BM" and len(data) >= 26 and int.from_bytes(data[2:6], "little") == len(data):
        return "a BMP picture"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis"):
        return "an HEIC or AVIF photo"
    if head.startswith(b"reMarkable .lines file"):
        return "a reMarkable notebook page, not an exported one"
    if head.startswith(b"noteSN_FILE_VER"):
        return "a Supernote notebook, not an exported page"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (such as a notebook bundle), not an exported page"
    sample = data[:4096]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sample's end is still text.
        text = sample[: exc.start].decode("utf-8") if exc.start > len(sample) - 4 else ""
    if text and sum(ch.isprintable() or ch in "\r\n\t" for ch in text) >= 0.95 * len(text):
        lowered = text.lstrip().lower()
        if lowered.startswith(("<!doctype html", "<html")):
            return "a web page (perhaps an error page from the sync service)"
        return "a text file"
    return "in a format eink-llm does not know"


# --- PDF -------------------------------------------------------------------------------------------------


def _pdfium(call: Callable[[], _T]) -> _T:
    """Run one group of pdfium calls under the process-wide lock."""
    with PDFIUM_LOCK:
        return call()


def _read_pdf(name: str, data: bytes, limits: InputLimits) -> InputDocument:
    document = _pdfium(lambda: _open_pdf(name, data))
    pages: list[PageImage] = []
    texts: list[str] = []
    index = -1
    try:
        count: int = _pdfium(lambda: len(document))
        if count == 0:
            raise CorruptInputError(f"{name} is a PDF without any pages.", _EXPORT_AGAIN)
        if count > limits.max_pages:
            raise InputTooLargeError(f"{name} has {count} pages; the limit is {limits.max_pages}.", _FEWER_PAGES)
        for index in range(count):
            image, text = _pdfium(functools.partial(_render_pdf_page, name, document, index, limits))
            pages.append(_encode(image, limits))  # outside the lock: encoding is the slow part
            if text:
                texts.append(text)
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
            f"{name} is damaged: {where} could not be read.", _EXPORT_AGAIN, detail=_describe(exc)
        ) from None
    finally:
        _pdfium(document.close)
    return InputDocument("pdf", tuple(pages), "\n\n".join(texts), count)


def _open_pdf(name: str, data: bytes) -> Any:
    """Open the document (and its form fields, so filled-in forms are drawn) or explain why it cannot be."""
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise _pdf_open_error(name, data, getattr(exc, "err_code", None), str(exc)) from None
    except Exception as exc:
        raise CorruptInputError(
            f"{name} is damaged and could not be opened as a PDF.", _EXPORT_AGAIN, detail=_describe(exc)
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
            _EXPORT_AGAIN,
            detail=detail,
        )
    if re.search(rb"/Count\s+0\b", data) and not re.search(rb"/Type\s*/Page\b", data):
        return CorruptInputError(f"{name} is a PDF without any pages.", _EXPORT_AGAIN, detail=detail)
    return CorruptInputError(f"{name} is damaged and could not be opened as a PDF.", _EXPORT_AGAIN, detail=detail)


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
            _EXPORT_AGAIN,
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


# --- images ----------------------------------------------------------------------------------------------


def _read_image(name: str, data: bytes, kind: _Kind, limits: InputLimits) -> InputDocument:
    """Decode a PNG, JPEG, WebP or TIFF. Only TIFF frames are pages: extra frames elsewhere are animation (APNG,
    WebP) or a phone's preview or depth map (MPO JPEG), so only the first frame is read."""
    pixel_limit = _pixel_limit(limits)
    try:
        image = _open_image(data, kind)
        with image:
            frames = _count_frames(image, _MAX_FRAMES_COUNTED) if kind == "tiff" else 1
            if frames > limits.max_pages:
                count = f"{frames} or more" if frames >= _MAX_FRAMES_COUNTED else str(frames)
                raise InputTooLargeError(f"{name} has {count} pages; the limit is {limits.max_pages}.", _FEWER_PAGES)
            pages: list[PageImage] = []
            for index in range(frames):
                if index:
                    image.seek(index)
                # Each frame's size comes from its own header: check it before decoding a single pixel.
                _check_pixels(name, image.size, pixel_limit, page=index + 1 if frames > 1 else None)
                pages.append(_encode(_decode_frame(name, image, limits), limits))
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputTooLargeError(
            f"{name} declares an enormous picture size (more than {pixel_limit / 1e6:g} megapixels) and was "
            "refused to protect the computer's memory.",
            "Export the page again at the tablet's normal resolution.",
            detail=str(exc),
        ) from None
    except MemoryError as exc:
        raise InputTooLargeError(
            f"{name} needs more memory to decode than this computer has free.",
            "Export the page again at the tablet's normal resolution.",
            detail=repr(exc),
        ) from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, struct.error, ...
        raise CorruptInputError(
            f"{name} is damaged or incomplete and could not be read as an image.", _EXPORT_AGAIN, detail=_describe(exc)
        ) from None
    return InputDocument("image", tuple(pages), "", len(pages))


def _pixel_limit(limits: InputLimits) -> int:
    """Our limit, or Pillow's bomb limit if that is lower (it is enforced inside Pillow either way)."""
    pillow = Image.MAX_IMAGE_PIXELS
    return min(limits.max_page_pixels, pillow) if pillow else limits.max_page_pixels


def _open_image(data: bytes, kind: _Kind) -> Image.Image:
    """Parse the header only (no pixels are decoded yet), with Pillow's bomb warning raised as an error."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=[_PILLOW_FORMAT[kind]])


def _check_pixels(name: str, size: tuple[int, int], pixel_limit: int, *, page: int | None) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise CorruptInputError(f"{name} is damaged: it declares a picture of {width}×{height} pixels.", _EXPORT_AGAIN)
    if width * height > pixel_limit:
        where = f"Page {page} of {name}" if page else name
        raise InputTooLargeError(
            f"{where} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); the limit is "
            f"{pixel_limit / 1e6:g} megapixels.",
            "Export the page at a lower resolution, or raise input.max_page_megapixels in the config.",
        )


def _count_frames(image: Image.Image, cap: int) -> int:
    """How many frames (pages) a TIFF has, counting no further than ``cap``; leaves frame 0 selected."""
    count = 1
    while count < cap:
        try:
            image.seek(count)
        except EOFError:
            break
        count += 1
    image.seek(0)
    return count


def _decode_frame(name: str, image: Image.Image, limits: InputLimits) -> Image.Image:
    """Decode the current frame upright, flattened onto white paper, as 8-bit grayscale."""
    if image.format in ("JPEG", "MPO"):
        # Let libjpeg decode straight to grayscale, and at 1/2, 1/4 or 1/8 size when that still leaves at least
        # the target long edge: a 12-megapixel phone photo then costs a fraction of the time and memory.
        factor = min(1.0, limits.max_long_edge_px / max(image.size))
        image.draft("L", (math.ceil(image.width * factor), math.ceil(image.height * factor)))
    image.load()  # decoding errors surface here, before anything else touches the pixels
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # a damaged EXIF block costs the orientation, not the page
        upright = image
    return _to_grayscale(name, upright)


def _to_grayscale(name: str, image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode.startswith("I;16"):
        # 16-bit grey (any byte order): scale to 8 bits rather than let convert() clip everything to white.
        return image.convert("I").point(lambda value: value / 256).convert("L")
    if mode in ("I", "F"):
        low, high = image.getextrema()
        if isinstance(low, int | float) and isinstance(high, int | float) and (low < 0 or high > 255):
            # Wider than 8 bits: 16-bit data (the usual case) keeps its scale; anything else is stretched to fit.
            bottom, top = (0.0, 65535.0) if low >= 0 and high <= 65535 else (float(low), float(high))
            span = (top - bottom) or 1.0
            return image.point(lambda value: (value - bottom) * 255 / span).convert("L")
        return image.convert("L")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        # Transparent areas are paper, not black: composite onto white before dropping the alpha channel.
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("L")
    try:
        return image.convert("L")
    except ValueError as exc:  # colour spaces Pillow cannot convert directly (LAB, ...)
        raise UnsupportedInputError(
            f"{name} uses a colour format ({mode}) eink-llm cannot convert to grayscale.",
            _EXPORT_SUPPORTED,
            detail=str(exc),
        ) from None


# --- encoding --------------------------------------------------------------------------------------------


def _encode(image: Image.Image, limits: InputLimits) -> PageImage:
    """Downscale so the long edge fits, then encode as a grayscale PNG (lossless: handwriting edges stay crisp).

    Level 6 without ``optimize``: optimize cost ~150 ms a page for ~4 % fewer bytes, and the economy stage
    re-encodes every page for its backend anyway."""
    long_edge = max(image.size)
    if long_edge > limits.max_long_edge_px:
        factor = limits.max_long_edge_px / long_edge
        size = (
            min(limits.max_long_edge_px, max(1, round(image.width * factor))),
            min(limits.max_long_edge_px, max(1, round(image.height * factor))),
        )
        # reducing_gap: a fast integer reduce first, then LANCZOS; visually the same, much faster on big photos.
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=6)
    return PageImage(buffer.getvalue(), "image/png", image.width, image.height)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
