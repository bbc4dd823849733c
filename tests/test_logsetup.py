"""Logging: JSON lines off a terminal, and API keys never in any line."""

from __future__ import annotations

import io
import json
import logging

import structlog

from eink_llm.logsetup import configure_logging, register_secrets


def test_json_lines_and_redaction() -> None:
    stream = io.StringIO()
    configure_logging("auto", "info", stream=stream)
    register_secrets(["sk-test-abcdef123456"])
    structlog.get_logger("t").info("exchange", conversation="c1", url="https://x/?key=sk-test-abcdef123456")
    logging.getLogger("httpx").warning("Bearer sk-test-abcdef123456 rejected")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["event"] == "exchange" and lines[0]["conversation"] == "c1" and lines[0]["level"] == "info"
    assert "sk-test-abcdef123456" not in stream.getvalue()
    assert "********" in lines[0]["url"] and "********" in lines[1]["event"]


def test_console_format_is_readable() -> None:
    stream = io.StringIO()
    configure_logging("console", "debug", stream=stream)
    structlog.get_logger("t").info("watching", folders=["/in"])
    out = stream.getvalue()
    assert "watching" in out and "folders" in out and not out.lstrip().startswith("{")


def test_tests_can_capture_module_loggers_under_the_daemon_configuration() -> None:
    """Tests check log events with ``structlog.testing.capture_logs`` instead of replacing a module's logger.
    That must hold after ``configure_logging`` (a CLI test may have run it earlier in the same process), and
    capturing must not leave the daemon's own output changed behind it."""
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    module_log = structlog.get_logger("eink_llm.watcher")  # what a module holds: a lazy proxy
    module_log.info("before")  # a logger already used is captured too
    with structlog.testing.capture_logs() as logs:
        module_log.warning("captured", folder="/in")
    module_log.info("after")
    assert logs == [{"event": "captured", "folder": "/in", "log_level": "warning"}]
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["before", "after"]
