"""Rendered pages, looked at: colour panels, outline, custom pages, golden snapshots and a torture answer.

Golden snapshots are the first page of a few fixed answers at 50 dpi (tests/golden/*.png). They are compared
after a slight blur, so antialiasing and hinting differences between pdfium or FreeType versions pass while
anything that moves text by a line or changes its size fails. After an intended layout change, regenerate:

    EINK_LLM_UPDATE_GOLDEN=1 pytest tests/test_render_visual.py

and look at the new PNGs before committing them.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import Image, ImageChops, ImageFilter

from eink_llm.errors import RenderError
from eink_llm.render import DEVICES, Device, formulas, get_device, render_markdown_file
from eink_llm.render.api import render
from eink_llm.render.document import page_layout
from eink_llm.render.styles import make_theme
from tests.test_render import META, SAMPLE, dark_box, page_images, pdf_text

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("EINK_LLM_UPDATE_GOLDEN") == "1"
HAVE_MATPLOTLIB = formulas.available()
GOLDEN_DPI = 50


# -- helpers ---------------------------------------------------------------------------------------------------


def assert_no_ink_outside_margins(pdf: bytes, device: Device) -> None:
    """Nothing drawn outside the body box, the header band and the footer band (see document.py)."""
    layout = page_layout(device, make_theme(device, 11.0))
    scale, tol = 2.0, 2.0
    body, head, foot = layout.body, layout.header, layout.footer

    def py(y: float) -> float:
        return (layout.height - y) * scale

    for number, image in enumerate(page_images(pdf, scale), start=1):
        w, h = image.size
        forbidden = {
            "left margin": (0, 0, body.x0 * scale - tol, h),
            "right margin": (body.x1 * scale + tol, 0, w, h),
            "above header": (0, 0, w, py(head.y1) - tol),
            "between header and body": (0, py(head.y0) + tol, w, py(body.y1) - tol),
            "between body and footer": (0, py(body.y0) + tol, w, py(foot.y1) - tol),
            "below footer": (0, py(foot.y0) + tol, w, h),
        }
        for where, box in forbidden.items():
            assert dark_box(image, box) is None, f"ink in the {where} on page {number} ({device.name})"


def drawing_objects(pdf: bytes) -> list[tuple[str, tuple[int, int, int], float]]:
    """(kind, colour, stroke width) of every visible text and stroked path on every page."""
    found: list[tuple[str, tuple[int, int, int], float]] = []
    doc = pdfium.PdfDocument(pdf)
    r, g, b, a = (ctypes.c_uint() for _ in range(4))
    for page in doc:
        for obj in page.get_objects(max_depth=4):
            if obj.type == pdfium_c.FPDF_PAGEOBJ_TEXT:
                if pdfium_c.FPDFTextObj_GetTextRenderMode(obj.raw) == pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE:
                    continue
                pdfium_c.FPDFPageObj_GetFillColor(obj.raw, r, g, b, a)
                found.append(("text", (r.value, g.value, b.value), 0.0))
            elif obj.type == pdfium_c.FPDF_PAGEOBJ_PATH:
                fill_mode, stroke = ctypes.c_int(), ctypes.c_int()
                pdfium_c.FPDFPath_GetDrawMode(obj.raw, fill_mode, stroke)
                if stroke.value:
                    width = ctypes.c_float()
                    pdfium_c.FPDFPageObj_GetStrokeWidth(obj.raw, width)
                    pdfium_c.FPDFPageObj_GetStrokeColor(obj.raw, r, g, b, a)
                    found.append(("stroke", (r.value, g.value, b.value), width.value))
                if fill_mode.value:
                    pdfium_c.FPDFPageObj_GetFillColor(obj.raw, r, g, b, a)
                    found.append(("fill", (r.value, g.value, b.value), 0.0))
    return found


def snapshot(pdf: bytes, dpi: float = GOLDEN_DPI) -> Image.Image:
    doc = pdfium.PdfDocument(pdf)
    try:
        return doc[0].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
    finally:
        doc.close()


def difference(a: Image.Image, b: Image.Image) -> tuple[float, float]:
    """(mean absolute difference 0-255, share of pixels differing by more than 48) after a slight blur.

    The blur evens out antialiasing and hinting; moved or resized text still differs strongly in many pixels.
    """
    if a.size != b.size:
        return 255.0, 1.0
    blur = ImageFilter.GaussianBlur(1.5)
    diff = ImageChops.difference(a.filter(blur), b.filter(blur))
    histogram = diff.histogram()
    total = a.size[0] * a.size[1]
    mean = sum(value * count for value, count in enumerate(histogram)) / total
    return mean, sum(histogram[49:]) / total


def matches(a: Image.Image, b: Image.Image) -> bool:
    mean, share = difference(a, b)
    return mean < 2.5 and share < 0.0005


# -- colour panels and greys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n, d in DEVICES.items() if d.colour])
def test_colour_panels_get_black_text_and_no_hairlines(name: str) -> None:
    markdown = SAMPLE + "\n\n~~struck~~ and [a link](https://example.org) and `code`\n\n> quote\n"
    meta = dataclasses.replace(META, transcription="Question?")
    objects = drawing_objects(render(markdown, meta, device=name).pdf)
    assert {kind for kind, _, _ in objects} >= {"text", "stroke"}
    for kind, colour, width in objects:
        assert colour == (0, 0, 0), f"{kind} in {colour} on a colour panel"
        if kind == "stroke":
            assert width >= 0.75, f"a {width:.2f} pt line on a colour panel"


def test_monochrome_panels_use_only_greys() -> None:
    objects = drawing_objects(render(SAMPLE, META).pdf)
    assert all(c[0] == c[1] == c[2] for _, c, _ in objects)
    body_text = [c for kind, c, _ in objects if kind == "text"]
    assert body_text.count((0, 0, 0)) > len(body_text) * 0.8  # the body is black; only the header is grey


# -- outline, metadata, custom pages ---------------------------------------------------------------------------


def test_every_heading_is_a_bookmark_at_its_page() -> None:
    filler = "\n\n".join(["Filler words to push the next heading further down the pages."] * 25)
    markdown = f"# Top\n\n{filler}\n\n### Skipped level\n\n{filler}\n\n## Second עברית\n\n{filler}\n\n# Last"
    doc = pdfium.PdfDocument(render(markdown, META).pdf)
    toc = [(b.level, b.get_title(), b.get_dest().get_index()) for b in doc.get_toc()]
    assert [(level, title) for level, title, _ in toc] == [
        (0, "Top"),
        (1, "Skipped level"),
        (1, "Second עברית"),
        (0, "Last"),
    ]
    pages = [index for _, _, index in toc]
    assert pages == sorted(pages) and pages[0] == 0 and pages[-1] == len(doc) - 1 > 0
    for _, title, index in toc:
        assert title.split()[0] in doc[index].get_textpage().get_text_range()


def test_custom_page_sizes() -> None:
    device = Device.custom(120, 170, 8, name="my-tablet")
    assert device.margin_mm == (8, 8, 8, 8) and device.name == "my-tablet"
    assert get_device({"width_mm": 120, "height_mm": 170, "margins_mm": [9, 7]}).margin_mm == (9, 7, 9, 7)
    assert get_device({"base": "remarkable2", "colour": True}).colour is True
    assert get_device("150x200").width_mm == 150 and get_device("150 x 200 mm").height_mm == 200
    doc = pdfium.PdfDocument(render("Hello", META, device={"width_mm": 120, "height_mm": 170}).pdf)
    assert doc[0].get_size() == pytest.approx((120 * 72 / 25.4, 170 * 72 / 25.4), abs=0.5)
    for bad in (
        {"width_mm": 30, "height_mm": 40},
        {"width_mm": "wide", "height_mm": 100},
        {"width_mm": 120},
        {"width_mm": 120, "height_mm": 170, "margins_mm": [1, 2, 3]},
        {"width_mm": 120, "height_mm": 170, "colour": "yes"},
        {"width_mm": 120, "height_mm": 170, "shape": "round"},
    ):
        with pytest.raises(RenderError):
            get_device(bad)
    with pytest.raises(RenderError):
        Device.custom(100, 150, -1)


def test_render_markdown_file(tmp_path: Path) -> None:
    source = tmp_path / "answer.md"
    source.write_text("# Preview\n\nSome *text* and $x^2$.\n", encoding="utf-8")
    result = render_markdown_file(source, "remarkable-move", tmp_path / "out.pdf", font_size=12)
    written = (tmp_path / "out.pdf").read_bytes()
    assert written == result.pdf and written.startswith(b"%PDF")
    assert "Preview" in pdf_text(written)[0]
    assert render_markdown_file(source).pdf == (tmp_path / "answer.pdf").read_bytes()
    with pytest.raises(RenderError):
        render_markdown_file(tmp_path / "missing.md")


# -- golden snapshots ----------------------------------------------------------------------------------------------

BASIC = """# Golden answer

