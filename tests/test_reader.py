"""The input stage on real files: good pages come out grayscale and upright, bad files as typed errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from reportlab.pdfgen import canvas

from eink_llm.errors import (
    CorruptInputError,
    EncryptedInputError,
    InputError,
    InputTooLargeError,
    UnsupportedInputError,
)
from eink_llm.reader import InputLimits, read_input, sha256_file
from tests import samples


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_pdf_pages_are_grayscale_with_text_layer(tmp_path: Path) -> None:
    document = read_input(samples.make_pdf(tmp_path / "q.pdf", pages=2))
    assert document.kind == "pdf" and document.page_count == 2 and len(document.pages) == 2
    assert "derivative" in document.text and "page 2" in document.text
    for page in document.pages:
        image = decode(page.data)
        assert image.mode == "L" and page.media_type == "image/png"
        assert (image.width, image.height) == (page.width, page.height)
        assert max(image.size) <= 1568
        assert image.getextrema()[0] < 80  # the strokes survived


def test_png_is_downscaled_to_the_long_edge(tmp_path: Path) -> None:
    document = read_input(samples.make_png(tmp_path / "p.png"), InputLimits(max_long_edge_px=800))
    assert document.kind == "image" and document.text == ""
    assert max(decode(document.pages[0].data).size) == 800


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    page = read_input(samples.make_rotated_jpeg(tmp_path / "r.jpg")).pages[0]
    image = decode(page.data)
    assert image.height > image.width
    # the marker stored top-left is top-right once turned 90° clockwise
    assert image.getpixel((image.width - 20, 20)) < 60  # type: ignore[operator]
    assert image.getpixel((20, 20)) > 200  # type: ignore[operator]


def test_transparent_png_lands_on_white_paper(tmp_path: Path) -> None:
    path = tmp_path / "t.png"
    Image.new("RGBA", (300, 400), (0, 0, 0, 0)).save(path)
    assert decode(read_input(path).pages[0].data).getextrema() == (255, 255)


def test_multipage_tiff_gives_one_page_per_frame(tmp_path: Path) -> None:
    assert read_input(samples.make_multipage_tiff(tmp_path / "m.tiff", frames=3)).page_count == 3
    with pytest.raises(InputTooLargeError, match="3 pages"):
        read_input(tmp_path / "m.tiff", InputLimits(max_pages=2))


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (samples.make_truncated_pdf, CorruptInputError, "damaged"),
        (samples.make_encrypted_pdf, EncryptedInputError, "password"),
        (samples.make_text_as_pdf, UnsupportedInputError, "not a PDF"),
        (samples.make_corrupt_png, CorruptInputError, "damaged"),
        (samples.make_bomb_png, InputTooLargeError, ""),
    ],
)
def test_bad_files_raise_typed_errors_naming_the_file(
    tmp_path: Path, make: object, error: type[InputError], words: str
) -> None:
    path = make(tmp_path / ("bad.png" if "png" in make.__name__ else "bad.pdf"))  # type: ignore[attr-defined,operator]
    with pytest.raises(error) as info:
        read_input(path)
    assert path.name in info.value.what and info.value.todo
    assert words in info.value.what


def test_bomb_png_stays_small_on_disk(tmp_path: Path) -> None:
    assert samples.make_bomb_png(tmp_path / "b.png").stat().st_size < 100_000


def test_limits_on_bytes_and_pages(tmp_path: Path) -> None:
    path = samples.make_pdf(tmp_path / "q.pdf", pages=3)
    with pytest.raises(InputTooLargeError, match="3 pages"):
        read_input(path, InputLimits(max_pages=2))
    with pytest.raises(InputTooLargeError, match="MB"):
        read_input(path, InputLimits(max_file_bytes=100))
    big = tmp_path / "big.png"
    Image.new("L", (3000, 3000), 255).save(big)
    with pytest.raises(InputTooLargeError, match="megapixels"):
        read_input(big, InputLimits(max_page_pixels=1_000_000))


def test_huge_pdf_page_is_rendered_small_not_huge(tmp_path: Path) -> None:
    path = tmp_path / "poster.pdf"
    pdf = canvas.Canvas(str(path), pagesize=(14400, 14400))
    pdf.setLineWidth(40)
    pdf.line(100, 100, 14000, 14000)
    pdf.showPage()
    pdf.save()
    page = read_input(path).pages[0]
    assert max(page.width, page.height) <= 1568


def test_empty_and_unknown_files(tmp_path: Path) -> None:
    empty = tmp_path / "e.pdf"
    empty.write_bytes(b"")
    with pytest.raises(CorruptInputError, match="empty"):
        read_input(empty)
    odd = tmp_path / "x.png"
    odd.write_bytes(b"GIF89a not supported here")
    with pytest.raises(UnsupportedInputError):
        read_input(odd)


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
