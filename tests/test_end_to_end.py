"""The whole daemon as a user runs it: a real `eink-llm run` process, a real watched folder, real PDFs,
a real SQLite file, and a local server speaking the OpenAI wire format."""

from __future__ import annotations

import io
import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from eink_llm.text_tokens import estimate_tokens
from tests import samples
from tests.fakes import FakeLLMServer
from tests.harness import DaemonProcess, db_rows, outputs, pdf_text, wait_until, write_config


@pytest.fixture()
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


@pytest.fixture()
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def openai_config(tmp_path: Path, inbox: Path, server: FakeLLMServer, **extra: dict[str, object]) -> Path:
    llm = {
        "backend": "openai",
        "base_url": server.base_url,
        "model": "vision-test",
        "api_key": "sk-e2e-secret-key",
        "timeout_seconds": 5,
    }
    return write_config(tmp_path / "config.yaml", inbox, tmp_path / "state" / "db.sqlite3", llm=llm, **extra)


def exchanges(tmp_path: Path) -> list[dict[str, object]]:
    rows = db_rows(tmp_path / "state" / "db.sqlite3", "SELECT * FROM exchanges ORDER BY exchange_id")
    return [dict(r) for r in rows]


def test_pdf_png_and_rotated_jpeg_are_answered(tmp_path: Path, inbox: Path, server: FakeLLMServer) -> None:
    config = openai_config(tmp_path, inbox, server)
    with DaemonProcess(config, tmp_path) as daemon:
        samples.make_pdf(inbox / "question.pdf", pages=2)
        samples.make_png(inbox / "sketch.png")
        samples.make_rotated_jpeg(inbox / "photo.jpg")
        answers = wait_until(
            lambda: len(outputs(inbox, "RESPONSE_")) == 3 and outputs(inbox, "RESPONSE_"),
            timeout=60,
            what="three RESPONSE_ PDFs",
        )
        rows = wait_until(
            lambda: len([r for r in exchanges(tmp_path) if r["status"] == "ok"]) == 3 and exchanges(tmp_path),
            what="three exchange rows",
        )
        assert daemon.stop() == 0

    names = sorted(p.name for p in answers)
    for stem in ("photo", "question", "sketch"):
        assert any(n.startswith("RESPONSE_conv_") and n.endswith(f"_ex001_{stem}.pdf") for n in names), names
    assert not outputs(inbox, "ERROR_")
    for row in rows:
        assert row["sequence_number"] == 1 and row["model"] and row["backend"] == "openai"
        assert int(row["tokens_used"]) > 0 and int(row["input_tokens"]) > 0  # type: ignore[call-overload]
        assert float(row["processing_time"]) > 0  # type: ignore[arg-type]
        assert row["output_file"] in names and len(str(row["input_sha256"])) == 64
    # each answer PDF carries the model's text
    for path in answers:
        assert "Answer" in pdf_text(path)
    # what reached the backend: the PDF's two pages, and the JPEG upright (portrait)
    by_pages = sorted(len(r.images()) for r in server.requests)
    assert by_pages == [1, 1, 2]
    corners = []
    for request in server.requests:
        assert request.headers["authorization"] == "Bearer sk-e2e-secret-key"
        for image in request.images():
            assert image.mode in ("L", "1", "LA", "P")
            corners.append(_solid_corner(image.convert("L")))
    # the JPEG's black marker, stored top-left with EXIF "rotate 90° clockwise", arrived top-right: upright
    assert corners.count("top-right") == 1 and "top-left" not in corners, corners
    # the API key never reaches the log
    assert "sk-e2e-secret-key" not in daemon.log()


def _solid_corner(image: Image.Image) -> str | None:
    """Which top corner of a page holds a solid black block (the rotated JPEG's marker), if any."""
    side = max(4, int(min(image.size) * 0.25))
    for name, box in (("top-left", (0, 0, side, side)), ("top-right", (image.width - side, 0, image.width, side))):
        region = image.crop(box)
        dark = sum(region.histogram()[:100])  # pixels darker than 100
        if dark > 0.5 * side * side:
            return name
    return None


