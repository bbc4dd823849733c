"""The tablet is the screen: the STATUS page in each watched folder, and ``eink-llm status``, with the real daemon.

The daemon runs as a child process against a real local model server (tests/fakes); the page's text is read with
pypdfium2, as a person would read it on the tablet.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from eink_llm.budget import period_starts
from tests import samples
from tests.fakes import FakeLLMServer
from tests.harness import DaemonProcess, clean_env, db_rows, outputs, pdf_text, wait_until, write_config

STATUS = "STATUS.pdf"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def config(tmp_path: Path, inbox: Path, server: FakeLLMServer | None = None, **sections: dict[str, Any]) -> Path:
    llm: dict[str, Any] = {"backend": "echo"}
    if server is not None:
        llm = {"backend": "openai", "base_url": server.base_url, "model": "fake-vision", "timeout_seconds": 60}
    sections.setdefault("status_page", {"min_interval": 0.5})
    sections.setdefault("context", {"transcribe": False, "summaries": False})
    return write_config(tmp_path / "config.yaml", inbox, tmp_path / "state" / "db.sqlite3", llm=llm, **sections)


def daemon(tmp_path: Path, config_path: Path) -> DaemonProcess:
    return DaemonProcess(config_path, tmp_path, env={"TZ": "UTC"})


def page(inbox: Path) -> str:
    """The status page's text as the tablet shows it, lines joined ("" while there is none)."""
    try:
        return " ".join(pdf_text(inbox / STATUS).split())
    except Exception:
        return ""


def page_says(inbox: Path, *words: str) -> str:
    text = page(inbox)
    return text if all(word in text for word in words) else ""


def status_cli(tmp_path: Path, config_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "eink_llm", "status", "-c", str(config_path)],
        env=clean_env(tmp_path, TZ="UTC"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_a_question_in_progress_shows_on_the_page_and_stopping_shows_stopped(
    tmp_path: Path, inbox: Path, server: FakeLLMServer
) -> None:
    release = threading.Event()

    def slow_model(body: Any) -> str:  # a local model that takes its time: answers only when released
        release.wait(60)
        return "# Forty-two\n\nThe answer, at last."

    server.answer_fn = slow_model
    config_path = config(tmp_path, inbox, server)
    try:
        with daemon(tmp_path, config_path) as running:
            wait_until(lambda: page_says(inbox, "eink-llm is running", "Nothing in progress"), what="the first page")
            samples.make_pdf(inbox / "deep-thought.pdf", pages=1)
            server.wait_for_requests(1, timeout=30)
            text = wait_until(
                lambda: page_says(inbox, "In progress", "deep-thought.pdf"), timeout=30, what="the page: in progress"
            )
            assert "Running since" in text and "version" in text
            cli = status_cli(tmp_path, config_path)  # the same snapshot, in words for the terminal
            assert "Daemon: Running since" in cli and f"pid {running.process.pid}" in cli  # type: ignore[union-attr]
            assert "In progress:" in cli and "deep-thought.pdf" in cli

            release.set()
            wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="the answer")
            text = wait_until(
                lambda: page_says(inbox, "answered deep-thought.pdf", "Nothing in progress"), what="the page: answered"
            )
            assert "In progress" not in text
            assert running.stop() == 0
        text = page(inbox)
        assert "eink-llm is STOPPED" in text and "Stopped at" in text, text
        assert "not being asked (the daemon is not running)" in text
        assert "Daemon: Stopped at" in status_cli(tmp_path, config_path)
    finally:
        release.set()
    # the page never became a question, and it is one page, for the folder's device, marked as ours
    assert len(outputs(inbox)) == 1 and len(server.requests) == 1
    assert b"/EinkLLMKind (status)" in (inbox / STATUS).read_bytes()


def test_an_outage_shows_the_service_down_and_when_it_is_tried_next(
    tmp_path: Path, inbox: Path, server: FakeLLMServer
) -> None:
    server.outage()
    config_path = config(tmp_path, inbox, server, retry={"outage_after_failures": 1, "probe_interval_seconds": 600})
    with daemon(tmp_path, config_path) as running:
        samples.make_pdf(inbox / "question.pdf", pages=1)
        text = wait_until(lambda: page_says(inbox, "down"), timeout=30, what="the page: service down")
        assert "default (openai fake-vision): down; next try at" in text, text
        assert "question.pdf" in text  # it waits, and the page says so
        assert "down; next try at" in status_cli(tmp_path, config_path)
        assert running.stop() == 0
    assert not outputs(inbox, "ERROR_")  # an outage is no ERROR_ page


def test_a_spent_budget_shows_when_it_resets(tmp_path: Path, inbox: Path) -> None:
    # The first request fits what is left (the ceiling sends none over it); its answer, with its output tokens
    # (the echo backend's ~1,170 in all), spends the budget.
    config_path = config(tmp_path, inbox, profiles={"default": {"budget": {"monthly_tokens": 1000}}})
    with daemon(tmp_path, config_path) as running:
        samples.make_png(inbox / "first.png")
        wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="the first answer")
        text = wait_until(lambda: page_says(inbox, "Budget spent until"), timeout=30, what="the page: budget spent")
        resets = period_starts(datetime.now(UTC))[3]  # the first of next month, 00:00 UTC (the daemon's TZ)
        assert f"Budget spent until {resets:%a} {resets.day} {resets:%b} 00:00" in text, text
        assert "Budget spent until" in status_cli(tmp_path, config_path)
        assert running.stop() == 0


