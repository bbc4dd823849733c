"""Every script: fallback fonts found on the system, Arabic shaping, right-to-left order, missing characters.

Tests that need a system font skip, naming the characters and the Debian/Ubuntu package that has them, when it
is not installed (all of them: ``apt-get install fonts-wqy-zenhei fonts-noto-core fonts-symbola``). Shaping tests
skip without ``uharfbuzz`` (optional extra ``shaping``).
"""

from __future__ import annotations

import ctypes
import importlib.util
import unicodedata
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import structlog
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase.pdfmetrics import stringWidth

from eink_llm.render import fonts, shaping
from eink_llm.render.api import render
from eink_llm.render.bidi import display, levels, shape_arabic, visual_order
from eink_llm.render.fallback import Fallbacks, discover, read_cmap
from eink_llm.render.paragraphs import make_paragraph
from tests.test_render import META, pdf_text, squash


def debian_package(char: str) -> str:
    """The Debian/Ubuntu package with a font for ``char`` (the scripts tested here)."""
    code = ord(char)
    if 0x1100 <= code <= 0x11FF or 0x2E80 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF:
        return "fonts-wqy-zenhei"
    if code >= 0x1F000 or 0x2600 <= code <= 0x27BF:
        return "fonts-symbola"
    return "fonts-noto-core"


def needs_font_for(*chars: str) -> pytest.MarkDecorator:
    missing = [c for c in chars if Fallbacks().font_for(ord(c)) is None and ord(c) not in fonts_coverage()]
    names = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in missing)
    packages = " ".join(sorted({debian_package(c) for c in missing}))
    return pytest.mark.skipif(
        bool(missing), reason=f"no font on this system has {names} (Debian/Ubuntu: apt-get install {packages})"
    )


def fonts_coverage() -> frozenset[int]:
    fonts.ensure_fonts()
    return fonts._coverage[fonts.SANS]


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


# -- fallback fonts --------------------------------------------------------------------------------------------


def test_discovery_skips_cff_and_bitmap_fonts(tmp_path: Path) -> None:
    (tmp_path / "cff.otf").write_bytes(b"OTTO" + b"\0" * 60)
    (tmp_path / "junk.ttf").write_bytes(b"not a font")
    found = discover([tmp_path])
    assert found == []
    assert len(read_cmap(tmp_path / "junk.ttf")) == 0


def test_cmap_reader_matches_reportlab() -> None:
    bundled = fonts.FONT_DIR / "DejaVuSans.ttf"
    fonts.ensure_fonts()
    coverage = read_cmap(bundled)
    assert len(coverage) == len(fonts._coverage[fonts.SANS])
    assert all(code in coverage for code in list(fonts._coverage[fonts.SANS])[::50])
    assert 0x4E2D not in coverage  # 中


@needs_font_for("中", "한", "か")
def test_cjk_and_hangul_come_from_a_system_font() -> None:
    runs = fonts.runs("Text 中文 한국어 かな end", fonts.SANS)
    assert "".join(text for _font, text in runs) == "Text 中文 한국어 かな end"
    assert runs[0] == (fonts.SANS, "Text ") and runs[-1] == (fonts.SANS, "end")
    middle = runs[1:-1]  # one fallback font may cover all three, or one Chinese/Japanese and one Korean
    assert middle and all(font.startswith("Fallback-") for font, _text in middle)
    result = render("Chinese 中文, Korean 한국어, Japanese かな.", META)
    assert result.missing_chars == []
    text = " ".join(pdf_text(result.pdf))
    assert "中文" in text and "한국어" in text and "かな" in text


@needs_font_for("🦀")
def test_emoji_beyond_the_bmp_keep_their_code_points_in_the_text_layer() -> None:
    result = render("Crab 🦀 and grin 😀.", META)
    assert result.missing_chars == []
    assert "Crab 🦀 and grin 😀." in " ".join(pdf_text(result.pdf))  # reportlab alone would write U+1F98


def test_letters_bold_or_mono_lack_come_from_dejavu_sans() -> None:
    # DejaVu Sans Mono has no Hebrew; DejaVu Sans Oblique has no Arabic.
    assert fonts.mono_runs("x שלום")[1] == (fonts.SANS, "שלום")
    assert fonts.runs("ب", fonts.SANS_ITALIC) == [("DejaVuSansUpright", "ب")]


