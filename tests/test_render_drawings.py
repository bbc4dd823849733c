"""```svg and ```plot blocks: drawn as vectors in greys with their source as invisible text, or, when hostile
or broken, shown as source under a one-line note, quickly, without touching any file or the network."""

from __future__ import annotations

import ctypes
import itertools
import math
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import ImageChops

from eink_llm.config import DEFAULT_SYSTEM_PROMPT
from eink_llm.errors import DrawingRefused
from eink_llm.render import drawings, svgsafe
from eink_llm.render.api import Rendered, render
from eink_llm.render.plotexpr import compile_function
from eink_llm.render.plots import parse_plot, ticks
from tests.test_render import META, squash

needs_svglib = pytest.mark.skipif(not drawings.available(), reason="svglib not installed (optional extra 'drawings')")

CIRCUIT = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">
  <path d="M 10 50 L 60 50 M 60 35 L 60 65 M 70 42 L 70 58 M 70 50 L 120 50" stroke="black" fill="none"/>
  <g transform="translate(130 10) scale(2)">
    <rect id="box" x="0" y="0" width="30" height="30" fill="#1060c0"/>
  </g>
  <g transform="rotate(90 40 80)"><circle cx="40" cy="80" r="8" fill="none" stroke="red" stroke-width="2"/></g>
  <use href="#box" x="-120" y="40" transform="scale(0.5)"/>
  <text x="12" y="40" font-size="10" font-family="Helvetica">Battery 9 V</text>
</svg>"""

PLOT = """title: Damped oscillation
x: [0, 10]
xlabel: t (s)
ylabel: displacement (cm)
functions:
  - {f: exp(-x/4) * cos(2x), label: x(t)}
  - {f: exp(-x/4), label: envelope}
series:
  - {label: measured, points: [[0, 1], [1, -0.3], [2, -0.4], [3, 0.45]]}
