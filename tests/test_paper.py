"""Conversations that continue on paper: every way an input joins a conversation (1a–1f), what of it reaches
the model, the transcription, and the context (summary + full-text hits).

Real parts throughout: real PDFs (reportlab, pypdfium2), our own RESPONSE_ PDFs annotated the way tablets do
(vector ink added to the PDF; or the pages rasterized and re-exported), a real SQLite file, the same queue and
pipeline as the daemon (``process_files``, what ``eink-llm process`` runs), and a local server speaking the
OpenAI wire format that records the images it received.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image

from eink_llm.config import load_config
from eink_llm.context import SUMMARY_PROMPT
from eink_llm.naming import new_conversation_id, output_name
from eink_llm.pipeline import Pipeline
from eink_llm.reader import sha256_file
from eink_llm.render import RenderMeta, render_answer
from eink_llm.retry import Breakers
from eink_llm.service import ProcessResult, close_backends, open_backends, process_files
from eink_llm.store import Store
from tests.fakes import FakeLLMServer
from tests.harness import pdf_text, write_config
from tests.samples import add_vector_ink, notebook_pdf, rasterized_with_ink

INK = 100  # darker than this is ink in the received images


# --- the set-up --------------------------------------------------------------------------------------------


class Paper:
    """A configured eink-llm with its inbox, database and model server, and helpers to ask and inspect."""

    def __init__(self, tmp_path: Path, server: FakeLLMServer, **sections: dict[str, Any]) -> None:
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir(exist_ok=True)
        self.database = tmp_path / "state" / "db.sqlite3"
        self.server = server
        llm = {"backend": "openai", "base_url": server.base_url, "model": "vision-test", "timeout_seconds": 5}
        llm.update(sections.pop("llm", {}))
        watch = sections.pop("watch", {"folders": [str(self.inbox)]})
        self.config = write_config(
            tmp_path / "config.yaml", self.inbox, self.database, llm=llm, watch=watch, **sections
        )

    def ask(self, *files: Path) -> list[ProcessResult]:
        return process_files(load_config(self.config), list(files))

    def one(self, file: Path) -> ProcessResult:
        (result,) = self.ask(file)
        return result

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with sqlite3.connect(self.database) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, params).fetchall()


@pytest.fixture()
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


@pytest.fixture()
def paper(tmp_path: Path, server: FakeLLMServer) -> Paper:
    return Paper(tmp_path, server)


def answered(result: ProcessResult) -> tuple[str, int, Path]:
    assert result.outcome is not None and result.outcome.status == "ok", result.message
    assert result.outcome.conversation_id and result.outcome.exchange and result.outcome.output
    return result.outcome.conversation_id, result.outcome.exchange, result.outcome.output


def dark_fraction(image: Image.Image) -> float:
    grey = image.convert("L")
    histogram = grey.histogram()
    return sum(histogram[:INK]) / (grey.width * grey.height)


# --- 1a–1f: how an input joins a conversation -------------------------------------------------------------


def test_new_file_opens_a_conversation_and_a_named_file_continues_it(paper: Paper) -> None:  # 1f, 1a
    first, number, _ = answered(paper.one(notebook_pdf(paper.inbox / "question.pdf", [1])))
    assert number == 1
    other, number, _ = answered(paper.one(notebook_pdf(paper.inbox / "unrelated.pdf", [2])))
    assert other != first and number == 1
    again, number, _ = answered(paper.one(notebook_pdf(paper.inbox / f"more on {first}.pdf", [3])))
    assert (again, number) == (first, 2)


def test_an_annotated_answer_sends_only_the_new_ink(paper: Paper) -> None:  # 1b, in place
    conversation, _, response = answered(paper.one(notebook_pdf(paper.inbox / "question.pdf", [1])))
    paper.server.reset()
    original_pages = len(pdfium.PdfDocument(response.read_bytes()))
    assert original_pages >= 2  # the answer and its reply page
    # The user writes a bar on the (blank, lined) reply page and circles something on page 1, then the
    # tablet exports the file over itself.
    annotated = response.with_suffix(".tmp.pdf")
    reply = original_pages - 1
    add_vector_ink(response, annotated, reply, [(40, 300, 220, 14)])
    shutil.move(annotated, response)

    again, number, _ = answered(paper.one(response))
    assert (again, number) == (conversation, 2)
    (request,) = paper.server.requests
    images = request.images()
    assert len(images) == 1, "only the cut-out new ink, no context page for ink on an empty reply page"
    bar = images[0].convert("L")
    assert bar.width > 4 * bar.height, bar.size  # the bar's shape, not a page
    assert dark_fraction(bar) > 0.3  # mostly the bar: none of our answer's text came along
    user_text = str(request.body["messages"][-1]["content"][0]["text"])
    assert "exchange 1" in user_text and "not a new question" in user_text
    assert "fake LLM server" not in str(request.body["messages"][-1]), "our old answer came back as a question"


def test_ink_on_our_text_comes_with_the_page_faded_for_context(paper: Paper) -> None:  # 1b, renamed copy
    conversation, _, response = answered(paper.one(notebook_pdf(paper.inbox / "question.pdf", [1])))
    paper.server.reset()
    copy = paper.inbox / f"Copy of {response.name}"
    # circles drawn over the top of page 1, where the answer's heading and first lines are
    rasterized_with_ink(response, copy, 0, [(60, 150, 500, 260)])

    again, number, _ = answered(paper.one(copy))
    assert (again, number) == (conversation, 2)
    images = paper.server.requests[0].images()
    assert len(images) == 2, "the new ink, then its page for context"
    crop, context = (image.convert("L") for image in images)
    assert crop.width < context.width and crop.height < context.height
    # In the context page our answer is faded: the only really dark pixels are the new ink.
    assert dark_fraction(context) < 0.02
    assert min(context.histogram()[INK:250]) >= 0 and sum(context.histogram()[150:250]) > 0


def test_pdf_metadata_ties_a_renamed_answer_to_its_conversation(paper: Paper) -> None:  # 1c
    conversation, _, response = answered(paper.one(notebook_pdf(paper.inbox / "question.pdf", [1])))
    paper.server.reset()
    renamed = paper.inbox / "Scan 2026-11-25.pdf"
    reply = len(pdfium.PdfDocument(response.read_bytes())) - 1
    add_vector_ink(response, renamed, reply, [(40, 300, 220, 14)])
    again, number, _ = answered(paper.one(renamed))
    assert (again, number) == (conversation, 2)
    assert len(paper.server.requests[0].images()) == 1


def test_a_grown_notebook_sends_only_its_new_page(paper: Paper) -> None:  # 1d
    notebook = paper.inbox / "Notebook.pdf"
    conversation, _, _ = answered(paper.one(notebook_pdf(notebook, [11, 12, 13])))
    assert len(paper.server.requests[0].images()) == 3
    paper.server.reset()

    notebook_pdf(notebook, [11, 12, 13, 14])  # re-exported with one new page
    again, number, _ = answered(paper.one(notebook))
    assert (again, number) == (conversation, 2)
    assert len(paper.server.requests[0].images()) == 1
    user_text = str(paper.server.requests[0].body["messages"][-1]["content"][0]["text"])
    assert "page 4" in user_text

    paper.server.reset()
    notebook_pdf(notebook, [11, 12, 13, 14], text=" ")  # other bytes, same pages: nothing to answer
    (result,) = paper.ask(notebook)
    assert result.outcome is not None and result.outcome.status == "skipped"
    assert result.answered and "nothing new" in result.message
    assert not paper.server.requests
    assert len(list(paper.inbox.glob("RESPONSE_*"))) == 2


def test_a_blank_page_added_to_a_notebook_asks_nothing(paper: Paper) -> None:
    notebook = paper.inbox / "Notebook.pdf"
    answered(paper.one(notebook_pdf(notebook, [31, 32])))
    paper.server.reset()
    notebook_pdf(notebook, [31, 32, None])  # re-exported with an empty page at the end
    (result,) = paper.ask(notebook)
    assert result.outcome is not None and result.outcome.status == "skipped", result.message
    assert not paper.server.requests


def test_folder_mode_keeps_one_conversation_per_subfolder(tmp_path: Path, server: FakeLLMServer) -> None:  # 1e
    inbox = tmp_path / "inbox"
    paper = Paper(tmp_path, server, watch={"folders": [{"path": str(inbox), "conversations": "per-subfolder"}]})
    (inbox / "physics").mkdir()
    (inbox / "history").mkdir()
    physics, n1, _ = answered(paper.one(notebook_pdf(inbox / "physics" / "a.pdf", [1])))
    same, n2, _ = answered(paper.one(notebook_pdf(inbox / "physics" / "b.pdf", [2])))
    history, n3, _ = answered(paper.one(notebook_pdf(inbox / "history" / "c.pdf", [3])))
    loose1, _, _ = answered(paper.one(notebook_pdf(inbox / "d.pdf", [4])))
    loose2, _, _ = answered(paper.one(notebook_pdf(inbox / "e.pdf", [5])))
    assert (same, n1, n2) == (physics, 1, 2)
    assert history != physics and n3 == 1
    assert len({loose1, loose2, physics, history}) == 4  # files directly in the folder stay per-file


def test_an_archived_conversation_is_never_resumed_and_the_answer_says_so(paper: Paper) -> None:
    conversation, _, _ = answered(paper.one(notebook_pdf(paper.inbox / "question.pdf", [1])))
    with Store.open(paper.database) as store:
        assert store.archive_conversation(conversation)
    new, number, output = answered(paper.one(notebook_pdf(paper.inbox / f"{conversation} again.pdf", [2])))
    assert new != conversation and number == 1
    text = " ".join(pdf_text(output).split())
    assert "archived" in text and conversation in text


# --- transcription and context ---------------------------------------------------------------------------


def test_transcription_is_shown_stored_and_searchable(paper: Paper) -> None:
    paper.server.answer_fn = lambda body: (
        "<transcription>How tall is the Matterhorn?</transcription>\n\nIt is **4,478 m** tall."
    )
    _, _, output = answered(paper.one(notebook_pdf(paper.inbox / "q.pdf", [1])))
    text = " ".join(pdf_text(output).split())
    assert "You asked" in text and "How tall is the Matterhorn?" in text and "4,478 m" in text
    assert "<transcription>" not in text
    system = str(paper.server.requests[0].body["messages"][0]["content"])
    assert "<transcription>" in system
    (row,) = paper.rows("SELECT transcription, response_text FROM exchanges")
    assert row["transcription"] == "How tall is the Matterhorn?"
    assert row["response_text"] == "It is **4,478 m** tall."
    with Store.open(paper.database) as store:
        assert [hit.sequence_number for hit in store.search("matterhorn")] == [1]


def test_a_model_that_ignores_the_format_still_gets_its_answer_shown(paper: Paper) -> None:
    paper.server.answer_fn = lambda body: "Just an answer, no tags."
    _, _, output = answered(paper.one(notebook_pdf(paper.inbox / "q.pdf", [1])))
    assert "Just an answer, no tags." in pdf_text(output)
    (row,) = paper.rows("SELECT transcription FROM exchanges")
    assert row["transcription"] is None


def test_exchange_six_gets_the_summary_and_the_search_hit_from_exchange_one(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    paper = Paper(tmp_path, server, context={"history_tokens": 900})
    filler = " ".join(f"word{n}" for n in range(220))  # ~ 300 tokens an answer: only two fit in full

    def answer(body: dict[str, Any]) -> str:
        system = str(body["messages"][0]["content"])
        if system.startswith(SUMMARY_PROMPT):
            return "SUMMARY: the user is planning a trip and asked about several places."
        number = len([m for m in body["messages"] if m["role"] == "assistant"]) + 1
        topic = "Zanzibar spice farms are worth a visit." if "ZANZIBAR-Q" in str(body) else "Another place."
        return f"<transcription>question {number}</transcription>\n\n{topic} {filler}"

    server.answer_fn = answer
    conversation, _, _ = answered(paper.one(notebook_pdf(paper.inbox / "trip.pdf", [1], text="ZANZIBAR-Q")))
    for seed in range(2, 6):
        answered(paper.one(notebook_pdf(paper.inbox / f"{conversation} part {seed}.pdf", [seed], text="next")))
    summaries = [r for r in server.requests if str(r.body["messages"][0]["content"]).startswith(SUMMARY_PROMPT)]
    assert summaries, "the conversation outgrew its budget, so its summary was refreshed"
    (row,) = paper.rows("SELECT context_summary, summary_through FROM conversations")
    assert row["context_summary"].startswith("SUMMARY:") and row["summary_through"] >= 1

    server.reset()
    _, number, _ = answered(
        paper.one(notebook_pdf(paper.inbox / f"{conversation} six.pdf", [6], text="What about zanzibar again?"))
    )
    assert number == 6
    request = server.requests[0]
    system = str(request.body["messages"][0]["content"])
    assert "SUMMARY: the user is planning a trip" in system
    assert re.search(r"Exchange 1 of this conversation.*Zanzibar spice farms", system, re.DOTALL), system
    turns = [m for m in request.body["messages"] if m["role"] == "assistant"]
    assert 1 <= len(turns) <= 2 and all("Zanzibar" not in str(t["content"]) for t in turns)
    (meta,) = paper.rows("SELECT metadata FROM exchanges WHERE sequence_number = 6")
    assert '"summary": true' in meta["metadata"]


@pytest.mark.parametrize("why", ["written by an older version", "storage.keep_answer_pdfs_days: 0"])
def test_an_annotated_answer_without_its_kept_copy_is_still_not_asked_again(
    tmp_path: Path, server: FakeLLMServer, why: str
) -> None:
    """With no copy of the answer to compare with (written before copies were kept, or copies turned off), the
    whole pages go, but the answer's text layer does not, and the model is told the print is its own answer."""
    keep = {"storage": {"keep_answer_pdfs_days": 0}} if "keep" in why else {}
    paper = Paper(tmp_path, server, **keep)
    conversation, _, response = answered(paper.one(notebook_pdf(paper.inbox / "question.pdf", [1])))
    with sqlite3.connect(paper.database) as db:
        if keep:
            assert db.execute("SELECT COUNT(*) FROM outputs WHERE pdf IS NOT NULL").fetchone() == (0,)
        else:
            db.execute("UPDATE outputs SET pdf = NULL")
    paper.server.reset()
    add_vector_ink(response, paper.inbox / "annotated.pdf", 0, [(40, 100, 220, 14)])
    again, number, _ = answered(paper.one(paper.inbox / "annotated.pdf"))
    assert (again, number) == (conversation, 2)
    question = str(paper.server.requests[0].body["messages"][-1])
    assert "your earlier answer, not a new question" in question and "fake LLM server" not in question


