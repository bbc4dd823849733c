"""The input stage on real files: good pages come out grayscale and upright, bad files as typed errors.

Every file here is built by :mod:`tests.samples` (or inline) in ``tmp_path``; nothing reads a shared corpus.
"""

from __future__ import annotations

import io
import math
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageFile, ImageOps, PngImagePlugin
from reportlab.pdfgen import canvas

from eink_llm.errors import (
    CorruptInputError,
    EncryptedInputError,
    InputError,
    InputTooLargeError,
    UnsupportedInputError,
)
from eink_llm.reader import SUPPORTED_SUFFIXES, InputDocument, InputLimits, _clean_text, read_input, sha256_file
from tests import samples


def _png_text(key: str, value: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def pixel(image: Image.Image, xy: tuple[int, int]) -> int:
    value = image.getpixel(xy)
    assert isinstance(value, int)
    return value


def darkest(image: Image.Image) -> int:
    low, _ = image.getextrema()
    assert isinstance(low, int)
    return low


def assert_pages_are_grayscale_pngs(document: InputDocument, long_edge: int = 1568) -> list[Image.Image]:
    assert len(document.pages) == document.page_count
    images = []
    for page in document.pages:
        image = decode(page.data)
        assert image.format == "PNG" and page.media_type == "image/png"
        assert image.mode == "L"
        assert (image.width, image.height) == (page.width, page.height)
        assert max(image.size) <= long_edge
        images.append(image)
    return images


@pytest.fixture
def render_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Spy on pdfium rendering: each call's page size, scale and the bitmap it returned."""
    calls: list[dict[str, Any]] = []
    original = pdfium.PdfPage.render

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        bitmap = original(self, *args, **kwargs)
        calls.append({"size_pt": self.get_size(), "scale": kwargs.get("scale"), "bitmap": bitmap})
        return bitmap

    monkeypatch.setattr(pdfium.PdfPage, "render", spy)
    yield calls


# --- good inputs -----------------------------------------------------------------------------------------


def test_pdf_pages_are_grayscale_with_text_layer(tmp_path: Path) -> None:
    document = read_input(samples.make_pdf(tmp_path / "q.pdf", pages=2))
    assert document.kind == "pdf" and document.page_count == 2
    for image in assert_pages_are_grayscale_pngs(document):
        assert darkest(image) < 80  # the pen strokes survived
        assert image.height > image.width  # portrait, like the page
    assert document.text == f"{samples.QUESTION} (page 1)\n\n{samples.QUESTION} (page 2)"


def test_pdf_text_layer_lines_and_no_text_layer(tmp_path: Path) -> None:
    lines = ["First line", "Second line: ∫ x dx"]
    document = read_input(samples.make_pdf(tmp_path / "l.pdf", pages=1, lines=lines))
    assert document.text == "First line\nSecond line: ∫ x dx"  # \r\n from PDFium normalised
    handwritten = read_input(samples.make_pdf(tmp_path / "h.pdf", pages=3, text_layer=False))
    assert handwritten.text == "" and handwritten.page_count == 3


def test_text_layer_is_cleaned_of_control_characters() -> None:
    # PDFium ends lines with \r\n and marks hyphenation points with control characters; non-breaking spaces and
    # right-to-left marks are text and stay.
    raw = "Line one\r\nline two\rthree\x02 hy\x00phen\u00a0x \u200fم\ufffe\n"
    assert _clean_text(raw) == "Line one\nline two\nthree hyphen\u00a0x \u200fم"


def test_pdf_is_rendered_at_render_dpi_and_limited_to_the_long_edge(tmp_path: Path) -> None:
    path = samples.make_pdf(tmp_path / "q.pdf", pages=1)  # 157.8 × 210.4 mm
    at_72 = read_input(path, InputLimits(render_dpi=72)).pages[0]
    assert (at_72.width, at_72.height) == (448, 597)  # 1 px per point, rounded up
    capped = read_input(path, InputLimits(render_dpi=300, max_long_edge_px=1000)).pages[0]
    assert max(capped.width, capped.height) == 1000


def test_png_is_downscaled_to_the_long_edge_and_never_upscaled(tmp_path: Path) -> None:
    document = read_input(samples.make_png(tmp_path / "p.png"), InputLimits(max_long_edge_px=800))
    assert document.kind == "image" and document.text == "" and document.page_count == 1
    (image,) = assert_pages_are_grayscale_pngs(document, long_edge=800)
    assert image.size == (600, 800)
    small = read_input(samples.make_png(tmp_path / "s.png", (300, 400)))
    assert (small.pages[0].width, small.pages[0].height) == (300, 400)


@pytest.mark.parametrize(("orientation", "marker_corner"), [(6, "top-right"), (8, "bottom-left")])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, marker_corner: str) -> None:
    page = read_input(samples.make_rotated_jpeg(tmp_path / "r.jpg", orientation)).pages[0]
    image = decode(page.data)
    assert image.mode == "L"
    assert image.size == (900, 1200)  # stored 1200 × 900 landscape, shown portrait
    corners = {
        "top-left": (20, 20),
        "top-right": (image.width - 20, 20),
        "bottom-left": (20, image.height - 20),
        "bottom-right": (image.width - 20, image.height - 20),
    }
    for corner, xy in corners.items():
        if corner == marker_corner:
            assert pixel(image, xy) < 60, corner
        else:
            assert pixel(image, xy) > 200, corner


