"""The paper around an answer: the ruled reply page, the note box, and the metadata that names the conversation.

Real PDFs are rendered and read back with pdfium: the reply page is rasterised at the reader's 150 dpi to check
that its rules are there but lighter than what the page economy counts as ink; the metadata is read through
pdfium's Info API and from the raw XMP packet.
"""

from __future__ import annotations

import ctypes
import dataclasses
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import Image
from reportlab.pdfgen.canvas import Canvas

from eink_llm import __version__
from eink_llm.render import RenderMeta, get_device, render, render_answer, render_error
from eink_llm.render import metadata as render_metadata
from eink_llm.render.document import page_layout
from eink_llm.render.reply import RULE_GREY
from eink_llm.render.styles import make_theme
from tests.test_render import META, pdf_text

#: The page economy's ink threshold (grey < 160 of 255 is ink) and the reader's resolution.
INK_BELOW = 160
READER_DPI = 150
NOTE = "Conversation conv_20240101_000000_deadbeef is archived, so this question started a new conversation."


def meta_text(doc: pdfium.PdfDocument, key: str) -> str:
    size = pdfium_c.FPDF_GetMetaText(doc.raw, key.encode("ascii"), None, 0)
    buffer = ctypes.create_string_buffer(size)
    pdfium_c.FPDF_GetMetaText(doc.raw, key.encode("ascii"), buffer, size)
    return buffer.raw[: size - 2].decode("utf-16-le")


def rasterise(page: pdfium.PdfPage, dpi: float = READER_DPI) -> Image.Image:
    image: Image.Image = page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
    return image


def strokes(page: pdfium.PdfPage) -> list[tuple[tuple[int, int, int], float]]:
    """(colour, width) of every stroked path on the page."""
    found = []
    r, g, b, a = (ctypes.c_uint() for _ in range(4))
    for obj in page.get_objects(max_depth=4):
        if obj.type != pdfium_c.FPDF_PAGEOBJ_PATH:
            continue
        fill, stroke = ctypes.c_int(), ctypes.c_int()
        pdfium_c.FPDFPath_GetDrawMode(obj.raw, fill, stroke)
        if stroke.value:
            width = ctypes.c_float()
            pdfium_c.FPDFPageObj_GetStrokeWidth(obj.raw, width)
            pdfium_c.FPDFPageObj_GetStrokeColor(obj.raw, r, g, b, a)
            found.append(((r.value, g.value, b.value), width.value))
    return found


def ruled_area(image: Image.Image, device_name: str) -> tuple[Image.Image, int]:
    """The body box below the last line of text (the heading and hint) on a reply page, and that text's bottom."""
    device = get_device(device_name)
    layout = page_layout(device, make_theme(device, 11.0))
    scale = READER_DPI / 72
    body = layout.body
    left, top = round(body.x0 * scale), round((layout.height - body.y1) * scale)
    right, bottom = round(body.x1 * scale), round((layout.height - body.y0) * scale)
    ink = image.crop((left, top, right, bottom)).point(lambda v: 255 if v < INK_BELOW else 0)
    bbox = ink.getbbox()
    assert bbox is not None, "the reply page has no heading or hint"
    text_bottom = top + bbox[3]
    return image.crop((left, text_bottom + 2, right, bottom)), text_bottom - top


def rule_rows(area: Image.Image) -> list[list[int]]:
    """Groups of adjacent pixel rows that are drawn across (nearly) the whole width: the rules."""
    width, height = area.size
    rows = []
    for y in range(height):
        marked = sum(area.crop((0, y, width, y + 1)).histogram()[:250])
        if marked >= 0.95 * width:
            rows.append(y)
    groups: list[list[int]] = []
    for y in rows:
        if groups and y == groups[-1][-1] + 1:
            groups[-1].append(y)
        else:
            groups.append([y])
    return groups


# -- the reply page ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["remarkable2", "remarkable-move", "boox-note-air-c"])
def test_reply_page_has_light_rules_that_are_not_ink(device: str) -> None:
    doc = pdfium.PdfDocument(render_answer("A short answer.", META, device=device))
    assert len(doc) == 2
    image = rasterise(doc[1])
    area, _ = ruled_area(image, device)
    lines = rule_rows(area)
    expected = int(area.size[1] / (8 / 25.4 * READER_DPI))  # one rule every 8 mm
    assert len(lines) >= max(expected - 1, 10), f"{len(lines)} rules on {device}"
    low, _ = area.getextrema()
    assert isinstance(low, int)
    # Lighter than the economy's ink threshold with a margin, yet visible.
    assert low >= 200, f"rules as dark as {low} would count as ink"
    assert low <= 215, f"rules at {low} are too faint to see"
    for group in lines:  # at least 1 pt at 150 dpi is ~2 px: no hairlines
        assert len(group) >= 2
    # As drawn: light neutral grey, at least 1 pt wide, also on the colour panel.
    rules = [(colour, width) for colour, width in strokes(doc[1]) if colour[0] > 150]
    assert len(rules) >= len(lines)
    assert all(c[0] == c[1] == c[2] == round(RULE_GREY * 255) and w >= 1.0 for c, w in rules)


