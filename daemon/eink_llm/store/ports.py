"""The parts of the store each consumer may use: small ``typing.Protocol`` classes ("ports").

:class:`~eink_llm.store.Store` implements every one of them structurally (no inheritance; ``mypy --strict``
proves it where a ``Store`` is handed on, and for all of them at once in ``store/__init__.py``). A consumer is
annotated with the narrowest port it needs, so its signature says what it may touch; a method it needs and its
port lacks goes into the narrowest port that fits, not back to ``Store``. Signatures here mirror the methods
exactly (``tests/test_store_ports.py`` compares them); docstrings live on the methods.

Roles (one set of methods each; a method may sit in more than one):

========================  =====================================================  ===============================
port                      methods                                                used by
========================  =====================================================  ===============================
:class:`JobIntake`        ``enqueue``                                            ``intake``
:class:`JobOutcomes`      what becomes of the job being run: ``retry_later``,    (in ``PipelineStore``)
                          ``finish_job``, ``fail_job``, ``reopen_job``
:class:`JobQueue`         :class:`JobOutcomes` + ``claim_job``, ``get_job``,     ``service`` workers
                          ``next_due``, ``requeue_running``
:class:`JobLookup`        which job a file is, and its exchange: ``find_job``,   ``oneshot`` (``_earlier_result``)
                          ``failed_job_for_output``, ``retryable_failures``,
                          ``is_own_output``, ``exchange_for_job``
:class:`ExchangeRecords`  a job's exchange: ``reserve_exchange``,                (in ``PipelineStore``)
                          ``get_conversation``, ``record_output``,
                          ``complete_exchange``
:class:`PastAnswers`      what was answered before and where an input belongs    ``resolve``
:class:`FullTextSearch`   ``search``, ``exchanges_by_id``                        (in the two below)
:class:`ContextSource`    :class:`FullTextSearch` + ``history``                  ``context``
:class:`Summaries`        ``get_conversation``, ``history``, ``set_summary``     (in ``AskerStore``)
:class:`BudgetUsage`      ``usage_since``                                        ``budget``
:class:`UnwrittenOutputs` answers waiting for their folder                       ``delivery``
:class:`Heartbeats`       ``beat``                                               (in ``StatusKeeperStore``)
:class:`DaemonStatus`     heartbeat, running, waiting jobs, latest outcomes      (in ``SnapshotStore``)
:class:`QueueSummary`     ``queue_counts``, ``count_unwritten``                  ``service`` status line
:class:`HistoryCommands`  :class:`FullTextSearch` + the history commands'        ``history``
                          queries, and archiving
========================  =====================================================  ===============================

Consumers that need more than one role get an intersection: :class:`AskerStore` (``asking``),
:class:`PipelineStore` (``pipeline``: its own stages plus what it hands ``resolve``, ``asking`` and
``context``), :class:`SnapshotStore` (``statusinfo``), :class:`StatusKeeperStore` (``status_page``),
:class:`OneShotStore` (``oneshot``). Who opens the database (``service``, ``oneshot``, ``cli``, ``history``)
holds the whole ``Store`` and hands the parts on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from eink_llm.store.history import ConversationListing, Usage
from eink_llm.store.records import (
    AnswerRecord,
    Conversation,
    Exchange,
    ExchangeResult,
    Job,
    SearchHit,
    UnwrittenOutput,
)
from eink_llm.store.status import Heartbeat, Outcome, RunningJob, WaitingJob

# --- jobs --------------------------------------------------------------------------------------------------------


class JobIntake(Protocol):
    def enqueue(
        self,
        path: Path,
        *,
        root: Path,
        sha256: str,
        size: int,
        mtime_ns: int,
        user_id: str | None = None,
        conversation_hint: str | None = None,
        conversation_folder: Path | None = None,
    ) -> int | None: ...


class JobOutcomes(Protocol):
    """What becomes of a job that is being run: back to the queue later, done, failed, or a failed one reopened."""

    def retry_later(self, job_id: int, *, at: datetime, error: str, refund_attempt: bool = False) -> None: ...
    def finish_job(self, job_id: int, note: str, prints: Sequence[bytes] = ()) -> None: ...
    def fail_job(self, job_id: int, error: str) -> None: ...
    def reopen_job(self, job_id: int) -> bool: ...


class JobQueue(JobOutcomes, Protocol):
    """Claiming jobs and putting them back: the workers' side of the queue."""

    def claim_job(self, now: datetime | None = None, *, only: Sequence[int] | None = None) -> Job | None: ...
    def get_job(self, job_id: int) -> Job: ...
    def next_due(self) -> datetime | None: ...
    def requeue_running(self, *, refund: bool = False) -> int: ...