"""


def fenced(language: str, source: str) -> str:
    return f"Before the drawing.\n\n```{language}\n{source}\n```\n\nAfter the drawing.\n"


def _text_of(obj: pdfium.PdfObject, textpage: pdfium.PdfTextPage) -> str:
    size = pdfium_c.FPDFTextObj_GetText(obj.raw, textpage.raw, None, 0)
    buffer = ctypes.create_string_buffer(size)
    pdfium_c.FPDFTextObj_GetText(obj.raw, textpage.raw, ctypes.cast(buffer, ctypes.POINTER(ctypes.c_ushort)), size)
    return buffer.raw[: size - 2].decode("utf-16-le", errors="replace")


def page_objects(pdf: bytes) -> dict[str, object]:
    """Counts of path and image objects, and the visible and invisible text, over all pages."""
    paths = images = 0
    visible: list[str] = []
    hidden: list[str] = []
    bounds: list[tuple[float, float, float, float]] = []
    doc = pdfium.PdfDocument(pdf)
    try:
        for page in doc:
            textpage = page.get_textpage()
            for obj in page.get_objects(max_depth=6):
                if obj.type == pdfium_c.FPDF_PAGEOBJ_PATH:
                    paths += 1
                    bounds.append(tuple(obj.get_bounds()))
                elif obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE:
                    images += 1
                elif obj.type == pdfium_c.FPDF_PAGEOBJ_TEXT:
                    mode = pdfium_c.FPDFTextObj_GetTextRenderMode(obj.raw)
                    invisible = mode == pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE
                    (hidden if invisible else visible).append(_text_of(obj, textpage))
    finally:
        doc.close()
    return {"paths": paths, "images": images, "visible": "".join(visible), "hidden": "".join(hidden), "bounds": bounds}


def is_grey_page(pdf: bytes) -> bool:
    doc = pdfium.PdfDocument(pdf)
    try:
        for page in doc:
            r, g, b = page.render(scale=1.0).to_pil().convert("RGB").split()
            for one, other in ((r, g), (g, b), (r, b)):
                if ImageChops.difference(one, other).getextrema()[1] > 3:
                    return False
    finally:
        doc.close()
    return True


# -- SVG drawn ---------------------------------------------------------------------------------------------


@needs_svglib
def test_an_svg_with_paths_text_groups_and_transforms_is_drawn_as_vectors() -> None:
    result = render(fenced("svg", CIRCUIT), META)
    assert result.stats.drawings == 1 and result.stats.drawings_as_source == []
    found = page_objects(result.pdf)
    assert found["images"] == 0
    assert isinstance(found["paths"], int) and found["paths"] >= 5  # wires, plates, boxes, circle: paths
    visible, hidden = str(found["visible"]), str(found["hidden"])
    assert "Battery9V" in squash(visible)  # the SVG's own <text>, as text
    assert "<svg" not in visible and "<path" not in visible and "Drawing shown as source" not in visible
    assert "Before the drawing." in visible and "After the drawing." in visible
    # the whole source is on the page as invisible text, line by line, in order
    assert squash(CIRCUIT) in squash(hidden)
    # the transformed group is drawn where its transform puts it: the filled box (scaled 2x, moved right)
    # lies in the right third of the drawing, which spans the column
    boxes = [b for b in found["bounds"] if isinstance(b, tuple)]  # type: ignore[union-attr]
    drawing_left = min(b[0] for b in boxes)
    drawing_right = max(b[2] for b in boxes)
    wide = [b for b in boxes if (b[2] - b[0]) > 0.2 * (drawing_right - drawing_left)]
    assert any(b[0] > drawing_left + 0.55 * (drawing_right - drawing_left) for b in wide)
    assert is_grey_page(result.pdf)


@needs_svglib
def test_a_link_in_an_svg_is_drawn_without_its_address() -> None:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 99 20"><a href="https://example.org/x">'
        '<text x="1" y="15">Ohm</text></a></svg>'
    )
    root = svgsafe.sanitise(svg)
    assert not any(el.get("href") for el in root.iter())
    assert drawings.svg_picture(svg).width > 0


@needs_svglib
def test_colours_become_greys_that_stay_apart() -> None:
    source = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 40">'
        '<line x1="0" y1="5" x2="100" y2="5" stroke="red"/><line x1="0" y1="15" x2="100" y2="15" stroke="green"/>'
        '<line x1="0" y1="25" x2="100" y2="25" stroke="#0000ff"/><line x1="0" y1="35" x2="100" y2="35" '
        'stroke="orange"/><rect width="10" height="10" fill="#777777"/></svg>'
    )
    picture = drawings.svg_picture(source)
    strokes, fills = [], []
    for shape in drawings._walk(picture.drawing):
        for attr, into in (("strokeColor", strokes), ("fillColor", fills)):
            colour = getattr(shape, attr, None)
            if colour is not None and getattr(shape, "strokeWidth", None) is not None:
                into.append(tuple(round(v, 3) for v in colour.rgb()))
    line_greys = {c for c in strokes if c != (0.0, 0.0, 0.0)}
    assert all(r == g == b for r, g, b in strokes + fills)
    assert len(line_greys) == 4  # four colours, four different greys
    levels = sorted(c[0] for c in line_greys)
    assert all(b - a >= 0.1 for a, b in itertools.pairwise(levels))  # apart on a 16-level panel
    assert all(0.15 <= v <= 0.95 for v in levels)  # neither black nor white
    assert (round(0x77 / 255, 3),) * 3 in fills  # a grey stays the grey it was


@needs_svglib
def test_on_a_colour_panel_the_text_of_a_drawing_is_black() -> None:
    from tests.test_render_visual import drawing_objects

    svg = CIRCUIT.replace('font-family="Helvetica"', 'font-family="Helvetica" fill="#3366cc"')
    strings = [s for s in drawings._walk(drawings.svg_picture(svg).drawing) if type(s).__name__ == "String"]
    assert strings and all(s.fillColor.rgb() != (0, 0, 0) for s in strings)  # grey type on a monochrome panel
    colour = render(fenced("svg", svg), META, device="boox-note-air-c")
    texts = [c for kind, c, _ in drawing_objects(colour.pdf) if kind == "text"]
    assert len(texts) > 5 and all(c == (0, 0, 0) for c in texts)


@needs_svglib
def test_svg_text_is_reordered_and_shaped_like_the_answers_own() -> None:
    svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 99 20"><text x="1" y="15">שלום and لا</text></svg>'
    strings = [s for s in drawings._walk(drawings.svg_picture(svg).drawing) if type(s).__name__ == "String"]
    assert [s.text for s in strings] == ["\ufefb and םולש"]  # right to left, lam-alef joined


def test_the_grey_levels_keep_the_order_of_lightness() -> None:
    assert drawings._chromatic_levels([0.1, 0.11, 0.12]) == [0.22, 0.4, 0.56]
    assert drawings._chromatic_levels([0.95, 0.96]) == [0.82, 0.91]
    many = drawings._chromatic_levels([i / 10 for i in range(10)])
    assert many == sorted(many) and len(many) == 10


def _placed_markers(source: str) -> list[str]:
    root = svgsafe.sanitise(source)
    return [str(g.get("transform")) for g in root.iter() if svgsafe.local(g.tag) == "g" and g.get("transform")]


ARROW = (
    '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
    'orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="context-stroke"/></marker></defs>'
)


@needs_svglib
def test_arrowheads_from_markers_are_drawn_as_shapes_turned_with_the_path() -> None:
    svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">' + ARROW + "{}</svg>"
    line = '<line x1="10" y1="10" x2="110" y2="10" stroke="#c00" stroke-width="2" marker-end="url(#a)"/>'
    (placed,) = _placed_markers(svg.format(line))
    assert placed.startswith("translate(110.0000 10.0000) rotate(0.0000) scale(1.2")  # 2 × 6/10
    arc = '<path d="M 20 80 A 40 40 0 0 1 100 80" stroke="black" marker-end="url(#a)" marker-start="url(#a)"/>'
    start, end = _placed_markers(svg.format(arc))
    # over the top, clockwise: it arrives heading down (90°); it leaves heading up, and the start is reversed
    assert [start.split(")")[1], end.split(")")[1]] == [" rotate(90.0000"] * 2
    curve = '<g marker-end="url(#a)" stroke="blue"><path d="M 0 0 c 10 0 20 10 20 20 s 0 20 10 20"/></g>'
    (placed,) = _placed_markers(svg.format(curve))
    assert placed.startswith("translate(30.0000 40.0000) rotate(0.0000)")
    root = svgsafe.sanitise(svg.format(line))
    head = [el for el in root.iter() if svgsafe.local(el.tag) == "path"]
    assert [el.get("fill") for el in head] == ["#c00"]  # context-stroke: the line's own stroke
    plain = render(fenced("svg", svg.format("")), META)
    arrowed = render(fenced("svg", svg.format(line)), META)
    assert page_objects(arrowed.pdf)["paths"] == page_objects(plain.pdf)["paths"] + 2  # the line and its head


@needs_svglib
def test_markers_cannot_multiply_past_the_element_limit() -> None:
    ns = 'xmlns="http://www.w3.org/2000/svg"'
    heavy = '<defs><marker id="m">' + '<rect width="1" height="1"/>' * 50 + "</marker></defs>"
    lines = '<line x1="0" y1="0" x2="5" y2="5" marker-end="url(#m)" marker-start="url(#m)"/>' * 200
    with pytest.raises(DrawingRefused, match="markers expand"):
        svgsafe.sanitise(f"<svg {ns} viewBox='0 0 9 9'>{heavy}{lines}</svg>")


# -- plot drawn ---------------------------------------------------------------------------------------------


def test_a_plot_block_is_drawn_as_vectors() -> None:
    result = render(fenced("plot", PLOT), META)
    assert result.stats.drawings == 1 and result.stats.drawings_as_source == []
    found = page_objects(result.pdf)
    assert found["images"] == 0 and isinstance(found["paths"], int) and found["paths"] >= 10
    visible = squash(str(found["visible"]))
    for label in ("Dampedoscillation", "t(s)", "displacement(cm)", "envelope", "measured"):
        assert label in visible
    assert "functions:" not in str(found["visible"])
    assert squash("exp(-x/4) * cos(2x)") in squash(str(found["hidden"]))
    assert is_grey_page(result.pdf)


def test_a_plot_samples_its_functions_over_the_domain() -> None:
    plot = parse_plot("x: [0, 3.14159]\nfunctions: [sin(x)]\n")
    curve = plot.curves[0]
    assert curve.xs[0] == 0 and math.isclose(curve.xs[-1], 3.14159)
    assert max(curve.ys) == pytest.approx(1.0, abs=1e-4)
    low, high = plot.y_range
    assert low < 0 <= 0.0 and 1.0 < high < 1.2
    poles = parse_plot("x: [-6, 6]\nfunctions: [tan(x)]\n")
    assert poles.y_range[1] < 100  # the range follows the curve, not the spikes next to its poles
    data = parse_plot("series: [{points: [[1, 2], [3, 4]]}]\n")
    assert data.x_range == (1.0, 3.0)
    assert ticks(0, 10, 5) == [0, 2, 4, 6, 8, 10]


@pytest.mark.parametrize(
    ("text", "x", "value"),
    [
        ("2x^2 + 3x - 1", 2.0, 13.0),
        ("y = -x^2", 3.0, -9.0),
        ("2^x^2", 2.0, 16.0),
        ("sin x + cos(x)", 0.0, 1.0),
        ("|x - 5|", 2.0, 3.0),
        ("3(x+1)", 1.0, 6.0),
        ("x sin(pi/2)", 4.0, 4.0),
        ("e^(ln(x))", 7.0, 7.0),
        ("sqrt(x) ** 2", 9.0, 9.0),
        ("1/x", 0.0, math.nan),
        ("sqrt(x)", -1.0, math.nan),
        ("exp(x)", 1000.0, math.nan),
        ("10^x^x", 10.0, math.nan),
    ],
)
def test_plot_functions_follow_the_usual_rules(text: str, x: float, value: float) -> None:
    got = compile_function(text)(x)
    assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('id')",
        "x.real",
        "open('/etc/passwd')",
        "lambda: 1",
        "x[0]",
        "sin(x",
        "2 +",
        "(" * 60 + "x" + ")" * 60,
        "x+" * 200 + "x",
        "",
    ],
)
def test_plot_functions_outside_the_grammar_are_refused(text: str) -> None:
    with pytest.raises(DrawingRefused):
        compile_function(text)


def test_a_broken_plot_is_shown_as_source_with_a_note() -> None:
    source = "functions: [import os]\nx: [0, 1]"
    result = render(fenced("plot", source), META)
    assert result.stats.drawings == 0 and len(result.stats.drawings_as_source) == 1
    visible = str(page_objects(result.pdf)["visible"])
    assert "Drawing shown as source:" in visible and squash(source) in squash(visible)
    aliases = "a: &a [x, x, x]\nb: &b [*a, *a]\nfunctions: [sin(x)]"
    assert "anchors" in render(fenced("plot", aliases), META).stats.drawings_as_source[0]


def test_the_prompt_tells_the_model_it_may_draw() -> None:
    assert "```svg" in DEFAULT_SYSTEM_PROMPT and "```plot" in DEFAULT_SYSTEM_PROMPT


def test_a_drawing_taller_than_the_page_is_shrunk_to_fit() -> None:
    tall = "aspect: 1.5\nx: [0, 1]\nfunctions: [x]\n"
    from eink_llm.render.devices import get_device

    device = get_device({"width_mm": 200, "height_mm": 90, "margins_mm": 8})  # a landscape page
    result: Rendered = render(fenced("plot", tall), META, device=device)
    assert result.stats.drawings == 1


def test_eink_llm_render_draws_and_reports_drawings(tmp_path: Path) -> None:
    from tests.test_cli import eink

    answer = tmp_path / "answer.md"
    answer.write_text(fenced("plot", PLOT) + "\n" + fenced("svg", "<svg><g></svg>"), encoding="utf-8")
    out = tmp_path / "out.pdf"
    result = eink("render", str(answer), "-o", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 drawings" in result.stdout and "drawing shown as source: the drawing is not well-formed" in result.stdout
    found = page_objects(out.read_bytes())
    assert isinstance(found["paths"], int) and found["paths"] >= 10 and found["images"] == 0


def test_a_conversation_export_draws_too() -> None:
    from datetime import UTC, datetime

    from eink_llm.render.conversation import ConversationEntry, render_conversation

    entry = ConversationEntry(1, datetime(2025, 1, 2, tzinfo=UTC), "Plot it", fenced("plot", PLOT), model="m")
    pdf = render_conversation("plots", "conv_x", [entry], device="remarkable-move")
    found = page_objects(pdf)
    assert isinstance(found["paths"], int) and found["paths"] >= 10
    assert "Dampedoscillation" in squash(str(found["visible"]))