def test_characters_no_font_has_are_logged_once() -> None:
    with structlog.testing.capture_logs() as logs:  # U+10FFFD: private use, in no font
        result = render("Odd \U0010fffd and again \U0010fffd, *and \U0010fffd*.", META)
    assert result.missing_chars == ["\U0010fffd"]
    warnings = [entry for entry in logs if entry["event"] == "characters_without_font"]
    assert len(warnings) == 1 and warnings[0]["characters"] == "\U0010fffd"
    assert "U+10FFFD" in warnings[0]["codepoints"][0]
    # Drawn as a box, but still in the text layer (reportlab alone would drop it from the text).
    assert "Odd \U0010fffd and again" in " ".join(pdf_text(result.pdf))


def test_invisible_characters_without_a_font_are_dropped_not_boxed() -> None:
    with fonts.collect_missing() as missing:
        runs = fonts.runs("a\U000e0001b", fonts.SANS)  # a language tag: invisible by definition
    assert "".join(run for _, run in runs) == "ab" and not missing


# -- right-to-left ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Hello שלום world",
        "שלום עולם",
        "שלום, world 123!",
        "The word مرحبا بالعالم means hello",
        "مرحبا بالعالم 2024",
        "עברית ו-123 מספרים",
        "a1 ب2 c3",
        "English. עברית.",
        "مثال: 3.14 و 2,5",
        "Русский, עברית (בסוגריים) 123,",
    ],
)
def test_bidi_order_matches_python_bidi(text: str) -> None:
    if importlib.util.find_spec("bidi") is None:
        pytest.skip("python-bidi not installed (used only as a reference here)")
    from bidi import get_display  # type: ignore[import-untyped,unused-ignore]

    # python-bidi does not mirror brackets (rule L4); compare with brackets neutralised.
    assert display(text, 0).translate(str.maketrans("()", "||")) == get_display(text, base_dir="L").translate(
        str.maketrans("()", "||")
    )


def test_brackets_are_mirrored_in_right_to_left_runs() -> None:
    assert display("(שלום)", 1) == "(םולש)"
    assert display("a (שלום) b", 0) == "a (םולש) b"


def test_marks_follow_their_letter_after_reordering() -> None:
    text = "שָׁלוֹם"
    lvls = levels(text, 1)
    assert visual_order(lvls) == list(range(len(text)))[::-1]
    shown = display(text, 1)
    # ש carries two marks (qamats, shin dot): in the drawn string they follow it, in their logical order.
    assert shown[0] == "ם" and shown[-3:] == "ש\u05b8\u05c1"


@pytest.mark.parametrize("text", ["السلام عليكم", "مرحبا بالعالم", "فارسی گفتگو", "لا إله"])
def test_arabic_letters_take_their_joined_forms(text: str) -> None:
    shaped = shape_arabic(text)
    assert nfkc(shaped) == text  # only presentation forms of the same letters
    assert all(not ("\u0621" <= c <= "\u064a") for c in shaped if c != " ")
    if importlib.util.find_spec("arabic_reshaper") is not None:
        import arabic_reshaper  # type: ignore[import-untyped,unused-ignore]

        assert shaped == arabic_reshaper.reshape(text)


def test_right_to_left_paragraphs_are_right_aligned_and_in_visual_order() -> None:
    arabic = "هذه فقرة عربية طويلة بما يكفي لتلتف على أكثر من سطر واحد في الصفحة حتى نرى ترتيب الأسطر"
    pdf = render(f"{arabic}\n\nLeft text.", META).pdf
    page = pdfium.PdfDocument(pdf)[0]
    text = page.get_textpage()
    words = set(nfkc(text.get_text_range()).split())
    assert all(w in words or w[::-1] in words for w in arabic.split())
    # The first line of the Arabic paragraph ends at the right edge of the text column.
    boxes = [
        text.get_charbox(i) for i in range(text.count_chars()) if "\u0600" <= text.get_text_range(i, 1) <= "\ufeff"
    ]
    right = max(box[2] for box in boxes)
    width = page.get_width()
    assert right > width - 6 * 72 / 25.4 - 3  # remarkable2's right margin is 6 mm


def test_code_blocks_show_right_to_left_runs_in_visual_order() -> None:
    text = " ".join(pdf_text(render("```\nprint('שלום')\n```", META).pdf))
    assert "שלום" in text or "םולש" in text


# -- shaping (Indic, Thai, ...) ----------------------------------------------------------------------------------

needs_harfbuzz = pytest.mark.skipif(
    not shaping.available(),
    reason="uharfbuzz is not installed (optional extra 'shaping': pip install eink-llm[shaping])",
)

