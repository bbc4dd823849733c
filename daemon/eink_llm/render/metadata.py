"""Stamp every PDF we write with the conversation it belongs to, in ways that survive a rename.

Tablets rename files on export (reMarkable uses the notebook's visible name, Boox adds dates), so when a
follow-up written on an answer's reply page comes back, the ``conv_…`` id in our file name is often gone. The
PDF's metadata usually survives, so the id is written three ways, read back in this order by
:mod:`eink_llm.reader.origin`:

* custom Info dictionary keys ``/EinkLLMConversation`` and ``/EinkLLMExchange`` (text strings);
* an XMP packet (Catalog ``/Metadata``, ``/Type /Metadata /Subtype /XML``, *uncompressed* so it can be found in
  the raw bytes without a PDF parser) with ``dc:title``, ``pdf:Producer``, ``xmp:CreateDate`` … consistent
  with the Info dictionary, and ``einkllm:conversation`` / ``einkllm:exchange`` in our own namespace;
* the standard Subject (the id) and Keywords, which :mod:`eink_llm.render.document` sets through reportlab's
  public API.

An answer or error page also carries, in the Info dictionary, the SHA-256 of the input it answers
(``/EinkLLMInput``) and its own digest (``/EinkLLMDigest``, :mod:`eink_llm.fingerprint`): with these the folder
itself remembers what was answered, should the database be lost (a new server, a restore without it), and an
answer that comes back unchanged is not mistaken for a question. The digest can only be computed once the PDF
exists: :func:`stamp` writes a placeholder, which the renderer's :func:`eink_llm.fingerprint.seal` overwrites.

It also pins CreationDate to the exchange's time, so output is a pure function of the input (with
``invariant=1``): a retried job gives byte-identical PDFs.

reportlab (5.1) has no public API for extra Info keys or a Catalog entry, so :func:`stamp` is the one place
that reaches into its internals; ``tests/test_render_paper.py`` checks the result with pdfium and fails loudly
if a reportlab upgrade changes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reportlab.pdfbase import pdfdoc

from eink_llm.fingerprint import PLACEHOLDER
from eink_llm.naming import INFO_CONVERSATION, INFO_DIGEST, INFO_EXCHANGE, INFO_INPUT, INFO_KIND, XMP_NAMESPACE

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Identity:
    """What a PDF is: which conversation, which exchange (None for a whole-conversation export), and when."""

    conversation_id: str
    exchange: int | None
    created: datetime | None
    #: SHA-256 (hex) of the input an answer or error page answers.
    input_sha256: str | None = None
    #: What a PDF that is no answer is (``status``: the status page), so it is never taken as a question.
    kind: str | None = None


class _Stamp:
    """Stands in for reportlab's TimeStamp so CreationDate is the exchange's time, not the render time."""

    def __init__(self, when: datetime) -> None:
        utc = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
        self.t = utc.timestamp()
        self.lt = utc.timetuple()
        self.YMDhms = tuple(self.lt)[:6]
        self.dhh = 0
        self.dmm = 0
        self.tzname = "UTC"


def stamp(canv: Any, identity: Identity) -> None:
    """Attach the creation time, our Info keys and the XMP packet to a reportlab canvas before it is saved.

    Relies on reportlab internals (5.1): ``canvas._doc`` (the PDFDocument), its ``_timeStamp`` (read by
    PDFInfo and here), ``info`` (a PDFInfo, formatted when the document is written — so values set later
    through ``canv.setTitle`` etc. still land in it) and ``Catalog`` (whose ``Metadata`` attribute becomes a
    reference to our stream).
    """
    doc = canv._doc
    if identity.created is not None:
        doc._timeStamp = _Stamp(identity.created)
    info = _Info(_extra_info(identity))
    info.__dict__.update(doc.info.__dict__)  # whatever was already set (title, author, date formatter, …)
    doc.info = info
    doc.Catalog.Metadata = _XmpStream(identity)


def _extra_info(identity: Identity) -> dict[str, str]:
    extra = {INFO_CONVERSATION: identity.conversation_id} if identity.conversation_id else {}
    if identity.conversation_id and identity.exchange is not None:
        extra[INFO_EXCHANGE] = str(identity.exchange)
    if identity.exchange is not None:
        if identity.input_sha256 and _SHA256.fullmatch(identity.input_sha256):
            extra[INFO_INPUT] = identity.input_sha256
        extra[INFO_DIGEST] = PLACEHOLDER
    if identity.kind:
        extra[INFO_KIND] = identity.kind
        extra[INFO_DIGEST] = PLACEHOLDER
    return extra


class _Info(pdfdoc.PDFInfo):  # type: ignore[misc]  # reportlab is untyped
    """reportlab's Info dictionary (same keys, same formatting) plus our own keys."""

    def __init__(self, extra: dict[str, str]) -> None:
        super().__init__()
        self.extra = extra

    def format(self, document: Any) -> bytes:
        date = pdfdoc.PDFDate(ts=document._timeStamp, dateFormatter=self._dateFormatter)
        entries: dict[str, Any] = {
            "Title": pdfdoc.PDFString(self.title),
            "Author": pdfdoc.PDFString(self.author),
            "CreationDate": date,
            "ModDate": date,
            "Producer": pdfdoc.PDFString(self.producer),
            "Creator": pdfdoc.PDFString(self.creator),
            "Subject": pdfdoc.PDFString(self.subject),
            "Keywords": pdfdoc.PDFString(self.keywords),
            "Trapped": pdfdoc.PDFName(self.trapped),
        }
        entries.update({key: pdfdoc.PDFString(value) for key, value in self.extra.items()})
        result: bytes = pdfdoc.PDFDictionary(entries).format(document)
        return result


