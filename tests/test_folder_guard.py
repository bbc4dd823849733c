"""What a worker reads and writes stays inside the watched folder, is what was queued, and has a name that fits.

The real daemon, a real watchdog observer on a temp folder, and a local OpenAI-format server that is held busy
(one worker) while the queued files are swapped for links or rewritten: nothing from outside the folder may
reach the model or receive an answer, a changed file is never answered under its old job, and names near
NAME_MAX (255 bytes) still get their RESPONSE_.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import samples
from tests.fakes import FakeLLMServer
from tests.harness import DaemonProcess, db_rows, outputs, pdf_text, wait_until, write_config

#: Spelled out, not imported, so that this module also runs against code from before these limits existed.
NAME_MAX = 255
TEMP_OVERHEAD = len(".syncthing." + "." + "0a1b2c" + ".tmp")  # atomic.py's temp name around the final name
SECRET = "TOPSECRET-7f3a9c-outside-the-folder"


class Gate:
    """Holds every request whose body mentions ``BLOCKER`` until released: one worker kept busy."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, body: Any) -> str:
        if "BLOCKER" in json.dumps(body):
            self.release.wait(60)
        return "An answer."


@pytest.fixture()
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


def _config(tmp_path: Path, inbox: Path, server: FakeLLMServer) -> Path:
    llm = {"backend": "openai", "base_url": server.base_url, "model": "m1", "timeout_seconds": 60}
    return write_config(tmp_path / "config.yaml", inbox, tmp_path / "db.sqlite3", llm=llm, service={"workers": 1})


def _jobs(tmp_path: Path) -> dict[str, Any]:
    rows = db_rows(tmp_path / "db.sqlite3", "SELECT path, sha256, state, last_error FROM jobs ORDER BY job_id")
    return {Path(r["path"]).name: dict(r) for r in rows}


def _all_jobs(tmp_path: Path) -> list[dict[str, Any]]:
    rows = db_rows(tmp_path / "db.sqlite3", "SELECT path, sha256, state, last_error FROM jobs ORDER BY job_id")
    return [dict(r) for r in rows]


def _hold_the_worker(tmp_path: Path, inbox: Path, server: FakeLLMServer, gate: Gate) -> None:
    samples.make_pdf(inbox / "blocker.pdf", pages=1, lines=["BLOCKER page"])
    wait_until(lambda: server.requests, timeout=30, what="the one worker busy with the blocker")


def _everything_below(folder: Path) -> list[Path]:
    return [Path(d) / n for d, _dirs, files in os.walk(folder) for n in files]


def test_links_swapped_in_after_queueing_are_never_followed(tmp_path: Path, server: FakeLLMServer) -> None:
    """Queued while the only worker is busy, then: a file replaced by a link to a secret outside the folder, and
    a subfolder replaced by a link to a folder outside (holding the very same bytes, so the hash matches too).
    Nothing outside reaches the model, no RESPONSE_/ERROR_ is written outside, the daemon answers on."""
    gate = Gate()
    server.answer_fn = gate
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = samples.make_pdf(outside / "secret.pdf", pages=1, lines=[SECRET])
    with DaemonProcess(_config(tmp_path, inbox, server), tmp_path) as daemon:
        try:
            _hold_the_worker(tmp_path, inbox, server, gate)
            samples.make_pdf(inbox / "victim.pdf", pages=1, lines=["an innocent question"])
            inner = samples.make_pdf(inbox / "sub" / "inner.pdf", pages=1, lines=[f"inner {SECRET}"])
            inner_bytes = inner.read_bytes()
            wait_until(lambda: {"victim.pdf", "inner.pdf"} <= _jobs(tmp_path).keys(), timeout=30, what="both queued")
            # The swaps: a link in the file's place, and a link in the subfolder's place.
            link = inbox / ".victim-link.tmp"
            link.symlink_to(secret)
            os.replace(link, inbox / "victim.pdf")
            (inbox / "sub").rename(tmp_path / "moved-away")
            linked_dir = tmp_path / "outside-dir"
            linked_dir.mkdir()
            (linked_dir / "inner.pdf").write_bytes(inner_bytes)  # same bytes: only the walk can tell
            (inbox / "sub").symlink_to(linked_dir, target_is_directory=True)
        finally:
            gate.release.set()
        wait_until(
            lambda: all(_jobs(tmp_path)[n]["state"] in ("done", "failed") for n in ("victim.pdf", "inner.pdf")),
            timeout=60,
            what="the swapped jobs finished",
        )
        samples.make_pdf(inbox / "later.pdf", pages=1, lines=["a later question"])
        wait_until(
            lambda: [p for p in outputs(inbox, "RESPONSE_") if p.name.endswith("_later.pdf")],
            timeout=60,
            what="the later file answered",
        )
        assert daemon.process is not None and daemon.process.poll() is None, "the daemon stays up"
        log = daemon.log()
        assert daemon.stop() == 0

    for request in server.requests:
        assert SECRET.encode() not in request.raw, "a file from outside the folder reached the model"
    assert len(server.requests) == 2, "only the blocker and the later file were asked"
    assert not [p for p in _everything_below(outside) if p.name != "secret.pdf"]
    assert [p.name for p in _everything_below(linked_dir)] == ["inner.pdf"]
    assert not [p for p in _everything_below(tmp_path / "moved-away") if p.name != "inner.pdf"]
    jobs = _jobs(tmp_path)
    for name in ("victim.pdf", "inner.pdf"):
        assert jobs[name]["state"] == "failed" and "link" in jobs[name]["last_error"], jobs[name]
    assert not [p for p in outputs(inbox) if "victim" in p.name or "inner" in p.name]
    assert "input changed after it was queued" in log