def test_reply_page_text_header_and_outline() -> None:
    markdown = "# Answer heading\n\n" + "\n\n".join(["Filler words for the answer body."] * 60)
    pdf = render_answer(markdown, META)
    pages = pdf_text(pdf)
    last = " ".join(pages[-1].split())
    assert "Your reply" in last
    assert "Write your follow-up here, then sync this file back" in last and "after exchange 3" in last
    # The running header and footer stay.
    assert META.conversation_id in last and "Exchange 3" in last and f"{len(pages)} / {len(pages)}" in last
    assert "Filler" not in last  # the answer does not run onto the reply page
    doc = pdfium.PdfDocument(pdf)
    toc = [(b.level, b.get_title(), b.get_dest().get_index()) for b in doc.get_toc()]
    assert toc == [(0, "Answer heading", 0), (0, "Your reply", len(doc) - 1)]


def test_reply_page_is_optional_and_kept_by_the_plain_fallback() -> None:
    assert "Your reply" not in " ".join(pdf_text(render_answer("Answer.", META, reply_page=False)))
    assert "Your reply" not in " ".join(pdf_text(render("Answer.", META).pdf))  # previews show the answer only
    # An answer nested too deeply for the parser is shown as plain text; the reply page still follows.
    result = render("> " * 100 + "deepest words", META, reply_page=True)
    pages = pdf_text(result.pdf)
    assert result.plain_fallback and "deepest words" in " ".join(pages[:-1]) and "Your reply" in pages[-1]


def test_reply_page_hint_without_a_usable_exchange_number() -> None:
    odd = dataclasses.replace(META, exchange="x")  # type: ignore[arg-type]
    last = " ".join(pdf_text(render_answer("Answer.", odd))[-1].split())
    assert "it continues this conversation." in last and "after exchange" not in last


# -- the note ------------------------------------------------------------------------------------------------


def test_note_is_boxed_above_the_question() -> None:
    meta = dataclasses.replace(META, transcription="Why is the sky blue?", note=NOTE)
    pdf = render_answer("Rayleigh scattering.", meta)
    flat = " ".join(pdf_text(pdf)[0].split())
    note, asked, answer = flat.find("Note: Conversation"), flat.find("You asked:"), flat.find("Rayleigh")
    assert 0 <= note < asked < answer
    assert "started a new conversation." in flat
    # Boxed: a frame drawn around it, above the "You asked" frame.
    doc = pdfium.PdfDocument(pdf)
    assert len([s for s in strokes(doc[0]) if s[0][0] < 150]) >= 3  # header rule, note box, question box


def test_note_is_shown_on_error_pages_and_absent_by_default() -> None:
    meta = dataclasses.replace(META, note=NOTE)
    pdf = render_error(meta, title="The model is unreachable", what="It timed out.", todo="Try again later.")
    flat = " ".join(" ".join(pdf_text(pdf)).split())
    assert flat.find("Note: Conversation") < flat.find("The model is unreachable")
    assert "Note:" not in " ".join(pdf_text(render_answer("Answer.", META)))
    assert "Note:" not in " ".join(pdf_text(render_answer("Answer.", dataclasses.replace(META, note="  "))))


# -- metadata ------------------------------------------------------------------------------------------------


def xmp_of(pdf: bytes) -> ET.Element:
    """Our own packet, checked to be well-formed XML (it is our output: no entities, no DTD)."""
    match = re.search(rb"<\?xpacket begin=.*?\?>(.*?)<\?xpacket end=\"w\"\?>", pdf, re.S)
    assert match is not None
    return ET.fromstring(match.group(1).decode("utf-8"))


NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "pdf": "http://ns.adobe.com/pdf/1.3/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "einkllm": "https://github.com/eink-llm/ns/1.0/",
}


def xmp_value(root: ET.Element, path: str) -> str:
    found = root.find(f".//{path}", NS)
    assert found is not None, path
    return found.text or ""


def info_date_as_xmp(value: str) -> str:
    match = re.fullmatch(r"D:(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)([+-])(\d\d)'(\d\d)'", value)
    assert match is not None, value
    y, mo, d, h, mi, s, sign, oh, om = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}{sign}{oh}:{om}"


