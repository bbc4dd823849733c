"""Logging: readable on a terminal, one JSON object a line otherwise (journald, files, pipes).

Everything (our structlog calls and the stdlib ``logging`` of libraries like watchdog and httpx) goes through
one structlog processor chain to stderr. Every line passes through the one redactor (``redact.py``) twice: its
values before rendering and the rendered line (with its traceback) after, so a key pasted into an error
message by a provider or a plugin's exception never reaches the log. Uncaught exceptions (in the main thread
or any other) are logged through the same chain rather than printed by Python.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, Literal, TextIO

import structlog

from eink_llm import redact as _redact

#: Kept for callers that register a backend's key when they open it (``service.open_backends``).
register_secrets = _redact.register


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Before rendering: every value (JSON escapes a secret's quotes and non-ASCII characters, so a key is
    masked in the values before they are escaped)."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact.value(value)
    return event_dict


def redact_line(_logger: Any, _method: str, line: Any) -> Any:
    """After rendering: the whole line, with the traceback the console renderer formats itself."""
    return _redact.text(line) if isinstance(line, str) else line


def configure_logging(
    format: Literal["auto", "console", "json"] = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    stream = stream or sys.stderr
    use_console = format == "console" or (format == "auto" and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if use_console:
        # Plain tracebacks even where rich is installed: rich prints local variables (keys among them) and wraps
        # long lines, which could split a secret past the redactor.
        renderer = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    else:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer, redact_line],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries' chatter at INFO (one line per HTTP request) drowns the one line per exchange that matters.
    for noisy in ("httpx", "httpcore", "watchdog", "PIL", "pypdfium2"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Python would print the traceback to stderr as it is, secrets and all: log it through the redactor."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("eink_llm").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
    logging.getLogger("eink_llm").critical(f"a thread ({name}) stopped on an uncaught exception", exc_info=exc_info)