def test_follow_up_by_name_continues_the_conversation(tmp_path: Path, inbox: Path, server: FakeLLMServer) -> None:
    server.answer_fn = lambda body: "The derivative of x squared is 2x." if len(body["messages"]) <= 2 else "Again."
    config = openai_config(tmp_path, inbox, server)
    with DaemonProcess(config, tmp_path) as daemon:
        samples.make_pdf(inbox / "question.pdf", pages=1)
        first = wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="first answer")[0]
        conversation = first.name.split("_ex001_")[0].removeprefix("RESPONSE_")
        samples.make_png(inbox / f"{conversation} follow-up.png")
        second = wait_until(
            lambda: [p for p in outputs(inbox, "RESPONSE_") if "_ex002_" in p.name], timeout=30, what="second answer"
        )[0]
        assert daemon.stop() == 0
    assert second.name == f"RESPONSE_{conversation}_ex002_follow-up.pdf"
    follow_up = server.requests[-1].body
    roles = [m["role"] for m in follow_up["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert follow_up["messages"][2]["content"] == "The derivative of x squared is 2x."
    rows = exchanges(tmp_path)
    assert [(r["conversation_id"], r["sequence_number"]) for r in rows] == [(conversation, 1), (conversation, 2)]


def test_restart_answers_nothing_twice_and_catches_up(tmp_path: Path, inbox: Path, server: FakeLLMServer) -> None:
    config = openai_config(tmp_path, inbox, server)
    with DaemonProcess(config, tmp_path) as daemon:
        samples.make_pdf(inbox / "one.pdf", pages=1)
        wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="first answer")
        assert daemon.stop() == 0
    samples.make_png(inbox / "while-down.png")
    requests_before = len(server.requests)
    with DaemonProcess(config, tmp_path) as daemon:
        wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 2, timeout=30, what="the file dropped while down")
        samples.make_png(inbox / "after.png", size=(800, 1000))
        wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 3, timeout=30, what="a file dropped after restart")
        assert daemon.stop() == 0
    assert len(server.requests) == requests_before + 2  # one.pdf was not sent again
    assert len(exchanges(tmp_path)) == 3


def test_a_new_database_on_a_folder_with_history_answers_only_what_is_new(
    tmp_path: Path, inbox: Path, server: FakeLLMServer
) -> None:
    """Moving to a new server: the synced folder arrives with its questions and answers, the database does not.
    The daemon's start-up scan finds them all and answers none; a file dropped afterwards is answered."""
    config = openai_config(tmp_path, inbox, server)
    with DaemonProcess(config, tmp_path) as daemon:
        samples.make_pdf(inbox / "one.pdf", pages=1)
        samples.make_png(inbox / "two.png")
        wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 2, timeout=30, what="the first answers")
        assert daemon.stop() == 0
    shutil.rmtree(tmp_path / "state")
    requests_before = len(server.requests)
    database = tmp_path / "state" / "db.sqlite3"

    def looked_at() -> list[str] | None:
        notes = [str(r["last_error"]) for r in db_rows(database, "SELECT last_error FROM jobs WHERE state = 'done'")]
        return sorted(notes) if len(notes) == 4 else None

    with DaemonProcess(config, tmp_path) as daemon:
        notes = wait_until(looked_at, timeout=30, what="the four files already there looked at")
        assert [note.split(":")[0] for note in notes] == ["answered before"] * 2 + ["one of our answers, unchanged"] * 2
        samples.make_png(inbox / "three.png", size=(800, 1000))
        wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 3, timeout=30, what="the new file answered")
        assert daemon.stop() == 0
    assert len(server.requests) == requests_before + 1


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("truncated.pdf", samples.make_truncated_pdf, "damaged"),
        ("locked.pdf", samples.make_encrypted_pdf, "password"),
        ("notes.pdf", samples.make_text_as_pdf, "not a PDF"),
        ("broken.png", samples.make_corrupt_png, ""),
        ("bomb.png", samples.make_bomb_png, ""),
    ],
)
def test_bad_input_gives_an_error_pdf_and_the_daemon_goes_on(
    tmp_path: Path, inbox: Path, server: FakeLLMServer, name: str, make: object, words: str
) -> None:
    config = openai_config(tmp_path, inbox, server)
    with DaemonProcess(config, tmp_path) as daemon:
        make(inbox / name)  # type: ignore[operator]
        error = wait_until(lambda: outputs(inbox, "ERROR_"), timeout=30, what=f"ERROR_ PDF for {name}")[0]
        samples.make_png(inbox / "good.png")
        wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="the next good file answered")
        assert daemon.stop() == 0
    assert error.name.startswith("ERROR_conv_") and error.name.endswith(f"_ex001_{Path(name).stem}.pdf")
    text = pdf_text(error)
    assert Path(name).name in text or Path(name).stem in text
    if words:
        assert words.lower() in text.lower()
    assert len(server.requests) == 1  # the bad file never reached the backend
    rows = exchanges(tmp_path)
    assert sorted(str(r["status"]) for r in rows) == ["error", "ok"]
    failed = next(r for r in rows if r["status"] == "error")
    assert failed["error_text"] and failed["output_file"] == error.name


