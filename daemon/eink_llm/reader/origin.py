"""Recognise our own answer PDF when it comes back, whatever the tablet renamed it to.

A follow-up is usually written on the reply page of an answer and synced back; tablets rename files on export
(reMarkable uses the notebook's visible name, Boox appends dates), so the conversation id in our file name is
often lost. The PDF's metadata usually survives, so the renderer (:mod:`eink_llm.render.metadata`) writes the
id three ways, and this module reads them back in order of trust:

1. the custom Info dictionary keys ``/EinkLLMConversation`` and ``/EinkLLMExchange`` (through pdfium's
   ``FPDF_GetMetaText``, which accepts any key);
2. the XMP packet: pdfium has no XMP API, so the packet is found in the raw bytes (it is uncompressed in our
   files, and tools that rewrite metadata keep it so, as XMP intends) and our namespace's elements or
   attributes are picked out with bounded regular expressions. No XML parser is involved, so there are no
   entities to expand and no document type to fetch: a hostile packet is just text that does not match;
3. the standard Subject (the id) and Keywords ("exchange 3, …, conversation conv_…").

Everything found is validated (:data:`eink_llm.naming.CONVERSATION_ID`, a small exchange number), and nothing
here raises: damaged metadata costs the recognition, never the page.

Our answers also carry their own digest (:mod:`eink_llm.fingerprint`): :attr:`PdfOrigin.unchanged` says the
file is byte for byte as we wrote it, so nothing was written on it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pypdfium2.raw as pdfium_c

from eink_llm.fingerprint import is_unchanged
from eink_llm.naming import CONVERSATION_ID, INFO_CONVERSATION, INFO_EXCHANGE, INFO_KIND, KIND_STATUS, XMP_NAMESPACE

#: Bounds for hostile input: packets longer than this are skipped, and only the last few packets are looked
#: at (an incremental update appends the newest metadata at the end of the file).
MAX_PACKET_BYTES = 64 * 1024
MAX_PACKETS = 8
MAX_EXCHANGE = 999_999
_MAX_META_CHARS = 4096

_PACKET_BEGIN = b"<?xpacket begin"
_PACKET_END = b"<?xpacket end"
_PREFIX = re.compile(r"""xmlns:([A-Za-z_][\w.-]{0,40})\s*=\s*["']""" + re.escape(XMP_NAMESPACE) + r"""["']""")
_KEYWORD_EXCHANGE = re.compile(r"(?<![\w-])exchange\s+(\d{1,7})(?!\w)", re.IGNORECASE)

Source = Literal["info", "xmp", "keywords"]


@dataclass(frozen=True, slots=True)
class PdfOrigin:
    """Which conversation (and exchange, when known) a PDF we wrote belongs to, and where that was read."""

    conversation_id: str
    exchange: int | None
    source: Source
    #: True when the file is exactly as we wrote it: our answer, and nothing was written on it.
    unchanged: bool = False


def valid_id(value: object) -> str | None:
    text = value.strip() if isinstance(value, str) else ""
    return text if CONVERSATION_ID.fullmatch(text) else None


def valid_exchange(value: object) -> int | None:
    text = value.strip() if isinstance(value, str) else ""
    if not (text.isascii() and text.isdigit() and len(text) <= 7):
        return None
    number = int(text)
    return number if 0 < number <= MAX_EXCHANGE else None


def meta_text(document: Any, key: str) -> str:
    """One Info dictionary entry as text ("" when absent). Call with the reader's pdfium lock held."""
    raw_key = key.encode("ascii")
    size = int(pdfium_c.FPDF_GetMetaText(document.raw, raw_key, None, 0))
    if size <= 2:  # just the UTF-16 terminator
        return ""
    size = min(size, 2 * _MAX_META_CHARS + 2)
    buffer = ctypes.create_string_buffer(size)
    pdfium_c.FPDF_GetMetaText(document.raw, raw_key, buffer, size)
    return buffer.raw[: size - 2].decode("utf-16-le", errors="replace").rstrip("\x00")


def read_info(document: Any) -> dict[str, str]:
    """The Info entries the origin can come from. Call with the reader's pdfium lock held."""
    keys = (INFO_CONVERSATION, INFO_EXCHANGE, INFO_KIND, "Subject", "Keywords")
    return {key: meta_text(document, key) for key in keys}


def xmp_packets(data: bytes) -> list[str]:
    """The last :data:`MAX_PACKETS` XMP packets in the file, newest first, each at most ``MAX_PACKET_BYTES``.

    At most ``4 × MAX_PACKETS`` packet starts are looked at, so a file of nothing but unterminated packet
    starts costs a few searches, not one per start."""
    packets: list[str] = []
    end = len(data)
    for _ in range(4 * MAX_PACKETS):
        begin = data.rfind(_PACKET_BEGIN, 0, end)
        if begin < 0:
            break
        stop = data.find(_PACKET_END, begin, begin + MAX_PACKET_BYTES)
        if stop > begin:
            packets.append(data[begin:stop].decode("utf-8", errors="replace"))
            if len(packets) == MAX_PACKETS:
                break
        end = begin
    return packets


