"""What a reading process sends back (:mod:`~eink_llm.reader.cage`), checked against the limits before it becomes
an :class:`~eink_llm.reader.limits.InputDocument`: the pages' sizes and pixels, a sieved notebook's page list and
prints, the text cut, the origin; or the typed error it reports. The reading process handles hostile files, so
whatever it says is data that must fit what was asked, never trusted: anything else is a
:class:`~eink_llm.errors.CorruptInputError` ("returned something unexpected").
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from eink_llm.errors import (
    CorruptInputError,
    EncryptedInputError,
    InputBeyondLimitsError,
    InputError,
    InputTooLargeError,
    MissingExtraError,
    UnsupportedInputError,
)
from eink_llm.reader.limits import (
    EXPORT_AGAIN,
    MAX_PRINT_BYTES,
    PRINT_LONG_EDGE,
    InputDocument,
    InputLimits,
    Skipped,
    TextCut,
    bytes_text,
)
from eink_llm.reader.origin import PdfOrigin, valid_exchange, valid_id

_ERRORS: dict[str, type[InputError]] = {
    cls.__name__: cls
    for cls in (
        CorruptInputError,
        EncryptedInputError,
        InputError,
        InputTooLargeError,
        MissingExtraError,
        UnsupportedInputError,
    )
}


def document(
    name: str, header: dict[str, Any], blobs: list[bytearray], limits: InputLimits, known: int | None = None
) -> InputDocument:
    """The reading process's answer, checked against the limits before it becomes pages. ``known``: how many
    known prints a notebook was sieved with (``None``: no sieve)."""
    if header.get("ok") is not True:
        raise _input_error(name, header, limits)
    try:
        kind = header["kind"]
        page_count = header["page_count"]
        sizes = header["sizes"]
        if kind not in ("pdf", "image", "notebook") or not isinstance(page_count, int) or not isinstance(sizes, list):
            raise ValueError("bad header")
        if len(sizes) > limits.max_pages or len(blobs) < len(sizes) + 1:
            raise ValueError("bad page list")
        skipped = _skipped(header.get("skipped"), len(sizes), blobs[len(sizes) + 1 :], known, limits)
        if skipped and len(skipped) != page_count:
            raise ValueError("a sieved page list that is not the notebook's")
        images = []
        for (width, height), pixels in zip(sizes, blobs[1 : len(sizes) + 1], strict=True):
            if not (0 < width <= limits.max_long_edge_px and 0 < height <= limits.max_long_edge_px):
                raise ValueError(f"a page of {width}x{height}")
            if len(pixels) != width * height:
                raise ValueError(f"a page of {width}x{height} with {len(pixels)} pixels")
            # Shares the bytearray (read off the pipe for this page alone): no copy. The image is read-only;
            # every later stage makes new images from it.
            images.append(Image.frombuffer("L", (width, height), pixels, "raw", "L", 0, 1))
        text = blobs[0].decode("utf-8", errors="replace")
        return InputDocument(
            kind,
            tuple(images),
            text,
            page_count,
            _origin(header.get("origin")),
            status_page=header.get("status_page") is True,
            text_cut=_text_cut(header.get("text_cut")),
            skipped=skipped,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptInputError(
            f"{name} could not be read: the reading process returned something unexpected.",
            EXPORT_AGAIN,
            detail=str(exc),
        ) from None


def _skipped(
    raw: object, carried: int, prints: list[bytearray], known: int | None, limits: InputLimits
) -> tuple[Skipped | None, ...]:
    """A sieved notebook's page list (:class:`Skipped`), checked: as many carried pages as were sent, known
    indices within the known prints, and each print a 1-bit PNG of at most the print size (kept, and decoded
    later by the resolver: never anything larger)."""
    if raw is None:
        if prints:
            raise ValueError("prints without a page list")
        return ()
    if known is None or not isinstance(raw, list) or len(raw) > limits.max_notebook_pages:
        raise ValueError("a page list that was not asked for")
    entries: list[Skipped | None] = []
    left = iter(prints)
    for item in raw:
        if item is None:
            entries.append(None)
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < known:
            entries.append(Skipped(known=item))
        elif item in ("print", "blank"):
            blob = next(left, None)
            if blob is None:
                raise ValueError("a page list with more prints than were sent")
            found = bytes(blob)
            _check_print(found)
            entries.append(Skipped(print=found, blank=item == "blank"))
        else:
            raise ValueError("a bad page in the page list")
    if next(left, None) is not None or sum(1 for entry in entries if entry is None) != carried:
        raise ValueError("a page list that does not match the pages sent")
    return tuple(entries)


def _check_print(found: bytes) -> None:
    if len(found) > MAX_PRINT_BYTES or not found.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("a page print that is not one")
    try:
        with Image.open(io.BytesIO(found), formats=["PNG"]) as image:  # the header only: nothing is decoded here
            mode, size = image.mode, image.size
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"a page print that is not one: {exc}") from None
    if mode != "1" or not 0 < max(size) <= PRINT_LONG_EDGE:
        raise ValueError(f"a page print of {size} in mode {mode}")


def _text_cut(raw: object) -> TextCut | None:
    """How the reading process cut the text layer, if it did; its numbers are only shown and recorded, but are
    checked for their types all the same (a wrong one raises, and the file is reported as unreadable)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("bad text cut")
    numbers = ("budget_tokens", "kept_chars", "kept_tokens", "read_chars")
    if not all(type(raw.get(key)) is int and raw[key] >= 0 for key in numbers):
        raise ValueError("bad text cut")
    cut_page = raw.get("cut_page")
    unread = raw.get("unread_pages")
    if not (cut_page is None or type(cut_page) is int) or not isinstance(unread, list):
        raise ValueError("bad text cut")
    if not all(type(page) is int for page in unread) or type(raw.get("exact")) is not bool:
        raise ValueError("bad text cut")
    return TextCut(
        budget_tokens=raw["budget_tokens"],
        kept_chars=raw["kept_chars"],
        kept_tokens=raw["kept_tokens"],
        read_chars=raw["read_chars"],
        exact=raw["exact"],
        cut_page=cut_page,
        unread_pages=tuple(unread),
    )


