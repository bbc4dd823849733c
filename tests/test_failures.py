"""Failed pages: logged at a level that matches whose fault it was, and retried three ways."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from eink_llm.config import load_config
from eink_llm.service import process_files, retry_files
from tests import samples
from tests.fakes import FakeLLMServer, Fault
from tests.harness import DaemonProcess, clean_env, db_rows, outputs, pdf_text, wait_until, write_config


def _process(config: Path, home: Path, *files: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "eink_llm", "process", "-c", str(config), *map(str, files)],
        cwd=home,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


def test_every_error_page_is_logged_at_warning_or_error(tmp_path: Path) -> None:
    """With logging.level: warning, a page that got an ERROR_ still leaves a line: warning when the page was
    at fault, error when the AI service (here: the answering program) was."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    bad_page = inbox / "garbage.pdf"
    bad_page.write_bytes(b"this is not a PDF at all")
    config = write_config(tmp_path / "c.yaml", inbox, tmp_path / "db.sqlite3", logging={"level": "warning"})
    lines = _process(config, tmp_path, bad_page)
    exchanges = [line for line in lines if line.get("event") == "exchange"]
    assert [e["level"] for e in exchanges] == ["warning"], lines

    failing = write_config(
        tmp_path / "f.yaml",
        inbox,
        tmp_path / "db2.sqlite3",
        logging={"level": "warning"},
        llm={"backend": "command", "options": {"command": ["false"]}},
    )
    page = samples.make_png(inbox / "question.png", (300, 400))
    lines = _process(failing, tmp_path, page)
    exchanges = [line for line in lines if line.get("event") == "exchange"]
    assert [e["level"] for e in exchanges] == ["error"], lines
    assert all(line["level"] in {"warning", "error"} for line in lines)


# --- retry, three ways ------------------------------------------------------------------------------------


@pytest.fixture()
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