def test_sync_temp_names_and_own_outputs_never_reach_the_backend(
    tmp_path: Path, inbox: Path, server: FakeLLMServer
) -> None:
    config = openai_config(tmp_path, inbox, server)
    with DaemonProcess(config, tmp_path) as daemon:
        samples.make_pdf(inbox / ".syncthing.question.pdf.tmp", pages=1)
        samples.make_pdf(inbox / "question.pdf.partial", pages=1)
        samples.make_png(inbox / "page.png.crdownload")
        (inbox / ".stversions").mkdir()
        samples.make_png(inbox / ".stversions" / "old.png")
        # a sync client finishes a download: temp name renamed into place
        (inbox / ".syncthing.question.pdf.tmp").rename(inbox / "question.pdf")
        answer = wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="answer")[0]
        # the user copies our answer elsewhere in the folder: still ours, not a question
        (inbox / "sub").mkdir()
        shutil.copy(answer, inbox / "sub" / "copy-of-answer.pdf")
        samples.make_png(inbox / "sentinel.png")
        wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 2, timeout=30, what="sentinel answered")
        assert daemon.stop() == 0
    assert len(server.requests) == 2
    # our answer's text layer (header with the conversation id) was never sent back as a question
    assert not any("conv_" in str(r.body) for r in server.requests)
    assert {p.name for p in inbox.iterdir() if p.name.startswith(".syncthing.")} == set()


def test_transient_failure_is_retried_and_answered(tmp_path: Path, inbox: Path, server: FakeLLMServer) -> None:
    from tests.fakes import Fault

    server.script(Fault.status(429, headers={"Retry-After": "1"}), Fault.status(503))
    config = openai_config(tmp_path, inbox, server)
    with DaemonProcess(config, tmp_path) as daemon:
        samples.make_png(inbox / "q.png")
        wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="answer after retries")
        assert daemon.stop() == 0
    assert not outputs(inbox, "ERROR_")
    assert [r.status for r in server.requests] == [429, 503, 200]


def test_permanent_failure_gives_a_plain_error_pdf(tmp_path: Path, inbox: Path, server: FakeLLMServer) -> None:
    from tests.fakes import Fault

    server.script(Fault.status(401))
    config = openai_config(tmp_path, inbox, server)
    with DaemonProcess(config, tmp_path) as daemon:
        samples.make_png(inbox / "q.png")
        error = wait_until(lambda: outputs(inbox, "ERROR_"), timeout=30, what="error pdf")[0]
        assert daemon.stop() == 0
    assert len(server.requests) == 1  # not retried
    text = pdf_text(error)
    assert "api_key" in text and "sk-e2e-secret-key" not in text


