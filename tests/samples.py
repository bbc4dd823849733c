"""Real input files for tests: tablet-like pages, and every kind of bad file a sync folder can hold.

Each ``make_*`` function writes one file at ``path`` and returns ``path``. They are deterministic (reportlab's
``invariant`` mode, no timestamps, no randomness) and fast (small pages, no network, no shared corpus), so any
test file can build the inputs it needs in ``tmp_path``.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageDraw
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

#: The text layer :func:`make_pdf` writes on each page (followed by the page number).
QUESTION = "What is the derivative of x^2?"
#: reMarkable 2 screen size in pixels (portrait), the typical exported page.
TABLET_PX = (1404, 1872)
#: EXIF tag for orientation.
EXIF_ORIENTATION = 0x0112


def _scribble(draw: ImageDraw.ImageDraw, width: int, height: int, lines: int = 3, fill: int | str = 0) -> None:
    """A few thick zig-zag pen strokes near the top of the page, like handwritten lines."""
    for line in range(lines):
        y = int(height * (0.12 + 0.08 * line))
        points = [(int(width * (0.1 + 0.05 * i)), y + (12 if i % 2 else -12)) for i in range(14)]
        draw.line(points, fill=fill, width=max(3, width // 350))


def make_pdf(path: Path, pages: int = 2, text_layer: bool = True, lines: Sequence[str] | None = None) -> Path:
    """A reMarkable-sized PDF (157.8 × 210.4 mm) whose pages carry thick pen-like strokes.

    With ``text_layer``, each page also has real text: ``lines`` if given (the same on every page), else
    ``"What is the derivative of x^2? (page N)"``. Without it, the pages are pure "handwriting", like a tablet
    export, and the reader's text must come out empty.
    """
    buffer = io.BytesIO()
    page_size = (157.8 * mm, 210.4 * mm)
    pdf = canvas.Canvas(buffer, pagesize=page_size, invariant=True)
    for number in range(pages):
        pdf.setLineWidth(2.5)
        for row in range(3):
            y = page_size[1] - (30 + 18 * row) * mm
            pdf.bezier(20 * mm, y, 60 * mm, y + 8 * mm, 90 * mm, y - 8 * mm, 130 * mm, y)
        if text_layer:
            pdf.setFont("Helvetica", 12)
            for row, line in enumerate(lines if lines is not None else [f"{QUESTION} (page {number + 1})"]):
                pdf.drawString(20 * mm, page_size[1] - (100 + 8 * row) * mm, line)
        pdf.showPage()
    pdf.save()
    path.write_bytes(buffer.getvalue())
    return path


def make_pdf_page_size(path: Path, width_pt: float, height_pt: float) -> Path:
    """A one-page PDF of any size in points (up to absurd ones) with a thick diagonal stroke across it."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(width_pt, height_pt), invariant=True)
    pdf.setLineWidth(max(width_pt, height_pt) / 100)
    pdf.line(0, 0, width_pt, height_pt)
    pdf.showPage()
    pdf.save()
    path.write_bytes(buffer.getvalue())
    return path


def make_pdf_with_picture(path: Path, width_px: int, height_px: int, *, in_form: bool = False) -> Path:
    """An A4 page showing one embedded 1-bit picture of ``width_px`` × ``height_px`` (a scan, or a trap), drawn
    directly or (``in_form``) from inside a form XObject.

    The picture is plain black and Flate-compressed, so even a huge one stays small on disk; it is compressed
    row by row, so a huge one is never held in memory here either.
    """
    compressor = zlib.compressobj(9)
    row = bytes((width_px + 7) // 8)
    body = b"".join(compressor.compress(row) for _ in range(height_px)) + compressor.flush()
    draw = b"q 595 0 0 842 0 0 cm /Im0 Do Q"
    content = b"/Fm0 Do" if in_form else draw
    form = (
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 595 842] /Resources << /XObject << /Im0 5 0 R >> >> "
        b"/Length %d >>\nstream\n%s\nendstream" % (len(draw), draw)
    )
    path.write_bytes(
        _raw_pdf(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 5 0 R "
                b"/Fm0 6 0 R >> >> /Contents 4 0 R >>",
                b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
                b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /BitsPerComponent 1 /ColorSpace /DeviceGray "
                b"/Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream" % (width_px, height_px, len(body), body),
                form,
            ]
        )
    )
    return path


#: The line :func:`make_text_bomb_pdf` repeats (45 characters).
BOMB_LINE = "The quick brown fox jumps over the lazy dog. "


