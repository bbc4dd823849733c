"""Pictures (PNG, JPEG, WebP, TIFF) → upright grayscale pages, with Pillow.

A picture's size is checked from its header before a single pixel is decoded (and each TIFF frame's, as frames
have their own headers), and Pillow's decompression-bomb warning is turned into an error: a 1 kB PNG can declare
30000×30000 pixels. Phone photos are turned upright from their EXIF orientation and JPEGs are decoded straight
to a reduced grayscale size, which makes a 12-megapixel photo cheap. Transparent areas become white paper.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from typing import Literal

from PIL import Image, ImageOps

from eink_llm.errors import CorruptInputError, InputError, InputTooLargeError, UnsupportedInputError
from eink_llm.reader.limits import (
    EXPORT_AGAIN,
    EXPORT_SUPPORTED,
    FEWER_PAGES,
    InputDocument,
    InputLimits,
    describe,
    fit,
)

ImageKind = Literal["png", "jpeg", "webp", "tiff"]

#: ``warnings.catch_warnings`` swaps the process-wide filter list and restores it on exit; two threads doing so
#: at once can restore each other's state and leave a filter behind. One lock keeps our own uses in sequence.
_WARNINGS_LOCK = threading.Lock()

#: A hostile TIFF can chain millions of pages, and counting them walks the chain; stop counting here.
_MAX_FRAMES_COUNTED = 1000

_PILLOW_FORMAT: dict[str, str] = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "tiff": "TIFF"}


def read_image(name: str, data: bytes, kind: ImageKind, limits: InputLimits) -> InputDocument:
    """Decode a PNG, JPEG, WebP or TIFF. Only TIFF frames are pages: extra frames elsewhere are animation (APNG,
    WebP) or a phone's preview or depth map (MPO JPEG), so only the first frame is read."""
    pixel_limit = _pixel_limit(limits)
    try:
        image = _open_image(data, kind)
        with image:
            frames = _count_frames(image, _MAX_FRAMES_COUNTED) if kind == "tiff" else 1
            if frames > limits.max_pages:
                count = f"{frames} or more" if frames >= _MAX_FRAMES_COUNTED else str(frames)
                raise InputTooLargeError(f"{name} has {count} pages; the limit is {limits.max_pages}.", FEWER_PAGES)
            pages: list[Image.Image] = []
            for index in range(frames):
                if index:
                    image.seek(index)
                # Each frame's size comes from its own header: check it before decoding a single pixel.
                _check_pixels(name, image.size, pixel_limit, page=index + 1 if frames > 1 else None)
                pages.append(fit(_decode_frame(name, image, limits), limits))
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
            f"{name} is damaged or incomplete and could not be read as an image.", EXPORT_AGAIN, detail=describe(exc)
        ) from None
    return InputDocument("image", tuple(pages), "", len(pages))


def _pixel_limit(limits: InputLimits) -> int:
    """Our limit, or Pillow's bomb limit if that is lower (it is enforced inside Pillow either way)."""
    pillow = Image.MAX_IMAGE_PIXELS
    return min(limits.max_page_pixels, pillow) if pillow else limits.max_page_pixels


def _open_image(data: bytes, kind: ImageKind) -> Image.Image:
    """Parse the header only (no pixels are decoded yet), with Pillow's bomb warning raised as an error."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=[_PILLOW_FORMAT[kind]])


def _check_pixels(name: str, size: tuple[int, int], pixel_limit: int, *, page: int | None) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise CorruptInputError(f"{name} is damaged: it declares a picture of {width}×{height} pixels.", EXPORT_AGAIN)
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
            EXPORT_SUPPORTED,
            detail=str(exc),
        ) from None
