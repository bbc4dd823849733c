"""Tables too wide for the page: shrunk type first, then turned sideways on pages of their own, stacked last."""

from __future__ import annotations

import math

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from eink_llm.render import get_device
from eink_llm.render.api import render
from tests.test_render import META, pdf_text, squash
from tests.test_render_visual import assert_no_ink_outside_margins

COLUMNS = [f"Col{c:02d}" for c in range(12)]


def table(columns: list[str], rows: int, cell: str = "r{r:02d}c{c:02d}") -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(cell.format(r=r, c=c) for c in range(len(columns))) + " |\n" for r in range(rows))
    return head + body


def char_angles(pdf: bytes) -> list[set[int]]:
    """Per page, the angles (degrees, rounded) of the visible characters of the body text."""
    out = []
    doc = pdfium.PdfDocument(pdf)
    for page in doc:
        text = page.get_textpage()
        angles = set()
        for i in range(text.count_chars()):
            if text.get_text_range(i, 1).strip():
                angles.add(round(math.degrees(pdfium_c.FPDFText_GetCharAngle(text.raw, i))) % 360)
        out.append(angles)
    return out


def turned(angles: set[int]) -> bool:
    """Whether some characters are turned a quarter (pdfium measures angles clockwise: 270 is a quarter left)."""
    return bool(angles & {90, 270})


def test_a_twelve_column_table_is_turned_sideways_with_the_header_on_every_page() -> None:
    markdown = "Before the table.\n\n" + table(COLUMNS, 40, "r{r:02d}c{c:02d} two words") + "\nAfter the table.\n"
    pdf = render(markdown, META).pdf
    pages = pdf_text(pdf)
    sideways = [n for n, text in enumerate(pages) if "r00c00" in text or "Col00" in text]
    assert len(sideways) >= 2, "40 rows should need more than one sideways page"
    # The table starts on a page of its own and the text after it on the next one.
    assert "Before the table." in pages[sideways[0] - 1] and "Col00" not in pages[sideways[0] - 1]
    assert "After the table." in pages[sideways[-1] + 1]
    header = " ".join(COLUMNS)
    for n in sideways:
        lines = [line.strip() for line in pages[n].splitlines() if line.strip()]
        assert header in lines, f"header not repeated on page {n + 1}"
        assert not any(word in pages[n] for word in ("Before the table", "After the table"))
    # Every cell is in the text layer, once.
    flat = squash(" ".join(pages))
    for r in range(40):
        for c in range(12):
            assert flat.count(squash(f"r{r:02d}c{c:02d}")) == 1
    # Table text is turned 90°, the running header and the text around it are not.
    angles = char_angles(pdf)
    for n in sideways:
        assert turned(angles[n])
    assert angles[sideways[0] - 1] == {0} and angles[sideways[-1] + 1] == {0}
    assert_no_ink_outside_margins(pdf, get_device("remarkable2"))


@pytest.mark.parametrize(("name", "columns"), [("remarkable-move", 9), ("kindle-scribe", 12), ("a5", 12)])
def test_sideways_tables_stay_inside_the_margins(name: str, columns: int) -> None:
    pdf = render("Intro.\n\n" + table(COLUMNS[:columns], 30), META, device=name).pdf
    assert any(turned(angles) for angles in char_angles(pdf))
    assert_no_ink_outside_margins(pdf, get_device(name))


def test_tables_that_fit_upright_are_not_turned() -> None:
    pdf = render(table(COLUMNS[:5], 5), META).pdf
    assert char_angles(pdf) == [{0}]


def test_shrinking_comes_before_turning() -> None:
    # Seven short columns do not fit at 11 pt on a reMarkable 2 but do in smaller type: shrunk, upright.
    columns = [f"Heading{c}" for c in range(7)]
    pdf = render(table(columns, 3), META).pdf
    assert char_angles(pdf) == [{0}]
    text = pdf_text(pdf)[0]
    assert " ".join(columns) in text


def test_too_wide_even_sideways_is_stacked() -> None:
    columns = [f"Heading{c:02d}" for c in range(20)]
    pdf = render(table(columns, 2, "value{r}x{c:02d}"), META, device="remarkable-move").pdf
    text = " ".join(pdf_text(pdf))
    assert "Heading00 value0x00" in text and "Heading19 value1x19" in text
    assert all(angles <= {0} for angles in char_angles(pdf))


def test_two_columns_are_never_turned() -> None:
    word = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 2
    pdf = render(table(["Term", "Meaning"], 2, word + "{r}{c}"), META, device="remarkable-move").pdf
    assert all(angles <= {0} for angles in char_angles(pdf))
    assert squash(word + "00") in squash(" ".join(pdf_text(pdf)))


def test_a_sideways_row_longer_than_a_page_is_split_without_loss() -> None:
    long_cell = "lorem ipsum " * 700
    markdown = table(COLUMNS, 3).replace("| r01c00 |", f"| {long_cell} |")
    pages = pdf_text(render(markdown, META).pdf)
    text = "".join(pages)
    assert text.count("lorem") == 700 and "r02c11" in text and "plain text" not in text


@pytest.mark.parametrize(
    "wrap",
    [
        lambda t: t,
        lambda t: "- item\n\n" + "".join(f"  {line}\n" for line in t.splitlines()),
        lambda t: "> " + t.replace("\n", "\n> "),
    ],
)
def test_sideways_tables_inside_lists_and_quotes(wrap: object) -> None:
    assert callable(wrap)
    pdf = render("Start.\n\n" + wrap(table(COLUMNS, 6)) + "\n\nEnd.", META).pdf
    pages = pdf_text(pdf)
    text = squash(" ".join(pages))
    assert all(squash(f"r{r:02d}c{c:02d}") in text for r in range(6) for c in range(12))
    for page in pages:  # no page left blank by the move to a page of its own
        assert [line for line in page.splitlines()[:-2] if line.strip()], "a blank page"
    assert any(turned(angles) for angles in char_angles(pdf))
    assert_no_ink_outside_margins(pdf, get_device("remarkable2"))