Plain **bold** *italic* `code` text, wrapped over a few lines so that the line breaks are part of the picture.

1. First item
   - nested item
2. Second item

> A quote with a bar.

| Left | Right |
|------|------:|
| a | 1.0 |
| b | 22.5 |

```
def f(x):
    return x * 2
```
"""
MATH = """## Formulas

Inline $a^2 + b^2 = c^2$ and then a display:

$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$
"""
CASES = {
    "basic-remarkable2": (BASIC, "remarkable2", False),
    "basic-remarkable-move": (BASIC, "remarkable-move", False),
    "math-boox-note-air-c": (MATH, "boox-note-air-c", True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_snapshot(case: str) -> None:
    markdown, device, needs_math = CASES[case]
    if needs_math and not HAVE_MATPLOTLIB:
        pytest.skip("matplotlib not installed (optional extra 'math')")
    image = snapshot(render(markdown, META, device=device).pdf)
    path = GOLDEN / f"{case}.png"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path} is missing; run with EINK_LLM_UPDATE_GOLDEN=1 to create it")
        GOLDEN.mkdir(exist_ok=True)
        image.save(path, optimize=True)
        return
    golden = Image.open(path).convert("L")
    mean, share = difference(image, golden)
    assert matches(image, golden), f"{case}: mean difference {mean:.2f}, {share:.2%} pixels differ"


def test_golden_comparison_tolerates_rasterising_differences_but_not_layout_changes() -> None:
    pdf = render(BASIC, META).pdf
    reference = snapshot(pdf)
    # A different raster path (4x the resolution, then scaled down) antialiases and rounds differently.
    fine = snapshot(pdf, GOLDEN_DPI * 4).resize(reference.size, Image.Resampling.LANCZOS)
    assert matches(reference, fine)
    # One extra word that re-wraps a paragraph, or a slightly larger font, must fail.
    assert not matches(reference, snapshot(render(BASIC.replace("Plain", "Plain extra"), META).pdf))
    assert not matches(reference, snapshot(render(BASIC, META, font_size=11.5).pdf))