SHAPED = {
    "Devanagari": "नमस्ते दुनिया, किताब (हिंदी) संस्कृति।",
    "Bengali": "নমস্কার বাংলা ভাষা",
    "Tamil": "வணக்கம் கொடு தமிழ்",
    "Thai": "สวัสดีครับ น้ำ ภาษาไทย",
}


def layer(pdf: bytes) -> str:
    """The body text, decomposed and without white space (pdfium adds spaces where marks leave gaps)."""
    body = " ".join(" ".join(page.splitlines()[:-2]) for page in pdf_text(pdf))  # without header and footer
    return unicodedata.normalize("NFKD", squash(body)).replace(shaping.ZERO_WIDTH, "")


@needs_harfbuzz
@pytest.mark.parametrize("script", list(SHAPED))
def test_shaped_scripts_read_back_exactly_from_the_text_layer(script: str) -> None:
    text = SHAPED[script]
    missing = [c for c in text if c.isalpha() and Fallbacks().font_for(ord(c)) is None]
    if missing:
        pytest.skip(f"no {script} font on this system (Debian/Ubuntu: apt-get install fonts-noto-core)")
    # In a paragraph, in bold, in a list, in a table cell and in a heading.
    markdown = f"# {text}\n\n{text}\n\n**{text}**\n\n- {text}\n\n| {script} |\n|---|\n| {text} |\n"
    result = render(markdown, META)
    assert result.missing_chars == []
    found = layer(result.pdf)
    assert found.count(unicodedata.normalize("NFKD", squash(text))) == 5
    assert not any("\ue000" <= c <= "\uf8ff" or c >= "\U000f0000" for c in found)  # no private-use stand-ins


def _origin(page: Any, index: int) -> float:
    x, y = ctypes.c_double(), ctypes.c_double()
    pdfium_c.FPDFText_GetCharOrigin(page.raw, index, x, y)
    return x.value


@needs_harfbuzz
@needs_font_for("न")
def test_devanagari_advances_are_harfbuzz_s() -> None:
    import uharfbuzz

    word, size = "नमस्ते", 20.0
    font = Fallbacks().font_for(ord("न"))
    assert font is not None
    path = next(f.path for f in Fallbacks().files() if f.path.stem.replace("-", "") in font)
    blob = uharfbuzz.Blob.from_file_path(str(path))
    hb_font = uharfbuzz.Font(uharfbuzz.Face(blob))
    buf = uharfbuzz.Buffer()
    buf.add_str(word)
    buf.guess_segment_properties()
    uharfbuzz.shape(hb_font, buf, {})
    expected = sum(p.x_advance for p in buf.glyph_positions) * size / hb_font.face.upem
    unshaped = stringWidth(word, font, size)
    assert abs(expected - unshaped) > 1.0  # the test means something: shaping changes the width

    pdf = render(f"{word}|", META, font_size=size).pdf
    page = pdfium.PdfDocument(pdf)[0].get_textpage()
    chars = page.get_text_range()
    drawn = _origin(page, chars.index("|")) - _origin(page, 0)
    assert drawn == pytest.approx(expected, abs=0.05)


@needs_harfbuzz
@needs_font_for("न")
def test_a_word_in_two_fonts_is_shaped_per_font() -> None:
    # The comma comes from DejaVu, the letters from Noto Sans Devanagari; reportlab alone shapes the whole
    # word with the first font and draws a wrong glyph for the comma.
    found = layer(render("दुनिया, (किताब)", META).pdf)
    assert unicodedata.normalize("NFKD", "दुनिया,(किताब)") in found


@needs_harfbuzz
@needs_font_for("भ")
def test_a_long_shaped_paragraph_splits_across_pages_without_loss() -> None:
    sentence = "भारत एक विशाल देश है जिसकी संस्कृति बहुत प्राचीन है। "
    found = layer(render(sentence * 60, META, device="remarkable-move").pdf)
    assert found.count(unicodedata.normalize("NFKD", squash(sentence))) == 60


def test_only_paragraphs_with_complex_scripts_are_shaped() -> None:
    body = ParagraphStyle("body", fontName=fonts.SANS)
    assert make_paragraph("Plain Latin text", body).style.shaping == 0
    assert make_paragraph("שלום", body).style.shaping == 0  # right-to-left text is reordered by our bidi
    assert make_paragraph("नमस्ते", body).style.shaping == (1 if shaping.available() else 0)