def _origin(raw: object) -> PdfOrigin | None:
    if not isinstance(raw, dict):
        return None
    conversation = valid_id(raw.get("conversation_id"))
    if conversation is None:
        return None
    exchange = raw.get("exchange")
    source = raw.get("source")
    return PdfOrigin(
        conversation,
        valid_exchange(str(exchange)) if isinstance(exchange, int) else None,
        source if source in ("info", "xmp", "keywords") else "info",
        raw.get("unchanged") is True,
    )


def _input_error(name: str, header: dict[str, Any], limits: InputLimits) -> InputError:
    if header.get("memory") is True:
        return memory_error(name, limits, detail=str(header.get("detail") or "MemoryError"))
    cls = _ERRORS.get(str(header.get("error")), CorruptInputError)
    what = header.get("what")
    todo = header.get("todo")
    detail = header.get("detail")
    return cls(
        what if isinstance(what, str) and what else f"{name} could not be read.",
        todo if isinstance(todo, str) and todo else EXPORT_AGAIN,
        detail=detail if isinstance(detail, str) else None,
    )


def memory_error(name: str, limits: InputLimits, *, detail: str) -> InputBeyondLimitsError:
    return InputBeyondLimitsError(
        f"{name} needs more memory to read than the {bytes_text(limits.max_decode_memory_bytes)} eink-llm allows "
        "for one file (or it is damaged in a way that crashed the reader).",
        "Export fewer pages, or pages with smaller pictures; if the file is fine, raise "
        "input.max_decode_memory_mb in the config.",
        detail=detail,
    )
