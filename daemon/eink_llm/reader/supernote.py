"""Supernote ``.note`` notebooks → grey pages (what the device shows) and the real-time recognition text.

``supernotelib`` (the optional ``notebooks`` extra, Apache-2.0) parses the file and draws the page bitmaps the
device itself keeps for each layer (their run-length decoding redone here by its rules, faster, to the same
bytes); those hold what is visible, so erased strokes are not drawn (they stay in
the file's stroke record only). Layers are composed in the page's order and visibility, the template layer
included, and a landscape page comes back landscape. Runs inside the reading cage like every decoder.
"""

from __future__ import annotations

import functools
import io
import re
from typing import Any

from PIL import Image

from eink_llm.errors import CorruptInputError, InputError, InputTooLargeError, UnsupportedInputError
from eink_llm.reader.limits import InputDocument, InputLimits, PageSieve, describe, fit
from eink_llm.reader.notebook_common import SYNC_AGAIN, Pages, TextLayer, check_length, missing_extra

#: The format signature every Supernote X-series notebook starts with (after ``note``).
_SIGNATURE = re.compile(rb"^(?:note|mark)SN_FILE_VER_(\d{8})")
#: ``supernotelib.fileformat.Page.ORIENTATION_HORIZONTAL``: a landscape page.
_HORIZONTAL = "1090"


def read_note(name: str, data: bytes, limits: InputLimits, sieve: PageSieve | None = None) -> InputDocument:
    """The notebook's pages, each a grayscale image at the device's resolution fitted to the long-edge limit,
    decoded one at a time; through ``sieve``, only the pages it carries are kept as images."""
    try:
        from supernotelib import decoder as sn_decoder
        from supernotelib import exceptions as sn_errors
        from supernotelib import parser as sn_parser
        from supernotelib.converter import ImageConverter, TextConverter
    except ImportError as exc:
        raise missing_extra(name, "a Supernote notebook (.note)", exc) from None
    try:
        notebook = sn_parser.load(io.BytesIO(data), policy="strict")
    except sn_errors.UnsupportedFileFormat as exc:
        raise _unsupported(name, data, exc) from None
    except MemoryError:
        raise
    except Exception as exc:  # a damaged or truncated file fails anywhere inside the parser
        raise CorruptInputError(
            f"{name} is a Supernote notebook that could not be read: it is damaged or not completely synced.",
            SYNC_AGAIN,
            detail=describe(exc),
        ) from None
    try:
        return _pages(name, notebook, _grey_converter(ImageConverter, sn_decoder), TextConverter, limits, sieve)
    except (InputError, MemoryError):
        raise
    except Exception as exc:
        raise CorruptInputError(
            f"{name} is a Supernote notebook whose pages could not be drawn: it is damaged or not completely synced.",
            SYNC_AGAIN,
            detail=describe(exc),
        ) from None


def _pages(
    name: str, notebook: Any, image_converter: Any, text_converter: Any, limits: InputLimits, sieve: PageSieve | None
) -> InputDocument:
    count = int(notebook.get_total_pages())
    if count < 1:
        raise CorruptInputError(f"{name} is a Supernote notebook without pages.", SYNC_AGAIN)
    check_length(name, "a Supernote notebook", count, limits, sieve)
    width, height = int(notebook.get_width()), int(notebook.get_height())
    if width < 1 or height < 1 or width * height > limits.max_page_pixels:
        raise InputTooLargeError(
            f"{name} declares pages of {width}×{height} pixels; the limit is {limits.max_page_pixels:,} pixels.",
            "Export the page from the tablet as PDF instead, or raise input.max_page_megapixels in the config.",
        )
    images = image_converter(notebook)
    texts = text_converter(notebook)
    text = TextLayer(limits.max_text_tokens)
    pages = Pages(sieve)
    for index in range(count):
        page = images.convert(index)
        pages.add(fit(page if page.mode == "L" else page.convert("L"), limits))
        del page  # one page at a time: a long notebook's pages are never all held
        text.add_read(index + 1, functools.partial(_page_text, texts, index))
    return pages.document(text.text(), text.cut())


