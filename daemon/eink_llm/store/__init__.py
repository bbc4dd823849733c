"""SQLite persistence: the job queue, conversations, exchanges and the files we wrote. All SQL lives here.

Modules: ``schema`` (migrations), ``db`` (connection, transactions), ``queue``, ``exchanges``, ``history``
(search and the history commands), ``status`` (the daemon's heartbeat and the work in progress, for ``status``
and the STATUS page), ``records`` (what they return), ``search`` (safe FTS5 queries).

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
