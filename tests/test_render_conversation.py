"""The whole-conversation export, on real output: outline, text layer, metadata, margins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from eink_llm.errors import RenderError
from eink_llm.reader import PdfOrigin, read_input
from eink_llm.render import ConversationEntry, get_device, render_conversation
from tests.test_render import pdf_text, squash
from tests.test_render_visual import assert_no_ink_outside_margins

CONVERSATION = "conv_20261125_140200_0badcafe"
START = datetime(2026, 11, 25, 14, 2, tzinfo=UTC)


def answer(n: int) -> str:
    filler = " ".join(f"word{n}x{i}" for i in range(40))
    return f"## Part one of {n}\n\n{filler}\n\n### Detail of {n}\n\n- point a{n}\n- point b{n}\n\n> quoted {n}\n"


def entries(count: int) -> list[ConversationEntry]:
    return [
        ConversationEntry(n, START + timedelta(minutes=n), f"Question number {n}?", answer(n), None, "test-model")
        for n in range(1, count + 1)
    ]


@pytest.fixture(scope="module")
def export() -> bytes:
    items = entries(6)
    items[3] = ConversationEntry(4, START + timedelta(minutes=4), "Question number 4?", None, "The model timed out.")
    items[4] = ConversationEntry(5, START + timedelta(minutes=5), None, None, None)
    return render_conversation("Photosynthesis talk", CONVERSATION, list(reversed(items)))


def test_one_top_level_bookmark_per_exchange_with_headings_nested(export: bytes) -> None:
    doc = pdfium.PdfDocument(export)
    toc = [(b.level, b.get_title(), b.get_dest().get_index()) for b in doc.get_toc()]
    top = [title for level, title, _ in toc if level == 0]
    assert top == [f"Exchange {n} · {(START + timedelta(minutes=n)):%Y-%m-%d %H:%M} UTC" for n in range(1, 7)]
    # Each formatted answer's headings sit below its exchange, keeping their own nesting.
    for n in (1, 2, 3, 6):
        at = next(i for i, (level, title, _) in enumerate(toc) if level == 0 and title.startswith(f"Exchange {n} "))
        assert toc[at + 1][:2] == (1, f"Part one of {n}") and toc[at + 2][:2] == (2, f"Detail of {n}")
    pages = [page for _, _, page in toc]
    assert pages == sorted(pages)
    for level, title, page in toc:
        if level == 0:
            assert squash(title.split("·")[0]) in squash(doc[page].get_textpage().get_text_range())


def test_questions_answers_and_errors_are_in_the_text(export: bytes) -> None:
    text = " ".join(" ".join(pdf_text(export)).split())
    assert "Photosynthesis talk" in text and "6 exchanges" in text
    assert text.count("You asked:") == 5  # exchange 5 has no question
    for n in (1, 2, 3, 6):
        assert f"Question number {n}?" in text and f"word{n}x39" in text and f"quoted {n}" in text
    assert "No answer: The model timed out." in text
    assert "No answer was recorded for this exchange." in text
    assert "Your reply" not in text  # no reply page on an export
    # In order, whatever order the entries were given in.
    positions = [text.find(f"Question number {n}?") for n in (1, 2, 3, 4, 6)]
    assert positions == sorted(positions)


def test_header_names_the_conversation_on_every_page(export: bytes) -> None:
    pages = pdf_text(export)
    for number, page in enumerate(pages, start=1):
        assert CONVERSATION in page and "6 exchanges" in page and f"{number} / {len(pages)}" in page


def test_export_carries_the_conversation_without_an_exchange(tmp_path: Path, export: bytes) -> None:
    path = tmp_path / "Exported conversation.pdf"
    path.write_bytes(export)
    assert read_input(path).origin == PdfOrigin(CONVERSATION, None, "info")


def test_nothing_outside_the_margins_on_a_small_device() -> None:
    pdf = render_conversation("Small", CONVERSATION, entries(3), device="remarkable-move")
    assert_no_ink_outside_margins(pdf, get_device("remarkable-move"))


def test_empty_conversation_and_a_bad_answer() -> None:
    text = " ".join(pdf_text(render_conversation("Empty", CONVERSATION, [])))
    assert "no exchanges yet" in text and "0 exchanges" in text
    deep = ConversationEntry(1, START, "Deep?", "> " * 100 + "deepest words", None, "m")
    fine = ConversationEntry(2, START, "Fine?", "# Fine heading\n\nfine words", None, "m")
    pdf = render_conversation("Mixed", CONVERSATION, [deep, fine])
    text = " ".join(" ".join(pdf_text(pdf)).split())
    assert "deepest words" in text and "fine words" in text  # the deep one as plain text, the other formatted
    doc = pdfium.PdfDocument(pdf)
    assert [(b.level, b.get_title()) for b in doc.get_toc()][1:] == [
        (0, "Exchange 2 · 2026-11-25 14:02 UTC"),
        (1, "Fine heading"),
    ]


def test_export_is_deterministic_and_validates_settings() -> None:
    items = entries(2)
    assert render_conversation("T", CONVERSATION, items) == render_conversation("T", CONVERSATION, items)
    with pytest.raises(RenderError):
        render_conversation("T", CONVERSATION, items, device="no-such-tablet")
    with pytest.raises(RenderError):
        render_conversation("T", CONVERSATION, items, font_size=100)


def test_many_exchanges() -> None:
    pdf = render_conversation("Long", CONVERSATION, entries(40))
    doc = pdfium.PdfDocument(pdf)
    toc = list(doc.get_toc())
    assert sum(1 for b in toc if b.level == 0) == 40 and len(toc) == 120
    assert "word40x39" in doc[len(doc) - 1].get_textpage().get_text_range()