class JobLookup(Protocol):
    """Which job a file is (or whose ERROR_ page it is), and what became of it."""

    def find_job(self, path: Path, sha256: str) -> Job | None: ...
    def failed_job_for_output(self, path: Path, sha256: str | None = None) -> Job | None: ...
    def retryable_failures(self, since: datetime | None = None) -> list[Job]: ...
    def is_own_output(self, sha256: str) -> bool: ...
    def exchange_for_job(self, job_id: int) -> Exchange | None: ...


# --- exchanges and conversations ---------------------------------------------------------------------------------


class ExchangeRecords(Protocol):
    """A job's exchange: reserved before asking, its output recorded before it is written, then completed."""

    def reserve_exchange(
        self,
        job: Job,
        *,
        conversation_id: str,
        new_conversation: bool,
        input_type: str | None,
        folder: str | None = None,
    ) -> Exchange: ...
    def get_conversation(self, conversation_id: str) -> Conversation | None: ...
    def record_output(self, path: Path, sha256: str, exchange_id: int, pdf: bytes | None = None) -> None: ...
    def complete_exchange(
        self,
        exchange: Exchange,
        result: ExchangeResult,
        prints: Sequence[bytes] = (),
        *,
        unwritten: tuple[bytes, datetime, str] | None = None,
    ) -> None: ...


class PastAnswers(Protocol):
    """What was answered before: whether an input needs an answer, and which conversation it continues."""

    def exchange_for_job(self, job_id: int) -> Exchange | None: ...
    def get_conversation(self, conversation_id: str) -> Conversation | None: ...
    def answered_inputs(self, conversation_id: str, limit: int = 50) -> list[tuple[int, str, int]]: ...
    def page_prints(self, job_id: int) -> list[bytes]: ...
    def earlier_version(self, job: Job) -> tuple[Job, str | None] | None: ...
    def folder_conversation(self, folder: str) -> str | None: ...
    def answer_record(self, conversation_id: str, sequence_number: int) -> AnswerRecord | None: ...
    def answer_record_at(self, path: Path) -> AnswerRecord | None: ...
    def failed_job_for_output(self, path: Path, sha256: str | None = None) -> Job | None: ...
    def output_digest(self, path: Path) -> str | None: ...


class FullTextSearch(Protocol):
    """Exchanges found by their words (FTS5), and exchanges by id."""

    def search(
        self,
        text: str,
        *,
        conversation_id: str | None = None,
        before_sequence: int | None = None,
        exclude: Sequence[int] = (),
        limit: int = 5,
        match_all: bool = False,
        of_user: bool = False,
        user_id: str | None = None,
    ) -> list[SearchHit]: ...
    def exchanges_by_id(self, exchange_ids: Sequence[int]) -> list[Exchange]: ...


class ContextSource(FullTextSearch, Protocol):
    """Earlier exchanges for a request's context: the conversation's own, and full-text hits."""

    def history(self, conversation_id: str, before_sequence: int) -> list[Exchange]: ...