def test_large_photo_is_decoded_small_and_gray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "photo.jpg"
    photo = Image.new("RGB", (3200, 2400), (200, 180, 150))
    photo.paste((20, 20, 20), (100, 100, 600, 200))
    photo.save(path, quality=85)
    decoded: list[tuple[str, tuple[int, int]]] = []
    transpose: Callable[..., Image.Image] = ImageOps.exif_transpose

    def spy(image: Image.Image, **kwargs: Any) -> Image.Image:
        decoded.append((image.mode, image.size))
        return transpose(image, **kwargs)

    monkeypatch.setattr(ImageOps, "exif_transpose", spy)
    (image,) = assert_pages_are_grayscale_pngs(read_input(path))
    assert decoded == [("L", (1600, 1200))]  # libjpeg decoded at half size, straight to grey
    assert image.size == (1568, 1176)
    assert pixel(image, (170, 70)) < 60  # the dark bar, scaled by 0.49


def test_transparency_lands_on_white_paper(tmp_path: Path) -> None:
    clear = tmp_path / "clear.png"
    Image.new("RGBA", (300, 400), (0, 0, 0, 0)).save(clear)
    assert decode(read_input(clear).pages[0].data).getextrema() == (255, 255)
    ink = tmp_path / "ink.png"
    layer = Image.new("LA", (300, 400), (0, 0))
    layer.paste((0, 255), (50, 50, 100, 100))  # opaque black square on transparent
    layer.save(ink)
    image = decode(read_input(ink).pages[0].data)
    assert pixel(image, (75, 75)) == 0 and pixel(image, (200, 200)) == 255
    palette = tmp_path / "palette.png"
    Image.new("P", (200, 200), 0).save(palette, transparency=0)  # palette entry 0 (black) is transparent
    assert decode(read_input(palette).pages[0].data).getextrema() == (255, 255)


@pytest.mark.parametrize(("mode", "file_name"), [("I;16", "deep.png"), ("I;16B", "deep.tiff")])
def test_sixteen_bit_grayscale_keeps_its_tones(tmp_path: Path, mode: str, file_name: str) -> None:
    path = tmp_path / file_name
    Image.new(mode, (200, 200), 32768).save(path)  # mid grey in 16 bits; clipping would make it white
    image = decode(read_input(path).pages[0].data)
    assert 120 <= pixel(image, (100, 100)) <= 135


def test_multipage_tiff_gives_one_page_per_frame(tmp_path: Path) -> None:
    path = samples.make_multipage_tiff(tmp_path / "m.tiff", frames=3)
    document = read_input(path)
    assert document.kind == "image" and document.page_count == 3
    assert_pages_are_grayscale_pngs(document)
    with pytest.raises(InputTooLargeError) as info:
        read_input(path, InputLimits(max_pages=2))
    assert "m.tiff has 3 pages" in info.value.what and "limit is 2" in info.value.what
    assert "input.max_pages" in info.value.todo


def test_every_tiff_frame_is_checked_before_it_is_decoded(tmp_path: Path) -> None:
    path = samples.make_multipage_tiff(tmp_path / "mixed.tif", sizes=[(700, 900), (2000, 2000)])
    assert read_input(path).page_count == 2
    with pytest.raises(InputTooLargeError, match=r"Page 2 of mixed\.tif is 2000×2000 pixels"):
        read_input(path, InputLimits(max_page_pixels=1_000_000))


