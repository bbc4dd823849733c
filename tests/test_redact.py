"""The one redactor (``redact.py``): what it knows from the config, what it recognises on its own, and each exit
point that passes text through it (logs with tracebacks, the database, a command's stderr, the history output).

The end-to-end proof, the real daemon and commands with keys planted everywhere, is ``test_secrets.py``.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from pathlib import Path

import pytest
import structlog

from eink_llm import redact
from eink_llm.backends import LLMRequest
from eink_llm.config import masked_dump, parse_config_file
from eink_llm.errors import BackendError
from eink_llm.history_format import export_json, show_text
from eink_llm.logsetup import configure_logging
from eink_llm.store import ExchangeResult, Store, utc_now
from tests.test_backends_command import command_backend

MASK = redact.MASK


def test_generic_patterns_mask_what_nobody_registered() -> None:
    cases = {
        "GET https://x.example/v1/m?alt=json&key=Zq9rT5uV1wX3 failed": "?alt=json&key=********",
        "https://x.example/a?api_key=Zq9rT5uV1wX3&b=1": "?api_key=********&b=1",
        "see https://h/p?access_token=Zq9rT5uV1wX3#frag": "?access_token=********#frag",
        "blob https://acct.blob.example/c/f?sv=2024&sig=Zq9rT5%2Bu%3D": "?sv=2024&sig=********",
        "s3 https://b.s3.example/k?X-Amz-Signature=abc123def": "?X-Amz-Signature=********",
        "(https://h/?token=Zq9rT5uV1wX3)": "(https://h/?token=********)",
        "proxy https://joe:Zq9rT5uV1wX3@proxy.example:3128/": "https://joe:********@proxy.example:3128/",
        "Authorization: Bearer Zq9rT5uV1wX3": "Authorization: Bearer ********",
        "{'X-Api-Key': 'Zq9rT5uV1wX3'}": "{'X-Api-Key': '********'}",
        '"x-goog-api-key": "Zq9rT5uV1wX3"': '"x-goog-api-key": "********"',
        "sent bearer Zq9rT5uV1wX3 to it": "sent bearer ********",
        "key sk-proj-AbCdEfGhIjKlMnOpQrStUv was refused": "key ******** was",
    }
    for text, expected in cases.items():
        masked = redact.text(text)
        assert expected in masked, (text, masked)
        assert "Zq9rT5" not in masked and "AbCdEfGh" not in masked


def test_ordinary_messages_are_left_alone() -> None:
    for text in (
        "The AI service at api.openai.com could not be reached. Check llm.api_key and llm.base_url.",
        "exchange input_tokens=962 output_tokens=237 max_output_tokens=2048 status=ok",
        "http://localhost:11434/v1/chat/completions?stream=false",
        "The Authorization header was missing; a bearer token is needed.",
        "task-force-alpha-bravo-charlie-delta-echo",
    ):
        assert redact.text(text) == text


def test_registered_secrets_are_masked_in_any_form() -> None:
    redact.register(["Rg7+kL2/pQ9=mN4x", "short", None, 123, "ollama"])
    out = redact.text("key Rg7+kL2/pQ9=mN4x, in a URL Rg7%2BkL2%2FpQ9%3DmN4x, or a form Rg7%2BkL2%2FpQ9%3DmN4x")
    assert "Rg7" not in out and out.count(MASK) == 3
    assert redact.text("short ollama") == "short ollama"  # too short to search for; a well-known placeholder
    assert redact.value({"a": ["x Rg7+kL2/pQ9=mN4x"], "n": 1}) == {"a": [f"x {MASK}"], "n": 1}


def test_the_config_registers_every_level_and_env_values_used_as_secrets(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "llm:\n  api_key: TopLevelKey11aa\n"
        "  base_url: https://api.example/v1?alt=json&key=${URL_PART}\n"
        "profiles:\n"
        "  a:\n    llm:\n      api_key: ProfileKey22bb\n"
        "      options: {headers: {X-Api-Key: HeaderKey33cc}, password: '${PROXY_PASS}'}\n"
        "  b:\n    llm:\n      model: ${MODEL_NAME}\n      system_prompt: 'Say ${GREETING_TOKEN}'\n"
    )
    env = {
        "URL_PART": "UrlPart44dd",
        "PROXY_PASS": "ProxyPass55ee",
        "MODEL_NAME": "gemma3-vision",
        "GREETING_TOKEN": "GreetTok66ff",
    }
    loaded = parse_config_file(config, env)
    line = "TopLevelKey11aa ProfileKey22bb HeaderKey33cc UrlPart44dd ProxyPass55ee GreetTok66ff gemma3-vision"
    assert redact.text(line) == " ".join([MASK] * 6 + ["gemma3-vision"])  # a model name is no secret

    dumped = json.dumps(masked_dump(loaded))
    for secret in ("TopLevelKey11aa", "ProfileKey22bb", "HeaderKey33cc", "UrlPart44dd", "ProxyPass55ee"):
        assert secret not in dumped
    assert '"base_url": "https://api.example/v1?alt=json&key=********"' in dumped
    assert "gemma3-vision" in dumped and '"X-Api-Key": "********"' in dumped


def test_a_validation_error_never_quotes_a_key(tmp_path: Path) -> None:
    """Keys are registered before the config is validated, so even a message quoting a value is masked."""
    config = tmp_path / "config.yaml"
    config.write_text("llm:\n  api_key: BeforeValid77gg\n  timeout_seconds: -1\n")
    with pytest.raises(Exception, match="timeout_seconds"):
        parse_config_file(config, {})
    assert redact.text("BeforeValid77gg") == MASK


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_logs_mask_tracebacks_in_both_formats(log_format: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    stream = io.StringIO()
    configure_logging(log_format, "info", stream=stream)  # type: ignore[arg-type]
    redact.register(["LogKey88hhLogKey"])
    try:
        raise RuntimeError("GET https://p.example/x?key=NeverSeen99 with LogKey88hhLogKey")
    except RuntimeError:
        structlog.get_logger("t").exception("plugin failed", url="https://p.example/?token=NeverSeen99")
        logging.getLogger("some.library").exception("library too")
    out = stream.getvalue()
    assert "Traceback" in out and out.count("RuntimeError") >= 2
    assert "NeverSeen99" not in out and "LogKey88hh" not in out and MASK in out


def test_an_uncaught_exception_in_a_thread_is_logged_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    stream = io.StringIO()
    configure_logging("console", "info", stream=stream)

    def crash() -> None:
        raise ValueError("https://p.example/x?access_token=ThreadKey12ab")

    thread = threading.Thread(target=crash, name="worker-9")
    thread.start()
    thread.join()
    out = stream.getvalue()
    assert "worker-9" in out and "ValueError" in out and "ThreadKey12ab" not in out


def test_the_database_keeps_error_texts_masked(tmp_path: Path) -> None:
    redact.register(["StoreKey34cdStore"])
    path = tmp_path / "db.sqlite3"
    with Store.open(path) as store:
        job_id = store.enqueue(Path("/in/q.pdf"), root=Path("/in"), sha256="a" * 64, size=1, mtime_ns=1)
        assert job_id is not None
        job = store.claim_job()
        assert job is not None
        store.retry_later(job_id, at=utc_now(), error="503 from https://h/?key=StoreKey34cdStore")
        job = store.claim_job()
        assert job is not None
        exchange = store.reserve_exchange(job, conversation_id="conv_x", new_conversation=True, input_type="pdf")
        store.complete_exchange(
            exchange,
            ExchangeResult(
                status="error",
                output_file=None,
                error_text="refused key StoreKey34cdStore",
                metadata={"error_detail": "Authorization: Bearer StoreKey34cdStore"},
            ),
        )
        stored = store.exchanges()[0]
        assert stored.error_text == f"refused key {MASK}"
    data = b"".join(p.read_bytes() for p in tmp_path.glob("db.sqlite3*"))
    assert b"StoreKey34cd" not in data and MASK.encode() in data


def test_history_output_masks_errors_stored_before_masking(tmp_path: Path) -> None:
    """An older database keeps keys in its error texts; the history commands mask them when they show them."""
    import sqlite3

    redact.register(["OldDbKey56efOld"])
    path = tmp_path / "db.sqlite3"
    with Store.open(path) as store:
        job_id = store.enqueue(Path("/in/q.pdf"), root=Path("/in"), sha256="b" * 64, size=1, mtime_ns=1)
        job = store.claim_job()
        assert job is not None and job_id is not None
        exchange = store.reserve_exchange(job, conversation_id="conv_y", new_conversation=True, input_type="pdf")
        store.complete_exchange(exchange, ExchangeResult(status="error", output_file=None, error_text="x"))
    with sqlite3.connect(path) as db:  # what an older version wrote
        db.execute("UPDATE exchanges SET error_text = 'refused: OldDbKey56efOld at https://h/?sig=Zz12Yy34'")
    with Store.open(path, readonly=True) as store:
        conversation = store.get_conversation("conv_y")
        exchanges = store.exchanges("conv_y")
    assert conversation is not None and "OldDbKey56efOld" in (exchanges[0].error_text or "")
    for shown in (show_text(conversation, exchanges), json.dumps(export_json(conversation, exchanges))):
        assert "OldDbKey56ef" not in shown and "Zz12Yy34" not in shown and "refused: ********" in shown


def test_a_command_backends_stderr_is_masked(tmp_path: Path) -> None:
    redact.register(["CmdKey78abCmdKey"])
    script = tmp_path / "fail.py"
    script.write_text(
        "import sys\nsys.stderr.write('x' * 100000 + '\\nusing CmdKey78abCmdKey\\nGET https://h/?token=Tok90cdTok\\n')\n"
        "sys.exit(2)\n"
    )
    backend = command_backend([sys.executable, str(script)])
    with pytest.raises(BackendError) as caught:
        backend.complete(LLMRequest(system_prompt="s"))
    detail = caught.value.detail or ""
    assert "exit status 2" in detail and "using ********" in detail and "?token=********" in detail
    assert "CmdKey78ab" not in detail and "Tok90cd" not in detail


def test_a_key_in_a_commands_argv_is_registered_and_masked(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "llm:\n  backend: command\n"
        "  options: {command: [ask, --api-key, ArgvKey12abArgv, --token=ArgvTok34cd, --model, big-model-v2]}\n"
        "profiles:\n  p:\n    llm: {options: {secret: [ListKey56efList]}}\n"
    )
    dumped = json.dumps(masked_dump(parse_config_file(config, {})))
    assert "ArgvKey12ab" not in dumped and "ArgvTok34cd" not in dumped and "ListKey56ef" not in dumped
    assert "big-model-v2" in dumped and '"--api-key"' in dumped
    assert redact.text("ask failed: ArgvKey12abArgv / ArgvTok34cd") == f"ask failed: {MASK} / {MASK}"