def make_text_bomb_pdf(path: Path, pages: int = 20, chars_per_page: int = 1_000_000, line_repeats: int = 40) -> Path:
    """A PDF of a few kilobytes whose text layer holds ``pages`` × ``chars_per_page`` characters: every page shows
    the same Flate-compressed content stream, lines of :data:`BOMB_LINE` repeated ``line_repeats`` times (so
    ~1,800 characters per text object) as invisible text, like the text layer of a scan, with a pen-like stroke
    on top so no page looks blank."""
    line = b"(" + BOMB_LINE.encode() * line_repeats + b") '\n"
    text = b"BT 3 Tr /F1 9 Tf 40 760 Td 11 TL\n" + line * max(1, chars_per_page // (len(line) - 5)) + b"ET\n"
    content = zlib.compress(b"4 w 60 700 m 300 740 l 540 700 l S\n" + text, 9)
    kids = b" ".join(b"%d 0 R" % (5 + number) for number in range(pages))
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
    page += b"/Contents 4 0 R >>"
    path.write_bytes(
        _raw_pdf(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
                b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
                b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(content), content),
                *[page] * pages,
            ]
        )
    )
    return path


def make_text_pdf(path: Path, pages: Sequence[Sequence[str]], strokes_first: int = 0) -> Path:
    """A PDF whose page N carries the lines ``pages[N]`` as real text (after ``strokes_first`` short pen strokes,
    each a page object of its own, as in a tablet export with typed text added last)."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(595, 842), invariant=True)
    for lines in pages:
        pdf.setLineWidth(1)
        for stroke in range(strokes_first):
            x, y = 20 + (stroke % 50) * 11, 800 - (stroke // 50) * 6
            pdf.line(x, y, x + 8, y - 3)
        pdf.setFont("Helvetica", 9)
        for row, line in enumerate(lines):
            pdf.drawString(20, 700 - 11 * (row % 60), line)
        pdf.showPage()
    pdf.save()
    path.write_bytes(buffer.getvalue())
    return path


def make_empty_pdf(path: Path) -> Path:
    """A well-formed PDF whose page tree has no pages (some broken exporters write these)."""
    path.write_bytes(
        _raw_pdf(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [] /Count 0 >>",
            ]
        )
    )
    return path


def _raw_pdf(objects: Sequence[bytes]) -> bytes:
    """A minimal PDF with a correct cross-reference table; object 1 is the catalogue."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def make_png(path: Path, size: tuple[int, int] = TABLET_PX) -> Path:
    """A grayscale page (white, with dark pen strokes), as a tablet exports a page as PNG."""
    image = Image.new("L", size, 255)
    _scribble(ImageDraw.Draw(image), *size)
    image.save(path, "PNG")
    return path


def make_rotated_jpeg(path: Path, orientation: int = 6) -> Path:
    """A photo stored landscape (1200 × 900) whose EXIF Orientation says it is portrait when viewed.

    A black square marker sits at the *stored* top-left corner. Viewed upright it appears at the top-right for
    ``orientation=6`` (rotate 90° clockwise to view) and at the bottom-left for ``orientation=8`` (90°
    counter-clockwise). A reader that ignores EXIF gives a landscape page with the marker top-left.
    """
    stored = Image.new("RGB", (1200, 900), "white")
    draw = ImageDraw.Draw(stored)
    _scribble(draw, 1200, 900, fill="black")
    draw.rectangle((0, 0, 150, 150), fill="black")
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    stored.save(path, "JPEG", exif=exif, quality=90)
    return path


def make_text_as_pdf(path: Path) -> Path:
    """A plain text file (say, a note saved as text) that carries a .pdf name."""
    path.write_text("Shopping list\n- milk\n- eggs\n", encoding="utf-8")
    return path


