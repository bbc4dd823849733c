"""Any program as the AI: the question goes to its standard input as JSON, the answer comes back on its output.

For whatever has no built-in backend (a provider's own CLI, a script that calls a company-internal service, a
model run by hand) and for trying ideas without writing Python. Configuration::

    llm:
      backend: command
      options:
        command: ["/usr/local/bin/ask-my-model", "--fast"]   # argv; run directly, never through a shell
      timeout_seconds: 300

``command`` may also be one string, split like a shell would (``shlex``) but still run without one, so pipes and
``$VARS`` do not work there: wrap them in a script. The program's working directory is the daemon's.

**Input** (stdin, UTF-8 JSON, one object)::

    {"version": 1, "system_prompt": "...", "history": [{"role": "user", "text": "..."}, ...],
     "text": "text layer of the pages", "instruction": "Here is my question ...",
     "pages": [{"media_type": "image/png", "width": 931, "height": 1240, "data": "<base64>"}],
     "options": {"model": null, "max_output_tokens": 2048, "temperature": null}, "source_name": "Q.pdf"}

**Output** (stdout): either a JSON object ``{"text": "Markdown answer", "usage": {"input_tokens": 10,
"output_tokens": 20}, "model": "..."}`` (``usage`` and ``model`` optional), or simply the answer as plain text.

**Exit status**: 0 = answered; 75 (``EX_TEMPFAIL``) = try again later (stdout may then carry
``{"retry_after": seconds}``); anything else = a permanent failure, whose last lines of stderr are kept in the
error's detail, secrets masked (``redact.py``). A program that runs longer than ``llm.timeout_seconds`` is
killed with its whole process group (it runs in a session of its own) and the attempt counts as retryable.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
from typing import Any

from eink_llm import redact
from eink_llm.backends._http import MAX_RETRY_AFTER_SECONDS, TRY_LATER, as_int, strip_reasoning, truncate
from eink_llm.backends._prompt import INSTRUCTION
from eink_llm.backends.base import BackendSettings, Capabilities, LLMRequest, LLMResponse, Usage
from eink_llm.errors import EX_TEMPFAIL, BackendError

PROTOCOL_VERSION = 1
#: Lines of the program's stderr kept in an error's detail.
STDERR_TAIL_LINES = 8
STDERR_TAIL_CHARS = 800
#: How much of the end of stderr is read (and masked) to find those lines.
STDERR_SCAN_BYTES = 64 * 1024
#: How long a killed program's pipes may take to close before we stop waiting for them.
REAP_SECONDS = 2.0

CAPABILITIES = Capabilities(media_types=("image/png", "image/jpeg"), token_formula="unknown")


class CommandBackend:
    """Runs ``llm.options.command`` once per question. Every call has its own process, so threads are fine."""

    name = "command"
    capabilities = CAPABILITIES

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self.argv = _argv(settings.extra.get("command"))
        self.program = os.path.basename(self.argv[0])
        self.timeout_seconds = settings.timeout_seconds

    def close(self) -> None:
        pass

    def check_ready(self) -> None:
        """For the start-up checks (``run`` and ``check-config``): the program exists and may be run, else the
        BackendError a question would get. A program removed after the start makes each page an ERROR_ saying so."""
        program = self.argv[0]
        found = shutil.which(program)
        a_path = os.sep in program or bool(os.altsep and os.altsep in program)
        if found is None and a_path and os.path.isfile(program):
            raise BackendError(
                f"The answering program {program} may not be run.",
                "Check llm.options.command, and that the file is executable (chmod +x).",
            )
        if found is None:
            raise BackendError(
                f"The answering program {program} does not exist.",
                "Check llm.options.command: the first entry must be a program's full path or a name on PATH.",
            )

    def build_input(self, request: LLMRequest) -> dict[str, Any]:
        """The JSON object the program reads on stdin; public so tests and diagnostics can show it."""
        options = request.options
        return {
            "version": PROTOCOL_VERSION,
            "system_prompt": request.system_prompt,
            "history": [{"role": turn.role, "text": turn.text} for turn in request.history],
            "text": request.text,
            "instruction": request.instruction or INSTRUCTION,
            "pages": [
                {
                    "media_type": page.media_type,
                    "width": page.width,
                    "height": page.height,
                    "data": base64.b64encode(page.data).decode("ascii"),
                }
                for page in request.pages
            ],
            "options": {
                "model": options.model or self.settings.model,
                "max_output_tokens": options.max_output_tokens,
                "temperature": options.temperature,
            },
            "source_name": request.source_name,
        }

    def complete(self, request: LLMRequest) -> LLMResponse:
        payload = json.dumps(self.build_input(request), ensure_ascii=False).encode("utf-8")
        stdout, stderr, code = self._run(payload)
        if code == EX_TEMPFAIL:
            raise BackendError(
                f"The answering program {self.program} asked to be tried again later.",
                TRY_LATER,
                detail=_detail(code, stderr),
                retryable=True,
                retry_after=_retry_after(stdout),
            )
        if code != 0:
            raise BackendError(
                f"The answering program {self.program} failed (exit status {code}).",
                "Check llm.options.command; the detail below shows the end of what the program reported.",
                detail=_detail(code, stderr),
            )
        return self.parse_output(stdout, stderr)

    def parse_output(self, stdout: bytes, stderr: bytes = b"") -> LLMResponse:
        """The answer from the program's output: a JSON object with ``text``, or plain text."""
        output = stdout.decode("utf-8", "replace")
        model = self.settings.model or self.program
        usage = Usage()
        if output.lstrip().startswith("{"):
            try:
                data: object = json.loads(output)
            except ValueError as exc:
                raise self._not_understood(f"invalid JSON on stdout ({exc}): {_head(output)}") from None
            if not isinstance(data, dict) or not isinstance(data.get("text"), str):
                raise self._not_understood(f"a JSON answer needs a text string: {_head(output)}")
            raw: str = data["text"]
            counts = data.get("usage")
            if isinstance(counts, dict):
                usage = Usage(as_int(counts.get("input_tokens")), as_int(counts.get("output_tokens")))
            if isinstance(data.get("model"), str) and data["model"]:
                model = data["model"]
        else:
            raw = output
        text = strip_reasoning(raw)
        if not text:
            raise BackendError(
                f"The answering program {self.program} finished without writing an answer.",
                "Check llm.options.command: the program must print the answer (or a JSON object with text).",
                detail=_detail(0, stderr),
            )
        return LLMResponse(text=text, usage=usage, model=model)

    def _not_understood(self, detail: str) -> BackendError:
        # Half-written JSON is what a program killed mid-answer (out of memory, a lost connection) leaves.
        return BackendError(
            f"The answering program {self.program} wrote an answer that could not be understood.",
            f"{TRY_LATER} If this keeps happening, check what the program prints.",
            detail=detail,
            retryable=True,
        )

    def _run(self, payload: bytes) -> tuple[bytes, bytes, int]:
        try:
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, so a timeout can kill its children too
            )
        except FileNotFoundError:
            raise BackendError(
                f"The answering program {self.argv[0]} does not exist.",
                "Check llm.options.command: the first entry must be a program's full path or a name on PATH.",
            ) from None
        except PermissionError:
            raise BackendError(
                f"The answering program {self.argv[0]} may not be run.",
                "Check llm.options.command, and that the file is executable (chmod +x).",
            ) from None
        except OSError as exc:
            raise BackendError(
                f"The answering program {self.argv[0]} could not be started.",
                "Check llm.options.command.",
                detail=f"{type(exc).__name__}: {exc}",
            ) from None
        try:
            stdout, stderr = process.communicate(payload, timeout=self.timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            try:
                _, stderr = process.communicate(timeout=REAP_SECONDS)
            except subprocess.TimeoutExpired:
                stderr = b""
            raise BackendError(
                f"The answering program {self.program} did not answer within {_seconds(self.timeout_seconds)}.",
                f"{TRY_LATER} If this keeps happening, raise llm.timeout_seconds or check the program.",
                detail=_detail(None, stderr or b""),
                retryable=True,
            ) from None
        except BaseException:
            _kill_group(process)
            raise
        return stdout, stderr, process.returncode


def _seconds(value: float) -> str:
    return "1 second" if value == 1 else f"{value:g} seconds"


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.kill()


def _argv(value: object) -> list[str]:
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise BackendError(
                "llm.options.command could not be split into a program and its arguments.",
                "Check the quotes in llm.options.command, or write it as a list.",
                detail=str(exc),
            ) from None
    elif isinstance(value, list | tuple) and all(isinstance(item, str | int | float) for item in value):
        argv = [str(item) for item in value]
    else:
        argv = []
    if not argv or not argv[0].strip():
        raise BackendError(
            "The command backend needs a program to run.",
            'Set llm.options.command to the program and its arguments, e.g. ["/usr/local/bin/ask", "--fast"].',
        )
    return argv


def _detail(code: int | None, stderr: bytes) -> str:
    # Masked before it is cut: a cut through a secret would leave a part no pattern recognises.
    end = redact.text(stderr[-STDERR_SCAN_BYTES:].decode("utf-8", "replace"))
    tail_lines = end.strip().splitlines()[-STDERR_TAIL_LINES:]
    tail = "\n".join(tail_lines)[-STDERR_TAIL_CHARS:]
    head = "timed out" if code is None else f"exit status {code}"
    return f"{head}; stderr: {tail}" if tail else head


def _head(output: str) -> str:
    return truncate(redact.text(output.strip()), 200)


def _retry_after(stdout: bytes) -> float | None:
    try:
        data: object = json.loads(stdout.decode("utf-8", "replace"))
    except ValueError:
        return None
    value = data.get("retry_after") if isinstance(data, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    return None


def create(settings: BackendSettings) -> CommandBackend:
    """The factory the registry calls."""
    return CommandBackend(settings)