def test_memory_finds_your_other_conversations_but_never_another_users(tmp_path: Path, server: FakeLLMServer) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    alice.mkdir()
    bob.mkdir()
    paper = Paper(
        tmp_path,
        server,
        watch={"folders": [{"path": str(alice), "user": "alice"}, {"path": str(bob), "user": "bob"}]},
        context={"memory": True},
    )
    server.answer_fn = lambda body: (
        "Zanzibar spice farms are worth a visit." if "ZANZIBAR-FIRST" in str(body) else "Noted."
    )
    answered(paper.one(notebook_pdf(alice / "trip.pdf", [1], text="ZANZIBAR-FIRST trip")))
    server.reset()
    answered(paper.one(notebook_pdf(bob / "mine.pdf", [2], text="what about zanzibar")))
    answered(paper.one(notebook_pdf(alice / "later.pdf", [3], text="what about zanzibar")))
    bob_system, alice_system = (str(r.body["messages"][0]["content"]) for r in server.requests)
    assert "Zanzibar spice farms" not in bob_system
    assert "From another conversation" in alice_system and "Zanzibar spice farms" in alice_system


# --- the folder remembers ----------------------------------------------------------------------------------


def test_with_the_database_lost_nothing_in_the_folder_is_answered_twice(paper: Paper) -> None:
    """A new server: the synced folder comes along, the database does not. The questions already answered (or
    refused with an ERROR_ page) and our own answers are all recognised from the folder alone; only an answer
    written on afterwards is a question again."""
    question = notebook_pdf(paper.inbox / "question.pdf", [1])
    conversation, _, response = answered(paper.one(question))
    broken = paper.inbox / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 20)
    refused = paper.one(broken)
    assert refused.outcome is not None and refused.outcome.status == "error" and refused.outcome.output
    error_page = refused.outcome.output

    shutil.rmtree(paper.database.parent)
    paper.server.reset()
    before = sorted(path.name for path in paper.inbox.iterdir())
    results = {result.path.name: result for result in paper.ask(question, response, broken, error_page)}
    assert {name: r.outcome.status if r.outcome else None for name, r in results.items()} == dict.fromkeys(
        [question.name, response.name, broken.name, error_page.name], "skipped"
    )
    assert "answered before" in results[question.name].message
    assert "answered before" in results[broken.name].message
    assert "one of our answers, unchanged" in results[response.name].message
    assert "one of our answers, unchanged" in results[error_page.name].message
    assert paper.server.requests == []
    assert sorted(path.name for path in paper.inbox.iterdir()) == before  # nothing new on the tablet

    # Written on, the old answer is a question again; this database never knew its conversation.
    reply = len(pdfium.PdfDocument(response.read_bytes())) - 1
    annotated = add_vector_ink(response, response.with_suffix(".tmp.pdf"), reply, [(40, 300, 220, 14)])
    shutil.move(annotated, response)
    new, number, output = answered(paper.one(response))
    assert new != conversation and number == 1
    assert "does not know" in " ".join(pdf_text(output).split())  # the note at the top says why
    (request,) = paper.server.requests
    user_text = str(request.body["messages"][-1]["content"][0]["text"])
    assert "I wrote on an answer of yours" in user_text
    assert "fake LLM server" not in str(request.body["messages"][-1]), "our old answer came back as a question"


