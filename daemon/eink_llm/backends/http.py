"""The HTTP helper for plugin backends: what the built-in providers share, as a stable public API.

A plugin that talks to an HTTP API imports from here instead of copying the built-in backends' plumbing. It gets
the same client rules (one pooled, thread-safe client per backend; a short connect timeout; no redirects
followed; ``HTTPS_PROXY`` honoured) and the same mapping from failures to what the user reads and whether the
queue tries again (connection errors, timeouts, 408, 409, 429 and 5xx retryable, ``Retry-After`` /
``retry-after-ms`` honoured up to :data:`MAX_RETRY_AFTER_SECONDS`; 400, 401, 403, 404, 413 permanent), with the
backend's secrets masked in every message. In short (docs/backends.md has a complete example, run by the tests)::

    from eink_llm.backends.http import HttpService, finish_answer

    class MyBackend:
        def __init__(self, settings, *, transport=None):
            self.http = HttpService(settings.base_url, timeout_seconds=settings.timeout_seconds,
                                    headers={"X-Key": key}, secrets=[key], transport=transport)

        def complete(self, request):
            data = self.http.post_json("ask", {...})  # the JSON object, or a BackendError: never anything else
            text = finish_answer(self.http, data["answer"], cut_off=False, withheld=None, detail="...")

Everything listed in ``__all__`` keeps its name and signature across minor releases (new keyword arguments may
be added, with defaults); anything else in ``eink_llm.backends._http`` and ``._prompt`` may change without notice.
"""

from __future__ import annotations

from eink_llm.backends._http import (
    MAX_RETRY_AFTER_SECONDS,
    TRY_LATER,
    HttpService,
    as_int,
    join_url,
    parse_retry_after,
    provider_message,
    should_retry_override,
    strip_reasoning,
    truncate,
)
from eink_llm.backends._prompt import CUT_OFF_NOTE, dumps, error_in_body, finish_answer, require_model, user_text
from eink_llm.errors import BackendError

__all__ = [
    "CUT_OFF_NOTE",
    "MAX_RETRY_AFTER_SECONDS",
    "TRY_LATER",
    "BackendError",
    "HttpService",
    "as_int",
    "dumps",
    "error_in_body",
    "finish_answer",
    "join_url",
    "parse_retry_after",
    "provider_message",
    "require_model",
    "should_retry_override",
    "strip_reasoning",
    "truncate",
    "user_text",
]
