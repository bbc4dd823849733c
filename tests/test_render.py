"""The renderer, checked on real output: PDFs are rendered, then read back and rasterised with pdfium.

Text checks read the PDF's text layer (what search and copy see); geometry checks rasterise pages and look for
ink where there must be none. The sample answer is rendered once per module to keep the suite fast.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pypdfium2 as pdfium
import pytest
from PIL import Image

from eink_llm.errors import RenderError
from eink_llm.render import (
    DEFAULT_DEVICE,
    DEVICES,
    Device,
    RenderMeta,
    get_device,
    render_answer,
    render_error,
)
from eink_llm.render import api as render_api
from eink_llm.render.document import BAND_GAP, page_layout
from eink_llm.render.flowables import _char_width, wrap_line
from eink_llm.render.styles import make_theme

MM = 72 / 25.4
META = RenderMeta(
    title="photosynthesis-question",
    conversation_id="conv_20250102_140300_1a2b3c4d",
    exchange=3,
    created_at=datetime(2025, 1, 2, 14, 3, tzinfo=UTC),
    model="test-model-7b",
)
VOCABULARY = (
    "the light energy is captured by pigments in leaves and stored as sugar which plants use to grow "
    "while oxygen leaves through small pores called stomata during the day"
)
LONG_CODE_LINE = "result = compute(" + ", ".join(f"arg{i:03d}=value_{i:03d}" for i in range(18)) + ")"
SAMPLE = f"""# Photosynthesis overview