def test_conversation_id_is_in_info_keys_and_xmp() -> None:
    meta = dataclasses.replace(META, title="Sky & <colour> “quoted”")
    pdf = render_answer("Answer.", meta)
    doc = pdfium.PdfDocument(pdf)
    info = doc.get_metadata_dict()
    assert meta_text(doc, "EinkLLMConversation") == META.conversation_id
    assert meta_text(doc, "EinkLLMExchange") == "3"
    assert info["Subject"] == META.conversation_id and "exchange 3" in info["Keywords"]

    root = xmp_of(pdf)
    assert xmp_value(root, "einkllm:conversation") == META.conversation_id
    assert xmp_value(root, "einkllm:exchange") == "3"
    assert xmp_value(root, "dc:title/rdf:Alt/rdf:li") == info["Title"] == meta.title
    assert xmp_value(root, "pdf:Producer") == info["Producer"]
    assert xmp_value(root, "pdf:Keywords") == info["Keywords"]
    assert xmp_value(root, "xmp:CreatorTool") == info["Creator"] == f"eink-llm {__version__}"
    assert xmp_value(root, "xmp:CreateDate") == info_date_as_xmp(info["CreationDate"]) == "2025-01-02T14:03:00+00:00"

    # The stream is in the Catalog, typed as XMP, and not compressed (the reader finds it in the raw bytes).
    catalog = re.search(rb"<<[^>]*/Type /Catalog[^>]*>>", pdf)
    assert catalog is not None
    number = re.search(rb"/Metadata (\d+) 0 R", catalog.group(0))
    assert number is not None
    obj = re.search(rb"\n" + number.group(1) + rb" 0 obj\n<<(.*?)>>\nstream\n<\?xpacket begin", pdf, re.S)
    assert obj is not None
    assert b"/Type /Metadata" in obj.group(1) and b"/Subtype /XML" in obj.group(1) and b"/Filter" not in obj.group(1)


def test_error_pages_carry_the_id_too() -> None:
    pdf = render_error(META, title="Failed", what="It failed.", todo="Try again.")
    doc = pdfium.PdfDocument(pdf)
    assert meta_text(doc, "EinkLLMConversation") == META.conversation_id
    assert xmp_value(xmp_of(pdf), "einkllm:exchange") == "3"


def test_odd_metadata_never_breaks_the_page() -> None:
    odd = RenderMeta("t\x00itle", "not-an-id <&>", -1, datetime(2025, 1, 2, tzinfo=UTC))
    pdf = render_answer("Answer.", odd)
    root = xmp_of(pdf)  # still well-formed
    assert xmp_value(root, "einkllm:conversation") == "not-an-id <&>"
    no_id = RenderMeta("t", "", 1, None)  # type: ignore[arg-type]
    pdf = render_answer("Answer.", no_id)
    doc = pdfium.PdfDocument(pdf)
    assert meta_text(doc, "EinkLLMConversation") == "" and meta_text(doc, "EinkLLMExchange") == ""
    root = xmp_of(pdf)
    assert root.find(".//einkllm:conversation", NS) is None
    assert xmp_value(root, "xmp:CreateDate") == info_date_as_xmp(doc.get_metadata_dict()["CreationDate"])


def test_stamp_on_a_plain_canvas() -> None:
    """The one function that uses reportlab internals, on its own: fails loudly if reportlab changes them."""
    buffer = io.BytesIO()
    canv = Canvas(buffer, invariant=1)
    canv.setTitle("Plain")
    identity = render_metadata.Identity("conv_20250102_140300_1a2b3c4d", 7, datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC))
    render_metadata.stamp(canv, identity)
    canv.setSubject("set after stamping")
    canv.drawString(72, 72, "x")
    canv.showPage()
    canv.save()
    pdf = buffer.getvalue()
    doc = pdfium.PdfDocument(pdf)
    info = doc.get_metadata_dict()
    assert info["Title"] == "Plain" and info["Subject"] == "set after stamping"
    assert info["CreationDate"].startswith("D:20300506070809")
    assert meta_text(doc, "EinkLLMConversation") == identity.conversation_id
    assert meta_text(doc, "EinkLLMExchange") == "7"
    root = xmp_of(pdf)
    assert xmp_value(root, "dc:description/rdf:Alt/rdf:li") == "set after stamping"
    assert xmp_value(root, "xmp:CreateDate") == "2030-05-06T07:08:09+00:00"
    assert xmp_value(root, "einkllm:exchange") == "7"
