"""The text layer's budget (context.question_tokens): how much of an input's text is read, kept and noted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

from eink_llm.reader import InputLimits, read_input
from eink_llm.text_tokens import cut_to_tokens, estimate_tokens
from tests import samples


@pytest.fixture()
def text_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many characters each text page PDFium built held (counting, not changing, what the reader does)."""
    counts: list[int] = []
    original = pdfium.PdfPage.get_textpage

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        textpage = original(self, *args, **kwargs)
        counts.append(textpage.count_chars())
        return textpage

    monkeypatch.setattr(pdfium.PdfPage, "get_textpage", spy)
    return counts


def test_a_huge_text_layer_is_read_only_as_far_as_the_budget(tmp_path: Path, text_reads: list[int]) -> None:
    path = samples.make_text_bomb_pdf(tmp_path / "bomb.pdf", pages=5, chars_per_page=1_000_000)
    assert path.stat().st_size < 20_000
    document = read_input(path, InputLimits(max_text_tokens=2000))
    assert 1900 <= estimate_tokens(document.text) <= 2000
    assert document.text.startswith(samples.BOMB_LINE.strip()) and document.page_count == 5
    assert len(document.pages) == 5  # every page is still drawn
    cut = document.text_cut
    assert cut is not None and cut.cut_page == 1 and cut.unread_pages == (2, 3, 4, 5) and not cut.exact
    assert cut.kept_chars == len(document.text) and cut.kept_tokens == estimate_tokens(document.text)
    assert cut.read_chars > cut.kept_chars
    # Only the first page's text was analysed at all, and only a small prefix of its million characters.
    assert len(text_reads) <= 4 and sum(text_reads) < 100_000, text_reads
    record = cut.record()
    assert record["original_chars_at_least"] == cut.read_chars and record["budget_tokens"] == 2000
    assert "first" in cut.note() and "pages 2–5" in cut.note() and "context.question_tokens" in cut.note()


def test_pages_are_read_in_order_until_the_budget_is_spent(tmp_path: Path) -> None:
    pages = [["first page " + "alpha " * 20], ["second page " + "beta " * 400], ["third page gamma"]]
    path = samples.make_text_pdf(tmp_path / "three.pdf", pages)
    whole = read_input(path)
    assert whole.text_cut is None
    assert whole.text.startswith("first page alpha") and whole.text.endswith("third page gamma")

    document = read_input(path, InputLimits(max_text_tokens=200))
    assert estimate_tokens(document.text) <= 200
    first, second = document.text.split("\n\n")
    assert first == whole.text.split("\n\n")[0]  # page 1 whole
    assert second.startswith("second page beta") and not second.endswith(" ")  # page 2 cut at a word
    assert "gamma" not in document.text
    cut = document.text_cut
    assert cut is not None and cut.cut_page == 2 and cut.unread_pages == (3,)
    assert "the rest of page 2 and page 3 left out" in cut.note()


def test_a_cut_within_the_pages_read_knows_the_original_size(tmp_path: Path) -> None:
    path = samples.make_text_pdf(tmp_path / "two.pdf", [["short"], ["long " * 300]])
    document = read_input(path, InputLimits(max_text_tokens=100))
    cut = document.text_cut
    assert cut is not None and cut.exact and cut.unread_pages == () and cut.cut_page == 2
    assert cut.read_chars == len("short") + len("long " * 300)  # every character on the pages, as drawn
    assert f"of {cut.read_chars:,} characters" in cut.note() and "original_chars" in cut.record()


def test_text_after_many_drawn_objects_is_still_found(tmp_path: Path) -> None:
    # Typed text drawn after 1,500 pen strokes: read in growing prefixes of the page's objects, it is still found.
    path = samples.make_text_pdf(tmp_path / "inked.pdf", [["typed after the ink"]], strokes_first=1500)
    assert read_input(path).text == "typed after the ink"
    assert read_input(path, InputLimits(max_text_tokens=4)).text == "typed after the"


def test_a_budget_of_zero_reads_no_text_and_notes_nothing(tmp_path: Path, text_reads: list[int]) -> None:
    document = read_input(samples.make_pdf(tmp_path / "q.pdf", pages=2), InputLimits(max_text_tokens=0))
    assert document.text == "" and document.text_cut is None and text_reads == []


def test_text_that_fits_exactly_is_not_cut(tmp_path: Path) -> None:
    path = samples.make_text_pdf(tmp_path / "exact.pdf", [["abcd efgh"], ["ijkl"]])
    document = read_input(path, InputLimits(max_text_tokens=4))  # page 1 costs 3, the page break 1: no room
    assert document.text == "abcd efgh" and document.text_cut is not None and document.text_cut.cut_page is None
    assert document.text_cut.unread_pages == (2,)
    assert read_input(path, InputLimits(max_text_tokens=5)).text_cut is None


def test_cut_to_tokens_counts_like_the_history_budget() -> None:
    assert cut_to_tokens("short", 10) == "short"
    assert cut_to_tokens("anything", 0) == ""
    words = "word " * 1000
    cut = cut_to_tokens(words, 50)
    assert estimate_tokens(cut) <= 50 and cut.endswith("word") and len(cut) > 180
    dense = "漢字" * 1000  # one token a character
    assert cut_to_tokens(dense, 30) == dense[:30]
    huge = "x" * 50_000_000
    assert len(cut_to_tokens(huge, 8000)) == 32_000