#: Every grey but 255 (supernotelib's "transparent") is drawn: the paste mask of a layer.
_OPAQUE = [255] * 255 + [0]
#: The page's template (the background layer: ruled lines, grids) drawn no darker than this light grey, as
#: tablets draw templates in exported PDFs: it stays visible, but is not taken for ink (economy.INK_THRESHOLD),
#: so pages are cropped to the writing and a page with nothing written on it counts as blank.
TEMPLATE_GREY = 200
_TEMPLATE = [max(value, TEMPLATE_GREY) for value in range(255)] + [255]


def _grey_converter(image_converter: Any, decoders: Any) -> Any:
    """supernotelib's page drawing, with its layers composed in grey instead of RGB, its run-length decoding done
    by :func:`_ratta_rle` (the same bytes, about 8 times faster), a template picture (PNG) decoded by Pillow instead
    of pure-Python pypng, and the template made light grey (:data:`TEMPLATE_GREY`): otherwise the same pixels
    (checked against the corpus), 2–4 times faster, 15 times with a template picture.

    ``decoders``: the module ``supernotelib.decoder``."""

    class GreyConverter(image_converter):  # type: ignore[misc]
        def _create_image_from_decoder(self, decoder: Any, binary: bytes, *args: Any, **kwargs: Any) -> Any:
            size = (int(self.note.get_width()), int(self.note.get_height()))
            if isinstance(decoder, decoders.RattaRleDecoder):
                palette = kwargs.get("palette")
                if args or (palette is not None and palette.mode != "grayscale"):
                    return super()._create_image_from_decoder(decoder, binary, *args, **kwargs)  # not our use
                if kwargs.get("horizontal"):
                    size = (size[1], size[0])
                bitmap = _ratta_rle(
                    decoder,
                    decoder._create_colormap(palette or decoders.color.DEFAULT_COLORPALETTE),
                    isinstance(decoder, decoders.RattaRleX2Decoder),
                    binary,
                    size,
                    bool(kwargs.get("blank_hint")),
                )
                return Image.frombytes("L", size, bitmap)
            if not isinstance(decoder, decoders.PngDecoder):
                return super()._create_image_from_decoder(decoder, binary, *args, **kwargs)
            with Image.open(io.BytesIO(binary), formats=["PNG"]) as picture:
                if picture.size != size:  # as supernotelib refuses it, before decoding
                    raise ValueError(f"template picture of {picture.size}, expected {size}")
                channels = len(picture.getbands())
                rgba = picture.convert("RGBA")
            # As supernotelib does: the pixels as RGBA, read in the mode the PNG's own channel count names.
            mode = {4: "RGBA", 3: "RGB", 2: "LA"}.get(channels, "L")
            return Image.frombytes(mode, size, rgba.tobytes())

        def _flatten_layers(self, page: Any, imgs: dict[str, Any], visibility_overlay: Any = None) -> Any:
            others = [image for name, image in imgs.items() if name != "BGLAYER" and image is not None]
            if visibility_overlay is not None or any(image.mode != "L" for image in others):
                return super()._flatten_layers(page, imgs, visibility_overlay)  # not met in the corpus
            width, height = int(self.note.get_width()), int(self.note.get_height())
            if page.get_orientation() == _HORIZONTAL:
                width, height = height, width
            flat = Image.new("L", (width, height), 255)
            visible = self._get_layer_visibility(page)
            for layer_name in reversed(page.get_layer_order()):  # bottom (template) to top
                layer = imgs.get(layer_name)
                if layer is None or not visible.get(layer_name):
                    continue
                if layer_name == "BGLAYER":
                    if layer.mode != "L":  # a custom template picture: transparent parts white, as supernotelib
                        layer = self._whiten_transparent(layer).convert("L")
                    layer = layer.point(_TEMPLATE)
                flat.paste(layer, mask=layer.point(_OPAQUE))
            return flat

    return GreyConverter


