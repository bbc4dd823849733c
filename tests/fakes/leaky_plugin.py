"""A careless plugin backend (``llm.backend: tests.fakes.leaky_plugin:create``) for the secrets tests.

Its ``complete`` fails the way a hand-written plugin often does: with a plain exception whose message quotes
the request it made, keys and all: its base URL (with a ``?key=`` in it), the ``X-Api-Key`` header from its
options, its API key, and a token of its own read from ``$LEAKY_PLUGIN_TOKEN`` that the daemon
was never told about (in an ``access_token=`` parameter). Nothing but the redactor stands between that message
and the tablet, the database and the log.
"""

from __future__ import annotations

import os

from eink_llm.backends.base import BackendSettings, Capabilities, LLMRequest, LLMResponse


class LeakyBackend:
    name = "leaky"
    capabilities = Capabilities(media_types=("image/png",), token_formula="unknown")

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings

    def close(self) -> None:
        pass

    def complete(self, request: LLMRequest) -> LLMResponse:
        headers = self.settings.extra.get("headers") or {}
        own = os.environ.get("LEAKY_PLUGIN_TOKEN", "")
        raise RuntimeError(
            f"POST {self.settings.base_url} failed with 403: the key {self.settings.api_key} was refused "
            f"(headers sent: {headers}); fallback https://backup.example/v1/ask?model=x&access_token={own} failed too"
        )


def create(settings: BackendSettings) -> LeakyBackend:
    return LeakyBackend(settings)