def test_sigint_stops_cleanly_and_default_config_uses_inbox(tmp_path: Path) -> None:
    """The quick start: no config at all, echo backend, ./inbox created and answered."""
    from tests.harness import clean_env

    daemon = DaemonProcess(tmp_path / "none.yaml", tmp_path)
    daemon.env = clean_env(tmp_path)
    import subprocess
    import sys

    log = (tmp_path / "default.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "eink_llm", "run"], cwd=tmp_path, env=daemon.env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        inbox = wait_until(lambda: (tmp_path / "inbox").is_dir() and tmp_path / "inbox", timeout=30, what="inbox")
        samples.make_png(inbox / "hello.png")
        answer = wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="echo answer")[0]
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    assert "1 page" in pdf_text(answer) or "Pages" in pdf_text(answer)
    assert (tmp_path / "state" / "eink-llm" / "eink-llm.sqlite3").exists()


def test_process_command_answers_files_once(tmp_path: Path, server: FakeLLMServer) -> None:
    import subprocess
    import sys

    from tests.harness import clean_env

    folder = tmp_path / "files"
    folder.mkdir()
    config = openai_config(tmp_path, folder, server)
    good = samples.make_png(folder / "good.png")
    bad = samples.make_text_as_pdf(folder / "bad.pdf")

    def run(*files: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "eink_llm", "process", "-c", str(config), *map(str, files)],
            env=clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = run(good)
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(outputs(folder, "RESPONSE_")) == 1
    mixed = run(good, bad)
    assert mixed.returncode == 1
    assert "already answered" in mixed.stdout and "NOT answered" in mixed.stdout
    assert len(outputs(folder, "ERROR_")) == 1 and len(server.requests) == 1


def test_answer_pdf_is_a_valid_image_when_rasterized(tmp_path: Path, inbox: Path, server: FakeLLMServer) -> None:
    config = openai_config(tmp_path, inbox, server)
    with DaemonProcess(config, tmp_path) as daemon:
        samples.make_png(inbox / "q.png")
        answer = wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="answer")[0]
        assert daemon.stop() == 0
    document = pdfium.PdfDocument(answer)
    try:
        page = document[0]
        width_mm, height_mm = (v / 72 * 25.4 for v in page.get_size())
        assert abs(width_mm - 157.8) < 0.5 and abs(height_mm - 210.4) < 0.5  # reMarkable 2 by default
        image = page.render(scale=1).to_pil()
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        assert Image.open(buffer).size[0] > 0
    finally:
        document.close()


