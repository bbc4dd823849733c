"""Typed errors that carry a message for the person holding the tablet.

Every error the daemon can hit while answering a page is an :class:`EinkError`. It says, in plain words,
*what happened* and *what to do*; those two sentences become the body of the ERROR_ PDF, the log line, and the
CLI's message. ``detail`` keeps the technical cause (an HTTP status, a library's message) for the curious.

The CLI turns an error into an exit code in one place (``cli.main``), using :attr:`EinkError.exit_code`
(values from BSD ``sysexits.h``, which systemd and shell scripts understand).
"""

from __future__ import annotations

from datetime import datetime

EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_CONFIG = 78
#: Stopped by Ctrl-C (128 + SIGINT), as shells report it.
EX_INTERRUPTED = 130


class EinkError(Exception):
    """Base class: a failure with a user-facing explanation."""

    #: Short heading for the ERROR_ PDF.
    title = "Something went wrong"
    #: Exit status when this error ends a CLI command.
    exit_code = EX_SOFTWARE
    #: Whether trying the same thing again later may succeed.
    retryable = False
    #: The input's fault (logged at warning, and a byte-identical re-export is not tried again); otherwise the
    #: failure is ours or the service's (logged at error; a re-export, ``eink-llm retry`` or ink on the ERROR_
    #: page tries again).
    input_fault = False
    #: The ERROR_ page still covers the input's pages: its job counts as done, and a later version of the file
    #: (a notebook saved again) sends only what is new since (resolve.py, notebook mode).
    pages_known = False

    def __init__(self, what: str, todo: str = "", *, detail: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.todo = todo
        self.detail = detail

    def user_message(self) -> str:
        """One paragraph: what happened, then what to do."""
        return f"{self.what} {self.todo}".strip()

    def __str__(self) -> str:
        text = self.user_message()
        return f"{text} ({self.detail})" if self.detail else text


class ConfigError(EinkError):
    """The configuration file is missing, unreadable or invalid."""

    title = "The configuration is not valid"
    exit_code = EX_CONFIG


class InputError(EinkError):
    """The input file cannot be used as a question. Trying again will not help."""

    title = "Your page could not be read"
    exit_code = EX_DATAERR
    input_fault = True


class UnsupportedInputError(InputError):
    """Not a PDF or image we can read (wrong format, or a text file with a .pdf name)."""


class MissingExtraError(UnsupportedInputError):
    """The file needs a reader that is an optional extra not installed on this server (``notebooks``). Not the
    input's fault: once the extra is installed, the daemon's next start tries such files again (and so do
    ``eink-llm retry --failed``, a re-export and ink on the ERROR_ page)."""

    title = "This server cannot read this kind of file yet"
    input_fault = False


class CorruptInputError(InputError):
    """The file is damaged or truncated."""


class EncryptedInputError(InputError):
    """The PDF is protected by a password."""

    title = "Your page is password-protected"


class InputTooLargeError(InputError):
    """The file exceeds a configured limit (bytes, pages or pixels)."""

    title = "Your page is too large"


class InputChangedError(InputError):
    """The file at the queued path is no longer what was queued: its bytes differ from the queued SHA-256, or
    the path now is (or passes through) a link. Not answered under this job; a changed file is queued again by
    the watcher as a new job, and a link is never followed below the watched folder."""

    title = "Your page changed before it was answered"


class TooManyNewPagesError(InputTooLargeError):
    """A native notebook with more new or changed pages than one question may carry (``input.max_pages``): seen
    for the first time, or changed all over. Its pages are recorded as known, so the next save sends only what is
    new (docs/notebooks.md)."""

    title = "More new pages than one question may carry"
    pages_known = True


class InputBeyondLimitsError(InputTooLargeError):
    """Decoding the file needed more memory or time than the reading cage allows (input.max_decode_*)."""

    title = "Your page needs more than eink-llm allows for reading one file"


class BackendError(EinkError):
    """The language model could not answer.

    ``retryable`` tells the queue whether a later attempt may succeed (timeouts, 429, 5xx);
    ``retry_after`` is the delay in seconds the provider asked for, when it said one.
    """

    title = "The AI could not answer"
    exit_code = EX_UNAVAILABLE

    def __init__(
        self,
        what: str,
        todo: str = "",
        *,
        detail: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(what, todo, detail=detail)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class RequestTooLargeError(BackendError):
    """Even without the input's typed text and the earlier conversation, the question is estimated over the
    model's context window (or the profile's budget): it is not sent. Trying again will not help."""

    title = "Your question is too large for the model"


class RenderError(EinkError):
    """The answer could not be turned into a PDF."""

    title = "The answer could not be laid out"
    exit_code = EX_SOFTWARE


class DrawingRefused(EinkError):
    """A drawing in an answer (```svg, ```plot) that is not drawn; ``reason`` says why in one line. Never reaches
    the user as an error: the renderer shows the block's source under that line instead."""

    title = "A drawing could not be drawn"
    exit_code = EX_SOFTWARE

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "The drawing's source is shown instead.")
        self.reason = reason


class StoreError(EinkError):
    """The SQLite database cannot be opened, read or written.

    ``retryable`` when waiting may help (another program holds a lock, the disk is full): the daemon backs off
    and tries again, it never stops for it. The commands (``status``, ``conversations``) exit with 74."""

    title = "The history database is not available"
    exit_code = EX_IOERR

    def __init__(self, what: str, todo: str = "", *, detail: str | None = None, retryable: bool = False) -> None:
        super().__init__(what, todo, detail=detail)
        self.retryable = retryable


_DAMAGED = ("malformed", "not a database", "file is encrypted", "corrupt")
_NO_ACCESS = ("readonly", "read-only", "unable to open", "permission", "access")


def store_error(exc: Exception, path: object) -> StoreError:
    """A :class:`StoreError` saying in plain words what an SQLite exception means for the database at ``path``."""
    text = str(exc)
    lowered = text.lower()
    if any(word in lowered for word in ("locked", "busy")):
        return StoreError(
            f"The database {path} is locked by another program.",
            "eink-llm waits and tries again; if it lasts, find the program holding it (a backup, an open sqlite3 "
            "shell) and close it.",
            detail=text,
            retryable=True,
        )
    if "full" in lowered:
        return StoreError(
            f"The disk holding the database {path} is full.",
            "Free some space; eink-llm tries again by itself.",
            detail=text,
            retryable=True,
        )
    if any(word in lowered for word in _DAMAGED):
        return StoreError(
            f"The database {path} is damaged or is not an eink-llm database.",
            "Restore it from a backup, or move it aside so that eink-llm starts a new one (the answer PDFs in "
            "your folders stay; a new database answers only what is new).",
            detail=text,
        )
    if "disk i/o error" in lowered:
        return StoreError(
            f"The database {path} could not be written (a disk error, or the disk is full).",
            "Free some space and check the disk; eink-llm tries again by itself.",
            detail=text,
            retryable=True,
        )
    if any(word in lowered for word in _NO_ACCESS):
        return StoreError(
            f"The database {path} cannot be read or written.",
            "Check that it and its folder are readable and writable by this user and that the disk is mounted "
            "read-write (a database in WAL mode needs to write its -shm file even to be read).",
            detail=text,
        )
    return StoreError(
        f"The database {path} could not be used.", "Check the disk and the file, then try again.", detail=text
    )


class InterruptedTooOftenError(EinkError):
    """A job whose every attempt ended the daemon itself (killed for memory, a crash in a library)."""

    title = "This file could not be processed"


class OutputError(EinkError):
    """The answer PDF cannot be written into the folder. ``errno`` is the operating system's reason, when one
    was given (``ENAMETOOLONG`` makes the pipeline try again under a shorter name)."""

    title = "The answer could not be saved"
    exit_code = EX_IOERR

    def __init__(self, what: str, todo: str = "", *, detail: str | None = None, errno: int | None = None) -> None:
        super().__init__(what, todo, detail=detail)
        self.errno = errno


class UnknownConversationError(EinkError):
    """There is no conversation with the id the user gave (or no history at all)."""

    title = "There is no such conversation"
    exit_code = EX_NOINPUT


class HistoryArgumentError(EinkError):
    """A history command's argument cannot be used (a bad date, a search without words)."""

    title = "The command cannot be run like this"
    exit_code = EX_USAGE


class StartupError(ConfigError):
    """The start-up checks found problems (every one is listed); the exit code is that of the first."""

    title = "The daemon cannot start"

    def __init__(self, what: str, todo: str = "", *, exit_code: int = EX_CONFIG) -> None:
        super().__init__(what, todo)
        self.exit_code = exit_code


class ReaderUnavailableError(EinkError):
    """The reading process could not be started (the system is out of processes or memory, or the install
    is broken): not the file's fault."""

    title = "eink-llm could not start reading your page"


class BudgetExceededError(EinkError):
    """The profile's cap is reached; the fallback chain is tried, and if none is left the user is told when
    the budget resets."""

    title = "The budget is spent"
    exit_code = EX_UNAVAILABLE

    def __init__(self, what: str, todo: str = "", *, resets_at: datetime) -> None:
        super().__init__(what, todo)
        self.resets_at = resets_at


class UnexpectedError(EinkError):
    """A bug or an unforeseen condition: still reported to the user, never allowed to stop the daemon."""

    title = "Something unexpected went wrong"


class UnreadableInputError(UnexpectedError):
    """The reader failed in a way it does not know: still the input's fault."""

    input_fault = True


class InputVanishedError(EinkError):
    title = "Your page disappeared"