def _config(tmp_path: Path, server: FakeLLMServer) -> tuple[Path, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    llm = {"backend": "openai", "base_url": server.base_url, "model": "vision-test", "timeout_seconds": 5}
    config = write_config(tmp_path / "c.yaml", inbox, tmp_path / "db.sqlite3", llm=llm, retry={"max_attempts": 1})
    return config, inbox


def _exchanges(database: Path) -> list[tuple[str, int, str, str]]:
    rows = db_rows(database, "SELECT conversation_id, sequence_number, status, output_file FROM exchanges")
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def _failed_page(tmp_path: Path, server: FakeLLMServer) -> tuple[Path, Path, Path]:
    """A page that got an ERROR_ because the AI service was down: (config, page, error page)."""
    config, inbox = _config(tmp_path, server)
    server.outage(Fault.status(503))
    page = samples.make_png(inbox / "question.png", (300, 400))
    (result,) = process_files(load_config(config), [page])
    assert result.outcome is not None and result.outcome.status == "error"
    (error_page,) = outputs(inbox, "ERROR_")
    text = pdf_text(error_page)
    assert "Write anything here and sync to try again" in text and "not your page's fault" in text
    server.clear_outage()
    return config, page, error_page


def test_retry_command_answers_a_failed_page_in_place_of_its_error_page(tmp_path: Path, server: FakeLLMServer) -> None:
    config, page, error_page = _failed_page(tmp_path, server)
    (result,) = retry_files(load_config(config), [error_page])
    assert result.answered, result.message
    (response,) = outputs(page.parent, "RESPONSE_")
    assert not error_page.exists()  # our own unchanged ERROR_ page went, through atomic.remove_if_unchanged
    assert "_ex001_" in response.name and "_ex001_" in error_page.name
    ((_, number, status, output),) = _exchanges(tmp_path / "db.sqlite3")
    assert (number, status, output) == (1, "ok", response.name)


def test_retry_failed_since_over_the_command_line(tmp_path: Path, server: FakeLLMServer) -> None:
    config, page, error_page = _failed_page(tmp_path, server)
    result = subprocess.run(
        [sys.executable, "-m", "eink_llm", "retry", "--failed", "--since", "1d", "-c", str(config)],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "answered" in result.stdout and outputs(page.parent, "RESPONSE_") and not error_page.exists()
    again = subprocess.run(
        [sys.executable, "-m", "eink_llm", "retry", "--failed", "-c", str(config)],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0 and "No failed pages" in again.stdout


def test_a_byte_identical_reexport_retries_a_transient_failure_but_not_an_input_error(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    config, page, error_page = _failed_page(tmp_path, server)
    loaded = load_config(config)
    (rescan,) = process_files(loaded, [page])  # the same file, untouched (a rescan): not a request
    assert not rescan.answered and not outputs(page.parent, "RESPONSE_")
    page.write_bytes(page.read_bytes())  # exported again: same bytes, written anew
    os.utime(page, ns=(page.stat().st_atime_ns, page.stat().st_mtime_ns + 5_000_000_000))
    (again,) = process_files(loaded, [page])
    assert again.answered, again.message
    assert len(outputs(page.parent, "RESPONSE_")) == 1 and not error_page.exists()

    broken = page.parent / "broken.pdf"
    broken.write_bytes(b"not a pdf")
    (first,) = process_files(loaded, [broken])
    assert first.outcome is not None and first.outcome.status == "error"
    (broken_error,) = [p for p in outputs(page.parent, "ERROR_") if "broken" in p.name]
    assert "will not help" in pdf_text(broken_error) and "Write anything here" not in pdf_text(broken_error)
    os.utime(broken, ns=(broken.stat().st_atime_ns, broken.stat().st_mtime_ns + 5_000_000_000))
    (second,) = process_files(loaded, [broken])
    assert not second.answered and "failed earlier" in second.message
    assert len(_exchanges(tmp_path / "db.sqlite3")) == 2


def test_ink_on_an_error_page_retries_its_page(tmp_path: Path, server: FakeLLMServer) -> None:
    config, page, error_page = _failed_page(tmp_path, server)
    samples.rasterized_with_ink(error_page, error_page, 0, [(200, 900, 600, 1100)])  # written on, synced back
    results = process_files(load_config(config), [error_page])
    assert any(r.answered and r.outcome and r.outcome.output for r in results), [r.message for r in results]
    (response,) = outputs(page.parent, "RESPONSE_")
    assert "_ex001_question" in response.name
    assert error_page.exists()  # written on by the user: never removed
    assert len(server.requests) == 2  # the failed attempt, then the page once more (the error page is no question)
    ((_, number, status, _),) = _exchanges(tmp_path / "db.sqlite3")
    assert (number, status) == (1, "ok")


# --- same content, same conversation, once ------------------------------------------------------------------


def test_a_byte_identical_copy_of_an_annotated_answer_is_not_answered_again(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    config, inbox = _config(tmp_path, server)
    loaded = load_config(config)
    (first,) = process_files(loaded, [samples.notebook_pdf(inbox / "question.pdf", [1])])
    assert first.outcome is not None and first.outcome.output is not None
    response = first.outcome.output
    pages = len(pdfium.PdfDocument(response.read_bytes()))
    annotated = tmp_path / "annotated.pdf"
    samples.add_vector_ink(response, annotated, pages - 1, [(40, 300, 220, 14)])
    shutil.copy(annotated, response)  # written on in place, synced back
    (second,) = process_files(loaded, [response])
    assert second.outcome is not None and second.outcome.exchange == 2, second.message
    assert second.outcome.output is not None
    ex002 = pdfium.PdfDocument(second.outcome.output.read_bytes())
    assert ex002.get_metadata_dict()["Title"] == "question"  # the notebook's name, not RESPONSE_…_ex001_question
    ex002.close()
    assert "RESPONSE_" not in pdf_text(second.outcome.output)  # nor in the footer
    copy = inbox / f"Copy of {response.name}"  # a sync conflict copy: the same bytes under another name
    shutil.copy(annotated, copy)
    requests = len(server.requests)
    (third,) = process_files(loaded, [copy])
    assert third.outcome is not None and third.outcome.status == "skipped", third.message
    assert "answered as exchange 2" in third.message
    assert len(server.requests) == requests
    assert [row[1] for row in _exchanges(tmp_path / "db.sqlite3")] == [1, 2]
    status = subprocess.run(
        [sys.executable, "-m", "eink_llm", "status", "-c", str(config)],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Not answered again" in status.stdout and copy.name in status.stdout, status.stdout


def test_on_the_running_daemon_a_reexport_and_ink_on_the_error_page_both_retry(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    """The watcher's path: the service fails twice, then is back; a byte-identical re-export answers the first
    page in place of its ERROR_, and ink on the second page's ERROR_ answers that one."""
    config, inbox = _config(tmp_path, server)
    server.outage(Fault.status(503))
    with DaemonProcess(config, tmp_path) as daemon:
        first = samples.make_png(inbox / "first.png", (300, 400))
        samples.make_png(inbox / "second.png", (320, 400))
        wait_until(lambda: len(outputs(inbox, "ERROR_")) == 2, timeout=60, what="two ERROR_ pages")
        server.clear_outage()
        first_error = next(p for p in outputs(inbox, "ERROR_") if "first" in p.name)
        second_error = next(p for p in outputs(inbox, "ERROR_") if "second" in p.name)

        data = first.read_bytes()
        first.unlink()
        first.write_bytes(data)  # exported again: the same bytes, a new file
        wait_until(lambda: not first_error.exists(), timeout=60, what="the ERROR_ replaced")
        (answer,) = outputs(inbox, "RESPONSE_")
        assert "_ex001_first" in answer.name

        samples.rasterized_with_ink(second_error, tmp_path / "inked.pdf", 0, [(200, 900, 600, 1100)])
        os.replace(tmp_path / "inked.pdf", second_error)  # written on, synced back
        wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 2, timeout=60, what="the second page answered")
        assert second_error.exists()  # the user's ink is never removed
        assert daemon.stop() == 0
    rows = db_rows(tmp_path / "db.sqlite3", "SELECT input_file, sequence_number, status FROM exchanges ORDER BY 1")
    assert [(r[0], r[1], r[2]) for r in rows] == [("first.png", 1, "ok"), ("second.png", 1, "ok")]
