"""Real input files for tests: tablet-like pages, and every kind of bad file a sync folder can hold.

Each function writes a file and returns its path. Deterministic and fast; no network, no shared corpus.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageDraw
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

QUESTION = "What is the derivative of x^2?"


def _scribble(draw: ImageDraw.ImageDraw, width: int, height: int, lines: int = 3, fill: int = 0) -> None:
    for line in range(lines):
        y = int(height * (0.12 + 0.08 * line))
        points = [(int(width * (0.1 + 0.05 * i)), y + (12 if i % 2 else -12)) for i in range(14)]
        draw.line(points, fill=fill, width=max(3, width // 350))


def make_pdf(path: Path, pages: int = 2, text_layer: bool = True, lines: list[str] | None = None) -> Path:
    """A reMarkable-sized PDF with pen-like strokes, and optionally a real text layer."""
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
            for row, line in enumerate(lines or [f"{QUESTION} (page {number + 1})"]):
                pdf.drawString(20 * mm, page_size[1] - (100 + 8 * row) * mm, line)
        pdf.showPage()
    pdf.save()
    path.write_bytes(buffer.getvalue())
    return path


def make_png(path: Path, size: tuple[int, int] = (1404, 1872)) -> Path:
    image = Image.new("L", size, 255)
    _scribble(ImageDraw.Draw(image), *size)
    image.save(path, "PNG")
    return path


def make_rotated_jpeg(path: Path) -> Path:
    """Stored landscape with EXIF Orientation=6 (rotate 90° clockwise to view): upright it is portrait.

    A black marker sits at the stored top-left corner; once rotated it must appear at the top-right.
    """
    stored = Image.new("RGB", (1200, 900), "white")
    draw = ImageDraw.Draw(stored)
    _scribble(draw, 1200, 900, fill=0)
    draw.rectangle((0, 0, 150, 150), fill="black")
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, "JPEG", exif=exif, quality=90)
    return path


def make_text_as_pdf(path: Path) -> Path:
    path.write_text("Shopping list\n- milk\n- eggs\n", encoding="utf-8")
    return path


def make_truncated_pdf(path: Path) -> Path:
    full = path.with_name(path.name + ".full")
    make_pdf(full, pages=4)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_encrypted_pdf(path: Path) -> Path:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, encrypt="secret")
    pdf.drawString(72, 720, QUESTION)
    pdf.showPage()
    pdf.save()
    path.write_bytes(buffer.getvalue())
    return path


def make_corrupt_png(path: Path) -> Path:
    good = io.BytesIO()
    Image.new("L", (400, 400), 255).save(good, "PNG")
    data = good.getvalue()
    path.write_bytes(data[:40] + b"\x00garbage" * 20)
    return path


def make_bomb_png(path: Path, side: int = 60_000) -> Path:
    """A tiny PNG that declares side×side pixels (3.6 gigapixels by default); its pixels are never allocated."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale
    row = b"\x00" + b"\xff" * ((side + 7) // 8)
    body = zlib.compress(row * 64, 9)  # far fewer rows than declared: it is a trap, not an image
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def make_multipage_tiff(path: Path, frames: int = 3) -> Path:
    pages = []
    for _ in range(frames):
        page = Image.new("L", (700, 900), 255)
        _scribble(ImageDraw.Draw(page), 700, 900)
        pages.append(page)
    pages[0].save(path, "TIFF", save_all=True, append_images=pages[1:])
    return path
