"""Native notebooks with the real daemon (issue 14): a Supernote .note and a reMarkable .rmdoc dropped into the
watched folder are answered; each re-synced with a new page continues its conversation with only that page; a
notebook saved five times while it is being written gets one answer."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import FakeLLMServer
from tests.harness import DaemonProcess, db_rows, outputs, pdf_text, wait_until, write_config
from tests.notebooks import SUPERNOTE, note_without_last_page, rmdoc

NOTEBOOK_SETTLE = 2.0


@pytest.fixture()
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


def config(tmp_path: Path, inbox: Path, server: FakeLLMServer) -> Path:
    llm = {"backend": "openai", "base_url": server.base_url, "model": "vision-test", "api_key": "sk-x"}
    watch = {"folders": [str(inbox)], "settle_seconds": 0.3, "notebook_settle_seconds": NOTEBOOK_SETTLE}
    return write_config(tmp_path / "config.yaml", inbox, tmp_path / "state" / "db.sqlite3", llm=llm, watch=watch)


def exchanges(tmp_path: Path) -> list[dict[str, object]]:
    rows = db_rows(tmp_path / "state" / "db.sqlite3", "SELECT * FROM exchanges ORDER BY exchange_id")
    return [dict(r) for r in rows]


def test_notebooks_are_answered_grow_and_settle(tmp_path: Path, server: FakeLLMServer) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    staging = tmp_path / "tablet"
    staging.mkdir()
    with DaemonProcess(config(tmp_path, inbox, server), tmp_path) as daemon:
        # A Supernote notebook straight from the sync folder: four pages of ink; then it comes back with a fifth.
        pens = SUPERNOTE / "stroke-n5-20260016-isolation-tools-colors-widths.note"
        (staging / "Pens.note").write_bytes(note_without_last_page(pens))
        shutil.move(staging / "Pens.note", inbox / "Pens.note")
        (note_answer,) = wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=60, what="the .note answered")
        assert note_answer.name.endswith("_ex001_Pens.pdf")
        assert len(server.requests[0].images()) == 4
        shutil.copy(pens, staging / "Pens.note")
        shutil.move(staging / "Pens.note", inbox / "Pens.note")
        wait_until(lambda: len(server.requests) == 2, timeout=60, what="the grown .note answered")
        assert len(server.requests[1].images()) == 1  # only the new page
        wait_until(
            lambda: [p for p in outputs(inbox, "RESPONSE_") if p.name.endswith("_ex002_Pens.pdf")],
            timeout=30,
            what="exchange 2 of the .note's conversation",
        )

        # A reMarkable document with one page, then re-synced with a second page: only that page is sent.
        (staging / "Physics.rmdoc").write_bytes(rmdoc(["Lines_v2.rm"]))
        shutil.move(staging / "Physics.rmdoc", inbox / "Physics.rmdoc")
        wait_until(lambda: len(server.requests) == 3, timeout=60, what="the .rmdoc answered")
        assert len(server.requests[2].images()) == 1
        (staging / "Physics.rmdoc").write_bytes(rmdoc(["Lines_v2.rm", "Color_and_tool_v3.14.4.rm"]))
        shutil.move(staging / "Physics.rmdoc", inbox / "Physics.rmdoc")
        wait_until(lambda: len(server.requests) == 4, timeout=60, what="the grown .rmdoc answered")
        assert len(server.requests[3].images()) == 1  # only the new page
        second = wait_until(
            lambda: [p for p in outputs(inbox, "RESPONSE_") if p.name.endswith("_ex002_Physics.pdf")],
            timeout=30,
            what="exchange 2 of the notebook's conversation",
        )
        first = next(p for p in outputs(inbox, "RESPONSE_") if p.name.endswith("_ex001_Physics.pdf"))
        assert second[0].name.split("_ex002_")[0] == first.name.split("_ex001_")[0]  # the same conversation

        # Written on for a while: saved five times, a page more each time, each save well within the settle
        # period. Without it, every save would be answered (each brings a new page).
        pages = ["Lines_v2.rm", "Color_and_tool_v3.14.4.rm"]
        written = [
            "Normal_A_stroke_2_layers_v3.3.2.rm",
            "More_color_highlight_shader_v3.15.4.2.rm",
            "Bold_Heading_Bullet_Normal.rm",
            "test-crdt-ordering.rm",
            "Lines_v2.rm",
        ]
        for save in range(5):
            (inbox / "Physics.rmdoc").write_bytes(rmdoc([*pages, *written[: save + 1]]))
            time.sleep(NOTEBOOK_SETTLE / 4)
        wait_until(lambda: len(server.requests) >= 5, timeout=60, what="an answer to the five saves")
        time.sleep(NOTEBOOK_SETTLE * 2)  # long enough for any other save to have been answered too
        assert len(server.requests) == 5
        assert len(server.requests[4].images()) == 5  # the five new pages, once
        wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 5, timeout=30, what="five answers")
        assert daemon.stop() == 0
    assert not outputs(inbox, "ERROR_")
    rows = [(r["input_file"], r["sequence_number"], r["status"]) for r in exchanges(tmp_path)]
    assert rows == [
        ("Pens.note", 1, "ok"),
        ("Pens.note", 2, "ok"),
        ("Physics.rmdoc", 1, "ok"),
        ("Physics.rmdoc", 2, "ok"),
        ("Physics.rmdoc", 3, "ok"),
    ]


def test_a_damaged_notebook_gets_an_error_pdf_and_the_daemon_goes_on(tmp_path: Path, server: FakeLLMServer) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    note = (SUPERNOTE / "blank-a6x-3.26.40-two-pages.note").read_bytes()
    with DaemonProcess(config(tmp_path, inbox, server), tmp_path) as daemon:
        (inbox / "Broken.note").write_bytes(note[: len(note) // 2])
        (error,) = wait_until(lambda: outputs(inbox, "ERROR_"), timeout=60, what="the ERROR_ for the broken .note")
        (inbox / "Good.rmdoc").write_bytes(rmdoc(["Lines_v2.rm"]))
        wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=60, what="the next notebook answered")
        assert daemon.stop() == 0
    assert error.name.endswith("_ex001_Broken.pdf")
    text = " ".join(pdf_text(error).split())
    assert "Broken.note is a Supernote notebook that could not be read" in text
    assert len(server.requests) == 1


def test_notebooks_that_waited_for_the_extra_are_read_once_it_is_installed(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    """The ERROR_ page says "install the extra and restart eink-llm": after that restart the notebook is answered
    by itself (same exchange, the answer in place of the ERROR_ page), with no re-save on the tablet."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    blocker = tmp_path / "without-extra"
    blocker.mkdir()
    # Every Python process of the daemon (its reading processes too) starts as if the extra were not installed.
    (blocker / "sitecustomize.py").write_text(
        "import sys\nsys.modules['supernotelib'] = None\nsys.modules['rmscene'] = None\n"
    )
    settings = config(tmp_path, inbox, server)
    with DaemonProcess(settings, tmp_path, env={"PYTHONPATH": str(blocker)}) as daemon:
        written = SUPERNOTE / "turkish-a6x-20230015-handwriting-erase.note"
        (inbox / "Pens.note").write_bytes(written.read_bytes())
        (error,) = wait_until(lambda: outputs(inbox, "ERROR_"), timeout=60, what="the ERROR_ naming the extra")
        assert "pip install 'eink-llm[notebooks]'" in " ".join(pdf_text(error).split())
        assert daemon.stop() == 0
    assert not server.requests
    with DaemonProcess(settings, tmp_path) as daemon:  # the extra "installed"
        (answer,) = wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=60, what="the notebook answered")
        wait_until(lambda: not error.exists(), timeout=30, what="the ERROR_ page replaced by the answer")
        assert answer.name.endswith("_ex001_Pens.pdf") and len(server.requests) == 1
        assert "reading the notebooks that waited for it" in daemon.log()
        assert daemon.stop() == 0
