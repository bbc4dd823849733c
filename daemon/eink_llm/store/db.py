"""The connection: opening, transactions, migrations. The other store modules add methods on top of it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Self

from eink_llm.errors import StoreError, store_error
from eink_llm.store.records import iso, utc_now
from eink_llm.store.schema import MIGRATIONS, statements


class Database:
    """The connection and its lock. Open with :meth:`open`; close when done (``with Store.open(p) as s:``)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._lock = threading.RLock()
        self.path = path

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False, busy_timeout: float = 30.0) -> Self:
        """``busy_timeout``: how long a statement waits for another connection's lock before it fails as
        locked (``storage.busy_timeout_seconds``; the daemon then waits that out and tries again)."""
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
                connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=busy_timeout)
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {round(busy_timeout * 1000)}")
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed on success and rolled back on any error.

        Every SQLite error (at BEGIN, in the body or at COMMIT: locked, busy, disk full, damaged file) leaves
        as a :class:`StoreError` (``retryable`` when waiting may help), and never leaves a transaction open on
        the shared connection: a failed COMMIT is rolled back, or the next BEGIN would fail for good."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise store_error(exc, self.path) from None
                raise

    def _rollback(self) -> None:
        if self._db.in_transaction:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise store_error(exc, self.path) from None

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
                for statement in statements(sql):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, iso(utc_now())),
                )
            done.append(name)
        return done

    @staticmethod
    def _save_prints(db: sqlite3.Connection, job_id: int, prints: Sequence[bytes]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO page_prints (job_id, page_index, print) VALUES (?, ?, ?)",
            [(job_id, index, blob) for index, blob in enumerate(prints)],
        )
