"""What the store hands out: plain frozen records, and the row → record conversions."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

JobState = Literal["pending", "running", "done", "failed"]
ExchangeStatus = Literal["pending", "ok", "error"]
_R = TypeVar("_R")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and a Z: sorts correctly as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class Job:
    job_id: int
    path: Path
    root: Path
    sha256: str
    size: int
    user_id: str | None
    conversation_hint: str | None
    state: JobState
    attempts: int
    last_error: str | None
    #: Jobs with the same key run one at a time, in order: a conversation, a folder-mode folder, or a path.
    order_key: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    conversation_id: str
    user_id: str | None
    created_at: str
    total_exchanges: int
    status: str
    last_activity: str = ""
    context_summary: str | None = None
    #: The summary covers exchanges 1..summary_through.
    summary_through: int = 0


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """A PDF we wrote for an exchange, as kept for comparing with it when it comes back annotated."""

    exchange_id: int
    conversation_id: str
    sequence_number: int
    pdf: bytes | None


@dataclass(frozen=True, slots=True)
class SearchHit:
    exchange_id: int
    conversation_id: str
    sequence_number: int
    snippet: str
    rank: float


@dataclass(frozen=True, slots=True)
class Exchange:
    exchange_id: int
    conversation_id: str
    sequence_number: int
    job_id: int | None
    input_file: str
    status: ExchangeStatus
    question_text: str | None
    response_text: str | None
    error_text: str | None
    output_file: str | None
    model: str | None
    tokens_used: int | None
    processing_time: float | None
    created_at: str
    transcription: str | None = None
    backend: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    completed_at: str | None = None

    def asked(self) -> str | None:
        """What the user asked, as we know it: what the model read (the transcription), else the page's text."""
        for text in (self.transcription, self.question_text):
            if text and text.strip():
                return text.strip()
        return None


@dataclass(frozen=True, slots=True)
class ExchangeResult:
    """What the pipeline learned while answering: written to the exchange row in one transaction."""

    status: Literal["ok", "error"]
    output_file: Path | None
    question_text: str | None = None
    response_text: str | None = None
    error_text: str | None = None
    transcription: str | None = None
    backend: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    processing_time: float = 0.0
    profile: str | None = None
    cost: float = 0.0
    metadata: dict[str, Any] | None = None
    #: An ERROR_ that still covers the input's pages (``EinkError.pages_known``): the job is done, and a later
    #: version of the file is compared with this one's prints.
    pages_known: bool = False


@dataclass(frozen=True, slots=True)
class UnwrittenOutput:
    """An answer (or ERROR_) PDF that is recorded but could not be written into its folder yet: kept in the
    database and written by :mod:`eink_llm.delivery` as soon as the folder takes it, without asking again."""

    exchange_id: int
    path: Path
    pdf: bytes
    attempts: int
    next_attempt_at: str
    last_error: str | None
    created_at: str
    #: The watched folder it goes into (its job's root): written without following a link below it.
    root: Path | None = None


def _from_row(cls: type[_R], row: sqlite3.Row, **converted: Any) -> _R:
    """A record from a row: each of the dataclass's fields from the column of the same name (``converted``
    gives the ones that need a type other than SQLite's)."""
    columns = row.keys()
    values = {f.name: row[f.name] for f in fields(cls) if f.name in columns}  # type: ignore[arg-type]
    return cls(**(values | converted))


def _job(row: sqlite3.Row) -> Job:
    return _from_row(Job, row, path=Path(row["path"]), root=Path(row["root"]))


def _conversation(row: sqlite3.Row) -> Conversation:
    return _from_row(Conversation, row)


def _exchange(row: sqlite3.Row) -> Exchange:
    return _from_row(Exchange, row)


def _unwritten(row: sqlite3.Row) -> UnwrittenOutput:
    root = row["root"] if "root" in row.keys() else None  # noqa: SIM118 (in a Row looks at its values)
    return _from_row(UnwrittenOutput, row, path=Path(row["path"]), root=Path(root) if root else None)