def test_a_job_run_again_after_its_answer_was_written_still_completes_its_exchange(paper: Paper) -> None:
    """The window between writing the answer and recording it (a crash, a failed commit): on the rerun, the
    answer already in the folder records this very input, but the job must finish its own exchange rather
    than be skipped as "answered before"."""
    question = notebook_pdf(paper.inbox / "question.pdf", [1])
    loaded = load_config(paper.config)
    with Store.open(loaded.database_path) as store:
        sha = sha256_file(question)
        info = question.stat()
        job_id = store.enqueue(question, root=paper.inbox, sha256=sha, size=info.st_size, mtime_ns=info.st_mtime_ns)
        assert job_id is not None
        job = store.claim_job(only=[job_id])
        assert job is not None
        exchange = store.reserve_exchange(
            job, conversation_id=new_conversation_id(), new_conversation=True, input_type="pdf"
        )
        meta = RenderMeta("question", exchange.conversation_id, 1, datetime.now(UTC), input_sha256=sha)
        written = paper.inbox / output_name("RESPONSE", exchange.conversation_id, 1, "question")
        written.write_bytes(render_answer("An answer written just before the crash.", meta))
        assert store.requeue_running() == 1

        backends = open_backends(loaded.config)
        try:
            rerun = store.claim_job(only=[job_id])
            assert rerun is not None
            outcome = Pipeline(loaded.config, store, backends, Breakers(threshold=2**31)).run(rerun)
        finally:
            close_backends(backends.values())
    assert outcome.status == "ok" and outcome.output == written, outcome
    [row] = paper.rows("SELECT status, sequence_number, response_text FROM exchanges")
    assert (row["status"], row["sequence_number"]) == ("ok", 1) and row["response_text"]
    assert [path.name for path in paper.inbox.glob("RESPONSE_*")] == [written.name]


def test_an_answer_synced_back_with_a_decomposed_name_still_records_its_question(paper: Paper) -> None:
    """macOS and some sync clients hand names back in decomposed Unicode (NFD); the answer still counts."""
    question = notebook_pdf(paper.inbox / "Café.pdf", [1])
    _, _, response = answered(paper.one(question))
    decomposed = response.with_name(unicodedata.normalize("NFD", response.name))
    assert decomposed.name != response.name
    response.rename(decomposed)
    shutil.rmtree(paper.database.parent)
    (result,) = paper.ask(question)
    assert result.outcome is not None and result.outcome.status == "skipped", result.message
    assert "answered before" in result.message
