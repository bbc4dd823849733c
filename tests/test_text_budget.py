"""The text layer's budget (context.question_tokens): how much of an input's text is read, kept and noted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

from eink_llm.backends.base import Capabilities, LLMRequest, Message, PageImage
from eink_llm.ceiling import fit_request, model_ceiling
from eink_llm.config import load_config
from eink_llm.errors import RequestTooLargeError
from eink_llm.reader import InputLimits, read_input
from eink_llm.service import process_files
from eink_llm.text_tokens import cut_to_tokens, estimate_tokens
from tests import samples
from tests.fakes import FakeLLMServer, all_routes
from tests.harness import db_rows, outputs, pdf_text, write_config


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
    # Only the first page's text was analysed at all, and (with a PDFium that can hide page objects, 2024 on)
    # only a small prefix of its million characters.
    assert len(text_reads) <= 4, text_reads
    if hasattr(pdfium.raw, "FPDFPageObj_SetIsActive"):
        assert sum(text_reads) < 100_000, text_reads
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


# --- the ceiling on the whole request ----------------------------------------------------------------------

ANTHROPIC = Capabilities(token_formula="anthropic")  # an image costs width × height / 750 tokens
LEAN = "Answer the handwritten question."
BACKGROUND = "Summary of the earlier part of this conversation:\n" + "older " * 400  # ~600 tokens


def _request(*, text_tokens: int = 2000, exchanges: int = 3, answer_tokens: int = 500) -> LLMRequest:
    history: list[Message] = []
    for number in range(1, exchanges + 1):
        history += [Message("user", f"question {number}"), Message("assistant", f"answer {number} " * answer_tokens)]
    return LLMRequest(
        system_prompt=f"{LEAN}\n\n{BACKGROUND}",
        history=tuple(history),
        pages=(PageImage(b"", "image/png", 750, 1000),),  # 1,000 tokens
        text="typed " * (text_tokens * 4 // 6),
    )


def test_a_request_under_the_ceiling_is_sent_as_it_is() -> None:
    request = _request()
    fitted = fit_request(request, LEAN, ANTHROPIC, model_ceiling(128_000, 2048))
    assert fitted.request == request and not fitted.dropped and fitted.note() is None
    assert fitted.image_tokens == 1000
    assert fitted.estimated_tokens == fitted.original_tokens > 1000 + 2000 + 600 + 3 * 1000
    assert fitted.record()["limited_by"] == "context" and "dropped_text" not in fitted.record()


def test_over_the_ceiling_the_typed_text_goes_first_then_background_then_oldest_exchanges() -> None:
    request = _request()
    whole = fit_request(request, LEAN, ANTHROPIC, model_ceiling(128_000, 0)).estimated_tokens
    text_only = fit_request(request, LEAN, ANTHROPIC, model_ceiling(whole - 1, 0))
    assert text_only.dropped_text and not text_only.dropped_background and not text_only.dropped_exchanges
    assert text_only.request.text == "" and text_only.request.history == request.history
    assert text_only.estimated_tokens <= whole - 1
    assert "the typed text of your file was left out" in (text_only.note() or "")

    # ~1,800 fewer: more than the background (~615 tokens) and one exchange (~1,145) together
    ceiling = model_ceiling(text_only.estimated_tokens - 1800, 0)
    fitted = fit_request(request, LEAN, ANTHROPIC, ceiling)
    assert fitted.dropped_text and fitted.dropped_background and fitted.dropped_exchanges == 2
    assert fitted.request.system_prompt == LEAN
    assert [m.text for m in fitted.request.history if m.role == "user"] == ["question 3"]  # the newest is kept
    assert fitted.estimated_tokens <= ceiling.tokens
    note = fitted.note() or ""
    assert "the typed text of your file, the summary and related older exchanges and 2 earlier exchanges" in note
    assert "were left out" in note and "llm.context_tokens" in note
    assert fitted.record()["dropped_exchanges"] == 2 and fitted.record()["original_tokens"] == whole


def test_a_request_over_the_ceiling_with_only_its_pages_is_not_sent() -> None:
    with pytest.raises(RequestTooLargeError) as info:
        fit_request(_request(), LEAN, ANTHROPIC, model_ceiling(2048 + 900, 2048))
    assert "1,000 of them for 1 page images" in info.value.what and "llm.context_tokens" in info.value.what
    assert not info.value.retryable and "Export fewer pages" in info.value.todo


# --- the ceiling in the daemon's pipeline (eink-llm process, a local OpenAI-format server) -----------------


@pytest.fixture()
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


def _config(tmp_path: Path, server: FakeLLMServer, **llm: object) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    settings = {"backend": "openai", "base_url": server.base_url, "model": "vision-test", "api_key": "k", **llm}
    return write_config(tmp_path / "c.yaml", inbox, tmp_path / "db.sqlite3", llm=settings)


def _records(tmp_path: Path) -> list[dict[str, Any]]:
    rows = db_rows(tmp_path / "db.sqlite3", "SELECT * FROM exchanges ORDER BY exchange_id")
    return [{**dict(row), "metadata": json.loads(row["metadata"])} for row in rows]


def test_a_follow_up_over_the_models_context_leaves_out_text_then_history_and_says_so(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    server.answer_fn = lambda body: "A long first answer. " * 300 if len(body["messages"]) == 2 else "Short."
    config = load_config(_config(tmp_path, server, context_tokens=2500, max_output_tokens=500))
    inbox = tmp_path / "inbox"
    first = process_files(config, [samples.make_png(inbox / "first.png", (300, 400))])
    assert first[0].answered and first[0].outcome is not None
    conversation = first[0].outcome.conversation_id
    typed = ["typed words " * 12] * 30  # ~1,100 tokens of typed text
    follow = samples.make_text_pdf(inbox / f"{conversation} follow.pdf", [typed])
    second = process_files(config, [follow])
    assert second[0].answered, second[0].message

    asked = server.requests[-1].body
    assert [m["role"] for m in asked["messages"]] == ["system", "user"]  # the earlier exchange was left out
    assert "typed words" not in json.dumps(asked)  # and so was the typed text
    record = _records(tmp_path)[-1]["metadata"]["request"]
    assert record["dropped_text"] and record["dropped_exchanges"] == 1 and record["limit"] == 2000
    assert record["estimated_tokens"] <= 2000 < record["original_tokens"]
    said = " ".join(pdf_text(outputs(inbox, "RESPONSE_")[-1]).split())
    assert "the typed text of your file and 1 earlier exchange of this conversation were left out" in said, said
    assert "llm.context_tokens" in said


def test_a_question_too_large_for_the_model_even_alone_is_not_sent(tmp_path: Path, server: FakeLLMServer) -> None:
    config = load_config(_config(tmp_path, server, context_tokens=600, max_output_tokens=500))
    inbox = tmp_path / "inbox"
    result = process_files(config, [samples.make_pdf(inbox / "q.pdf", pages=2)])
    assert not result[0].answered and not server.requests
    said = " ".join(pdf_text(outputs(inbox, "ERROR_")[0]).split())
    assert "too large for the model" in said and "llm.context_tokens" in said and "Export fewer pages" in said
    assert _records(tmp_path)[0]["metadata"]["error_type"] == "RequestTooLargeError"


def test_a_question_over_what_is_left_of_the_budget_is_not_sent(tmp_path: Path, server: FakeLLMServer) -> None:
    path = _config(tmp_path, server)
    path.write_text(path.read_text() + "profiles:\n  default:\n    budget:\n      daily_tokens: 150\n")
    inbox = tmp_path / "inbox"
    result = process_files(load_config(path), [samples.make_pdf(inbox / "q.pdf", pages=2)])
    assert not result[0].answered and not server.requests
    said = " ".join(pdf_text(outputs(inbox, "ERROR_")[0]).split())
    assert "150 tokens left in the daily budget" in said and "resets at" in said, said


def test_ollamas_num_ctx_is_the_context_when_smaller(tmp_path: Path) -> None:
    with FakeLLMServer(routes=all_routes()) as ollama:
        options = {"num_ctx": "1200"}  # as YAML may give it
        config = load_config(_config(tmp_path, ollama, backend="ollama", options=options, max_output_tokens=1000))
        inbox = tmp_path / "inbox"
        result = process_files(config, [samples.make_pdf(inbox / "q.pdf", pages=1)])
        assert not result[0].answered and not ollama.requests
        said = " ".join(pdf_text(outputs(inbox, "ERROR_")[0]).split())
        assert "the model's context of 1,200 tokens" in said, said