class _XmpStream(pdfdoc.PDFObject):  # type: ignore[misc]
    """The Catalog's /Metadata stream: never filtered, built when written so it matches the Info dictionary."""

    __RefOnly__ = 1

    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    def format(self, document: Any) -> bytes:
        info = document.info
        content = xmp_packet(
            self.identity,
            title=str(info.title),
            author=str(info.author),
            subject=str(info.subject),
            keywords=str(info.keywords),
            producer=str(info.producer),
            creator=str(info.creator),
            date=xmp_date(document._timeStamp),
        ).encode("utf-8")
        content = document.encrypt.encode(content)
        head = pdfdoc.PDFDictionary(
            {"Type": pdfdoc.PDFName("Metadata"), "Subtype": pdfdoc.PDFName("XML"), "Length": len(content)}
        )
        result: bytes = pdfdoc.format(head, document) + b"\nstream\n" + content + b"\nendstream\n"
        return result


def xmp_date(stamp_: Any) -> str:
    """reportlab's timestamp (the one behind the Info CreationDate) in XMP's ISO 8601 form."""
    year, month, day, hour, minute, second = stamp_.YMDhms
    offset = stamp_.dhh * 60 + (stamp_.dmm if stamp_.dhh >= 0 else -stamp_.dmm)
    zone = f"{'+' if offset >= 0 else '-'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{zone}"


_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"})


def _xml(value: str) -> str:
    """Escaped for XML text and attributes; characters XML 1.0 forbids are dropped."""
    kept = "".join(
        c
        for c in value
        if c in "\t\n\r" or ("\x20" <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd") or c >= "\U00010000"
    )
    return kept.translate(_XML_ESCAPES)


def xmp_packet(
    identity: Identity,
    *,
    title: str,
    author: str,
    subject: str,
    keywords: str,
    producer: str,
    creator: str,
    date: str,
) -> str:
    """The XMP packet, in RDF's plain element form (what the reader's patterns expect first)."""
    ours = ""
    if identity.conversation_id:
        ours = f"   <einkllm:conversation>{_xml(identity.conversation_id)}</einkllm:conversation>\n"
        if identity.exchange is not None:
            ours += f"   <einkllm:exchange>{identity.exchange}</einkllm:exchange>\n"
    if identity.kind:
        ours += f"   <einkllm:kind>{_xml(identity.kind)}</einkllm:kind>\n"
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:pdf="http://ns.adobe.com/pdf/1.3/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    xmlns:einkllm="{XMP_NAMESPACE}">\n'
        "   <dc:format>application/pdf</dc:format>\n"
        f'   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{_xml(title)}</rdf:li></rdf:Alt></dc:title>\n'
        f"   <dc:creator><rdf:Seq><rdf:li>{_xml(author)}</rdf:li></rdf:Seq></dc:creator>\n"
        f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{_xml(subject)}</rdf:li></rdf:Alt>'
        "</dc:description>\n"
        f"   <pdf:Producer>{_xml(producer)}</pdf:Producer>\n"
        f"   <pdf:Keywords>{_xml(keywords)}</pdf:Keywords>\n"
        f"   <xmp:CreatorTool>{_xml(creator)}</xmp:CreatorTool>\n"
        f"   <xmp:CreateDate>{date}</xmp:CreateDate>\n"
        f"   <xmp:ModifyDate>{date}</xmp:ModifyDate>\n"
        f"   <xmp:MetadataDate>{date}</xmp:MetadataDate>\n"
        f"{ours}"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