def test_animation_frames_are_not_pages(tmp_path: Path) -> None:
    path = tmp_path / "animated.png"
    frames = [Image.new("L", (200, 300), shade) for shade in (0, 128, 255)]
    frames[0].save(path, save_all=True, append_images=frames[1:])  # APNG
    document = read_input(path)
    assert document.page_count == 1
    assert decode(document.pages[0].data).getextrema() == (0, 0)


def test_type_is_decided_by_content_not_name(tmp_path: Path) -> None:
    pdf_named_png = samples.make_pdf(tmp_path / "page.png", pages=1)
    assert read_input(pdf_named_png).kind == "pdf"
    png_named_pdf = samples.make_png(tmp_path / "scan.pdf", (300, 400))
    assert read_input(png_named_pdf).kind == "image"
    chatty = tmp_path / "chatty.png"  # an image whose metadata mentions a PDF header is still an image
    Image.new("L", (100, 100), 255).save(chatty, pnginfo=_png_text("Comment", "converted from %PDF-1.7"))
    assert read_input(chatty).kind == "image"
    prefixed = tmp_path / "prefixed.pdf"  # junk before the header, as some mailers and BOM-adding tools leave it
    prefixed.write_bytes(b"\xef\xbb\xbf" + samples.make_pdf(tmp_path / "x.pdf", pages=1).read_bytes())
    assert read_input(prefixed).page_count == 1


def test_filled_in_pdf_form_fields_are_drawn(tmp_path: Path) -> None:
    path = tmp_path / "form.pdf"
    pdf = canvas.Canvas(str(path), pagesize=(400, 300), invariant=True)
    pdf.acroForm.textfield(name="q", value="ANSWER 42", x=50, y=150, width=300, height=60, fontSize=30, borderWidth=0)
    pdf.showPage()
    pdf.save()
    image = decode(read_input(path).pages[0].data)
    assert darkest(image) < 100  # without a form environment PDFium leaves the page blank


def test_pdfium_objects_are_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, render_calls: list[dict[str, Any]]
) -> None:
    opened: list[Any] = []
    original = pdfium.PdfDocument

    class TrackedDocument(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(pdfium, "PdfDocument", TrackedDocument)
    read_input(samples.make_pdf(tmp_path / "q.pdf", pages=3))
    assert len(opened) == 1 and opened[0].raw is None
    assert len(render_calls) == 3 and all(call["bitmap"].raw is None for call in render_calls)


def test_concurrent_reads_give_the_same_pages(tmp_path: Path) -> None:
    files = [
        samples.make_pdf(tmp_path / "a.pdf", pages=3),
        samples.make_pdf(tmp_path / "b.pdf", pages=2, text_layer=False),
        samples.make_png(tmp_path / "c.png", (600, 800)),
        samples.make_rotated_jpeg(tmp_path / "d.jpg"),
    ]
    expected = {path: read_input(path) for path in files}
    failures: list[BaseException] = []
    mismatches: list[Path] = []

    def worker(order: list[Path]) -> None:
        try:
            for _ in range(3):
                for path in order:
                    if read_input(path) != expected[path]:
                        mismatches.append(path)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(order,)) for order in (files, files[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and not mismatches


# --- bad inputs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "make", "error", "words"),
    [
        ("half.pdf", samples.make_truncated_pdf, CorruptInputError, "damaged or incomplete"),
        ("locked.pdf", samples.make_encrypted_pdf, EncryptedInputError, "password"),
        ("notes.pdf", samples.make_text_as_pdf, UnsupportedInputError, "is named .pdf but is not a PDF"),
        ("broken.png", samples.make_corrupt_png, CorruptInputError, "damaged or incomplete"),
        ("bomb.png", samples.make_bomb_png, InputTooLargeError, "enormous"),
        ("nothing.pdf", samples.make_empty_pdf, CorruptInputError, "without any pages"),
    ],
)
def test_bad_files_raise_typed_errors_naming_the_file(
    tmp_path: Path, file_name: str, make: Callable[[Path], Path], error: type[InputError], words: str
) -> None:
    path = make(tmp_path / file_name)
    with pytest.raises(error) as info:
        read_input(path)
    assert type(info.value) is error
    assert info.value.what.startswith(file_name) and words in info.value.what
    assert info.value.todo.strip()


def test_a_pdf_without_pages_is_not_mistaken_for_a_locked_one(tmp_path: Path) -> None:
    # PDFium refuses page-less documents without setting an error code, so it reports the previous failure's.
    with pytest.raises(EncryptedInputError):
        read_input(samples.make_encrypted_pdf(tmp_path / "locked.pdf"))
    with pytest.raises(CorruptInputError, match=r"nothing\.pdf is a PDF without any pages"):
        read_input(samples.make_empty_pdf(tmp_path / "nothing.pdf"))


def test_library_errors_are_kept_as_detail(tmp_path: Path) -> None:
    with pytest.raises(CorruptInputError) as info:
        read_input(samples.make_corrupt_png(tmp_path / "broken.png"))
    assert info.value.detail and info.value.__cause__ is None
    with pytest.raises(EncryptedInputError) as locked:
        read_input(samples.make_encrypted_pdf(tmp_path / "locked.pdf"))
    assert locked.value.detail and "password" in locked.value.todo


def test_text_and_web_pages_named_pdf_say_what_they_are(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedInputError, match="it is a text file"):
        read_input(samples.make_text_as_pdf(tmp_path / "notes.pdf"))
    html = tmp_path / "sync.pdf"
    html.write_text("<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", encoding="utf-8")
    with pytest.raises(UnsupportedInputError, match="web page"):
        read_input(html)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "GIF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (bytes(range(256)) * 4, "format eink-llm does not know"),
    ],
)
def test_unknown_formats_are_unsupported(tmp_path: Path, data: bytes, words: str) -> None:
    path = tmp_path / "odd.png"
    path.write_bytes(data)
    with pytest.raises(UnsupportedInputError) as info:
        read_input(path)
    assert info.value.what.startswith("odd.png is not a PDF or an image") and words in info.value.what
    assert "PNG" in info.value.todo


