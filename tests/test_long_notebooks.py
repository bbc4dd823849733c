"""Long native notebooks (issue 14): a notebook that grows for months is never refused for its length up to
``input.max_notebook_pages``, and only what is new is carried and sent, however long it is.

Real parts throughout: real .rmdoc documents built from the corpus's .rm pages (tests/notebooks.py's ``rmdoc``),
the real ten-page Supernote notebook, ``eink-llm process``'s path (a real reading cage, a real SQLite database)
and a local server speaking OpenAI's wire format, whose received images are what is checked. ``input.max_pages``
is 3 here, so "long" is a dozen pages.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from eink_llm.config import load_config
from eink_llm.service import ProcessResult, process_files
from tests.fakes import FakeLLMServer
from tests.harness import pdf_text, write_config
from tests.notebooks import SUPERNOTE, note_without_last_page, rmdoc

pytest.importorskip("rmscene")
pytest.importorskip("supernotelib")

MAX_PAGES = 3
#: Six distinct pages (each a different .rm of the corpus); a blank page (``None``) between them.
A, B, C, D, E, F = (
    "Lines_v2.rm",
    "Color_and_tool_v3.14.4.rm",
    "Normal_A_stroke_2_layers_v3.3.2.rm",
    "More_color_highlight_shader_v3.15.4.2.rm",
    "Bold_Heading_Bullet_Normal.rm",
    "test-crdt-ordering.rm",
)
#: Ten pages, five of them written on: longer than one question may carry (MAX_PAGES).
LONG: list[str | None] = [A, None, B, None, C, None, D, None, E, None]


class Notebooks:
    def __init__(self, tmp_path: Path, server: FakeLLMServer, **input_limits: Any) -> None:
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir()
        self.database = tmp_path / "state" / "db.sqlite3"
        self.server = server
        llm = {"backend": "openai", "base_url": server.base_url, "model": "vision-test", "timeout_seconds": 5}
        self.config = write_config(
            tmp_path / "config.yaml",
            self.inbox,
            self.database,
            llm=llm,
            input={"max_pages": MAX_PAGES, **input_limits},
        )

    def save(self, name: str, data: bytes) -> ProcessResult:
        """The notebook synced in place with ``data``, and processed."""
        path = self.inbox / name
        path.write_bytes(data)
        (result,) = process_files(load_config(self.config), [path])
        return result

    def sent(self) -> tuple[int, str]:
        """The images and the text of the one request the model got since the last call; then forgets it."""
        (request,) = self.server.requests
        content = request.body["messages"][-1]["content"]
        text = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        self.server.reset()
        return len(request.images()), text

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with sqlite3.connect(self.database) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, tuple(params)).fetchall()


@pytest.fixture()
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


def status(result: ProcessResult) -> str:
    assert result.outcome is not None, result.message
    return result.outcome.status


def error_text(result: ProcessResult) -> str:
    assert result.outcome is not None and result.outcome.output is not None, result.message
    assert result.outcome.output.name.startswith("ERROR_")
    return " ".join(pdf_text(result.outcome.output).split())


def test_first_sight_of_a_long_notebook_is_an_error_page_then_only_new_pages_go(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    books = Notebooks(tmp_path, server)
    # Sync turned on for a notebook already ten pages long: more than one question may carry.
    first = books.save("Physics.rmdoc", rmdoc(LONG))
    assert status(first) == "error"
    text = error_text(first)
    assert (
        "Physics.rmdoc has 10 pages (5 of them written on), more than one question may carry (input.max_pages = 3), "
        "so none of them was sent." in text
    )
    assert "Its pages are now known: write on a new page" in text
    assert not server.requests  # nothing was asked
    (job,) = books.rows("SELECT job_id, state FROM jobs")
    assert job["state"] == "done"  # its pages are covered: the next save is compared with them
    assert len(books.rows("SELECT 1 FROM page_prints WHERE job_id = ?", [job["job_id"]])) == 10

    # The notebook grows by a page: only that page is sent, in the conversation the ERROR_ page opened.
    grown = books.save("Physics.rmdoc", rmdoc([*LONG, F]))
    assert status(grown) == "ok", grown.message
    images, text = books.sent()
    assert images == 1
    assert "page 11, a new page" in text
    assert first.outcome is not None and grown.outcome is not None
    assert grown.outcome.conversation_id == first.outcome.conversation_id
    assert grown.outcome.exchange == 2

    # Synced again unchanged (other bytes, the same pages): nothing new, nothing sent.
    assert status(books.save("Physics.rmdoc", rmdoc([*LONG, F], name="Physics again"))) == "skipped"
    assert not server.requests


def test_a_page_changed_deep_in_a_long_notebook_is_sent_alone(tmp_path: Path, server: FakeLLMServer) -> None:
    books = Notebooks(tmp_path, server)
    pages: list[str | None] = [A, None, B, None, C, None, None, None, D, None, None, E]
    assert status(books.save("Long.rmdoc", rmdoc(pages))) == "error"  # first sight: 12 pages
    written = list(pages)
    written[6] = F  # page 7, blank until now, written on
    result = books.save("Long.rmdoc", rmdoc(written))
    assert status(result) == "ok", result.message
    images, text = books.sent()
    assert images == 1
    assert "page 7" in text


def test_a_supernote_notebook_longer_than_one_question_grows_by_its_last_page(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    books = Notebooks(tmp_path, server)
    five = SUPERNOTE / "stroke-n5-20260016-isolation-tools-colors-widths.note"  # five pages written on
    first = books.save("Pens.note", note_without_last_page(five))
    assert status(first) == "error"
    assert "Pens.note has 4 pages, more than one question may carry (input.max_pages = 3)" in error_text(first)
    grown = books.save("Pens.note", five.read_bytes())
    assert status(grown) == "ok", grown.message
    images, text = books.sent()
    assert images == 1
    assert "page 5, a new page" in text


def test_more_changed_pages_than_one_question_carries_then_the_next_page_alone(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    books = Notebooks(tmp_path, server)
    pages: list[str | None] = [A, B, None, None, None, None]
    assert status(books.save("Many.rmdoc", rmdoc(pages))) == "ok"  # six pages, two written on: within the limit
    assert books.sent()[0] == 2
    # Four blank pages written on at once: more new pages than one question may carry.
    many = books.save("Many.rmdoc", rmdoc([A, B, C, D, E, F]))
    assert status(many) == "error"
    assert "4 of the 6 pages of Many.rmdoc are new or changed since it was last answered" in error_text(many)
    assert not server.requests
    # Their prints were kept: the next page alone is sent, in the same conversation.
    grown = books.save("Many.rmdoc", rmdoc([A, B, C, D, E, F, A]))
    assert status(grown) == "ok", grown.message
    assert books.sent()[0] == 1
    assert many.outcome is not None and grown.outcome is not None
    assert grown.outcome.conversation_id == many.outcome.conversation_id


def test_blank_pages_never_count_against_what_one_question_carries(tmp_path: Path, server: FakeLLMServer) -> None:
    books = Notebooks(tmp_path, server)
    fresh = books.save("Fresh.rmdoc", rmdoc([None] * 12))  # a new notebook, nothing written on it yet
    assert status(fresh) == "skipped"
    assert fresh.outcome is not None and fresh.outcome.note == "a notebook with nothing written on it yet"
    assert not server.requests
    written: list[str | None] = [None] * 12
    written[2], written[9] = A, B  # twelve pages, two written on: within what one question carries
    result = books.save("Fresh.rmdoc", rmdoc(written))
    assert status(result) == "ok", result.message
    images, text = books.sent()
    assert images == 2
    assert "handwriting on page 3" in text and "handwriting on page 10" in text


def test_a_notebook_longer_than_max_notebook_pages_is_an_error_page(tmp_path: Path, server: FakeLLMServer) -> None:
    books = Notebooks(tmp_path, server, max_notebook_pages=8)
    result = books.save("Huge.rmdoc", rmdoc(LONG))
    assert status(result) == "error"
    text = error_text(result)
    assert "Huge.rmdoc is a reMarkable document of 10 pages; the limit is 8." in text
    assert "input.max_notebook_pages" in text
    assert not server.requests
