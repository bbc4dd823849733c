"""The job queue: what is waiting to be answered, claimed one at a time, retried on a schedule."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from eink_llm import redact
from eink_llm.store.db import Database
from eink_llm.store.records import Job, _job, iso, utc_now

#: ``last_error`` of a job the daemon was working on when it stopped or crashed.
INTERRUPTED = "interrupted: eink-llm stopped or crashed while working on this file"
STOPPED = "interrupted by a stop of eink-llm; it is taken up again at the next start"


def order_key(path: Path, conversation_hint: str | None = None, conversation_folder: Path | None = None) -> str:
    """The one rule for which jobs run one at a time, oldest first (:meth:`QueueStore.claim_job`): those naming
    the same conversation in their file name, else those in the same folder-mode folder (one conversation per
    folder), else the versions of the same file (a notebook's versions are compared in order).

    Migration ``003_conversations_on_paper`` wrote the same keys for the jobs that existed then, in SQL
    (``COALESCE('conv:' || conversation_hint, 'path:' || path)``): folder mode came with that migration, so no
    earlier job had a folder. A shipped migration is never edited; ``tests/test_store_order.py`` holds the two
    equal.
    """
    if conversation_hint:
        return f"conv:{conversation_hint}"
    if conversation_folder is not None:
        return f"folder:{conversation_folder}"
    return f"path:{path}"


class QueueStore(Database):
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
    ) -> int | None:
        """Add a job unless this content was seen at this path before, or is a file we wrote.

        Returns the new job's id, or ``None`` when nothing was added. Idempotent: the watcher may report a
        file many times. ``conversation_hint`` (the conversation named in the file name) and
        ``conversation_folder`` (its folder-mode folder) make its :func:`order_key`.
        """
        key = order_key(path, conversation_hint, conversation_folder)
        now = iso(utc_now())
        with self._write() as db:
            if db.execute("SELECT 1 FROM outputs WHERE sha256 = ?", (sha256,)).fetchone():
                return None
            cursor = db.execute(
                "INSERT OR IGNORE INTO jobs (path, root, sha256, size, mtime_ns, user_id, conversation_hint,"
                " order_key, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (str(path), str(root), sha256, size, mtime_ns, user_id, conversation_hint, key, now, now, now),
            )
            if cursor.rowcount:
                return cursor.lastrowid
            # The same bytes again. Written anew (another mtime: a re-export, a touch) after a failure that was
            # not the page's fault, it is a request to try again; a rescan of the unchanged file is not.
            row = db.execute(
                "SELECT job_id FROM jobs WHERE path = ? AND sha256 = ? AND mtime_ns != ? AND " + _RETRYABLE,
                (str(path), sha256, mtime_ns),
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET mtime_ns = ? WHERE job_id = ?", (mtime_ns, row["job_id"]))
            return row["job_id"] if _reopen(db, int(row["job_id"]), now) else None

    def reopen_job(self, job_id: int) -> bool:
        """Try a failed job again (``eink-llm retry``, ink on its ERROR_ page): pending now, with a fresh count
        of attempts, keeping its exchange (and so its number and output name). False if it has not failed."""
        with self._write() as db:
            return _reopen(db, job_id, iso(utc_now()))

    def reopen_failed_with(self, error_type: str) -> int:
        """Try again every failed job whose ERROR_ was an ``error_type`` (the class name: ``MissingExtraError``
        once the extra is installed), as :meth:`reopen_job` does; how many."""
        now = iso(utc_now())
        with self._write() as db:
            rows = db.execute(
                "SELECT job_id FROM jobs WHERE state = 'failed' AND EXISTS (SELECT 1 FROM exchanges e"
                " WHERE e.job_id = jobs.job_id AND e.status = 'error' AND json_extract(e.metadata, '$.error_type') = ?)"
                " ORDER BY job_id",
                (error_type,),
            ).fetchall()
            return sum(_reopen(db, int(row["job_id"]), now) for row in rows)

    def retryable_failures(self, since: datetime | None = None) -> list[Job]:
        """Failed jobs that were not their input's fault (``eink-llm retry --failed``), oldest first."""
        rows = self._read(
            "SELECT * FROM jobs WHERE " + _RETRYABLE + " AND updated_at >= ? ORDER BY job_id",
            (iso(since) if since else "",),
        )
        return [_job(r) for r in rows]

    def failed_job_for_output(self, path: Path, sha256: str | None = None) -> Job | None:
        """The failed job whose ERROR_ page was written at ``path`` (or has the digest ``sha256``)."""
        rows = self._read(
            "SELECT j.* FROM outputs o JOIN exchanges e ON e.exchange_id = o.exchange_id"
            " JOIN jobs j ON j.job_id = e.job_id WHERE (o.path = ? OR o.sha256 = ?) AND j.state = 'failed'"
            " ORDER BY o.created_at DESC LIMIT 1",
            (str(path), sha256 or ""),
        )
        return _job(rows[0]) if rows else None

    def output_digest(self, path: Path) -> str | None:
        """The SHA-256 of the file we last wrote at ``path``, if we did."""
        rows = self._read("SELECT sha256 FROM outputs WHERE path = ? ORDER BY created_at DESC LIMIT 1", (str(path),))
        return str(rows[0]["sha256"]) if rows else None

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

        A job whose order key (its conversation, folder-mode folder or path) already has a running or an
        older pending job waits, so that the exchanges of one conversation and the versions of one notebook run
        strictly in order while different conversations proceed in parallel.
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
                + " AND (j.order_key IS NULL OR NOT EXISTS ("
                "   SELECT 1 FROM jobs r WHERE r.order_key = j.order_key"
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
        job's fault, e.g. during an outage). Only a running job goes back: a finished one stays finished, so
        a late failure can never get an answered page answered again."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET state = 'pending', next_attempt_at = ?, last_error = ?, updated_at = ?,"
                " attempts = attempts - ? WHERE job_id = ? AND state = 'running'",
                (iso(at), redact.text(error), iso(utc_now()), int(refund_attempt), job_id),
            )

    def finish_job(self, job_id: int, note: str, prints: Sequence[bytes] = ()) -> None:
        """End a job that needed no answer (a re-export with nothing new on it), keeping its page prints."""
        with self._write() as db:
            self._save_prints(db, job_id, prints)
            db.execute(
                "UPDATE jobs SET state = 'done', last_error = ?, updated_at = ? WHERE job_id = ?",
                (redact.text(note), iso(utc_now()), job_id),
            )

    def fail_job(self, job_id: int, error: str) -> None:
        """End a job that has no exchange to show for it (its input vanished)."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET state = 'failed', last_error = ?, updated_at = ? WHERE job_id = ?",
                (redact.text(error), iso(utc_now()), job_id),
            )

    def requeue_running(self, *, refund: bool = False) -> int:
        """After a crash, jobs left running go back to pending. Returns how many. Their attempt stays counted
        (it was counted, durably, when claimed): a file that ends the process every time runs out of attempts
        instead of restarting the daemon for ever (see ``Pipeline._read``). ``refund`` gives the attempt back:
        for a clean stop that had to abandon an answer in progress, which is not the file's fault."""
        with self._write() as db:
            return db.execute(
                "UPDATE jobs SET state = 'pending', updated_at = ?, last_error = ?, attempts = attempts - ?"
                " WHERE state = 'running'",
                (iso(utc_now()), STOPPED if refund else INTERRUPTED, int(refund)),
            ).rowcount

    def count_unwritten(self) -> int:
        """How many answers are kept, waiting for their folder (see ``eink_llm.delivery``)."""
        return int(self._read("SELECT COUNT(*) AS n FROM unwritten_outputs")[0]["n"])

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

    def not_answered_again(self, limit: int = 10) -> list[Job]:
        """Jobs finished without an answer because the same content was answered in their conversation."""
        rows = self._read(
            "SELECT * FROM jobs WHERE state = 'done' AND last_error LIKE 'the same content was answered%'"
            " ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        )
        return [_job(r) for r in rows]

    def failures(self, limit: int = 10) -> list[Job]:
        """Jobs that ended in an ERROR_ or are waiting to retry after a failure, most recent first."""
        rows = self._read(
            "SELECT * FROM jobs WHERE state = 'failed' OR (state = 'pending' AND last_error IS NOT NULL)"
            " ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        )
        return [_job(r) for r in rows]


#: A failed job with an ERROR_ exchange whose failure was not the input's fault (see EinkError.input_fault;
#: exchanges recorded before that flag existed are judged by their error type).
_RETRYABLE = (
    "state = 'failed' AND EXISTS (SELECT 1 FROM exchanges e WHERE e.job_id = jobs.job_id AND e.status = 'error'"
    " AND COALESCE(json_extract(e.metadata, '$.input_fault'), json_extract(e.metadata, '$.error_type') IN"
    " ('InputError', 'UnsupportedInputError', 'CorruptInputError', 'EncryptedInputError', 'InputTooLargeError',"
    " 'UnreadableInputError'), 0) = 0)"
)


def _reopen(db: Any, job_id: int, now: str) -> bool:
    reopened = db.execute(
        "UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?"
        " WHERE job_id = ? AND state = 'failed'",
        (now, now, job_id),
    ).rowcount
    if reopened:
        db.execute("UPDATE exchanges SET status = 'pending' WHERE job_id = ? AND status = 'error'", (job_id,))
    return bool(reopened)
