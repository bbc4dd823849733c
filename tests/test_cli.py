"""The command line as a user meets it: a real `eink-llm` process, its output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eink_llm.errors import EX_CONFIG


def eink(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EINK_LLM", "XDG_", "STATE_DIRECTORY"))}
    base.update({"HOME": str(cwd), "XDG_CONFIG_HOME": str(cwd / "cfg"), "XDG_STATE_HOME": str(cwd / "state")})
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "eink_llm", *args], cwd=cwd, env=base, capture_output=True, text=True, timeout=60
    )


def test_check_config_prints_effective_config_with_secret_masked(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("llm:\n  backend: openai\n  model: m\n  api_key: ${KEY}\n")
    result = eink("check-config", "-c", str(config), cwd=tmp_path, env={"KEY": "sk-very-secret-value"})
    assert result.returncode == 0, result.stderr
    assert "sk-very-secret-value" not in result.stdout + result.stderr
    assert "backend: openai" in result.stdout and "********" in result.stdout
    assert f"database: {tmp_path / 'state' / 'eink-llm' / 'eink-llm.sqlite3'}" in result.stdout


def test_check_config_on_builtin_defaults(tmp_path: Path) -> None:
    result = eink("check-config", cwd=tmp_path)
    assert result.returncode == 0
    assert "built-in defaults" in result.stdout and "backend: echo" in result.stdout
    assert str(tmp_path / "inbox") in result.stdout


def test_config_errors_are_one_clear_message_without_traceback(tmp_path: Path) -> None:
    missing = eink("check-config", "-c", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert missing.returncode == EX_CONFIG
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("watch:\n  settle_seconds: soon\n  folders: []\nllm: {backend: echo, colour: 1}\n")
    invalid = eink("run", "-c", str(bad), cwd=tmp_path)
    assert invalid.returncode == EX_CONFIG
    for path in ("watch.settle_seconds", "watch.folders", "llm.colour"):
        assert path in invalid.stderr
    assert "Traceback" not in invalid.stderr


def test_run_refuses_a_watched_folder_whose_parent_is_missing(tmp_path: Path) -> None:
    """A missing parent usually means an unmounted disk: refused (a missing folder alone is created)."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"watch: {{folders: [{tmp_path / 'disk' / 'absent'}]}}\nstorage: {{database: {tmp_path / 'db.sqlite3'}}}\n"
    )
    result = eink("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 66
    assert "nor its parent folder" in result.stderr and "mount it" in result.stderr


def test_process_a_missing_file_fails(tmp_path: Path) -> None:
    result = eink("process", str(tmp_path / "none.pdf"), cwd=tmp_path)
    assert result.returncode == 1
    assert "NOT answered" in result.stdout


def test_logs_are_json_lines_when_not_a_terminal(tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    page = Image.new("L", (400, 500), 255)
    ImageDraw.Draw(page).line([(50, 50), (300, 400)], fill=0, width=6)
    page.save(tmp_path / "q.png")
    result = eink("process", str(tmp_path / "q.png"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "answering a page logs its exchange"
    records = [json.loads(line) for line in lines]  # every line is one JSON object, nothing else
    assert all({"event", "level", "timestamp"} <= record.keys() for record in records)
    assert any(record["event"] == "exchange" and record["status"] == "ok" for record in records)


def test_render_previews_a_markdown_answer(tmp_path: Path) -> None:
    answer = tmp_path / "answer.md"
    answer.write_text("# Derivatives\n\nThe derivative of $x^2$ is $2x$.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    out = tmp_path / "out.pdf"
    result = eink("render", str(answer), "--device", "remarkable-move", "-o", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"%PDF-") and str(out) in result.stdout
    unknown = eink("render", str(answer), "--device", "etch-a-sketch", cwd=tmp_path)
    assert unknown.returncode != 0 and "remarkable2" in unknown.stderr and "Traceback" not in unknown.stderr


def test_a_bad_device_in_the_config_fails_at_start(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    (tmp_path / "in").mkdir()
    config.write_text(
        f"watch: {{folders: [{tmp_path / 'in'}]}}\nstorage: {{database: {tmp_path / 'db.sqlite3'}}}\n"
        "output: {device: etch-a-sketch}\n"
    )
    result = eink("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode != 0 and "etch-a-sketch" in result.stderr and "Traceback" not in result.stderr


def test_conversations_find_the_database_like_status(tmp_path: Path) -> None:
    from eink_llm.store import ExchangeResult, Store

    default = eink("conversations", "list", cwd=tmp_path)  # no config: the state directory, like `status`
    assert default.returncode == 0, default.stderr
    assert "No history yet" in default.stdout
    assert str(tmp_path / "state" / "eink-llm" / "eink-llm.sqlite3") in default.stdout
    database = tmp_path / "elsewhere" / "h.sqlite3"
    with Store.open(database) as store:
        job_id = store.enqueue(tmp_path / "q.pdf", root=tmp_path, sha256="f" * 64, size=1, mtime_ns=1)
        job = store.claim_job(only=[job_id] if job_id else [])
        assert job is not None
        exchange = store.reserve_exchange(job, conversation_id="conv_x", new_conversation=True, input_type="pdf")
        store.complete_exchange(exchange, ExchangeResult(status="ok", output_file=None, transcription="Hello?"))
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{database: {database}}}\n")
    found = eink("conversations", "list", cwd=tmp_path, env={"EINK_LLM_CONFIG": str(config)})
    assert found.returncode == 0, found.stderr
    assert "conv_x" in found.stdout and "Hello?" in found.stdout
    usage = eink("conversations", "--help", cwd=tmp_path)
    for action in ("list", "show", "export", "search", "archive", "stats"):
        assert action in usage.stdout
