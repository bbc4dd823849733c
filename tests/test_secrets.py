"""No secret leaves the daemon: a known key planted in every place a secret can sit, and every output channel
searched for it.

The planted keys: the top-level ``llm.api_key``; a profile's ``api_key``; an ``${ENV}`` value used as a
profile's key; a ``?key=`` in two profiles' ``base_url`` (one the OpenAI backend cannot use: it quotes it in its
error message); an ``X-Api-Key`` header in a profile's options; a token
the daemon was never told about, in an ``access_token=`` URL parameter (a plugin's own); and a ``sig=`` in a URL
a command prints. A careless plugin backend raises an exception quoting its URL, key, headers and own token
(``tests/fakes/leaky_plugin.py``); a command backend prints keys on stderr and fails; the echo backend answers.

The real ``eink-llm run`` (then ``process``, ``check-config``, ``status`` and every ``conversations`` command)
runs with console logs and with JSON logs. The channels searched: the daemon's and every command's
stdout/stderr, every RESPONSE_/ERROR_ PDF and the exported conversation PDF (bytes and extracted text: streams
are compressed), and the SQLite database with its WAL, read while the daemon runs and after it stopped.

A key wrapped over two lines of a PDF would hide from a plain search, so each key is also looked for by three
overlapping pieces of 8 characters, whitespace removed.

This module only runs programs: it needs nothing of the daemon's code beyond its command line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import samples
from tests.harness import DaemonProcess, clean_env, db_rows, outputs, pdf_text, wait_until, write_config

ROOT = Path(__file__).resolve().parent.parent
COMMAND_SCRIPT = Path(__file__).resolve().parent / "fakes" / "command_script.py"

#: Where each key was planted → the key (22 letters and digits: nothing a wrap or an escape would touch).
KEYS = {
    "top-level llm.api_key": "TOPkeyQ7vR2mX9pL4wZ8kN",
    "profile plug: api_key": "PRFkeyH3jK8sD1fG6aT0yU",
    "${ENV} in profile cmd: api_key": "ENVkeyB5nM2cV7xZ4qW9eR",
    "?key= in profile plug: base_url": "URLkeyP8oI3uY6tR1eW4qA",
    "?key= in profile ftp: base_url": "FTPkeyW3eR8tY1uI6oP2aS",
    "X-Api-Key in profile plug: options.headers": "HDRkeyL2kJ7hG4fD9sA5zX",
    "access_token= known only to the plugin": "OWNtokC3vB8nM1qW6eR2tY",
    "sig= printed by the command": "SIGvalT6yU1iO9pA3sD7fG",
}
ENV_NAME = "EINK_TEST_SECRET"


def pieces(key: str) -> list[str]:
    return [key[0:8], key[7:15], key[14:22]]


def leaks(channels: dict[str, str | bytes]) -> list[str]:
    """``where the key was planted → the channel it came out of`` for every key found in any channel."""
    found = []
    for channel, content in channels.items():
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        squeezed = re.sub(r"\s+", "", text)
        for where, key in KEYS.items():
            if key in text or any(piece in squeezed for piece in pieces(key)):
                found.append(f"{where} → {channel}")
    return found


def secret_config(tmp_path: Path, log_format: str) -> Path:
    inbox = tmp_path / "inbox"
    for sub in ("plug", "cmd", "ftp"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    state = tmp_path / "command-state"
    state.mkdir(exist_ok=True)
    stderr = (
        f"connecting with account key {KEYS['top-level llm.api_key']}\n"
        f"{ENV_NAME}={KEYS['${ENV} in profile cmd: api_key']}\n"
        f"GET https://store.example/blob?sv=2024-01-01&sig={KEYS['sig= printed by the command']} -> 403\n"
    )
    (state / "queue.jsonl").write_text(
        "".join(json.dumps({"stdout": "", "stderr": stderr, "exit": 3}) + "\n" for _ in range(4))
    )
    config = write_config(
        tmp_path / "config.yaml",
        inbox,
        tmp_path / "state" / "db.sqlite3",
        watch={"folders": [{"path": str(inbox), "subfolders": {"plug": "plug", "cmd": "cmd", "ftp": "ftp"}}]},
        llm={"backend": "echo", "api_key": KEYS["top-level llm.api_key"]},
        logging={"format": log_format, "level": "info"},
        profiles={
            "plug": {
                "llm": {
                    "backend": "tests.fakes.leaky_plugin:create",
                    "api_key": KEYS["profile plug: api_key"],
                    "base_url": "https://plugin.example/v1/generate?alt=json&key="
                    + KEYS["?key= in profile plug: base_url"],
                    "options": {"headers": {"X-Api-Key": KEYS["X-Api-Key in profile plug: options.headers"]}},
                }
            },
            "ftp": {  # the OpenAI backend quotes a base_url it cannot use in the error's message itself
                "llm": {
                    "backend": "openai",
                    "model": "vision",
                    "base_url": "ftp://files.example/v1?key=" + KEYS["?key= in profile ftp: base_url"],
                }
            },
            "cmd": {
                "llm": {
                    "backend": "command",
                    "api_key": "${" + ENV_NAME + "}",
                    "options": {"command": [sys.executable, str(COMMAND_SCRIPT), str(state)]},
                }
            },
        },
    )
    assert "${" + ENV_NAME + "}" in config.read_text()  # the key itself is not in the file, only its variable
    return config


def environment(tmp_path: Path) -> dict[str, str]:
    return {
        # The plugin is tests.fakes.leaky_plugin; an inherited PYTHONPATH (another checkout's daemon/) stays first.
        "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p),
        ENV_NAME: KEYS["${ENV} in profile cmd: api_key"],
        "LEAKY_PLUGIN_TOKEN": KEYS["access_token= known only to the plugin"],
    }


def database_files(tmp_path: Path) -> dict[str, bytes]:
    """The database, its WAL and shared-memory index, byte for byte."""
    state = tmp_path / "state"
    return {f"file {p.name}": p.read_bytes() for p in sorted(state.glob("db.sqlite3*")) if p.is_file()}


def pdf_channels(pdfs: list[Path]) -> dict[str, str | bytes]:
    channels: dict[str, str | bytes] = {}
    for pdf in pdfs:
        channels[f"{pdf.name} (bytes)"] = pdf.read_bytes()
        channels[f"{pdf.name} (text)"] = pdf_text(pdf)
    return channels


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_no_planted_secret_leaves_the_daemon(tmp_path: Path, log_format: str) -> None:
    config = secret_config(tmp_path, log_format)
    env = environment(tmp_path)
    inbox = tmp_path / "inbox"
    channels: dict[str, str | bytes] = {}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command, rest = args[0], list(args[1:])
        if command == "conversations":
            argv = [command, rest[0], "-c", str(config), *rest[1:]]
        else:
            argv = [command, "-c", str(config), *rest]
        result = subprocess.run(
            [sys.executable, "-m", "eink_llm", *argv],
            env=clean_env(tmp_path, **env),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        name = " ".join(args)
        channels[f"`{name}` stdout"] = result.stdout
        channels[f"`{name}` stderr"] = result.stderr
        return result

    # The daemon: one answer, three failures.
    with DaemonProcess(config, tmp_path, env=env) as daemon:
        samples.make_pdf(inbox / "fine.pdf", pages=1)
        samples.make_pdf(inbox / "plug" / "plugin question.pdf", pages=1)
        samples.make_pdf(inbox / "cmd" / "command question.pdf", pages=1)
        samples.make_pdf(inbox / "ftp" / "ftp question.pdf", pages=1)
        wait_until(lambda: len(outputs(inbox)) == 4, timeout=60, what="one RESPONSE_ and three ERROR_ PDFs")
        wait_until(
            lambda: (
                len(db_rows(tmp_path / "state" / "db.sqlite3", "SELECT 1 FROM exchanges WHERE status != 'pending'"))
                == 4
            ),
            what="the four exchanges recorded",
        )
        channels.update({f"{name} while running": data for name, data in database_files(tmp_path).items()})
        assert daemon.stop() == 0
        channels["daemon log (stderr)"] = daemon.log()
    assert len(outputs(inbox, "RESPONSE_")) == 1 and len(outputs(inbox, "ERROR_")) == 3

    # One-shot processing of two more failing files, then every command that shows what is stored.
    samples.make_png(inbox / "plug" / "again.png", size=(600, 800))
    samples.make_png(inbox / "cmd" / "again.png", size=(600, 800))
    processed = cli("process", str(inbox / "plug" / "again.png"), str(inbox / "cmd" / "again.png"))
    assert processed.returncode == 1, processed.stderr  # not answered: both are ERROR_ PDFs
    assert len(outputs(inbox, "ERROR_")) == 5

    checked = cli("check-config")
    assert checked.returncode == 0, checked.stderr
    status = cli("status")
    assert status.returncode == 0 and "Failures:" in status.stdout, status.stdout + status.stderr
    listed = cli("conversations", "list", "--json")
    conversations = [item["conversation_id"] for item in json.loads(listed.stdout)]
    assert len(conversations) == 6
    export_pdfs = []
    for conversation in conversations:
        cli("conversations", "show", conversation)
        cli("conversations", "export", conversation, "--format", "md")
        cli("conversations", "export", conversation, "--format", "json")
        target = tmp_path / f"export-{conversation}.pdf"
        exported = cli("conversations", "export", conversation, "--format", "pdf", "-o", str(target))
        assert exported.returncode == 0, exported.stderr
        export_pdfs.append(target)
    cli("conversations", "search", "derivative")
    cli("conversations", "stats")

    channels.update({f"{name} after": data for name, data in database_files(tmp_path).items()})
    channels.update(pdf_channels(outputs(inbox) + export_pdfs))

    # The failures really happened, quoting what they quote: the plugin's message and traceback and the command's
    # stderr reached the PDFs and the log (masked), and check-config showed the profiles.
    error_texts = {p.name: pdf_text(p) for p in outputs(inbox, "ERROR_")}
    plugin_pdf = next(t for n, t in error_texts.items() if "plugin" in n)
    command_pdf = next(t for n, t in error_texts.items() if "command" in n)
    ftp_pdf = next(t for n, t in error_texts.items() if "ftp" in n)
    assert "backup.example" in plugin_pdf and "store.example" in command_pdf and "files.example" in ftp_pdf
    assert "files.example" in status.stdout  # a stored error's message, not only its detail, quoted the URL
    log = str(channels["daemon log (stderr)"])
    assert "Traceback" in log and "RuntimeError" in log and "backup.example" in log
    assert "leaky_plugin" in checked.stdout
    assert "plugin.example" in checked.stdout and "X-Api-Key" in checked.stdout
    assert len(channels) > 60

    found = leaks(channels)
    assert not found, f"{len(found)} leaks (planted → channel):\n" + "\n".join(found)


def test_the_search_finds_a_planted_key(tmp_path: Path) -> None:
    """The search itself: a key in the clear, wrapped over lines, or compressed away in a PDF's text."""
    key = KEYS["profile plug: api_key"]
    assert leaks({"plain": f"x {key} y"}) == ["profile plug: api_key → plain"]
    assert leaks({"wrapped": f"{key[:11]}\n   {key[11:]}"}) == ["profile plug: api_key → wrapped"]
    assert leaks({"masked": "key ******** and " + key[:5]}) == []
    pdf = tmp_path / "answer.pdf"
    samples.make_pdf(pdf, pages=1, lines=[f"the key is {key}"])
    assert "profile plug: api_key → answer.pdf (text)" in leaks(pdf_channels([pdf]))