class Summaries(Protocol):
    """A conversation's rolling summary: read what it covers, write a new one."""

    def get_conversation(self, conversation_id: str) -> Conversation | None: ...
    def history(self, conversation_id: str, before_sequence: int) -> list[Exchange]: ...
    def set_summary(self, conversation_id: str, summary: str, through: int) -> None: ...


class BudgetUsage(Protocol):
    def usage_since(self, profile: str, since: datetime) -> tuple[int, float]: ...


class UnwrittenOutputs(Protocol):
    """Answers whose folder refused them, kept until written (``eink_llm.delivery``)."""

    def due_unwritten(self, now: datetime | None = None, limit: int = 10) -> list[UnwrittenOutput]: ...
    def write_failed_again(self, exchange_id: int, *, at: datetime, error: str) -> None: ...
    def output_written(self, exchange_id: int) -> None: ...


# --- status and history ------------------------------------------------------------------------------------------


class Heartbeats(Protocol):
    def beat(self, beat: Heartbeat) -> None: ...


class DaemonStatus(Protocol):
    """The daemon's heartbeat and the work in progress and waiting, as ``status`` and the STATUS page show it."""

    def heartbeat(self) -> Heartbeat | None: ...
    def has_heartbeat(self) -> bool: ...
    def running_jobs(self, root: Path | None = None) -> list[RunningJob]: ...
    def waiting_jobs(self, root: Path | None = None, limit: int = 5) -> tuple[list[WaitingJob], int]: ...
    def latest_outcomes(self, root: Path | None = None, limit: int = 5) -> list[Outcome]: ...


class QueueSummary(Protocol):
    def queue_counts(self) -> dict[str, int]: ...
    def count_unwritten(self) -> int: ...


class HistoryCommands(FullTextSearch, Protocol):
    """The history commands: read-only queries, and archiving a conversation (the one write)."""

    def missing_migrations(self) -> list[str]: ...
    def get_conversation(self, conversation_id: str) -> Conversation | None: ...
    def conversation_ids_starting(self, prefix: str, limit: int = 10) -> list[str]: ...
    def conversation_listings(
        self, *, include_archived: bool = False, limit: int | None = None
    ) -> list[ConversationListing]: ...
    def conversation_counts(self) -> dict[str, int]: ...
    def conversation_exchanges(self, conversation_id: str) -> list[Exchange]: ...
    def archive_conversation(self, conversation_id: str) -> bool: ...
    def usage(self, since: str | None = None) -> tuple[list[Usage], Usage]: ...


# --- consumers that need more than one role ----------------------------------------------------------------------


class AskerStore(Summaries, BudgetUsage, Protocol):
    """``asking.Asker``: budgets before asking, the rolling summary after."""


class PipelineStore(JobOutcomes, ExchangeRecords, PastAnswers, ContextSource, AskerStore, Protocol):
    """``pipeline.Pipeline``: its own stages (the job's outcome, its exchange) and what it hands the resolver,
    the asker and the context builder. It never claims a job: its callers do (:class:`JobQueue`)."""


class SnapshotStore(DaemonStatus, BudgetUsage, Protocol):
    """``statusinfo.take_snapshot``: the daemon's status and each profile's budget use."""


class StatusKeeperStore(SnapshotStore, Heartbeats, Protocol):
    """``status_page.StatusKeeper``: writes the heartbeat, reads the snapshot for the STATUS pages."""


class OneShotStore(JobIntake, JobQueue, JobLookup, Protocol):
    """``oneshot``: queue or reopen the given files' jobs, run them to the end, report what became of them."""


__all__ = [
    "AskerStore",
    "BudgetUsage",
    "ContextSource",
    "DaemonStatus",
    "ExchangeRecords",
    "Heartbeats",
    "HistoryCommands",
    "JobIntake",
    "JobLookup",
    "JobOutcomes",
    "JobQueue",
    "OneShotStore",
    "PastAnswers",
    "PipelineStore",
    "QueueSummary",
    "SnapshotStore",
    "StatusKeeperStore",
    "Summaries",
    "UnwrittenOutputs",
]
