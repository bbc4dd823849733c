"""What every input format shares: the limits, the result type, the user-facing advice, and the PNG encoder.

Both readers (:mod:`~eink_llm.reader.pdf`, :mod:`~eink_llm.reader.image`) end in the same place — grayscale
pages scaled to the backend's long edge — and speak to the user in the same words, so
those live here rather than being repeated in each.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from eink_llm.backends.base import PageImage
from eink_llm.errors import InputTooLargeError
from eink_llm.reader.origin import PdfOrigin

#: File name endings the watcher picks up. The reader itself trusts the content, not the name.
SUPPORTED_SUFFIXES = frozenset({".pdf", ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"})

EXPORT_AGAIN = "Export the page from the tablet again (as PDF or PNG) and let it sync completely."
EXPORT_SUPPORTED = "Export the page from the tablet again as PDF, PNG or JPEG."
FEWER_PAGES = "Export only the pages with your question, or raise input.max_pages in the config."


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
    #: The reading cage (:mod:`~eink_llm.reader.cage`): the address space of the process that decodes one input,
    #: its CPU time per input, and its wall-clock time per input (the daemon kills it past that).
    max_decode_memory_bytes: int = 1024 * 1024 * 1024
    max_decode_cpu_seconds: float = 60.0
    max_decode_seconds: float = 90.0


DEFAULT_LIMITS = InputLimits()


@dataclass(frozen=True, slots=True)
class InputDocument:
    """A readable input: its pages as grayscale images (in page order) and its text layer.

    ``images`` are 8-bit grayscale (``L``) pages already fitted to ``max_long_edge_px``: decoded once by the
    reader and carried through every later stage (page prints, what is new, the pages made cheap for the model),
    never encoded and decoded again in between. ``text`` is the PDF's own text, pages separated by a blank line;
    it is empty for images and for scanned or handwritten pages, which have no text layer. ``origin`` is set when
    the PDF is one of our own answers (or a conversation export) coming back, whatever the tablet renamed it to:
    it names the conversation and exchange.
    """

    kind: Literal["pdf", "image"]
    images: tuple[Image.Image, ...]
    text: str
    page_count: int
    origin: PdfOrigin | None = None

    @property
    def pages(self) -> tuple[PageImage, ...]:
        """The pages as grayscale PNGs, encoded anew on every access: for tools and tests. The pipeline uses
        :attr:`images`."""
        return tuple(encode(image) for image in self.images)


def check_file_size(name: str, size: int, limits: InputLimits) -> None:
    if size > limits.max_file_bytes:
        raise InputTooLargeError(
            f"{name} is {bytes_text(size)}; the limit is {bytes_text(limits.max_file_bytes)}.",
            "Export fewer pages or at a lower resolution, or raise input.max_file_mb in the config.",
        )


def bytes_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} kB"
    return f"{size} bytes"


def fit(image: Image.Image, limits: InputLimits) -> Image.Image:
    """Downscale so the long edge fits ``max_long_edge_px`` (a page already within it comes back as it is)."""
    long_edge = max(image.size)
    if long_edge <= limits.max_long_edge_px:
        return image
    factor = limits.max_long_edge_px / long_edge
    size = (
        min(limits.max_long_edge_px, max(1, round(image.width * factor))),
        min(limits.max_long_edge_px, max(1, round(image.height * factor))),
    )
    # reducing_gap: a fast integer reduce first, then LANCZOS; visually the same, much faster on big photos.
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode(image: Image.Image) -> PageImage:
    """A page as a grayscale PNG (lossless: handwriting edges stay crisp). Level 6 without ``optimize``."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=6)
    return PageImage(buffer.getvalue(), "image/png", image.width, image.height)


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
