"""Naming, atomic writes, history budget and retry schedule: small pure parts with sharp edges."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from eink_llm.atomic import atomic_write, is_our_temp, remove_stale_temps, temp_name_for
from eink_llm.context import estimate_tokens, recent_turns
from eink_llm.errors import BackendError, InputError, OutputError
from eink_llm.fingerprint import PLACEHOLDER, is_unchanged, seal
from eink_llm.naming import (
    CONVERSATION_ID,
    answer_name_pattern,
    find_conversation_id,
    new_conversation_id,
    output_name,
    sanitize_stem,
)
from eink_llm.resolve import Page, Question, Resolution
from eink_llm.retry import RetryPolicy, next_attempt, should_retry
from eink_llm.store import Exchange


def test_conversation_ids() -> None:
    cid = new_conversation_id(datetime(2026, 11, 24, 17, 50, 12, tzinfo=UTC))
    assert CONVERSATION_ID.fullmatch(cid) and cid.startswith("conv_20261124_175012_")
    assert new_conversation_id() != new_conversation_id()
    assert find_conversation_id(f"RESPONSE_{cid}_ex001_question (1).pdf") == cid
    assert find_conversation_id("question.pdf") is None


def test_output_names_are_safe_and_do_not_grow() -> None:
    cid = "conv_20261124_175012_1a2b3c4d"
    assert output_name("RESPONSE", cid, 1, "question") == f"RESPONSE_{cid}_ex001_question.pdf"
    follow = output_name("RESPONSE", cid, 2, f"RESPONSE_{cid}_ex001_question")
    assert follow == f"RESPONSE_{cid}_ex002_question.pdf"
    assert output_name("ERROR", cid, 12, "a/b\\c:d\x00e\nf") == f"ERROR_{cid}_ex012_a_b_c_d_e_f.pdf"
    assert len(sanitize_stem("x" * 500)) == 60
    assert sanitize_stem("...") == "page"
    assert sanitize_stem("Frage über Ärger 数学") == "Frage über Ärger 数学"


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "RESPONSE_x.pdf"
    atomic_write(target, b"old")
    atomic_write(target, b"new" * 1000)
    assert target.read_bytes() == b"new" * 1000
    assert os.listdir(tmp_path) == ["RESPONSE_x.pdf"]


def test_atomic_write_reports_an_unwritable_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="could not be saved"):
        atomic_write(tmp_path / "missing" / "x.pdf", b"data")


def test_temp_names_are_skipped_by_sync_clients_and_cleaned(tmp_path: Path) -> None:
    temp = temp_name_for(tmp_path / "RESPONSE_a.pdf")
    assert temp.name.startswith(".syncthing.") and temp.name.endswith(".tmp")
    assert is_our_temp(temp.name)
    assert not is_our_temp(".syncthing.question.pdf.tmp")  # Syncthing's own, not ours to delete
    (tmp_path / "sub").mkdir()
    stale = tmp_path / "sub" / temp.name
    stale.write_bytes(b"half")
    theirs = tmp_path / ".syncthing.question.pdf.tmp"
    theirs.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == [stale]
    assert theirs.exists()


def _exchange(n: int, answer: str, status: str = "ok") -> Exchange:
    return Exchange(n, "c", n, n, f"in{n}.pdf", status, None, answer, None, None, None, None, None, "")  # type: ignore[arg-type]


def test_history_keeps_most_recent_that_fit_in_order() -> None:
    exchanges = [_exchange(1, "a" * 400), _exchange(2, "b" * 400, "error"), _exchange(3, "c" * 40)]
    full, sequences, _ = recent_turns(exchanges, 10_000)
    assert [m.role for m in full] == ["user", "assistant", "user", "assistant"]
    assert full[1].text.startswith("a") and full[3].text.startswith("c")
    assert "in1.pdf" in full[0].text and sequences == (1, 3)
    small = recent_turns(exchanges, 40)[0]
    assert [m.text for m in small if m.role == "assistant"] == ["c" * 40]
    assert recent_turns(exchanges, 0) == ((), (), 0)
    assert estimate_tokens("abcd" * 10) == 10


def test_retry_rules() -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay=2, max_delay=60)
    transient = BackendError("busy", retryable=True)
    assert should_retry(transient, 1, policy) and not should_retry(transient, 3, policy)
    assert not should_retry(BackendError("bad key"), 1, policy)
    assert not should_retry(InputError("corrupt"), 1, policy)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rng = random.Random(1)
    delays = [(next_attempt(transient, n, policy, now, rng) - now).total_seconds() for n in range(1, 8)]
    assert 1.5 <= delays[0] <= 2 and 3 <= delays[1] <= 4 and all(d <= 60 for d in delays)
    asked = BackendError("slow down", retryable=True, retry_after=30)
    assert (next_attempt(asked, 1, policy, now, rng) - now).total_seconds() == 30
    greedy = BackendError("slow down", retryable=True, retry_after=10_000)
    assert (next_attempt(greedy, 1, policy, now, rng) - now).total_seconds() == 60


# --- fingerprint: an answer's digest of its own bytes ---------------------------------------------------------


def test_fingerprint_seals_once_and_notices_any_change() -> None:
    body = b"%PDF-1.4 ... /EinkLLMDigest (" + PLACEHOLDER.encode() + b") ... %%EOF"
    sealed = seal(body)
    assert len(sealed) == len(body) and sealed != body and is_unchanged(sealed)
    assert seal(sealed) == sealed  # already sealed: left alone
    assert not is_unchanged(body)  # the placeholder is no digest
    assert not is_unchanged(sealed.replace(b"%%EOF", b"%%EOG"))
    assert not is_unchanged(b"%PDF-1.4 no digest at all")
    assert seal(b"%PDF-1.4 no placeholder") == b"%PDF-1.4 no placeholder"
    malformed = b"/EinkLLMDigest (" + b"z" * 32 + b")"
    assert seal(malformed) == malformed and not is_unchanged(malformed)
    assert not is_unchanged(b"/EinkLLMDigest (" + b"0" * 31 + b")")  # cut short


def test_answer_names_are_matched_by_the_input_stem() -> None:
    pattern = answer_name_pattern("Maths: week 3")
    name = output_name("RESPONSE", "conv_20261125_140200_1a2b3c4d", 7, "Maths: week 3")
    assert pattern.fullmatch(name)
    assert pattern.fullmatch(name.replace("RESPONSE_", "ERROR_"))
    assert not pattern.fullmatch(output_name("RESPONSE", "conv_20261125_140200_1a2b3c4d", 7, "Maths: week 4"))
    assert not pattern.fullmatch("Copy of " + name)


def test_a_resolution_says_what_of_the_input_is_asked() -> None:
    """Pages come only with ``THESE_PAGES``, and never none of them: no empty tuple quietly means "nothing new"."""
    page = Page(Image.new("L", (8, 8), 255), "new-ink", 1)
    assert Resolution(None, "notebook", question=Question.THESE_PAGES, pages=(page,)).pages == (page,)
    assert Resolution(None, "duplicate", question=Question.NOTHING_NEW).nothing_new
    assert not Resolution(None, "new").nothing_new
    assert Resolution(None, "new").question is Question.WHOLE_INPUT
    wrong = [(Question.THESE_PAGES, ()), (Question.WHOLE_INPUT, (page,)), (Question.NOTHING_NEW, (page,))]
    for question, pages in wrong:
        with pytest.raises(ValueError):
            Resolution(None, "new", question=question, pages=pages)
