"""What every HTTP backend shares: one client, one JSON POST, and ONE mapping from failures to BackendError.

Providers differ in their wire formats but fail in the same ways (unreachable hosts, timeouts, 429, 5xx, a bad
key, a wrong model name). Mapping those here keeps the words the tablet user reads, and the retry decisions the
queue makes, identical for OpenAI, Anthropic, Gemini and Ollama. The rules follow the official SDKs
(openai-python's and anthropic-sdk-python's ``_base_client``): retry connection errors, timeouts, 408, 409, 429
and >= 500; never 400, 401, 403, 404, 413; honour ``retry-after-ms``, then ``Retry-After``; let
``x-should-retry`` override.

The daemon retries through its queue, so nothing here retries by itself: one call, one attempt.

Plugins reach a stable subset of this module through :mod:`eink_llm.backends.http`; a change to a name listed
there is a change to a public API.

Secrets: every text that leaves this module (``what``, ``todo``, ``detail``) passes through :meth:`HttpService.
redact`, because providers and HTTP libraries like to echo what they were sent (a key in an error message, a
``?key=`` in a URL).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from eink_llm import redact
from eink_llm.errors import BackendError

#: Longest delay we accept from a Retry-After header; the queue's own backoff takes over beyond it.
MAX_RETRY_AFTER_SECONDS = 120.0
#: Longest provider error message quoted to the user.
MAX_PROVIDER_MESSAGE = 300
#: Longest slice of an unparseable body kept in ``detail``.
MAX_BODY_EXCERPT = 200
#: Longest connect timeout: a host that does not accept a connection within this will not accept it later.
MAX_CONNECT_TIMEOUT = 10.0

_RETRYABLE_STATUSES = frozenset({408, 409, 429})
#: The advice for a transient failure. The user reads it only in an ERROR_ PDF, i.e. after the daemon has used up
#: its own retries, so it must not promise another automatic attempt.
TRY_LATER = "This is usually temporary: export the page again in a few minutes."


def join_url(base_url: str, path: str) -> str:
    """``base_url`` + ``path`` with exactly one slash between them, whether or not the user wrote a trailing one."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def make_timeout(timeout_seconds: float) -> httpx.Timeout:
    """The configured timeout for reading and writing; a short connect timeout so a dead host fails fast."""
    return httpx.Timeout(timeout_seconds, connect=min(MAX_CONNECT_TIMEOUT, timeout_seconds))


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """The delay in seconds a provider asked for, or ``None``.

    ``retry-after-ms`` (OpenAI) wins over ``Retry-After`` (seconds or an HTTP date). Negative, non-finite and
    unparseable values are ignored; long ones are capped at :data:`MAX_RETRY_AFTER_SECONDS` so a misbehaving
    proxy cannot park a question for a day.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    seconds: float | None = None
    millis = _finite_float(lowered.get("retry-after-ms"))
    if millis is not None and millis >= 0:
        seconds = millis / 1000.0
    else:
        raw = (lowered.get("retry-after") or "").strip()
        number = _finite_float(raw)
        if number is not None:
            seconds = number if number >= 0 else None
        elif raw:
            try:
                when = parsedate_to_datetime(raw)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                delta = (when - datetime.now(UTC)).total_seconds()
                seconds = delta if delta >= 0 else None
    if seconds is None:
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


def _finite_float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def should_retry_override(headers: Mapping[str, str]) -> bool | None:
    """``x-should-retry: true|false`` is the provider telling us better than the status code can."""
    for key, value in headers.items():
        if key.lower() == "x-should-retry":
            flag = value.strip().lower()
            if flag == "true":
                return True
            if flag == "false":
                return False
    return None


def provider_message(body: bytes | str) -> str | None:
    """The human-readable message out of a provider's error body, whatever its dialect.

    Covers OpenAI / Gemini / vLLM / Anthropic (``{"error": {"message": ...}}``), Ollama (``{"error": "..."}``),
    vLLM's older ``{"message": ...}`` and FastAPI's ``{"detail": ...}``; falls back to the body's text unless it
    is HTML (a proxy's error page says nothing useful). Whitespace is collapsed, the result not yet truncated.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    message: object = None
    try:
        data: object = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("msg")
        elif isinstance(error, str):
            message = error
        if not message:
            message = data.get("message")
        if not message:
            detail = data.get("detail")
            if isinstance(detail, str):
                message = detail
            elif isinstance(detail, list) and detail and isinstance(detail[0], dict):
                message = detail[0].get("msg")
    elif data is None and text.strip() and not text.lstrip().startswith("<"):
        message = text
    if not isinstance(message, str) or not message.strip():
        return None
    return " ".join(message.split())


def provider_error_code(body: bytes) -> str | None:
    """``error.code`` or ``error.type`` (e.g. OpenAI's ``insufficient_quota``), when the body has one."""
    try:
        data: object = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error: dict[str, object] = data["error"]
        for key in ("code", "type", "status"):
            value = error.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def truncate(text: str, limit: int) -> str:
    """Cut at a word boundary near ``limit`` and mark the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + "…"


_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """Remove a reasoning model's ``<think>…</think>`` blocks: the tablet user wants the answer, not the musings.

    Also handles the two broken shapes seen in practice: a chat template that swallowed the opening tag (text up
    to a lone ``</think>`` is reasoning) and an answer cut off mid-thought (a lone ``<think>`` to the end).
    """
    text = _THINK_BLOCK.sub("", text)
    closings = list(_THINK_CLOSE.finditer(text))
    if closings:
        text = text[closings[-1].end() :]
    opening = _THINK_OPEN.search(text)
    if opening is not None:
        text = text[: opening.start()]
    return text.strip()


def as_int(value: object) -> int:
    """A token count from a provider's usage block; anything odd (missing, null, negative, text) counts as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float) and math.isfinite(value):
        return max(0, int(value))
    return 0


class HttpService:
    """One provider endpoint: a pooled, thread-safe ``httpx.Client`` plus the failure mapping.

    Create one per backend instance; ``post_json`` may be called from several worker threads at once.
    ``label`` is how the user will see the service named ("The AI service at api.openai.com ...").
    ``secrets`` are masked in every error text, on top of the daemon's own redactor. ``transport`` (default: the
    network) is handed to the ``httpx.Client``: a test passes an ``httpx.MockTransport`` to see the exact request
    or answer with something no real server would send.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str | None] = (),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.strip()
        self.timeout_seconds = timeout_seconds
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        try:
            self.host = httpx.URL(self.base_url).host or self.base_url
        except (httpx.InvalidURL, TypeError, ValueError):
            self.host = self.base_url
        self.host = self.redact(self.host)
        self._headers = dict(headers or {})
        # trust_env stays on: people behind a corporate proxy configure it with HTTPS_PROXY. ``transport`` replaces
        # the network (and any proxy) for every request, e.g. an ``httpx.MockTransport`` in a test.
        self._client = httpx.Client(timeout=make_timeout(timeout_seconds), follow_redirects=False, transport=transport)

    @property
    def label(self) -> str:
        return f"The AI service at {self.host}"

    def close(self) -> None:
        self._client.close()

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, redact.MASK)
        return redact.text(text)  # and every other secret the daemon knows, and key-like URL parameters

    def error(
        self,
        what: str,
        todo: str = "",
        *,
        detail: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> BackendError:
        """A BackendError whose every text has had the secrets removed."""
        return BackendError(
            self.redact(what),
            self.redact(todo),
            detail=self.redact(detail) if detail is not None else None,
            retryable=retryable,
            retry_after=retry_after,
            status=status,
        )

    def not_understood(self, detail: str, *, status: int | None = 200) -> BackendError:
        """The service answered, but not in the shape we expect: often a proxy or an overloaded server, so retry."""
        return self.error(
            f"{self.label} sent an answer that could not be understood.",
            f"{TRY_LATER} If this keeps happening, check that llm.base_url points at the right kind of server.",
            detail=detail,
            retryable=True,
            status=status,
        )

    def post_json(
        self, path: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """POST ``body`` as JSON to ``base_url``/``path``; the parsed JSON object, or a BackendError.

        Raises a BackendError for every failure (network, HTTP status, invalid JSON); never anything else, so the
        pipeline's "unexpected error" path stays for real bugs.
        """
        url = join_url(self.base_url, path)
        merged = {**self._headers, **(headers or {})}
        try:
            response = self._client.post(url, json=body, headers=merged)
        except httpx.TimeoutException as exc:
            raise self._timeout_error(exc) from None
        except httpx.UnsupportedProtocol as exc:
            raise self.error(
                f"The address of the AI service ({self.redact(self.base_url)}) is not a web address.",
                "Check llm.base_url: it must start with http:// or https://.",
                detail=f"{type(exc).__name__}: {exc}",
            ) from None
        except httpx.ConnectError as exc:
            raise self.error(
                f"{self.label} could not be reached.",
                f"Check the network connection and that the server is running. {TRY_LATER}",
                detail=f"{type(exc).__name__}: {exc}",
                retryable=True,
            ) from None
        except (httpx.LocalProtocolError, UnicodeEncodeError) as exc:
            # httpx refuses header values with newlines or non-ASCII characters: almost always a pasted key.
            raise self.error(
                "The request to the AI service could not be sent because a setting contains characters that are "
                "not allowed in a web request.",
                "Check llm.api_key (no spaces, line breaks or quotes) and llm.options.",
                detail=type(exc).__name__,
            ) from None
        except httpx.InvalidURL as exc:
            raise self.error(
                f"The address of the AI service ({self.redact(self.base_url)}) is not valid.",
                "Check llm.base_url.",
                detail=f"{type(exc).__name__}: {exc}",
            ) from None
        except httpx.DecodingError as exc:
            # A body that is not in the Content-Encoding it claims (a confused proxy): an answer we cannot read.
            raise self.not_understood(f"{type(exc).__name__}: {exc}", status=None) from None
        except httpx.TransportError as exc:
            # RemoteProtocolError (the server hung up), ReadError, WriteError, ProxyError ...
            raise self.error(
                f"{self.label} broke off the connection before answering.",
                f"{TRY_LATER} If this keeps happening, check the server and any proxy in between.",
                detail=f"{type(exc).__name__}: {exc}",
                retryable=True,
            ) from None

        if response.status_code >= 300:
            raise self.status_error(response)
        try:
            data: object = response.json()
        except ValueError as exc:
            raise self.not_understood(
                f"HTTP {response.status_code}, invalid JSON ({exc}): {_excerpt(response.content)}",
                status=response.status_code,
            ) from None
        if not isinstance(data, dict):
            raise self.not_understood(
                f"HTTP {response.status_code}, expected a JSON object, got {type(data).__name__}: "
                f"{_excerpt(response.content)}",
                status=response.status_code,
            )
        return data

    def _timeout_error(self, exc: httpx.TimeoutException) -> BackendError:
        if isinstance(exc, httpx.ConnectTimeout):
            connect = min(MAX_CONNECT_TIMEOUT, self.timeout_seconds)
            what = f"{self.label} could not be reached within {_seconds(connect)}."
            todo = f"Check the network connection and that the server is running. {TRY_LATER}"
        else:
            what = f"{self.label} did not answer within {_seconds(self.timeout_seconds)}."
            todo = (
                f"{TRY_LATER} If this keeps happening, the model may be slow or overloaded: raise "
                "llm.timeout_seconds or check the server."
            )
        return self.error(what, todo, detail=f"{type(exc).__name__}: {exc}", retryable=True)

    def status_error(self, response: httpx.Response) -> BackendError:
        """Map a non-2xx response to the right words and retry decision."""
        status = response.status_code
        body = response.content
        message = provider_message(body)
        quoted = truncate(self.redact(message), MAX_PROVIDER_MESSAGE) if message else None
        detail = f"HTTP {status}" + (f": {quoted}" if quoted else f" {response.reason_phrase}".rstrip())
        retry_after = parse_retry_after(response.headers)
        label = self.label
        says = f" It said: “{quoted}”" if quoted else ""

        # Each branch sets the sentence for the user, a hint on what to do, and whether waiting may help.
        if status == 429 and provider_error_code(body) == "insufficient_quota":
            # OpenAI's "out of credit" comes as a 429, but no amount of waiting fixes it.
            what = f"{label} says the account has run out of credit or quota.{says}"
            hint, retryable = "Check the billing and usage limits of the account that llm.api_key belongs to.", False
        elif status == 429:
            what = f"{label} is receiving too many requests right now (rate limit)."
            hint, retryable = "If this keeps happening, check the rate limits of your plan.", True
        elif status == 408:
            what, hint, retryable = f"{label} gave up waiting for the request.", "", True
        elif status == 409:
            what, hint, retryable = f"{label} reported a conflict with another request.", "", True
        elif status in (503, 529):
            what, hint, retryable = f"{label} is overloaded or temporarily unavailable.", "", True
        elif status >= 500:
            what, hint, retryable = f"{label} had an internal problem (HTTP {status}).", "", True
        elif status == 401:
            what = f"{label} did not accept the API key."
            hint, retryable = "Check llm.api_key in the configuration: it may be missing, mistyped or revoked.", False
        elif status == 403:
            what = f"{label} refused access.{says}"
            hint, retryable = "Check llm.api_key and that this key's account may use the model in llm.model.", False
        elif status == 404:
            what = f"{label} does not know this model or address.{says}"
            hint = "Check llm.model (spelling; for a local server, is the model downloaded?) and llm.base_url."
            retryable = False
        elif status == 413:
            what = f"The pages were too large for the AI service at {self.host}."
            hint = "Send fewer pages at once, or lower input.max_long_edge_px so pages are sent smaller."
            retryable = False
        elif 300 <= status < 400:
            location = response.headers.get("location", "")
            what = f"{label} redirected the request elsewhere{f' ({location})' if location else ''}."
            hint = (
                "Check llm.base_url: use the exact address of the API (https://, and for OpenAI-compatible "
                "servers usually ending in /v1)."
            )
            retryable = False
        else:  # 400, 422 and other 4xx: the provider's own message is the most useful thing we have
            what = f"{label} rejected the request (HTTP {status}).{says}"
            hint = "Check llm.model and llm.options; the model may not accept images or these settings."
            retryable = False

        override = should_retry_override(response.headers)
        if override is not None:
            retryable = override
        if retryable:
            todo = f"{TRY_LATER} {hint}".strip()
        else:
            todo = hint or "Check the service's status page, then export the page again."
        return self.error(what, todo, detail=detail, retryable=retryable, retry_after=retry_after, status=status)


def _excerpt(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return truncate(text, MAX_BODY_EXCERPT) if text else "(empty body)"


def _seconds(value: float) -> str:
    if value == int(value):
        count = int(value)
        return f"{count} second" if count == 1 else f"{count} seconds"
    return f"{value:g} seconds"
