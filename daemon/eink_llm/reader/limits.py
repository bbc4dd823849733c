"""What every input format shares: the limits, the result type, the user-facing advice, and the PNG encoder.

Both readers (:mod:`~eink_llm.reader.pdf`, :mod:`~eink_llm.reader.image`) end in the same place — grayscale
pages scaled to the backend's long edge — and speak to the user in the same words, so
those live here rather than being repeated in each.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal, Protocol

from PIL import Image

from eink_llm.backends.base import PageImage
from eink_llm.errors import InputTooLargeError
from eink_llm.reader.origin import PdfOrigin

#: File name endings the watcher picks up. The reader itself trusts the content, not the name.
SUPPORTED_SUFFIXES = frozenset(
    {".pdf", ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".note", ".rm", ".rmdoc"}  # notebooks: extra
)

EXPORT_AGAIN = "Export the page from the tablet again (as PDF or PNG) and let it sync completely."
EXPORT_SUPPORTED = "Export the page from the tablet again as PDF, PNG or JPEG."
FEWER_PAGES = "Export only the pages with your question, or raise input.max_pages in the config."
#: The long edge of a page print (:func:`eink_llm.inkdiff.make_print`, its ``COMPARE_LONG_EDGE``): a print the
#: reading process sends back is checked against it before it is kept.
PRINT_LONG_EDGE = 1200
#: No print of ours comes near this: a 1-bit PNG of at most 1200×1200 pixels is ~180 kB even if it does not
#: compress at all (a notebook page's is 1–5 kB); a larger one is refused.
MAX_PRINT_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class InputLimits:
    """What one input may cost. The defaults fit a tablet page with room to spare."""

    max_file_bytes: int = 50 * 1024 * 1024
    #: Pages one input carries as images: a PDF's or picture's pages, or a notebook's pages not answered before.
    max_pages: int = 20
    #: How long a native notebook read against its last answered version (a :class:`PageSieve`) may be.
    max_notebook_pages: int = 200
    #: Width × height of one decoded page or image. PDF pages are rendered smaller to fit; images, and pictures
    #: embedded in PDF pages, over it are refused (for images Pillow's own bomb limit, ~89 megapixels, also applies).
    max_page_pixels: int = 40_000_000
    #: PDF rasterisation resolution (before the long-edge limit).
    render_dpi: int = 150
    #: Pages are scaled down so that their longer side is at most this many pixels.
    max_long_edge_px: int = 1568
    #: The text layer is cut to this many estimated tokens (``context.question_tokens``), all pages together;
    #: reading stops once it is reached. 0 reads no text at all.
    max_text_tokens: int = 8000
    #: The reading cage (:mod:`~eink_llm.reader.cage`): the address space of the process that decodes one input,
    #: its CPU time per input, and its wall-clock time per input (the daemon kills it past that).
    max_decode_memory_bytes: int = 1024 * 1024 * 1024
    max_decode_cpu_seconds: float = 60.0
    max_decode_seconds: float = 90.0


DEFAULT_LIMITS = InputLimits()


@dataclass(frozen=True, slots=True)
class TextCut:
    """How a text layer longer than ``max_text_tokens`` was cut (for the answer's note and the exchange's record).

    The pages are read in order until the budget is spent: ``cut_page`` is the page whose text was cut short (or
    ``None`` when the budget ran out exactly between pages), and the pages after it are not read at all. So the
    original size is known exactly only when every page was read to its end (``exact``); otherwise
    ``read_chars``, the characters seen, is a lower bound.
    """

    budget_tokens: int
    kept_chars: int
    kept_tokens: int
    read_chars: int
    exact: bool
    cut_page: int | None
    unread_pages: tuple[int, ...]

    def record(self) -> dict[str, object]:
        """For the exchange's metadata."""
        return {
            "budget_tokens": self.budget_tokens,
            "kept_chars": self.kept_chars,
            "kept_tokens": self.kept_tokens,
            "original_chars" if self.exact else "original_chars_at_least": self.read_chars,
            "cut_page": self.cut_page,
            "unread_pages": list(self.unread_pages),
        }

    def note(self) -> str:
        """A few words for the top of the answer."""
        original = f" of {self.read_chars:,}" if self.exact else ""  # not all read: its length is not known
        left_out = [f"the rest of page {self.cut_page}"] if self.cut_page else []
        if self.unread_pages:
            first, last = self.unread_pages[0], self.unread_pages[-1]
            left_out.append(f"page {first}" if first == last else f"pages {first}–{last}")
        where = f" ({' and '.join(left_out)} left out)" if left_out else ""
        return (
            f"The typed text in this file was too long, so only its first {self.kept_chars:,}{original} "
            f"characters (about {self.kept_tokens:,} tokens; context.question_tokens sets the limit) were sent to "
            f"the AI{where}. The pages themselves were sent as images, as always."
        )


@dataclass(frozen=True, slots=True)
class Skipped:
    """A notebook page not carried as an image (:class:`PageSieve`): the same as page ``known`` (0-based) of the
    last answered version, its print byte for byte; else only its own ``print``: a ``blank`` page (nothing
    written on it asks nothing), or one past what one input may carry (``max_pages``)."""

    known: int | None = None
    print: bytes = b""
    blank: bool = False


class PageSieve(Protocol):
    """What a native notebook's reader asks of each page, in order, as it is decoded: carry it as an image
    (``None``), or not (:class:`Skipped`). Read against ``known``, the page prints of the notebook's last answered
    version, so a long notebook's unchanged pages are never held as images (``eink_llm.page_sieve``)."""

    @property
    def known(self) -> tuple[bytes, ...]: ...

    def take(self, image: Image.Image) -> Skipped | None: ...


@dataclass(frozen=True, slots=True)
class InputDocument:
    """A readable input: its pages as grayscale images (in page order) and its text layer.

    ``images`` are 8-bit grayscale (``L``) pages already fitted to ``max_long_edge_px``: decoded once by the
    reader and carried through every later stage (page prints, what is new, the pages made cheap for the model),
    never encoded and decoded again in between. ``text`` is the PDF's own text, pages separated by a blank line;
    it is empty for images and for scanned or handwritten pages, which have no text layer. ``origin`` is set when
    the PDF is one of our own answers (or a conversation export) coming back, whatever the tablet renamed it to:
    it names the conversation and exchange. ``text`` is cut to ``max_text_tokens``; ``text_cut`` says how, when
    it was.
    """

    kind: Literal["pdf", "image", "notebook"]
    images: tuple[Image.Image, ...]
    text: str
    page_count: int
    origin: PdfOrigin | None = None
    #: The daemon's own status page (its metadata says so, whatever its name): never a question.
    status_page: bool = False
    text_cut: TextCut | None = None
    #: A notebook read through a :class:`PageSieve`: one entry per page, ``None`` for a page carried in
    #: :attr:`images` (in order), else how it was skipped. Empty: every page is in :attr:`images`.
    skipped: tuple[Skipped | None, ...] = ()

    @property
    def pages_not_carried(self) -> int:
        """Pages that changed (or are new) but are not in :attr:`images`: more than one input may carry."""
        return sum(1 for entry in self.skipped if entry is not None and entry.known is None and not entry.blank)

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
