"""Failed pages: logged at a level that matches whose fault it was, and retried three ways."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests import samples
from tests.harness import clean_env, write_config


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
