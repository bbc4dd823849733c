"""Run the real daemon as a separate process, and wait on conditions instead of sleeping."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pypdfium2 as pdfium
import yaml

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EINK_LLM", "XDG_", "STATE_DIRECTORY"))}
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / "cfg"), "XDG_STATE_HOME": str(home / "state")})
    env.update(extra)
    return env


def write_config(path: Path, inbox: Path, database: Path, **sections: dict[str, Any]) -> Path:
    """A test config: fast settling and polling-free watching unless a section overrides it."""
    config: dict[str, Any] = {
        "watch": {"folders": [str(inbox)], "settle_seconds": 0.3},
        "storage": {"database": str(database)},
        "retry": {"initial_delay_seconds": 0.2, "max_delay_seconds": 2},
        "logging": {"format": "json", "level": "info"},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(config))
    return path


class DaemonProcess:
    """``eink-llm run -c CONFIG`` in a child process, with its stderr (the log) kept in a file."""

    def __init__(self, config: Path, home: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.home = home
        self.env = clean_env(home, **(env or {}))
        self.log_path = home / f"daemon-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eink_llm", "run", "-c", str(self.config)],
            env=self.env,
            cwd=self.home,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        finally:
            self.log_file.close()
        return code

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if not self.log_file.closed:
            self.log_file.close()


def db_rows(database: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Read the daemon's database from outside, as `status` would (WAL allows it while the daemon writes)."""
    if not database.exists():
        return []
    connection = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return []
    finally:
        connection.close()


def outputs(folder: Path, prefix: str = "") -> list[Path]:
    return sorted(p for p in folder.rglob(f"{prefix}*.pdf") if p.name.startswith(("RESPONSE_", "ERROR_")))


def pdf_text(path: Path) -> str:
    """The text layer of every page of a PDF we wrote."""
    document = pdfium.PdfDocument(path)
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()