def _ratta_rle(
    decoder: Any, colormap: dict[int, int], raw_codes: bool, data: bytes, size: tuple[int, int], blank: bool
) -> bytes:
    """A layer's RATTA_RLE bitmap as grey bytes: supernotelib's ``RattaRleDecoder.decode`` in grey, rule for rule,
    without its queue (a thread-safe ``queue.Queue`` per run: most of a page's decoding time) and with the pixels
    written by numpy. ``raw_codes`` (the X2 decoder): a code not in ``colormap`` is its own grey (anti-aliased
    edges), else it is an error, as in supernotelib."""
    import numpy as np

    expected = size[0] * size[1]
    # Every (code, length) pair but a held last one adds at least a pixel: a layer of more pairs than the page has
    # pixels fails below whatever it holds. Refused before the loop, so its lists never outgrow the page (a hostile
    # 50 MB layer would otherwise cost seconds and hundreds of MB before failing).
    if len(data) // 2 > expected + 1:
        raise ValueError(f"a bitmap of {len(data) // 2} runs for a page of {expected} pixels")
    marker = decoder.SPECIAL_LENGTH_MARKER
    special = decoder.SPECIAL_LENGTH_FOR_BLANK if blank else decoder.SPECIAL_LENGTH
    codes: list[int] = []
    lengths: list[int] = []
    held: tuple[int, int] | None = None  # a run whose length goes on in the next pair when its code repeats
    for index in range(0, len(data) - 1, 2):
        code, length = data[index], data[index + 1]
        if held is not None:
            held_code, held_length = held
            held = None
            if code == held_code:
                codes.append(code)
                lengths.append(1 + length + (((held_length & 0x7F) + 1) << 7))
                continue
            codes.append(held_code)
            lengths.append(((held_length & 0x7F) + 1) << 7)
        if length == marker:
            codes.append(code)
            lengths.append(special)
        elif length & 0x80:
            held = (code, length)
        else:
            codes.append(code)
            lengths.append(length + 1)
    total = sum(lengths)
    if held is not None:
        tail = decoder._adjust_tail_length(held[1], total, expected)
        if tail > 0:
            codes.append(held[0])
            lengths.append(tail)
            total += tail
    if total != expected:
        raise ValueError(f"uncompressed bitmap length = {total}, expected = {expected}")
    table = np.arange(256, dtype=np.uint8) if raw_codes else np.zeros(256, dtype=np.uint8)
    known = np.zeros(256, dtype=bool)
    for key, grey in colormap.items():
        table[key], known[key] = grey, True
    found = np.frombuffer(bytes(codes), dtype=np.uint8)
    if not raw_codes and not known[found].all():
        raise ValueError(f"unknown colour code {int(found[~known[found]][0]):#x} in a layer bitmap")
    return np.repeat(table[found], lengths).tobytes()


def _page_text(texts: Any, index: int) -> str:
    """The page's real-time recognition text, or "" (not written with recognition on, or not recognised yet)."""
    try:
        found = texts.convert(index)
    except Exception:  # a damaged recognition record costs the text, never the page
        return ""
    return found if isinstance(found, str) else ""


def _unsupported(name: str, data: bytes, exc: Exception) -> InputError:
    match = _SIGNATURE.match(data[:32])
    if match is not None:
        return UnsupportedInputError(
            f"{name} is a Supernote notebook in a newer file format (version {match.group(1).decode()}) than "
            "this installation of eink-llm can read; the tablet's firmware is newer than its notebook reader.",
            "Update the reader on the server (pip install -U 'eink-llm[notebooks]'), then save the notebook "
            "again; until then, export the page on the tablet as PDF into this folder.",
            detail=describe(exc),
        )
    return UnsupportedInputError(
        f"{name} is not a Supernote notebook eink-llm can read (an older or unknown kind of Supernote file).",
        "Export the page on the tablet as PDF into this folder.",
        detail=describe(exc),
    )