def make_truncated_pdf(path: Path) -> Path:
    """A valid four-page PDF cut in half, as a sync that stopped midway leaves it."""
    data = make_pdf(path, pages=4).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_encrypted_pdf(path: Path) -> Path:
    """A PDF that needs the user password ``secret`` to open."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, encrypt="secret", invariant=True)
    pdf.drawString(72, 720, QUESTION)
    pdf.showPage()
    pdf.save()
    path.write_bytes(buffer.getvalue())
    return path


def make_corrupt_png(path: Path) -> Path:
    """A PNG whose signature and header are intact but whose pixel data is garbage."""
    good = io.BytesIO()
    Image.new("L", (400, 400), 255).save(good, "PNG")
    data = good.getvalue()
    path.write_bytes(data[:40] + b"\x00garbage" * 20)
    return path


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def make_bomb_png(path: Path, side: int = 60_000) -> Path:
    """A PNG of a few kilobytes that declares ``side`` × ``side`` 1-bit pixels (3.6 gigapixels by default).

    Written by hand, so the pixels are never allocated here either. It holds far fewer rows than it declares: it
    is a trap, not an image. Use ``side=10_000`` (100 megapixels) to land between Pillow's warning and error
    thresholds, or ``side=7_000`` (49 megapixels) to pass Pillow and meet only the reader's own limit.
    """
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale, no interlace
    row = b"\x00" + b"\xff" * ((side + 7) // 8)
    body = zlib.compress(row * 16, 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")
    )
    return path


def make_multipage_tiff(path: Path, frames: int = 3, sizes: Sequence[tuple[int, int]] | None = None) -> Path:
    """A multi-page grayscale TIFF (a scanner's or tablet's multi-page export), one page per frame.

    ``sizes`` gives each frame's size (default: 700 × 900 for all ``frames``); frames may differ in size, as
    each TIFF page has its own header.
    """
    pages = []
    for size in sizes if sizes is not None else [(700, 900)] * frames:
        page = Image.new("L", size, 255)
        _scribble(ImageDraw.Draw(page), *size)
        pages.append(page)
    pages[0].save(path, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    return path


# --- notebooks and annotated answers (conversations on paper) ----------------------------------------------

#: reMarkable 2 page in points.
RM2_PAGE = (157.8 * mm, 210.4 * mm)


def notebook_pdf(path: Path, seeds: Sequence[int | None], *, text: str | None = None) -> Path:
    """A handwritten notebook export: one page per seed, each with its own pen strokes (vector, like a tablet
    export); ``None`` is an empty page. ``text`` adds a text layer (some tablets export recognised handwriting
    as text)."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=RM2_PAGE, invariant=True)
    for seed in seeds:
        if seed is None:
            pdf.showPage()
            continue
        rng = random.Random(seed)
        pdf.setLineWidth(2.2)
        pdf.setLineCap(1)
        for row in range(rng.randint(2, 5)):
            y = RM2_PAGE[1] - (25 + 14 * row) * mm
            x = 15 * mm
            while x < RM2_PAGE[0] - 30 * mm:
                w = rng.uniform(6, 16) * mm
                pdf.bezier(
                    x, y, x + w / 3, y + rng.uniform(-4, 4) * mm, x + 2 * w / 3, y + rng.uniform(-4, 4) * mm, x + w, y
                )
                x += w + rng.uniform(2, 5) * mm
        if text:
            pdf.setFont("Helvetica", 10)
            pdf.drawString(15 * mm, 20 * mm, text)
        pdf.showPage()
    pdf.save()
    path.write_bytes(buffer.getvalue())
    return path


def add_vector_ink(source: Path, target: Path, page_index: int, rects: list[tuple[float, float, float, float]]) -> Path:
    """Add black filled shapes to a page of a PDF, keeping everything else (metadata included) — what a tablet
    does when it exports an annotated PDF. ``rects`` are (x, y, w, h) in points from the bottom left."""
    pdf = pdfium.PdfDocument(source.read_bytes())
    page = pdf[page_index]
    for x, y, w, h in rects:
        obj = pdfium_c.FPDFPageObj_CreateNewRect(x, y, w, h)
        pdfium_c.FPDFPageObj_SetFillColor(obj, 0, 0, 0, 255)
        pdfium_c.FPDFPath_SetDrawMode(obj, pdfium_c.FPDF_FILLMODE_WINDING, False)
        pdfium_c.FPDFPage_InsertObject(page.raw, obj)
    assert pdfium_c.FPDFPage_GenerateContent(page.raw)
    buffer = io.BytesIO()
    pdf.save(buffer)
    page.close()
    pdf.close()
    target.write_bytes(buffer.getvalue())
    return target


def rasterized_with_ink(source: Path, target: Path, page_index: int, boxes: list[tuple[int, int, int, int]]) -> Path:
    """The whole PDF rasterized at 150 dpi (a tablet that exports pages as pictures), with pen marks drawn as
    rectangles outlines (x0, y0, x1, y1 in pixels) on one page, saved as a PDF made of those pictures."""
    pdf = pdfium.PdfDocument(source.read_bytes())
    pages = []
    for index in range(len(pdf)):
        image = pdf[index].render(scale=150 / 72, grayscale=True).to_pil().convert("L")
        if index == page_index:
            draw = ImageDraw.Draw(image)
            for box in boxes:
                draw.ellipse(box, outline=0, width=5)
        pages.append(image.convert("RGB"))
    pdf.close()
    pages[0].save(target, "PDF", resolution=150, save_all=True, append_images=pages[1:])
    return target