def test_status_and_history_mask_errors_an_older_version_stored(tmp_path: Path) -> None:
    """A database written before masking keeps keys in its error texts: ``status`` and the history commands
    mask them when they print them (the keys are known from the config; a ``sig=`` by its pattern)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    database = tmp_path / "state" / "db.sqlite3"
    config = write_config(
        tmp_path / "config.yaml", inbox, database, llm={"backend": "echo", "api_key": KEYS["top-level llm.api_key"]}
    )
    env = clean_env(tmp_path)

    def cli(*argv: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "eink_llm", *argv], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout + result.stderr

    samples.make_png(inbox / "q.png", size=(600, 800))
    cli("process", "-c", str(config), str(inbox / "q.png"))
    stored = (
        f"The key {KEYS['top-level llm.api_key']} was refused by "
        f"https://store.example/blob?sv=1&sig={KEYS['sig= printed by the command']}."
    )
    with sqlite3.connect(database) as db:  # what an older version wrote
        db.execute("UPDATE exchanges SET status = 'error', response_text = NULL, error_text = ?", (stored,))
        db.execute("UPDATE jobs SET state = 'failed', last_error = ?", (stored,))
    conversation = db_rows(database, "SELECT conversation_id FROM conversations")[0][0]

    export = tmp_path / "export.pdf"
    channels: dict[str, str | bytes] = {
        "status": cli("status", "-c", str(config)),
        "show": cli("conversations", "show", "-c", str(config), conversation),
        "export md": cli("conversations", "export", "-c", str(config), conversation),
        "export json": cli("conversations", "export", "-c", str(config), conversation, "--format", "json"),
    }
    cli("conversations", "export", "-c", str(config), conversation, "--format", "pdf", "-o", str(export))
    channels.update(pdf_channels([export]))
    assert "store.example" in str(channels["status"]) and "store.example" in str(channels["show"])
    assert "store.example" in pdf_text(export)
    found = leaks(channels)
    assert not found, f"{len(found)} leaks (planted → channel):\n" + "\n".join(found)


def test_a_key_added_by_a_reload_is_masked_too(tmp_path: Path) -> None:
    """SIGHUP re-reads the config: a profile key that only the new file has is registered like the first ones."""
    inbox = tmp_path / "inbox"
    (inbox / "plug").mkdir(parents=True)
    new_key = "RLDkeyJ4kL9zX2cV7bN1mQ"
    sections: dict[str, Any] = {
        "watch": {"folders": [{"path": str(inbox), "subfolders": {"plug": "plug"}}]},
        "profiles": {"plug": {"llm": {"backend": "echo"}}},
    }
    database = tmp_path / "state" / "db.sqlite3"
    config = write_config(tmp_path / "config.yaml", inbox, database, **sections)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)}
    with DaemonProcess(config, tmp_path, env=env) as daemon:
        wait_until(lambda: "watching" in daemon.log(), what="the daemon started")
        sections["profiles"] = {"plug": {"llm": {"backend": "tests.fakes.leaky_plugin:create", "api_key": new_key}}}
        write_config(config, inbox, database, **sections)
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in daemon.log(), what="the reload")
        samples.make_pdf(inbox / "plug" / "after reload.pdf", pages=1)
        error = wait_until(lambda: outputs(inbox, "ERROR_"), timeout=30, what="the plugin's ERROR_")[0]
        wait_until(lambda: db_rows(database, "SELECT 1 FROM exchanges WHERE status = 'error'"), what="recorded")
        assert daemon.stop() == 0
    assert "refused" in pdf_text(error)
    channels: dict[str, str | bytes] = {"daemon log": daemon.log(), **pdf_channels([error])}
    channels.update(database_files(tmp_path))
    found = [f"{where} → {channel}" for where, channel in _found_key(new_key, channels)]
    assert not found, "\n".join(found)


def _found_key(key: str, channels: dict[str, str | bytes]) -> list[tuple[str, str]]:
    hits = []
    for channel, content in channels.items():
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        if key in text or any(piece in re.sub(r"\s+", "", text) for piece in pieces(key)):
            hits.append(("the key a reload added", channel))
    return hits


def test_an_answer_that_echoes_a_key_reaches_the_tablet_masked(tmp_path: Path) -> None:
    """A command (or plugin) that prints a key of the config into its answer: the RESPONSE_ PDF, the database and
    the history show it masked; the rest of the answer, URLs with their parameters included, is untouched."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    state = tmp_path / "command-state"
    state.mkdir()
    key = KEYS["${ENV} in profile cmd: api_key"]
    answer = f"# Answer\n\nYour key is {key}. See https://docs.example/auth?token=public-example for tokens."
    (state / "queue.jsonl").write_text(json.dumps({"stdout": answer, "exit": 0}) + "\n")
    database = tmp_path / "state" / "db.sqlite3"
    config = write_config(
        tmp_path / "config.yaml",
        inbox,
        database,
        llm={
            "backend": "command",
            "api_key": "${" + ENV_NAME + "}",
            "options": {"command": [sys.executable, str(COMMAND_SCRIPT), str(state)]},
        },
    )
    env = clean_env(tmp_path, **{ENV_NAME: key})
    samples.make_png(inbox / "q.png", size=(600, 800))
    result = subprocess.run(
        [sys.executable, "-m", "eink_llm", "process", "-c", str(config), str(inbox / "q.png")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    response = outputs(inbox, "RESPONSE_")[0]
    text = pdf_text(response)
    assert "Your key is ********" in text and "auth?token=public-example" in re.sub(r"\s+", "", text)
    channels: dict[str, str | bytes] = {"process": result.stdout + result.stderr, **pdf_channels([response])}
    channels.update(database_files(tmp_path))
    found = leaks(channels)
    assert not found, "\n".join(found)
