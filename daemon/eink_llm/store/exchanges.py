"""Conversations and their exchanges, the PDFs we wrote, and notebook page prints."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from eink_llm import redact
from eink_llm.errors import StoreError
from eink_llm.store.db import Database
from eink_llm.store.records import (
    AnswerRecord,
    Conversation,
    Exchange,
    ExchangeResult,
    Job,
    UnwrittenOutput,
    _conversation,
    _exchange,
    _job,
    _unwritten,
    iso,
    utc_now,
)


class ExchangeStore(Database):
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
        folder: str | None = None,
    ) -> Exchange:
        """Give ``job`` its exchange: the next sequence number of its conversation, allocated atomically.

        If the job already has one (it is being retried after a crash or a transient failure), that one is
        returned unchanged, so the output keeps its name and the numbering has no gap or duplicate.
        ``folder`` (folder mode) makes the conversation that folder's one conversation from now on.
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
            if folder is not None:
                db.execute(
                    "INSERT OR REPLACE INTO folder_conversations (folder, conversation_id) VALUES (?, ?)",
                    (folder, conversation_id),
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

    def record_output(self, path: Path, sha256: str, exchange_id: int, pdf: bytes | None = None) -> None:
        """Remember a file we are about to write, *before* it appears, so the watcher never takes it as a
        question (even if we crash right after the rename). ``pdf`` is kept to compare with when the file comes
        back with the user's handwriting on it."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO outputs (sha256, path, exchange_id, created_at, pdf) VALUES (?, ?, ?, ?, ?)",
                (sha256, str(path), exchange_id, iso(utc_now()), pdf),
            )

    def forget_answer_pdfs(self, written_before: datetime) -> int:
        """Drop the kept copies of answers written before a moment (storage.keep_answer_pdfs_days). Returns how
        many; the rows stay, so those files are still recognised as ours."""
        with self._write() as db:
            return db.execute(
                "UPDATE outputs SET pdf = NULL WHERE pdf IS NOT NULL AND created_at < ?", (iso(written_before),)
            ).rowcount

    def answer_record(self, conversation_id: str, sequence_number: int) -> AnswerRecord | None:
        """The PDF we wrote for exchange ``sequence_number`` of a conversation (the newest, if rewritten)."""
        rows = self._read(
            "SELECT e.exchange_id, e.conversation_id, e.sequence_number, o.pdf FROM exchanges e"
            " JOIN outputs o ON o.exchange_id = e.exchange_id"
            " WHERE e.conversation_id = ? AND e.sequence_number = ? ORDER BY o.created_at DESC LIMIT 1",
            (conversation_id, sequence_number),
        )
        if not rows:
            return None
        row = rows[0]
        return AnswerRecord(row["exchange_id"], row["conversation_id"], row["sequence_number"], row["pdf"])

    def answer_record_at(self, path: Path) -> AnswerRecord | None:
        """The exchange whose output was written at ``path`` (a file of ours changed in place)."""
        rows = self._read(
            "SELECT e.conversation_id, e.sequence_number FROM outputs o JOIN exchanges e"
            " ON e.exchange_id = o.exchange_id WHERE o.path = ? ORDER BY o.created_at DESC LIMIT 1",
            (str(path),),
        )
        return self.answer_record(rows[0]["conversation_id"], rows[0]["sequence_number"]) if rows else None

    # --- notebooks: earlier versions of the same file ---------------------------------------------------------

    def earlier_version(self, job: Job) -> tuple[Job, str | None] | None:
        """The newest earlier job at the same path whose pages were covered (answered, found to hold nothing new, or
        an ERROR_ that covers them: ``ExchangeResult.pages_known``), with the conversation its newest answer (or
        such ERROR_) belongs to. ``None`` if this path was never answered."""
        rows = self._read(
            "SELECT * FROM jobs WHERE path = ? AND job_id < ? AND state = 'done'"
            " AND EXISTS (SELECT 1 FROM page_prints p WHERE p.job_id = jobs.job_id)"
            " ORDER BY job_id DESC LIMIT 1",
            (str(job.path), job.job_id),
        )
        if not rows:
            return None
        conversation = self._read(
            "SELECT e.conversation_id FROM exchanges e JOIN jobs j ON j.job_id = e.job_id"
            " WHERE j.path = ? AND j.job_id < ? AND (e.status = 'ok' OR j.state = 'done')"
            " ORDER BY j.job_id DESC LIMIT 1",
            (str(job.path), job.job_id),
        )
        return _job(rows[0]), (conversation[0]["conversation_id"] if conversation else None)

    def answered_inputs(self, conversation_id: str, limit: int = 50) -> list[tuple[int, str, int]]:
        """(job, input SHA-256, exchange number) of the conversation's answered exchanges, newest first."""
        rows = self._read(
            "SELECT job_id, input_sha256, sequence_number FROM exchanges WHERE conversation_id = ? AND status = 'ok'"
            " AND job_id IS NOT NULL ORDER BY sequence_number DESC LIMIT ?",
            (conversation_id, limit),
        )
        return [(int(r["job_id"]), str(r["input_sha256"] or ""), int(r["sequence_number"])) for r in rows]

    def page_prints(self, job_id: int) -> list[bytes]:
        rows = self._read("SELECT print FROM page_prints WHERE job_id = ? ORDER BY page_index", (job_id,))
        return [row["print"] for row in rows]

    def folder_conversation(self, folder: str) -> str | None:
        rows = self._read("SELECT conversation_id FROM folder_conversations WHERE folder = ?", (folder,))
        return rows[0]["conversation_id"] if rows else None

    def complete_exchange(
        self,
        exchange: Exchange,
        result: ExchangeResult,
        prints: Sequence[bytes] = (),
        *,
        unwritten: tuple[bytes, datetime, str] | None = None,
    ) -> None:
        """Finish an exchange and its job in one transaction: after this the input is answered for good.
        ``prints`` are the input's page prints, kept to tell what is new when the file comes back changed.
        ``unwritten`` (pdf, when to try again, why): the PDF could not be written at ``result.output_file``; it
        is kept, in the same transaction, until :meth:`output_written` says it is on disk."""
        now = iso(utc_now())
        error_text = redact.optional(result.error_text)  # error texts and details quote providers and plugins
        with self._write() as db:
            self._save_prints(db, exchange.job_id, prints) if exchange.job_id is not None else None
            if unwritten is not None:
                pdf, retry_at, error = unwritten
                db.execute(
                    "INSERT OR REPLACE INTO unwritten_outputs (exchange_id, path, pdf, attempts, next_attempt_at,"
                    " last_error, created_at) VALUES (?, ?, ?, 1, ?, ?, ?)",
                    (exchange.exchange_id, str(result.output_file), pdf, iso(retry_at), error, now),
                )
            db.execute(
                "UPDATE exchanges SET status = ?, question_text = ?, response_text = ?, error_text = ?,"
                " output_file = ?, backend = ?, model = ?, input_tokens = ?, output_tokens = ?, tokens_used = ?,"
                " processing_time = ?, completed_at = ?, metadata = ?, profile = ?, cost = ?, transcription = ?"
                " WHERE exchange_id = ?",
                (
                    result.status,
                    result.question_text,
                    result.response_text,
                    error_text,
                    result.output_file.name if result.output_file else None,
                    result.backend,
                    result.model,
                    result.input_tokens,
                    result.output_tokens,
                    result.input_tokens + result.output_tokens,
                    result.processing_time,
                    now,
                    json.dumps(redact.value(result.metadata or {}), sort_keys=True),
                    result.profile,
                    result.cost,
                    result.transcription,
                    exchange.exchange_id,
                ),
            )
            db.execute(
                "UPDATE jobs SET state = ?, last_error = ?, updated_at = ? WHERE job_id = ?",
                ("done" if result.status == "ok" or result.pages_known else "failed", error_text, now, exchange.job_id),
            )
            db.execute(
                "UPDATE conversations SET last_activity = ? WHERE conversation_id = ?",
                (now, exchange.conversation_id),
            )

    # --- answers waiting for their folder (eink_llm.delivery) -------------------------------------------------

    def due_unwritten(self, now: datetime | None = None, limit: int = 10) -> list[UnwrittenOutput]:
        """Kept PDFs whose next write attempt is due, oldest first."""
        rows = self._read(
            "SELECT u.*, j.root FROM unwritten_outputs u JOIN exchanges e ON e.exchange_id = u.exchange_id"
            " LEFT JOIN jobs j ON j.job_id = e.job_id WHERE u.next_attempt_at <= ? ORDER BY u.next_attempt_at LIMIT ?",
            (iso(now or utc_now()), limit),
        )
        return [_unwritten(r) for r in rows]

    def unwritten_outputs(self, limit: int = 50) -> list[UnwrittenOutput]:
        """Every kept PDF still waiting to be written (for ``status``), oldest first; none in a database an older
        version made (``status`` reads it as it is, before the new daemon's start adds the table)."""
        if not self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'unwritten_outputs'"):
            return []
        rows = self._read("SELECT * FROM unwritten_outputs ORDER BY created_at LIMIT ?", (limit,))
        return [_unwritten(r) for r in rows]

    def write_failed_again(self, exchange_id: int, *, at: datetime, error: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE unwritten_outputs SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
                " WHERE exchange_id = ?",
                (iso(at), error, exchange_id),
            )

    def output_written(self, exchange_id: int) -> None:
        """The kept PDF is on disk now: forget the copy (the ``outputs`` row still knows it as ours)."""
        with self._write() as db:
            db.execute("DELETE FROM unwritten_outputs WHERE exchange_id = ?", (exchange_id,))

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

    def set_summary(self, conversation_id: str, summary: str, through: int) -> None:
        """Store the conversation's rolling summary, which covers exchanges 1..``through``."""
        with self._write() as db:
            db.execute(
                "UPDATE conversations SET context_summary = ?, summary_through = ? WHERE conversation_id = ?",
                (summary, through, conversation_id),
            )

    def archive_conversation(self, conversation_id: str) -> bool:
        """Mark a conversation archived: it is never resumed again. False if there is no such conversation."""
        with self._write() as db:
            return bool(
                db.execute(
                    "UPDATE conversations SET status = 'archived' WHERE conversation_id = ?", (conversation_id,)
                ).rowcount
            )

    def usage_since(self, profile: str, since: datetime) -> tuple[int, float]:
        """Tokens and cost a profile's exchanges used since ``since`` (for budgets)."""
        rows = self._read(
            "SELECT COALESCE(SUM(tokens_used), 0) AS tokens, COALESCE(SUM(cost), 0) AS cost FROM exchanges"
            " WHERE profile = ? AND completed_at >= ?",
            (profile, iso(since)),
        )
        return int(rows[0]["tokens"]), float(rows[0]["cost"])
