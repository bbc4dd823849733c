"""One redaction for every secret: every text that leaves the daemon passes through :func:`text` first.

It knows two kinds of secrets:

- **The config's**, registered each time a config file is loaded (at start and on every reload; a key
  replaced by a reload stays masked): the value of every secret-like key at any depth (``api_key`` at the top
  and in every profile, ``token``, ``password``, ``secret``, ``Authorization``, ``X-Api-Key``…), every
  ``${ENV}`` value substituted into such a field or read from a secret-like variable (``…_KEY``, ``…_TOKEN``,
  ``…_SECRET``, ``…_PASSWORD``), and the values of key-like query parameters and passwords in any configured
  URL. See :func:`register_config`.
- **Generic patterns**, for secrets nobody told us about (a plugin's own key): key-like URL query parameters
  (``?key=``, ``api_key=``, ``token=``, ``access_token=``, ``sig=``…), the password in
  ``https://user:password@host``, ``Authorization``/``Bearer``/``x-api-key`` header values, and the shapes of
  well-known provider keys (``sk-…``, ``AIza…``).

Where it is applied (the exit points): ``check-config`` (:func:`masked`), log lines of both formats with their
tracebacks (``logsetup``), the CLI's messages and the ``status`` and history commands, ERROR_ PDFs
(``pipeline``), error texts stored in the database (``store``), a command backend's stderr; and in a backend's
answer, the registered secrets only (:func:`known`, in ``asking``).

A leaf module: it imports nothing of ours, so every layer may use it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

#: What a secret is replaced with.
MASK = "********"
#: Shorter values are not searched for in free text: they would mask ordinary words.
MIN_LENGTH = 6
#: Well-known placeholder keys of local servers (Ollama, vLLM, LM Studio, llama.cpp): not secrets, and
#: masking them would blank the backend's name in every message.
PLACEHOLDERS = frozenset({"ollama", "empty", "none", "null", "dummy", "lm-studio", "sk-no-key-required", "no-key"})

_SECRET_NAME = re.compile(
    r"(?:^|_)(?:api_?key|key|token|secret|password|passwd|pwd|passphrase|authorization|auth|bearer|credentials?"
    r"|signature|sig|cookie)$"
)
_PARAM = r"(?:[a-z0-9]+[_.-])*(?:api[_-]?key|apikey|key|token|secret|password|passwd|pwd|sig|signature|credential|auth)"
_URL_PARAM = re.compile(rf"(?i)([?&;]{_PARAM}=)([^&#\s\"'<>;\\()\[\]{{}},]+)")
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s/@:\"'<>]+:)([^\s/@\"'<>]+)(@)")
_HEADER = re.compile(
    r"(?i)((?:proxy-)?authorization|x-goog-api-key|x-api-key|api-key|x-auth-token|ocp-apim-subscription-key)"
    r"([\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic|token|digest)\s+)?([^\s\"',;()\[\]{}\\]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?=[A-Za-z._~+/=-]*[0-9])([A-Za-z0-9._~+/=-]{8,})")
_KEY_SHAPES = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}|gh[pousr]_[A-Za-z0-9]{36,})"
)
_FLAG = re.compile(r"--?([A-Za-z][\w-]*)(?:=(.+))?", re.DOTALL)
_AUTH_SCHEME = re.compile(r"(?i)^(?:bearer|basic|token|digest)\s+")

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # longest first, so a secret containing another is masked whole


def is_secret_name(name: object) -> bool:
    """Whether a config key or variable name holds a secret: ``api_key``, ``X-Api-Key``, ``GEMINI_TOKEN``…"""
    return isinstance(name, str) and _SECRET_NAME.search(name.strip().lower().replace("-", "_")) is not None


def register(values: Iterable[object]) -> None:
    """Values that must never leave the daemon. Stays for the life of the process (also after a reload)."""
    global _secrets
    found: set[str] = set()
    for value in values:
        if not isinstance(value, str | int) or isinstance(value, bool):
            continue
        for candidate in (str(value).strip(), _AUTH_SCHEME.sub("", str(value).strip())):
            if len(candidate) >= MIN_LENGTH and candidate.lower() not in PLACEHOLDERS:
                found |= {candidate, quote(candidate, safe=""), quote_plus(candidate)}
    with _lock:
        if not found <= set(_secrets):
            _secrets = tuple(sorted(found | set(_secrets), key=len, reverse=True))


def secrets_in(data: object) -> list[str]:
    """The secrets in a config's data: values of secret-like keys at any depth, and of key-like query
    parameters and passwords in any URL among its strings."""
    found: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            if is_secret_name(key):
                found += [str(v) for v in (value if isinstance(value, list) else [value]) if _scalar(v)]
            found += secrets_in(value)
    elif isinstance(data, list | tuple):
        for previous, item in zip([None, *data], data, strict=False):
            found += secrets_in(item)
            flag = _FLAG.fullmatch(previous) if isinstance(previous, str) else None
            if flag and not flag.group(2) and is_secret_name(flag.group(1)) and _scalar(item):
                found.append(str(item))  # a command's argv: ["ask", "--api-key", "..."]
            flag = _FLAG.fullmatch(item) if isinstance(item, str) else None
            if flag and flag.group(2) and is_secret_name(flag.group(1)):
                found.append(flag.group(2))  # ["ask", "--token=..."]
    elif isinstance(data, str):
        found += [m.group(2) for m in _URL_PARAM.finditer(data)]
        found += [m.group(2) for m in _USERINFO.finditer(data)]
    return found


def _scalar(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def register_config(data: Mapping[str, Any], substituted: Iterable[tuple[str, str, str]] = ()) -> None:
    """Register a config's secrets. ``substituted``: the ``${ENV}`` references filled in, as
    ``(variable, value, field name)``; a value counts as secret when its variable or field has a secret's name."""
    env = [value for variable, value, field in substituted if is_secret_name(variable) or is_secret_name(field)]
    register([*secrets_in(data), *env])


