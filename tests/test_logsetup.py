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