def test_empty_missing_and_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "e.pdf"
    empty.write_bytes(b"")
    with pytest.raises(CorruptInputError, match=r"e\.pdf is empty"):
        read_input(empty)
    with pytest.raises(CorruptInputError, match=r"gone\.pdf disappeared"):
        read_input(tmp_path / "gone.pdf")
    folder = tmp_path / "folder.pdf"
    folder.mkdir()
    with pytest.raises(UnsupportedInputError, match="not a regular file"):
        read_input(folder)
    locked = samples.make_png(tmp_path / "locked.png", (100, 100))

    real_open = os.open

    def refuse(path: Any, *args: Any, **kwargs: Any) -> Any:  # as root, chmod 000 would not stop the read
        if str(path) == locked.name:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(CorruptInputError) as info:
        read_input(locked)
    assert "not allowed to read" in info.value.what and "readable" in info.value.todo


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    with pytest.raises(UnsupportedInputError, match="not a regular file"):
        read_input(fifo)


# --- limits ----------------------------------------------------------------------------------------------


def test_page_limit_says_the_count_and_the_limit(tmp_path: Path, render_calls: list[dict[str, Any]]) -> None:
    path = samples.make_pdf(tmp_path / "q.pdf", pages=3)
    with pytest.raises(InputTooLargeError) as info:
        read_input(path, InputLimits(max_pages=2))
    assert info.value.what == "q.pdf has 3 pages; the limit is 2."
    assert "input.max_pages" in info.value.todo
    assert render_calls == []  # refused before drawing anything
    assert read_input(path, InputLimits(max_pages=3)).page_count == 3