Plants convert **sunlight** into *chemical* energy. In code, `a < b && c` is a comparison.
Raw HTML such as <b>bold tag</b> stays visible. See [the source](https://example.org/docs/photosynthesis-guide).

## Stages of the process

1. Lightdependent reactions
   - waterSplitting releases oxygen
   - ATPproduction happens
     1. innermostNestedItem
2. CalvinCycle fixes carbon

- [ ] uncheckedTask item
- [x] finishedTask item

> Quoted remark: chlorophyllMolecule absorbs light.

---

| Stage | Location | Product |
|:------|:--------:|--------:|
| LightStage | ThylakoidMembrane | OxygenGas |
| DarkStage | StromaFluid | GlucoseSugar |

```python
{LONG_CODE_LINE}
if a < b && c:
    pass
```

![leaf cross section](leaf.png)

Greek: φωτοσύνθεση. Cyrillic: фотосинтез. Maths: ∑ ≤ ∞ → ⇒.
"""


def pdf_text(pdf: bytes) -> list[str]:
    doc = pdfium.PdfDocument(pdf)
    try:
        return [page.get_textpage().get_text_range() for page in doc]
    finally:
        doc.close()


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def page_images(pdf: bytes, scale: float = 2.0) -> Iterator[Image.Image]:
    doc = pdfium.PdfDocument(pdf)
    try:
        for page in doc:
            yield page.render(scale=scale, grayscale=True).to_pil().convert("L")
    finally:
        doc.close()


def dark_box(image: Image.Image, box: tuple[float, float, float, float]) -> tuple[int, int, int, int] | None:
    """Bounding box of dark pixels (< 160) inside ``box`` (pixel coords, left/top/right/bottom), or None."""
    left, top, right, bottom = (round(v) for v in box)
    if right <= left or bottom <= top:
        return None
    region = image.crop((left, top, right, bottom))
    return region.point(lambda v: 255 if v < 160 else 0).getbbox()


@pytest.fixture(scope="module")
def sample_pdf() -> bytes:
    return render_answer(SAMPLE, META)


@pytest.fixture(scope="module")
def sample_text(sample_pdf: bytes) -> str:
    return "\n".join(pdf_text(sample_pdf))


# -- devices -------------------------------------------------------------------------------------------------


def test_devices_catalogue() -> None:
    assert DEFAULT_DEVICE == "remarkable2" and DEVICES[DEFAULT_DEVICE].width_mm == 157.8
    for name in (
        "remarkable2",
        "remarkable-paper-pro",
        "remarkable-move",
        "boox-note-air",
        "supernote-nomad",
        "supernote-manta",
        "kindle-scribe",
        "a4",
        "a5",
        "letter",
    ):
        assert get_device(name).name == name
    # The reMarkable toolbar covers ~13 mm on the left.
    for name in ("remarkable2", "remarkable-paper-pro", "remarkable-move"):
        assert DEVICES[name].margin_mm[3] >= 13
    assert get_device("reMarkable_2") is DEVICES["remarkable2"]


def test_unknown_device_raises_render_error() -> None:
    with pytest.raises(RenderError) as info:
        get_device("etch-a-sketch")
    assert "etch-a-sketch" in info.value.what and "remarkable2" in info.value.todo
    with pytest.raises(RenderError):
        render_answer("hello", META, device="etch-a-sketch")
    with pytest.raises(RenderError):
        render_answer("hello", META, device=Device("tiny", 30, 30, (5, 5, 5, 5)))


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_page_size_is_the_device_size(name: str) -> None:
    device = DEVICES[name]
    doc = pdfium.PdfDocument(render_answer("Short answer.", META, device=name))
    assert len(doc) == 2  # the answer, then the reply page
    for page in doc:
        width, height = page.get_size()
        assert width == pytest.approx(device.width_mm * MM, abs=0.5)
        assert height == pytest.approx(device.height_mm * MM, abs=0.5)
    assert len(pdfium.PdfDocument(render_answer("Short answer.", META, device=name, reply_page=False))) == 1


# -- text layer ------------------------------------------------------------------------------------------------


def test_every_word_of_the_answer_is_in_the_text_layer(sample_text: str) -> None:
    flat = " ".join(sample_text.split())
    words = re.findall(r"[\w\u0370-\u03ff\u0400-\u04ff]+", re.sub(r"\]\([^)]*\)|```python", "]", SAMPLE))
    missing = [w for w in words if w not in flat]
    assert not missing
    for phrase in (
        "Photosynthesis overview",
        "Stages of the process",
        "innermostNestedItem",
        "ThylakoidMembrane",
        "GlucoseSugar",
        "a < b && c",
        "<b>bold tag</b>",
        "[image: leaf cross section]",
        "φωτοσύνθεση",
        "фотосинтез",
        "∑ ≤ ∞ → ⇒",
    ):
        assert phrase in flat, phrase


def test_long_code_line_is_wrapped_not_cut(sample_text: str) -> None:
    assert len(LONG_CODE_LINE) >= 300
    assert squash(LONG_CODE_LINE) in squash(sample_text)


def test_links_become_numbered_notes(sample_text: str) -> None:
    short = " ".join("\n".join(pdf_text(render_answer("See [the source](https://example.org/guide).", META))).split())
    assert "the source[1]" in short
    assert "[1] https://example.org/guide" in short
    # The sample's list of links would have started a page of its own: its few addresses went inline instead.
    flat = " ".join(sample_text.split())
    assert "the source (https://example.org/docs/photosynthesis-guide)" in flat


def test_task_list_boxes_replace_the_brackets(sample_text: str) -> None:
    assert "☐ uncheckedTask" in sample_text and "☑ finishedTask" in sample_text
    assert "[ ]" not in sample_text and "[x]" not in sample_text


def test_header_and_footer_on_every_page() -> None:
    pages = pdf_text(render_answer("\n\n".join(["A paragraph of filler words."] * 200), META))
    assert len(pages) >= 2
    for number, text in enumerate(pages, start=1):
        assert META.conversation_id in text and "Exchange 3" in text and "2025-01-02" in text
        assert f"{number} / {len(pages)}" in text


def test_metadata(sample_pdf: bytes) -> None:
    meta = pdfium.PdfDocument(sample_pdf).get_metadata_dict()
    assert meta["Title"] == META.title
    assert meta["Subject"] == META.conversation_id
    assert meta["Author"] == "eink-llm"
    assert "exchange 3" in meta["Keywords"] and "test-model-7b" in meta["Keywords"]
    assert meta["CreationDate"].startswith("D:20250102140300")


def test_fonts_are_embedded_subsets(sample_pdf: bytes) -> None:
    assert b"/FontFile2" in sample_pdf
    # Full DejaVu Sans alone is 740 kB; subsets keep a page of text small.
    assert len(sample_pdf) < 150_000


def test_transcription_box() -> None:
    meta = RenderMeta("q", "c1", 1, META.created_at, transcription="Why is the sky blue?\nAnd sunsets red?")
    text = pdf_text(render_answer("Rayleigh scattering.", meta))[0]
    assert "You asked:" in text and "Why is the sky blue?" in text and "And sunsets red?" in text


def test_output_is_deterministic_and_thread_safe() -> None:
    answers = [SAMPLE, SAMPLE.replace("Photosynthesis", "Respiration"), "# Other\n\n" + "word " * 800]
    expected = [render_answer(a, META) for a in answers]
    results: dict[int, bytes] = {}

    def work(index: int) -> None:
        results[index] = render_answer(answers[index % 3], META)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i] == expected[i % 3] for i in range(6))


# -- geometry ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["remarkable2", "remarkable-move"])
def test_nothing_is_drawn_outside_the_body_and_bands(name: str) -> None:
    wide_table = "| " + " | ".join(f"Column{i}" for i in range(7)) + " |\n|" + "---|" * 7 + "\n"
    wide_table += "| " + " | ".join("x" * 40 for _ in range(7)) + " |\n"
    extra = "\n\nhttps://example.org/" + "very-long-path-segment/" * 12 + "\n\n" + wide_table
    extra += "\n\n" + "\n".join("  " * d + "- nested level" for d in range(12))
    extra += "\n\n" + "> " * 6 + "deep quote " * 30
    pdf = render_answer(SAMPLE + extra, META, device=name)
    device = get_device(name)
    layout = page_layout(device, make_theme(device, 11.0))
    scale, tol = 2.0, 2.0

    def px(x: float) -> float:
        return x * scale

    def py(y: float) -> float:
        return (layout.height - y) * scale

    body, head, foot = layout.body, layout.header, layout.footer
    assert head.y0 - body.y1 == pytest.approx(BAND_GAP) and body.y0 - foot.y1 == pytest.approx(BAND_GAP)
    assert head.y1 < layout.height and foot.y0 > 0
    for image in page_images(pdf, scale):
        w, h = image.size
        forbidden = {
            "left margin": (0, 0, px(body.x0) - tol, h),
            "right margin": (px(body.x1) + tol, 0, w, h),
            "above header": (0, 0, w, py(head.y1) - tol),
            "between header and body": (0, py(head.y0) + tol, w, py(body.y1) - tol),
            "between body and footer": (0, py(body.y0) + tol, w, py(foot.y1) - tol),
            "below footer": (0, py(foot.y0) + tol, w, h),
        }
        for where, box in forbidden.items():
            assert dark_box(image, box) is None, f"ink in the {where} on {name}"
        assert dark_box(image, (px(head.x0), py(head.y1), px(head.x1), py(head.y0))) is not None
        assert dark_box(image, (px(foot.x0), py(foot.y1), px(foot.x1), py(foot.y0))) is not None
        assert dark_box(image, (px(body.x0), py(body.y1), px(body.x1), py(body.y0))) is not None


def test_pages_are_grayscale(sample_pdf: bytes) -> None:
    doc = pdfium.PdfDocument(sample_pdf)
    image = doc[0].render(scale=1.5).to_pil().convert("RGB")
    assert image.convert("HSV").getchannel("S").getbbox() is None  # no pixel has any saturation


def test_table_header_repeats_after_a_page_break() -> None:
    rows = "\n".join(f"| row{i:03d} | some description {i} | {i * i} |" for i in range(90))
    pages = pdf_text(render_answer("| Name | Description | Square |\n|---|---|---:|\n" + rows, META, reply_page=False))
    assert len(pages) >= 2
    for text in pages:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        first_row = next(i for i, line in enumerate(lines) if line.startswith("row"))
        assert lines[first_row - 1] == "Name Description Square"
    assert "row089" in pages[-1] and "row089" not in pages[0]


def test_too_wide_tables_shrink_then_stack() -> None:
    table = "| Alpha | Beta | Gamma |\n|---|---|---|\n| one | two | three |\n"
    doc = pdfium.PdfDocument(render_answer(table, META))
    assert "Alpha Beta Gamma" in doc[0].get_textpage().get_text_range()
    wide = "| " + " | ".join(f"Heading{i}" for i in range(8)) + " |\n|" + "---|" * 8 + "\n"
    wide += "| " + " | ".join(f"Value{i}" for i in range(8)) + " |\n"
    text = pdf_text(render_answer(wide, META, device="remarkable-move"))[0]
    # On a 7 cm wide text column eight columns cannot fit; each row becomes "heading | value" pairs.
    assert "Heading0 Value0" in text and "Heading7 Value7" in text


def test_a_table_row_taller_than_a_page_is_split_without_loss() -> None:
    table = "| Notes | A | B |\n|---|---|---|\n| " + "lorem ipsum " * 1500 + "| x | y |\n| last | z | w |\n"
    pages = pdf_text(render_answer(table, META, reply_page=False))
    text = "".join(pages)
    assert len(pages) > 3 and "plain text" not in text
    assert text.count("lorem") == 1500 and text.count("ipsum") == 1500 and "last" in pages[-1]


def test_nesting_too_deep_for_the_parser_falls_back_to_plain_text() -> None:
    pdf = render_answer("> " * 100 + "deepest words", META, device="remarkable-move")
    text = " ".join(" ".join(pdf_text(pdf)).split())
    assert "shown as plain text" in text and "deepest words" in text
    lists = "\n".join("  " * d + f"- level{d}" for d in range(25))
    text = " ".join(pdf_text(render_answer(lists, META, device="remarkable-move")))
    assert all(f"level{d}" in text for d in range(25)) and "plain text" not in text


def test_two_thousand_words_have_a_bounded_page_count() -> None:
    vocabulary = VOCABULARY.split()
    parts: list[str] = []
    words = 0
    for n in range(1, 1000):
        para = " ".join(vocabulary[(n + i) % len(vocabulary)] for i in range(70))
        parts.append(f"## Section {n}\n\n{para}\n\n- first point of part {n}\n- second point of part {n}\n")
        words += 2 + 70 + 10
        if words >= 2000:
            break
    pages = pdf_text(render_answer("\n".join(parts), META, reply_page=False))
    assert 3 <= len(pages) <= 12
    assert f"second point of part {n}" in pages[-1]


def test_font_size_is_validated_and_scales() -> None:
    text = "\n\n".join(["Some words to fill the page with text."] * 60)
    small = len(pdf_text(render_answer(text, META, font_size=11)))
    large = len(pdf_text(render_answer(text, META, font_size=16)))
    assert large > small
    with pytest.raises(RenderError):
        render_answer(text, META, font_size=2)


def test_odd_characters_do_not_break_rendering() -> None:
    nasty = "nul\x00 bell\x07 lone\ud800surrogate ]]> </para> <font name=x> &lt;&amp; \u2066\ufeff end"
    text = "\n".join(pdf_text(render_answer(nasty, META)))
    assert "nul bell lone\ufffdsurrogate ]]> </para> <font name=x> <& end" in text


def test_naive_timestamp_is_treated_as_utc() -> None:
    meta = RenderMeta("t", "c", 1, datetime(2025, 6, 1, 8, 0))
    assert "2025-06-01 08:00 UTC" in pdf_text(render_answer("x", meta))[0]


# -- fallbacks and error pages ---------------------------------------------------------------------------------


def test_render_error_says_what_and_what_to_do() -> None:
    what = "The AI service did not answer within 120 seconds."
    todo = "Check that the server is running, then export the page again."
    pdf = render_error(META, title="The AI could not answer", what=what, todo=todo, detail="ReadTimeout: " + "x" * 400)
    flat = " ".join(" ".join(pdf_text(pdf)).split())
    assert "The AI could not answer" in flat and what in flat and todo in flat
    assert "x" * 400 in squash(flat)
    assert META.conversation_id in flat and "Exchange 3" in flat


def test_render_error_survives_bad_settings_and_characters() -> None:
    pdf = render_error(
        META,
        title="<Bad> & \x00",
        what="a < b \ud800",
        todo="Fix <it>.",
        detail=None,
        device="no-such-device",
        font_size=float("nan"),
    )
    doc = pdfium.PdfDocument(pdf)
    width, _ = doc[0].get_size()
    assert width == pytest.approx(DEVICES[DEFAULT_DEVICE].width_mm * MM, abs=0.5)
    flat = " ".join(doc[0].get_textpage().get_text_range().split())
    assert "<Bad> &" in flat and "a < b" in flat and "Fix <it>." in flat


def test_render_error_last_resort(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("layout exploded")

    monkeypatch.setattr(render_api, "_error_pdf", broken)
    meta = dataclasses.replace(META, note="A new conversation was started.")
    pdf = render_error(meta, title="Oops", what="Something failed. Ünïcode", todo="Try again.")
    flat = " ".join(" ".join(pdf_text(pdf)).split())
    assert "Something failed." in flat and "Try again." in flat and "Note: A new conversation was started." in flat
    # Even the last-resort page names its conversation in the metadata and its date is the exchange's.
    assert b"/EinkLLMConversation (" + META.conversation_id.encode() + b")" in pdf
    assert b"<einkllm:exchange>3</einkllm:exchange>" in pdf
    assert pdfium.PdfDocument(pdf).get_metadata_dict()["CreationDate"].startswith("D:20250102140300")


def test_answer_falls_back_to_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> list[object]:
        raise RecursionError("too deep")

    monkeypatch.setattr(render_api, "markdown_flowables", broken)
    text = " ".join(" ".join(pdf_text(render_answer("# Title\n\nBody **text**.", META))).split())
    assert "shown as plain text" in text and "**text**" in text


def test_answer_failure_is_a_render_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise ValueError("reportlab said no")

    monkeypatch.setattr(render_api, "build_pdf", broken)
    with pytest.raises(RenderError) as info:
        render_answer("text", META)
    assert info.value.what and info.value.todo and "reportlab said no" in (info.value.detail or "")


# -- code wrapping -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [LONG_CODE_LINE, "x" * 500, "short", "", "a b " * 90, "שלום עולם " * 20],
    ids=["code", "no-spaces", "short", "empty", "many-spaces", "hebrew"],
)
def test_wrap_line_keeps_every_character(line: str) -> None:
    width = 200.0
    pieces = wrap_line(line, width, 10.0)
    assert "".join(pieces) == line
    assert all(sum(_char_width(c, 10.0) for c in piece) <= width for piece in pieces)
    assert all(piece for piece in pieces[:-1])