def test_writing_on_an_answer_and_growing_a_notebook_continue_on_paper(
    tmp_path: Path, inbox: Path, server: FakeLLMServer
) -> None:
    """The tablet loop with the real daemon and watcher: the user writes on the answer's reply page and the
    sync client puts the changed RESPONSE_ back in place; then a notebook is re-exported with one new page.
    Each time only what is new reaches the model, as the next exchange of the same conversation."""
    config = openai_config(tmp_path, inbox, server)
    staging = tmp_path / "tablet"
    staging.mkdir()
    with DaemonProcess(config, tmp_path) as daemon:
        samples.notebook_pdf(inbox / "question.pdf", [1])
        (answer,) = wait_until(lambda: outputs(inbox, "RESPONSE_"), timeout=30, what="the first answer")
        reply_page = len(pdfium.PdfDocument(answer.read_bytes())) - 1
        # a sync client writes a temp file, then renames it over the old one
        samples.add_vector_ink(answer, staging / "annotated.pdf", reply_page, [(40, 300, 220, 14)])
        shutil.move(staging / "annotated.pdf", inbox / ".syncthing.annotated.tmp")
        (inbox / ".syncthing.annotated.tmp").replace(answer)
        second = wait_until(
            lambda: [p for p in outputs(inbox, "RESPONSE_") if "_ex002_" in p.name], timeout=30, what="exchange 2"
        )
        assert second[0].name.startswith(answer.name.split("_ex001_")[0])  # same conversation id
        assert len(server.requests[-1].images()) == 1  # only the new ink

        samples.notebook_pdf(inbox / "Notebook.pdf", [21, 22])
        wait_until(lambda: len(server.requests) == 3, timeout=30, what="the notebook's first answer")
        samples.notebook_pdf(staging / "Notebook.pdf", [21, 22, 23])
        shutil.move(staging / "Notebook.pdf", inbox / "Notebook.pdf")
        wait_until(lambda: len(server.requests) == 4, timeout=30, what="the notebook's second answer")
        assert len(server.requests[-1].images()) == 1  # only page 3
        wait_until(lambda: len(outputs(inbox, "RESPONSE_")) == 4, timeout=30, what="four answers")
        assert daemon.stop() == 0
    assert not outputs(inbox, "ERROR_")
    rows = {(r["input_file"], r["sequence_number"]) for r in exchanges(tmp_path)}
    assert ("Notebook.pdf", 2) in rows and (answer.name, 2) in rows


def test_a_small_pdf_with_megabytes_of_text_is_answered_within_the_text_budget(
    tmp_path: Path, inbox: Path, server: FakeLLMServer
) -> None:
    """Issue 18: 20 pages sharing one compressed content stream hold 40 MB of text in a file of a few kB. Only
    context.question_tokens of it (default 8,000) is read, sent and stored, and the answer says so."""
    config = openai_config(tmp_path, inbox, server)
    bomb = samples.make_text_bomb_pdf(tmp_path / "bomb.pdf", pages=20, chars_per_page=2_000_000)
    assert bomb.stat().st_size < 50_000
    with DaemonProcess(config, tmp_path) as daemon:
        shutil.copy(bomb, inbox / "bomb.pdf")
        answer = wait_until(lambda: outputs(inbox), timeout=90, what="the answer")[0]
        row = wait_until(lambda: [r for r in exchanges(tmp_path) if r["status"] != "pending"], what="the record")[0]
        assert daemon.stop() == 0
    assert answer.name.startswith("RESPONSE_"), pdf_text(answer)

    # What reached the model: the 20 pages as images, and at most the budget of their text (the words around it
    # and the system prompt are all the margin there is).
    (request,) = server.requests
    assert len(request.images()) == 20
    system, question = request.body["messages"]
    asked = "".join(part.get("text", "") for part in question["content"])  # the text parts, not the images
    assert samples.BOMB_LINE.strip() in asked
    assert estimate_tokens(asked) <= 8000 + 50, estimate_tokens(asked)  # the words introducing it: ~30 tokens
    assert estimate_tokens(system["content"] + asked) <= 8000 + 500  # with the system prompt

    # The answer says the text was cut, and how much was kept.
    said = " ".join(pdf_text(answer).split())
    assert "The typed text in this file was too long" in said and "context.question_tokens" in said, said
    assert "pages 2–20 left out" in said

    # The record: small, with the original and kept sizes.
    assert len(str(row["question_text"])) <= 8000 * 4
    metadata = json.loads(str(row["metadata"]))
    assert metadata["text"]["kept_tokens"] <= 8000 and metadata["text"]["budget_tokens"] == 8000
    assert metadata["text"]["original_chars_at_least"] > metadata["text"]["kept_chars"] > 30_000
    assert metadata["request"]["estimated_tokens"] < 128_000 - 2048
    database = tmp_path / "state" / "db.sqlite3"
    (index,) = db_rows(database, "SELECT sum(length(block)) AS size FROM exchange_search_data")
    assert index["size"] < 200_000
    assert float(row["processing_time"]) < 20  # type: ignore[arg-type]  # it took minutes, reading all 40 MB