def test_file_size_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = samples.make_pdf(tmp_path / "q.pdf", pages=3)
    size = path.stat().st_size
    assert read_input(path, InputLimits(max_file_bytes=size)).page_count == 3

    def no_reading(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the file was opened although it is too large")

    monkeypatch.setattr(Path, "open", no_reading)
    monkeypatch.setattr(Path, "read_bytes", no_reading)
    with pytest.raises(InputTooLargeError) as info:
        read_input(path, InputLimits(max_file_bytes=size - 1))
    assert info.value.what.startswith("q.pdf is ") and "the limit is" in info.value.what
    assert "input.max_file_mb" in info.value.todo


def test_a_file_that_grows_while_being_read_is_still_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = samples.make_pdf(tmp_path / "growing.pdf", pages=2)
    real = path.stat()
    limit = real.st_size - 10
    # fstat() saw the file while it was small; by the time it is read, it is larger than the limit.
    small = os.stat_result((real.st_mode, *tuple(real)[1:6], limit - 100, *tuple(real)[7:]))
    monkeypatch.setattr(os, "fstat", lambda fd: small)
    with pytest.raises(InputTooLargeError, match=r"growing\.pdf grew beyond the limit"):
        read_input(path, InputLimits(max_file_bytes=limit))


def test_image_pixel_limit_is_checked_from_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.png"
    Image.new("L", (3000, 3000), 255).save(big)
    declared = samples.make_bomb_png(tmp_path / "declared.png", side=7_000)  # 49 MP: below Pillow's own guard

    def no_decoding(self: Any) -> Any:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(InputTooLargeError) as info:
        read_input(big, InputLimits(max_page_pixels=1_000_000))
    assert info.value.what == "big.png is 3000×3000 pixels (9 megapixels); the limit is 1 megapixels."
    assert "input.max_page_megapixels" in info.value.todo
    with pytest.raises(InputTooLargeError, match="7000×7000 pixels"):
        read_input(declared)


@pytest.mark.parametrize("side", [10_000, 60_000])  # Pillow's warning zone (100 MP), and its error zone (3.6 GP)
def test_decompression_bombs_are_refused_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int
) -> None:
    path = samples.make_bomb_png(tmp_path / "bomb.png", side=side)
    assert path.stat().st_size < 100_000
    filters_before = list(warnings.filters)
    max_pixels_before = Image.MAX_IMAGE_PIXELS

    def no_decoding(self: Any) -> Any:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(InputTooLargeError) as info:
        read_input(path, InputLimits(max_page_pixels=500_000_000))  # Pillow's guard still applies
    assert info.value.what.startswith("bomb.png declares an enormous picture size") and info.value.detail
    assert warnings.filters == filters_before and max_pixels_before == Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize(
    ("width_pt", "height_pt"),
    [(14400, 14400), (1_000_000, 1_000_000), (14400, 3), (0.5, 0.5)],
)
def test_pdf_page_of_any_size_is_rendered_within_limits(
    tmp_path: Path, render_calls: list[dict[str, Any]], width_pt: float, height_pt: float
) -> None:
    path = samples.make_pdf_page_size(tmp_path / "poster.pdf", width_pt, height_pt)
    page = read_input(path).pages[0]
    assert 1 <= page.width <= 1568 and 1 <= page.height <= 1568
    ((width, height),) = [call["size_pt"] for call in render_calls]
    scale = render_calls[0]["scale"]
    assert math.ceil(width * scale) * math.ceil(height * scale) <= 40_000_000
    assert max(math.ceil(width * scale), math.ceil(height * scale)) <= 1568


def test_pdf_pixel_limit_lowers_the_render_scale(tmp_path: Path, render_calls: list[dict[str, Any]]) -> None:
    path = samples.make_pdf_page_size(tmp_path / "a4.pdf", 595, 842)
    limits = InputLimits(max_page_pixels=100_000, render_dpi=300, max_long_edge_px=8000)
    page = read_input(path, limits).pages[0]
    assert page.width * page.height <= 100_000
    assert page.width * page.height > 90_000  # reduced just enough, not far more
    bitmap = render_calls[0]["bitmap"]
    assert bitmap.width * bitmap.height <= 100_000  # the limit holds for what pdfium allocated


def test_pdf_pictures_are_checked_before_pdfium_decodes_them(
    tmp_path: Path, render_calls: list[dict[str, Any]]
) -> None:
    scan = samples.make_pdf_with_picture(tmp_path / "scan.pdf", 1000, 1400)
    assert darkest(decode(read_input(scan).pages[0].data)) == 0
    render_calls.clear()
    with pytest.raises(InputTooLargeError) as info:
        read_input(scan, InputLimits(max_page_pixels=1_000_000))
    assert info.value.what == (
        "Page 1 of scan.pdf contains a picture of 1000×1400 pixels (1 megapixels); the limit is 1 megapixels."
    )
    assert render_calls == []  # refused before drawing
    trap = samples.make_pdf_with_picture(tmp_path / "trap.pdf", 20_000, 20_000)  # 400 MP in a few kB
    assert trap.stat().st_size < 100_000
    with pytest.raises(InputTooLargeError, match="20000×20000"):
        read_input(trap)
    hidden = samples.make_pdf_with_picture(tmp_path / "form.pdf", 20_000, 20_000, in_form=True)
    with pytest.raises(InputTooLargeError, match="20000×20000"):
        read_input(hidden)  # inside a form XObject
    render_calls.clear()
    framed = samples.make_pdf_with_picture(tmp_path / "framed.pdf", 1000, 1400, in_form=True)
    assert darkest(decode(read_input(framed).pages[0].data)) == 0


# --- small parts -----------------------------------------------------------------------------------------


def test_supported_suffixes() -> None:
    assert {".pdf", ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".note", ".rm", ".rmdoc"} == SUPPORTED_SUFFIXES


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