class _Renames(FileSystemEventHandler):
    """When the status page was replaced (the atomic write's rename onto its name), seen through inotify."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)
        self.times: list[float] = []

    def on_moved(self, event: FileSystemEvent) -> None:
        if os.fsdecode(event.dest_path) == self.target:
            self.times.append(time.monotonic())


def test_a_burst_of_answers_rewrites_the_page_at_most_once_per_interval(tmp_path: Path, inbox: Path) -> None:
    interval = 2.0
    config_path = config(tmp_path, inbox, status_page={"min_interval": interval})
    renames = _Renames(inbox / STATUS)
    observer = Observer()
    observer.schedule(renames, str(inbox))
    observer.start()
    try:
        with daemon(tmp_path, config_path) as running:
            wait_until(lambda: renames.times, what="the first page")
            for number in range(10):
                samples.make_png(inbox / f"burst-{number}.png")
            wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 10, timeout=60, what="ten answers")
            wait_until(
                lambda: (
                    page_says(inbox, "answered burst", "Nothing in progress")
                    and len(db_rows(tmp_path / "state" / "db.sqlite3", "SELECT 1 FROM jobs WHERE state = 'done'")) == 10
                ),
                timeout=30,
                what="the page after the burst",
            )
            time.sleep(interval + 0.5)  # let any pending rewrite happen: it must still keep the interval
            seen = list(renames.times)
            assert running.stop() == 0
    finally:
        observer.stop()
        observer.join(10)
    gaps = [later - earlier for earlier, later in itertools.pairwise(seen)]
    assert len(seen) >= 2, seen  # it was rewritten (the answers show), …
    assert all(gap >= interval - 0.3 for gap in gaps), gaps  # … but never twice within the interval
    assert len(seen) <= 10  # ten answers, far fewer rewrites


def test_the_page_is_never_a_question_renamed_written_on_or_with_the_database_lost(tmp_path: Path, inbox: Path) -> None:
    config_path = config(tmp_path, inbox)
    with daemon(tmp_path, config_path) as running:
        wait_until(lambda: page_says(inbox, "eink-llm is running"), what="the first page")
        assert running.stop() == 0
    (tmp_path / "state").rename(tmp_path / "lost-state")  # a new server, a restore without the database
    shutil.copy(inbox / STATUS, inbox / "STATUS 2026-12-05.pdf")  # exported again under another name
    samples.add_vector_ink(inbox / STATUS, inbox / "status-annotated.pdf", 0, [(100, 100, 200, 40)])  # written on
    samples.add_vector_ink(inbox / STATUS, inbox / "status-inplace.pdf", 0, [(100, 300, 50, 50)])
    os.replace(inbox / "status-inplace.pdf", inbox / STATUS)  # written on where it lies, by the tablet
    with daemon(tmp_path, config_path) as running:
        samples.make_png(inbox / "real-question.png")
        wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="the real question's answer")
        database = tmp_path / "state" / "db.sqlite3"
        jobs = wait_until(
            lambda: (
                [dict(r) for r in db_rows(database, "SELECT path, state, last_error FROM jobs")]
                if len(db_rows(database, "SELECT 1 FROM jobs WHERE state = 'done'")) == 3
                else None
            ),
            timeout=30,
            what="the copies of the page looked at",
        )
        assert running.stop() == 0
    assert [p.name for p in outputs(inbox)] == [outputs(inbox)[0].name]  # only the real question was answered
    assert "real-question" in outputs(inbox)[0].name
    notes = {Path(str(job["path"])).name: job["last_error"] for job in jobs}
    assert STATUS not in notes  # its own name: never even queued
    for name in ("STATUS 2026-12-05.pdf", "status-annotated.pdf"):
        assert "status page" in str(notes[name]), notes
    exchanges = db_rows(database, "SELECT input_file FROM exchanges")
    assert [row["input_file"] for row in exchanges] == ["real-question.png"]


def test_status_page_off_for_a_folder_and_status_without_a_daemon(tmp_path: Path, inbox: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    config_path = config(tmp_path, inbox)
    settings = yaml.safe_load(config_path.read_text())
    settings["watch"]["folders"].append({"path": str(other), "status_page": False})
    config_path.write_text(yaml.safe_dump(settings))
    assert "No database yet" in status_cli(tmp_path, config_path)
    with daemon(tmp_path, config_path) as running:
        wait_until(lambda: page_says(inbox, "eink-llm is running"), what="the page in the first folder")
        samples.make_png(other / "elsewhere.png")
        wait_until(lambda: outputs(other, "RESPONSE_"), timeout=30, what="the answer in the second folder")
        assert not (other / STATUS).exists()
        # a folder's page names only its own files (another folder may be another person's)
        wait_until(lambda: page_says(inbox, "Nothing in progress"), what="the first page, settled")
        assert "elsewhere" not in page(inbox)
        assert running.stop() == 0
    assert not (other / STATUS).exists()


def test_a_reload_that_turns_the_page_off_takes_it_away(tmp_path: Path, inbox: Path) -> None:
    config_path = config(tmp_path, inbox)
    with daemon(tmp_path, config_path) as running:
        wait_until(lambda: page_says(inbox, "eink-llm is running"), what="the first page")
        settings = yaml.safe_load(config_path.read_text())
        settings["status_page"]["enabled"] = False
        config_path.write_text(yaml.safe_dump(settings))
        assert running.process is not None
        running.process.send_signal(signal.SIGHUP)
        wait_until(lambda: not (inbox / STATUS).exists(), what="the page removed after the reload")
        samples.make_png(inbox / "after.png")
        wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="an answer after the reload")
        assert running.stop() == 0
    assert not (inbox / STATUS).exists()  # and no last word either: it is off