#: At most this many prefixes bound to our namespace are looked at per packet (a real packet has one).
MAX_PREFIXES = 4
#: ``<p:name …>value</p:name>`` and ``p:name="value"``: the two ways RDF writes a simple property. Written so
#: that no part can match the same text two ways (values stop at ``<``/quotes, are stripped in Python): linear
#: time on hostile packets, one pass each per packet however many prefixes it declares.
_ELEMENT = re.compile(
    r"<([A-Za-z_][\w.-]{0,40}):(conversation|exchange|kind)(?:\s[^<>]{0,200})?>([^<>]{0,200})</\1:\2\s*>"
)
_ATTRIBUTE = re.compile(
    r"""(?:^|[\s<])([A-Za-z_][\w.-]{0,40}):(conversation|exchange|kind)\s*=\s*"""
    r"""(?:"([^"<>]{0,200})"|'([^'<>]{0,200})')"""
)


def _properties(packet: str, prefixes: set[str]) -> dict[str, str]:
    """Our ``conversation`` and ``exchange`` properties in a packet, from the first of our prefixes that has them."""
    found: dict[str, str] = {}
    for match in _ELEMENT.finditer(packet):
        if match.group(1) in prefixes:
            found.setdefault(match.group(2), match.group(3).strip())
    for match in _ATTRIBUTE.finditer(packet):
        if match.group(1) in prefixes:
            value = match.group(3) if match.group(3) is not None else match.group(4)
            found.setdefault(match.group(2), value.strip())
    return found


def origin_from_xmp(data: bytes) -> PdfOrigin | None:
    for packet in xmp_packets(data):
        prefixes = set(list(dict.fromkeys(_PREFIX.findall(packet)))[:MAX_PREFIXES])
        if not prefixes:
            continue
        found = _properties(packet, prefixes)
        conversation = valid_id(found.get("conversation"))
        if conversation:
            return PdfOrigin(conversation, valid_exchange(found.get("exchange")), "xmp")
    return None


def is_status_page(info: dict[str, str], data: bytes) -> bool:
    """Whether a PDF is our status page (``/EinkLLMKind (status)``, or ``kind`` in our XMP namespace), however
    it was renamed or written on: it is never a question. Never raises."""
    try:
        if info.get(INFO_KIND, "").strip() == KIND_STATUS:
            return True
        for packet in xmp_packets(data):
            prefixes = set(list(dict.fromkeys(_PREFIX.findall(packet)))[:MAX_PREFIXES])
            if prefixes and _properties(packet, prefixes).get("kind") == KIND_STATUS:
                return True
    except Exception:
        return False
    return False


def origin_from_info(info: dict[str, str]) -> PdfOrigin | None:
    conversation = valid_id(info.get(INFO_CONVERSATION))
    if conversation:
        return PdfOrigin(conversation, valid_exchange(info.get(INFO_EXCHANGE)), "info")
    return None


def origin_from_keywords(info: dict[str, str]) -> PdfOrigin | None:
    """The standard fields: Subject is the id; Keywords hold "exchange N" and "conversation <id>"."""
    keywords = info.get("Keywords", "")[:_MAX_META_CHARS]
    conversation = valid_id(info.get("Subject"))
    if conversation is None:
        found = CONVERSATION_ID.findall(keywords)
        conversation = found[-1] if len(set(found)) == 1 else None  # two different ids: trust neither
    if conversation is None:
        return None
    exchange = _KEYWORD_EXCHANGE.search(keywords)
    return PdfOrigin(conversation, valid_exchange(exchange.group(1)) if exchange else None, "keywords")


def find_origin(info: dict[str, str], data: bytes) -> PdfOrigin | None:
    """The first origin found, Info keys first. A missing exchange number is taken from a later source that
    names the same conversation (a tool may have kept the XMP but dropped our Info keys, or the reverse)."""
    found: PdfOrigin | None = None
    sources: tuple[Callable[[], PdfOrigin | None], ...] = (
        functools.partial(origin_from_info, info),
        functools.partial(origin_from_xmp, data),
        functools.partial(origin_from_keywords, info),
    )
    for source in sources:
        try:
            candidate = source()
        except Exception:  # never let damaged metadata cost the page
            continue
        if candidate is None:
            continue
        if found is None:
            found = candidate
        elif candidate.conversation_id == found.conversation_id and candidate.exchange is not None:
            found = PdfOrigin(found.conversation_id, candidate.exchange, found.source)
        if found.exchange is not None:
            break
    if found is None:
        return None
    return dataclasses.replace(found, unchanged=is_unchanged(data))