def text(value: str) -> str:
    """``value`` with every registered secret and every secret-looking pattern masked."""
    if not value:
        return value
    value = known(value)
    value = _URL_PARAM.sub(lambda m: m.group(1) + MASK, value)
    value = _USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), value)
    value = _HEADER.sub(_mask_header, value)
    value = _BEARER.sub(lambda m: m.group(1) + MASK, value)
    return _KEY_SHAPES.sub(MASK, value)


def known(value: str) -> str:
    """``value`` with only the registered secrets masked, for text whose URLs and words must stay as they are
    (a model's answer: a program or plugin may echo its environment, but an answer may well discuss tokens)."""
    for secret in _secrets:
        if secret in value:
            value = value.replace(secret, MASK)
    return value


def _mask_header(match: re.Match[str]) -> str:
    name, separator, scheme, secret = match.groups()
    if secret == MASK or secret.strip("*") == "":
        return match.group(0)
    return f"{name}{separator}{scheme + ' ' if scheme else ''}{MASK}"


def value(data: Any) -> Any:
    """:func:`text` applied to every string in ``data`` (dicts, lists and tuples, recursively)."""
    if isinstance(data, str):
        return text(data)
    if isinstance(data, Mapping):
        return {k: value(v) for k, v in data.items()}
    if type(data) in (list, tuple):  # not their subclasses (named tuples): the rendered line is masked anyway
        return type(data)(value(v) for v in data)
    return data


def optional(data: str | None) -> str | None:
    return None if data is None else text(data)


def masked(data: Any) -> Any:
    """A config dump safe to show: values of secret-like keys replaced by :data:`MASK`, at any depth, and every
    other string passed through :func:`text`."""
    if isinstance(data, Mapping):
        return {k: _masked_field(v) if is_secret_name(k) else masked(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [masked(v) for v in data]
    return text(data) if isinstance(data, str) else data


def _masked_field(data: Any) -> Any:
    if isinstance(data, list):
        return [MASK if _scalar(v) else masked(v) for v in data]
    return MASK if _scalar(data) and data != "" else masked(data)