def test_a_file_changed_after_queueing_is_not_answered_under_its_old_job(tmp_path: Path, server: FakeLLMServer) -> None:
    """Queued, then rewritten (other bytes) before its turn: the old job ends unanswered (its hash no longer
    matches the bytes), the watcher queues the new bytes as a job of their own, and that job is answered,
    once. The answer records the hash of the bytes it answers."""
    gate = Gate()
    server.answer_fn = gate
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with DaemonProcess(_config(tmp_path, inbox, server), tmp_path) as daemon:
        try:
            _hold_the_worker(tmp_path, inbox, server, gate)
            page = samples.make_pdf(inbox / "page.pdf", pages=1, lines=["FIRST version of the question"])
            old_sha = hashlib.sha256(page.read_bytes()).hexdigest()
            wait_until(lambda: "page.pdf" in _jobs(tmp_path), timeout=30, what="page.pdf queued")
            samples.make_pdf(inbox / "page.pdf", pages=1, lines=["SECOND version of the question"])
            new_sha = hashlib.sha256(page.read_bytes()).hexdigest()
            assert new_sha != old_sha
        finally:
            gate.release.set()
        answers = wait_until(
            lambda: [p for p in outputs(inbox, "RESPONSE_") if p.name.endswith("_page.pdf")],
            timeout=60,
            what="the new version answered",
        )
        wait_until(
            lambda: (
                len([j for j in _all_jobs(tmp_path) if j["path"].endswith("page.pdf")]) == 2
                and all(j["state"] in ("done", "failed") for j in _all_jobs(tmp_path))
            ),
            timeout=60,
            what="both jobs of page.pdf finished",
        )
        assert daemon.stop() == 0

    asked = [r for r in server.requests if b"version of the question" in r.raw]
    assert len(asked) == 1 and b"SECOND" in asked[0].raw and b"FIRST" not in asked[0].raw
    assert len(answers) == 1
    by_sha = {j["sha256"]: j for j in _all_jobs(tmp_path) if j["path"].endswith("page.pdf")}
    assert by_sha[old_sha]["state"] == "failed" and "changed after it was queued" in by_sha[old_sha]["last_error"]
    assert by_sha[new_sha]["state"] == "done"
    assert f"/EinkLLMInput ({new_sha})".encode() in answers[0].read_bytes()
    rows = db_rows(tmp_path / "db.sqlite3", "SELECT input_file, status FROM exchanges")
    assert sorted((r["input_file"], r["status"]) for r in rows) == [("blocker.pdf", "ok"), ("page.pdf", "ok")]


LONG_NAMES = {
    "57 emoji (232 bytes)": "😀" * 57 + ".pdf",
    "255 bytes of ASCII": "a" * 251 + ".pdf",
    "255 bytes of 3-byte characters": "語" * 83 + "_1.pdf",
}


def test_names_near_name_max_are_answered_under_names_that_fit(tmp_path: Path, server: FakeLLMServer) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in LONG_NAMES.values():
        assert len(name.encode()) <= NAME_MAX
    with DaemonProcess(_config(tmp_path, inbox, server), tmp_path) as daemon:
        for name in LONG_NAMES.values():
            samples.make_pdf(inbox / name, pages=1)
        answers = wait_until(lambda: len(outputs(inbox)) == 3 and outputs(inbox), timeout=90, what="three answers")
        log = daemon.log()
        assert daemon.stop() == 0
    assert all(p.name.startswith("RESPONSE_") for p in answers), [p.name for p in answers]
    for answer in answers:
        size = len(os.fsencode(answer.name))
        assert size + TEMP_OVERHEAD <= NAME_MAX, (answer.name, size)  # the temp name fits too
        assert "\ufffd" not in answer.name and pdf_text(answer)
    rows = db_rows(tmp_path / "db.sqlite3", "SELECT input_file, output_file, status FROM exchanges")
    assert sorted(r["input_file"] for r in rows) == sorted(LONG_NAMES.values())
    assert {r["status"] for r in rows} == {"ok"}
    assert sorted(Path(r["output_file"]).name for r in rows) == sorted(p.name for p in answers)
    assert "disk is not full" not in log and "File name too long" not in log
