"""The command backend beyond the shared contract: a shell script as the AI, no shell in between, timeouts that
kill the whole process group, and what a failing program leaves in the error."""

from __future__ import annotations

import io
import os
import re
import stat
import time
from pathlib import Path

import pytest
from PIL import Image

from eink_llm.backends import BackendSettings, LLMRequest, ModelOptions, PageImage, create_backend
from eink_llm.backends.command import CommandBackend
from eink_llm.errors import BackendError
from tests.fakes import FakeCommand

DOCS = Path(__file__).resolve().parent.parent / "docs" / "backends.md"


def doc_example(name: str) -> str:
    """The code block that follows ``<!-- example: NAME -->`` in docs/backends.md."""
    match = re.search(rf"<!-- example: {re.escape(name)} -->\s*```\w*\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert match is not None, f"no example {name} in {DOCS}"
    return match.group(1)


def page() -> PageImage:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buffer, "PNG")
    return PageImage(buffer.getvalue(), "image/png", 8, 8)


def command_backend(argv: list[str] | str, **fields: object) -> CommandBackend:
    settings = BackendSettings("command", model="test-model", timeout_seconds=5.0, extra={"command": argv})
    for key, value in fields.items():
        object.__setattr__(settings, key, value)
    backend = create_backend(settings)
    assert isinstance(backend, CommandBackend)
    return backend


def ask(backend: CommandBackend, pages: int = 2) -> str:
    return backend.complete(LLMRequest(system_prompt="Be brief.", pages=(page(),) * pages)).text


def failure(backend: CommandBackend, pages: int = 1) -> BackendError:
    with pytest.raises(BackendError) as caught:
        ask(backend, pages)
    return caught.value


@pytest.fixture
def shell_script(tmp_path: Path) -> Path:
    script = tmp_path / "ask.sh"
    script.write_text(doc_example("ask.sh"))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_the_documented_shell_script_is_a_working_backend(shell_script: Path) -> None:
    assert len(shell_script.read_text().splitlines()) <= 10
    backend = command_backend([str(shell_script)])
    assert ask(backend, 2) == "# Answer from a shell script\n\nI received 2 page image(s) for model test-model."


def test_the_shell_script_asks_for_a_retry_or_fails(shell_script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = command_backend([str(shell_script)])
    error = failure(backend, 21)
    assert not error.retryable and "exit status 1" in error.what
    assert error.detail == "exit status 1; stderr: too many pages: 21"
    monkeypatch.setenv("ASK_BUSY", "1")
    error = failure(backend)
    assert error.retryable and error.retry_after is None and "tried again later" in error.what


def test_arguments_are_never_interpreted_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    backend = command_backend(["/bin/echo", f"$HOME; touch {marker}", "`id`"])
    assert ask(backend) == f"$HOME; touch {marker} `id`"
    assert not marker.exists()


def test_a_command_string_is_split_like_a_shell_would(tmp_path: Path) -> None:
    assert ask(command_backend("/bin/echo 'two words'  \"and more\"")) == "two words and more"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    command = FakeCommand(tmp_path / "state")
    pid_file = tmp_path / "child.pid"
    command.script({"child_pid_file": str(pid_file), "sleep": 30})
    backend = command_backend(command.argv, timeout_seconds=1.0)
    started = time.monotonic()
    error = failure(backend)
    assert time.monotonic() - started < 4
    assert error.retryable and "did not answer within 1 second." in error.what
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 3
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the program's own child survived the timeout"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_stderr_tail_is_kept_in_the_detail(tmp_path: Path) -> None:
    command = FakeCommand(tmp_path / "state")
    lines = "".join(f"line {n}\n" for n in range(1, 41))
    command.script({"exit": 3, "stderr": lines})
    error = failure(command_backend(command.argv))
    assert not error.retryable and error.detail is not None
    assert "line 40" in error.detail and "line 33" in error.detail and "line 32\n" not in error.detail


def test_json_answer_and_plain_text_answer(tmp_path: Path) -> None:
    command = FakeCommand(tmp_path / "state")
    command.script({"stdout": '  {"text": "<think>hm</think>Four.", "model": "m2"}'}, {"stdout": "\n\n  Plain.\n"})
    backend = command_backend(command.argv)
    response = backend.complete(LLMRequest(system_prompt="", options=ModelOptions(model="asked")))
    assert (response.text, response.model, response.usage.total_tokens) == ("Four.", "m2", 0)
    assert command.requests[0]["options"]["model"] == "asked"
    assert ask(backend) == "Plain."


@pytest.mark.parametrize("stdout", ['{"answer": "wrong key"}', '{"text": 42}', "{not json"])
def test_unusable_json_is_not_understood(tmp_path: Path, stdout: str) -> None:
    command = FakeCommand(tmp_path / "state")
    command.script({"stdout": stdout})
    error = failure(command_backend(command.argv))
    assert error.retryable and "could not be understood" in error.what


def test_missing_or_unrunnable_program_is_permanent(tmp_path: Path) -> None:
    error = failure(command_backend([str(tmp_path / "nope")]))
    assert not error.retryable and "does not exist" in error.what
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    error = failure(command_backend([str(script)]))
    assert not error.retryable and "chmod +x" in error.todo


@pytest.mark.parametrize("value", [None, [], "", "   ", [""], {"program": "x"}, "'unbalanced"])
def test_a_command_is_required(value: object) -> None:
    with pytest.raises(BackendError) as caught:
        create_backend(BackendSettings("command", extra={"command": value}))
    assert "llm.options.command" in str(caught.value)
