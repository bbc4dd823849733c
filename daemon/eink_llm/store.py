"""SQLite persistence: the job queue, conversations, exchanges and the files we wrote. All SQL lives here.

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

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from eink_llm.errors import StoreError

JobState = Literal["pending", "running", "done", "failed"]
ExchangeStatus = Literal["pending", "ok", "error"]

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "001_initial",
        """
        CREATE TABLE conversations (
            conversation_id TEXT PRIMARY KEY,
            user_id         TEXT,
            created_at      TEXT NOT NULL,
            last_activity   TEXT NOT NULL,
            total_exchanges INTEGER NOT NULL DEFAULT 0,
            status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
            context_summary TEXT,
            metadata        TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE jobs (
            job_id            INTEGER PRIMARY KEY,
            path              TEXT NOT NULL,
            root              TEXT NOT NULL,
            sha256            TEXT NOT NULL,
            size              INTEGER NOT NULL,
            mtime_ns          INTEGER NOT NULL,
            user_id           TEXT,
            conversation_hint TEXT,
            state             TEXT NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'running', 'done', 'failed')),
            attempts          INTEGER NOT NULL DEFAULT 0,
            next_attempt_at   TEXT NOT NULL,
            last_error        TEXT,
            created_at        TEXT NOT NULL,
            updated_at        TEXT NOT NULL,
            UNIQUE (path, sha256)
        );
        CREATE INDEX jobs_claim ON jobs (state, next_attempt_at);
        CREATE TABLE exchanges (
            exchange_id      INTEGER PRIMARY KEY,
            conversation_id  TEXT NOT NULL REFERENCES conversations (conversation_id),
            sequence_number  INTEGER NOT NULL,
            job_id           INTEGER UNIQUE REFERENCES jobs (job_id),
            input_file       TEXT NOT NULL,
            input_sha256     TEXT,
            input_type       TEXT,
            question_text    TEXT,
            response_text    TEXT,
            status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ok', 'error')),
            error_text       TEXT,
            output_file      TEXT,
            backend          TEXT,
            model            TEXT,
            input_tokens     INTEGER,
            output_tokens    INTEGER,
            tokens_used      INTEGER,
            processing_time  REAL,
            created_at       TEXT NOT NULL,
            completed_at     TEXT,
            metadata         TEXT NOT NULL DEFAULT '{}',
            UNIQUE (conversation_id, sequence_number)
        );
        CREATE TABLE outputs (
            sha256      TEXT PRIMARY KEY,
            path        TEXT NOT NULL,
            exchange_id INTEGER REFERENCES exchanges (exchange_id),
            created_at  TEXT NOT NULL
        );
        CREATE INDEX outputs_path ON outputs (path);
        """,
    ),
    (
        "002_profiles_and_cost",
        """
        ALTER TABLE exchanges ADD COLUMN profile TEXT;
        ALTER TABLE exchanges ADD COLUMN cost REAL NOT NULL DEFAULT 0;
        CREATE INDEX exchanges_budget ON exchanges (profile, completed_at);
        """,
    ),
)


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


@dataclass(frozen=True, slots=True)
class Conversation:
    conversation_id: str
    user_id: str | None
    created_at: str
    total_exchanges: int
    status: str


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


@dataclass(frozen=True, slots=True)
class ExchangeResult:
    """What the pipeline learned while answering: written to the exchange row in one transaction."""

    status: Literal["ok", "error"]
    output_file: Path | None
    question_text: str | None = None
    response_text: str | None = None
    error_text: str | None = None
    backend: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    processing_time: float = 0.0
    profile: str | None = None
    cost: float = 0.0
    metadata: dict[str, Any] | None = None


class Store:
    """The database. Open with :meth:`open`; close when done (``with Store.open(p) as store:``)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._lock = threading.RLock()
        self.path = path

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Store:
        try:
            if readonly:
                connection = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    check_same_thread=False,
                    isolation_level=None,
                )
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA busy_timeout = 30000")
            connection.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"The database {path} cannot be opened.",
                "Check that its folder exists and is writable by the daemon's user (storage.database).",
                detail=str(exc),
            ) from None
        store = cls(connection, path)
        if not readonly:
            store.migrate()
        return store

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed on success and rolled back on any error."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(
                    "The database is busy or unwritable.", "Check the disk and try again.", detail=str(exc)
                ) from None
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # --- migrations ----------------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply migrations not yet applied, each in its own transaction. Returns their names."""
        with self._write() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
        applied = {row["name"] for row in self._read("SELECT name FROM schema_migrations")}
        done = []
        for version, (name, sql) in enumerate(MIGRATIONS, start=1):
            if name in applied:
                continue
            with self._write() as db:
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, iso(utc_now())),
                )
            done.append(name)
        return done

    # --- queue ---------------------------------------------------------------------------------------

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
    ) -> int | None:
        """Add a job unless this content was seen at this path before, or is a file we wrote.

        Returns the new job's id, or ``None`` when nothing was added. Idempotent: the watcher may report a
        file many times.
        """
        now = iso(utc_now())
        with self._write() as db:
            if db.execute("SELECT 1 FROM outputs WHERE sha256 = ?", (sha256,)).fetchone():
                return None
            cursor = db.execute(
                "INSERT OR IGNORE INTO jobs (path, root, sha256, size, mtime_ns, user_id, conversation_hint,"
                " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (str(path), str(root), sha256, size, mtime_ns, user_id, conversation_hint, now, now, now),
            )
            return cursor.lastrowid if cursor.rowcount else None

    def find_job(self, path: Path, sha256: str) -> Job | None:
        rows = self._read("SELECT * FROM jobs WHERE path = ? AND sha256 = ?", (str(path), sha256))
        return _job(rows[0]) if rows else None

    def get_job(self, job_id: int) -> Job:
        rows = self._read("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        if not rows:
            raise KeyError(job_id)
        return _job(rows[0])

    def claim_job(self, now: datetime | None = None, *, only: Sequence[int] | None = None) -> Job | None:
        """Take the oldest pending job that is due, atomically marking it running.

        A job whose conversation already has a running job waits, so that the exchanges of one conversation
        run strictly in order while different conversations proceed in parallel.
        """
        due = iso(now or utc_now())
        only_sql = ""
        params: list[Any] = [due]
        if only is not None:
            only_sql = f" AND j.job_id IN ({','.join('?' * len(only))})" if only else " AND 0"
            params += list(only)
        with self._write() as db:
            row = db.execute(
                "SELECT * FROM jobs j WHERE j.state = 'pending' AND j.next_attempt_at <= ?"
                + only_sql
                + " AND (j.conversation_hint IS NULL OR NOT EXISTS ("
                "   SELECT 1 FROM jobs r WHERE r.conversation_hint = j.conversation_hint"
                "   AND (r.state = 'running' OR (r.state = 'pending' AND r.job_id < j.job_id))))"
                " ORDER BY j.job_id LIMIT 1",
                params,
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = ? WHERE job_id = ?",
                (due, row["job_id"]),
            )
        return self.get_job(int(row["job_id"]))

    def retry_later(self, job_id: int, *, at: datetime, error: str, refund_attempt: bool = False) -> None:
        """Back to pending until ``at``. ``refund_attempt`` undoes the claim's count (the failure was not the
        job's fault, e.g. during an outage)."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET state = 'pending', next_attempt_at = ?, last_error = ?, updated_at = ?,"
                " attempts = attempts - ? WHERE job_id = ?",
                (iso(at), error, iso(utc_now()), int(refund_attempt), job_id),
            )

    def fail_job(self, job_id: int, error: str) -> None:
        """End a job that has no exchange to show for it (its input vanished)."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET state = 'failed', last_error = ?, updated_at = ? WHERE job_id = ?",
                (error, iso(utc_now()), job_id),
            )

    def requeue_running(self) -> int:
        """After a crash, jobs left running go back to pending. Returns how many."""
        with self._write() as db:
            return db.execute(
                "UPDATE jobs SET state = 'pending', updated_at = ? WHERE state = 'running'", (iso(utc_now()),)
            ).rowcount

    def next_due(self) -> datetime | None:
        rows = self._read("SELECT MIN(next_attempt_at) AS due FROM jobs WHERE state = 'pending'")
        due = rows[0]["due"] if rows else None
        return datetime.fromisoformat(due) if due else None

    def queue_counts(self) -> dict[str, int]:
        counts = {state: 0 for state in ("pending", "running", "done", "failed")}
        for row in self._read("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    def is_own_output(self, sha256: str) -> bool:
        return bool(self._read("SELECT 1 FROM outputs WHERE sha256 = ?", (sha256,)))

    # --- conversations and exchanges -------------------------------------------------------------------

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        rows = self._read("SELECT * FROM conversations WHERE conversation_id = ?", (conversation_id,))
        return _conversation(rows[0]) if rows else None

    def exchange_for_job(self, job_id: int) -> Exchange | None:
        rows = self._read("SELECT * FROM exchanges WHERE job_id = ?", (job_id,))
        return _exchange(rows[0]) if rows else None

    def reserve_exchange(
        self,
        job: Job,
        *,
        conversation_id: str,
        new_conversation: bool,
        input_type: str | None,
    ) -> Exchange:
        """Give ``job`` its exchange: the next sequence number of its conversation, allocated atomically.

        If the job already has one (it is being retried after a crash or a transient failure), that one is
        returned unchanged, so the output keeps its name and the numbering has no gap or duplicate.
        """
        existing = self.exchange_for_job(job.job_id)
        if existing is not None:
            return existing
        now = iso(utc_now())
        with self._write() as db:
            if new_conversation:
                db.execute(
                    "INSERT INTO conversations (conversation_id, user_id, created_at, last_activity)"
                    " VALUES (?, ?, ?, ?)",
                    (conversation_id, job.user_id, now, now),
                )
            row = db.execute(
                "SELECT total_exchanges FROM conversations WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"Conversation {conversation_id} does not exist.", "This is a bug; please report it.")
            sequence = int(row["total_exchanges"]) + 1
            cursor = db.execute(
                "INSERT INTO exchanges (conversation_id, sequence_number, job_id, input_file, input_sha256,"
                " input_type, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, sequence, job.job_id, job.path.name, job.sha256, input_type, now),
            )
            db.execute(
                "UPDATE conversations SET total_exchanges = ?, last_activity = ? WHERE conversation_id = ?",
                (sequence, now, conversation_id),
            )
            exchange_id = cursor.lastrowid
        rows = self._read("SELECT * FROM exchanges WHERE exchange_id = ?", (exchange_id,))
        return _exchange(rows[0])

    def record_output(self, path: Path, sha256: str, exchange_id: int) -> None:
        """Remember a file we are about to write, *before* it appears, so the watcher never takes it as a
        question (even if we crash right after the rename)."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO outputs (sha256, path, exchange_id, created_at) VALUES (?, ?, ?, ?)",
                (sha256, str(path), exchange_id, iso(utc_now())),
            )

    def complete_exchange(self, exchange: Exchange, result: ExchangeResult) -> None:
        """Finish an exchange and its job in one transaction: after this the input is answered for good."""
        now = iso(utc_now())
        with self._write() as db:
            db.execute(
                "UPDATE exchanges SET status = ?, question_text = ?, response_text = ?, error_text = ?,"
                " output_file = ?, backend = ?, model = ?, input_tokens = ?, output_tokens = ?, tokens_used = ?,"
                " processing_time = ?, completed_at = ?, metadata = ?, profile = ?, cost = ? WHERE exchange_id = ?",
                (
                    result.status,
                    result.question_text,
                    result.response_text,
                    result.error_text,
                    result.output_file.name if result.output_file else None,
                    result.backend,
                    result.model,
                    result.input_tokens,
                    result.output_tokens,
                    result.input_tokens + result.output_tokens,
                    result.processing_time,
                    now,
                    json.dumps(result.metadata or {}, sort_keys=True),
                    result.profile,
                    result.cost,
                    exchange.exchange_id,
                ),
            )
            db.execute(
                "UPDATE jobs SET state = ?, last_error = ?, updated_at = ? WHERE job_id = ?",
                ("done" if result.status == "ok" else "failed", result.error_text, now, exchange.job_id),
            )
            db.execute(
                "UPDATE conversations SET last_activity = ? WHERE conversation_id = ?",
                (now, exchange.conversation_id),
            )

    def history(self, conversation_id: str, before_sequence: int) -> list[Exchange]:
        """Answered exchanges of a conversation before ``before_sequence``, oldest first."""
        rows = self._read(
            "SELECT * FROM exchanges WHERE conversation_id = ? AND sequence_number < ? AND status = 'ok'"
            " ORDER BY sequence_number",
            (conversation_id, before_sequence),
        )
        return [_exchange(r) for r in rows]

    def exchanges(self, conversation_id: str | None = None, limit: int = 50) -> list[Exchange]:
        """Most recent exchanges first (of one conversation, or of all)."""
        if conversation_id is None:
            rows = self._read("SELECT * FROM exchanges ORDER BY exchange_id DESC LIMIT ?", (limit,))
        else:
            rows = self._read(
                "SELECT * FROM exchanges WHERE conversation_id = ? ORDER BY sequence_number DESC LIMIT ?",
                (conversation_id, limit),
            )
        return [_exchange(r) for r in rows]

    def usage_since(self, profile: str, since: datetime) -> tuple[int, float]:
        """Tokens and cost a profile's exchanges used since ``since`` (for budgets)."""
        rows = self._read(
            "SELECT COALESCE(SUM(tokens_used), 0) AS tokens, COALESCE(SUM(cost), 0) AS cost FROM exchanges"
            " WHERE profile = ? AND completed_at >= ?",
            (profile, iso(since)),
        )
        return int(rows[0]["tokens"]), float(rows[0]["cost"])

    def failures(self, limit: int = 10) -> list[Job]:
        """Jobs that ended in an ERROR_ or are waiting to retry after a failure, most recent first."""
        rows = self._read(
            "SELECT * FROM jobs WHERE state = 'failed' OR (state = 'pending' AND last_error IS NOT NULL)"
            " ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        )
        return [_job(r) for r in rows]


def _job(row: sqlite3.Row) -> Job:
    return Job(
        job_id=row["job_id"],
        path=Path(row["path"]),
        root=Path(row["root"]),
        sha256=row["sha256"],
        size=row["size"],
        user_id=row["user_id"],
        conversation_hint=row["conversation_hint"],
        state=row["state"],
        attempts=row["attempts"],
        last_error=row["last_error"],
    )


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        conversation_id=row["conversation_id"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        total_exchanges=row["total_exchanges"],
        status=row["status"],
    )


def _exchange(row: sqlite3.Row) -> Exchange:
    return Exchange(
        exchange_id=row["exchange_id"],
        conversation_id=row["conversation_id"],
        sequence_number=row["sequence_number"],
        job_id=row["job_id"],
        input_file=row["input_file"],
        status=row["status"],
        question_text=row["question_text"],
        response_text=row["response_text"],
        error_text=row["error_text"],
        output_file=row["output_file"],
        model=row["model"],
        tokens_used=row["tokens_used"],
        processing_time=row["processing_time"],
        created_at=row["created_at"],
    )
