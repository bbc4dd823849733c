"""SQLite persistence: the job queue, conversations, exchanges and the files we wrote. All SQL lives here.

Modules: ``schema`` (migrations), ``db`` (connection, transactions), ``queue``, ``exchanges``, ``history``
(search and the history commands), ``status`` (the daemon's heartbeat and the work in progress, for ``status``
and the STATUS page), ``records`` (what they return), ``search`` (safe FTS5 queries), ``ports`` (the parts of
the store each consumer is given).

Ports: only who opens the database (``service``, ``oneshot``, ``cli``, ``history``) holds a whole :class:`Store`.
Every other module is given the part it uses, a small ``typing.Protocol`` in :mod:`eink_llm.store.ports`, so its
signature says what it may touch: ``JobIntake`` (``intake``), ``JobQueue`` and ``JobOutcomes`` (the workers, the
pipeline), ``JobLookup``, ``ExchangeRecords``, ``PastAnswers`` (``resolve``), ``ContextSource`` (``context``),
``Summaries``, ``BudgetUsage`` (``budget``), ``UnwrittenOutputs`` (``delivery``), ``Heartbeats``,
``DaemonStatus``, ``QueueSummary``, ``HistoryCommands`` (``history``), and intersections of these for consumers
that need several (``PipelineStore``, ``AskerStore``, ``SnapshotStore``, ``StatusKeeperStore``,
``OneShotStore``). :class:`Store` implements them all structurally: ``mypy --strict`` proves it (below), and
``tests/test_store_ports.py`` checks that each port mirrors the methods' signatures. A new method a consumer
needs goes into the narrowest port that fits (or a new one), not onto the consumer's annotation as ``Store``.

The database is the daemon's memory across crashes, so its rules are strict:

* WAL, ``synchronous=NORMAL``, foreign keys on, a busy timeout; every write is one ``BEGIN IMMEDIATE``
  transaction (a deferred transaction that reads first can fail with SQLITE_BUSY at once).
* Numbered, named migrations in :data:`MIGRATIONS`; applied ones are recorded in ``schema_migrations``.
* Timestamps are UTC ISO-8601 strings with a ``Z``.

One :class:`Store` is shared by the daemon's worker threads; a lock serialises use of its one connection.
Statements are short and never wait on the network, so the lock is never held for long. Other processes (the
``status`` command) open their own connection; WAL lets them read while the daemon writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from eink_llm.store import ports
from eink_llm.store.exchanges import ExchangeStore
from eink_llm.store.history import HistoryStore
from eink_llm.store.queue import QueueStore
from eink_llm.store.records import (
    AnswerRecord,
    Conversation,
    Exchange,
    ExchangeResult,
    ExchangeStatus,
    Job,
    JobState,
    SearchHit,
    UnwrittenOutput,
    iso,
    utc_now,
)
from eink_llm.store.schema import MIGRATIONS
from eink_llm.store.search import fts_query
from eink_llm.store.status import Heartbeat, Outcome, RunningJob, ServiceState, StatusStore, WaitingJob


class Store(QueueStore, ExchangeStore, HistoryStore, StatusStore):
    """The database. Open with :meth:`open`; close when done (``with Store.open(p) as store:``)."""


if TYPE_CHECKING:  # mypy --strict proves here that Store is every port (structural typing: no base class says so)

    class _EveryPort(  # the intersections hold the other roles, so this is every port of ports.py
        ports.PipelineStore,
        ports.StatusKeeperStore,
        ports.OneShotStore,
        ports.UnwrittenOutputs,
        ports.QueueSummary,
        ports.HistoryCommands,
        Protocol,
    ):
        pass

    def _store_is_every_port(store: Store) -> _EveryPort:
        return store


__all__ = [
    "MIGRATIONS",
    "AnswerRecord",
    "Conversation",
    "Exchange",
    "ExchangeResult",
    "ExchangeStatus",
    "Heartbeat",
    "Job",
    "JobState",
    "Outcome",
    "RunningJob",
    "SearchHit",
    "ServiceState",
    "Store",
    "UnwrittenOutput",
    "WaitingJob",
    "fts_query",
    "iso",
    "utc_now",
]
