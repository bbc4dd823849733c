"""Reading the history back: full-text search, and the queries behind the history commands."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from eink_llm.errors import StoreError
from eink_llm.store.db import Database
from eink_llm.store.records import Exchange, SearchHit, _exchange
from eink_llm.store.schema import MIGRATIONS
from eink_llm.store.search import fts_query

#: How much of a first question the conversation list fetches to make a title of.
TITLE_SOURCE_CHARS = 300
#: The latency percentiles of :meth:`HistoryStore.usage`.
PERCENTILES = (0.5, 0.95)


@dataclass(frozen=True, slots=True)
class ConversationListing:
    """A conversation as the list shows it, with what its title is made of (from its first exchange)."""

    conversation_id: str
    status: str
    total_exchanges: int
    created_at: str
    last_activity: str
    first_transcription: str | None
    first_question: str | None
    first_input_file: str | None


@dataclass(frozen=True, slots=True)
class Usage:
    """Finished exchanges of one backend and model (both ``None`` for the totals), and their latency.

    Latency is ``processing_time`` of the answered (``ok``) exchanges; ``latency`` maps each of
    :data:`PERCENTILES` to its value (linear interpolation between closest ranks), empty when none answered.
    """

    backend: str | None
    model: str | None
    exchanges: int
    ok: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost: float
    latency: dict[float, float]


class HistoryStore(Database):
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
    ) -> list[SearchHit]:
        """Answered exchanges that best match ``text`` (FTS5, BM25), best first, with a short snippet.

        ``text`` is free text, never FTS syntax: its words are quoted, so nothing a user or a page says can
        break the query. ``match_all`` wants every word (a user's search); otherwise any word counts (finding
        related exchanges for the context) and the rarest words weigh most. ``of_user`` keeps to the
        conversations of ``user_id`` (``None``: those with no user), so one user's memory never reaches
        another's prompt.
        """
        query = fts_query(text, match_all=match_all)
        if not query:
            return []
        sql = (
            "SELECT e.exchange_id, e.conversation_id, e.sequence_number, bm25(exchange_search) AS rank,"
            " snippet(exchange_search, -1, '[', ']', '…', 12) AS snip"
            " FROM exchange_search JOIN exchanges e ON e.exchange_id = exchange_search.rowid"
            " WHERE exchange_search MATCH ? AND e.status = 'ok'"
        )
        params: list[Any] = [query]
        if of_user:
            sql += (
                " AND EXISTS (SELECT 1 FROM conversations c WHERE c.conversation_id = e.conversation_id"
                " AND c.user_id IS ?)"
            )
            params.append(user_id)
        if conversation_id is not None:
            sql += " AND e.conversation_id = ?"
            params.append(conversation_id)
        if before_sequence is not None:
            sql += " AND e.sequence_number < ?"
            params.append(before_sequence)
        if exclude:
            sql += f" AND e.exchange_id NOT IN ({','.join('?' * len(exclude))})"
            params += list(exclude)
        sql += " ORDER BY rank LIMIT ?"
        params.append(limit)
        try:
            rows = self._read(sql, params)
        except StoreError as exc:  # quoted words cannot break the syntax; report, don't crash
            if exc.retryable:
                raise
            raise StoreError("The search could not run.", "Try other words.", detail=exc.detail) from None
        return [
            SearchHit(r["exchange_id"], r["conversation_id"], r["sequence_number"], r["snip"] or "", r["rank"])
            for r in rows
        ]

    def exchanges_by_id(self, exchange_ids: Sequence[int]) -> list[Exchange]:
        if not exchange_ids:
            return []
        rows = self._read(
            f"SELECT * FROM exchanges WHERE exchange_id IN ({','.join('?' * len(exchange_ids))})"
            " ORDER BY conversation_id, sequence_number",
            list(exchange_ids),
        )
        return [_exchange(r) for r in rows]

    # --- the history commands (read-only) --------------------------------------------------------------

    def _history_read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._read(sql, params)
        except StoreError as exc:  # an older schema (never migrated); a damaged file says so itself
            if not _no_such(exc):
                raise
            raise StoreError(
                f"The history in {self.path} cannot be read.",
                "If the daemon has not run since an upgrade, start it once so that it updates the database.",
                detail=exc.detail,
            ) from None

    def missing_migrations(self) -> list[str]:
        """Migrations this version has that the database lacks (a read-only opener cannot apply them)."""
        try:
            applied = {row["name"] for row in self._read("SELECT name FROM schema_migrations")}
        except StoreError as exc:  # not even the table: not a database of ours, or never migrated
            if not _no_such(exc):
                raise  # damaged, unreadable: say that, not "older version"
            applied = set()
        return [name for name, _ in MIGRATIONS if name not in applied]

    def conversation_listings(
        self, *, include_archived: bool = False, limit: int | None = None
    ) -> list[ConversationListing]:
        """Conversations, most recent activity first, with the start of their first exchange for a title."""
        rows = self._history_read(
            # An active conversation none of whose exchanges was answered (its only page got an ERROR_) is
            # listed as failed: there is nothing in it to continue.
            "SELECT c.conversation_id, CASE WHEN c.status = 'active' AND NOT EXISTS (SELECT 1 FROM exchanges x"
            " WHERE x.conversation_id = c.conversation_id AND x.status IN ('ok', 'pending'))"
            " AND EXISTS (SELECT 1 FROM exchanges x WHERE x.conversation_id = c.conversation_id"
            " AND x.status = 'error') THEN 'failed' ELSE c.status END AS status,"
            " c.total_exchanges, c.created_at, c.last_activity,"
            f" substr(f.transcription, 1, {TITLE_SOURCE_CHARS}) AS transcription,"
            f" substr(f.question_text, 1, {TITLE_SOURCE_CHARS}) AS question, f.input_file"
            " FROM conversations c LEFT JOIN exchanges f"
            " ON f.conversation_id = c.conversation_id AND f.sequence_number = 1"
            " WHERE ? OR c.status = 'active'"
            " ORDER BY c.last_activity DESC, c.conversation_id DESC LIMIT ?",
            (include_archived, -1 if limit is None else limit),
        )
        return [
            ConversationListing(
                r["conversation_id"],
                r["status"],
                r["total_exchanges"],
                r["created_at"],
                r["last_activity"],
                r["transcription"],
                r["question"],
                r["input_file"],
            )
            for r in rows
        ]

    def conversation_ids_starting(self, prefix: str, limit: int = 10) -> list[str]:
        """Conversation ids that start with ``prefix`` (``conv_`` may be left out), at most ``limit``."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._history_read(
            "SELECT conversation_id FROM conversations WHERE conversation_id LIKE ? ESCAPE '\\'"
            " OR conversation_id LIKE ? ESCAPE '\\' ORDER BY conversation_id LIMIT ?",
            (escaped + "%", "conv\\_" + escaped + "%", limit),
        )
        return [str(r["conversation_id"]) for r in rows]

    def conversation_counts(self) -> dict[str, int]:
        """How many conversations there are in each status."""
        counts = {"active": 0, "archived": 0}
        for row in self._history_read("SELECT status, COUNT(*) AS n FROM conversations GROUP BY status"):
            counts[row["status"]] = row["n"]
        return counts

    def conversation_exchanges(self, conversation_id: str) -> list[Exchange]:
        """Every exchange of a conversation (answered, failed or in progress), oldest first."""
        rows = self._history_read(
            "SELECT * FROM exchanges WHERE conversation_id = ? ORDER BY sequence_number", (conversation_id,)
        )
        return [_exchange(r) for r in rows]

    def usage(self, since: str | None = None) -> tuple[list[Usage], Usage]:
        """Finished exchanges (created at or after the ISO time ``since``) per backend and model, busiest
        first, and the totals. Percentiles are ranked in SQL: only a few latencies per group are fetched."""
        where = " WHERE status IN ('ok', 'error')" + (" AND created_at >= ?" if since else "")
        params = (since,) if since else ()
        rows = self._history_read(
            "SELECT backend, model, COUNT(*) AS n, SUM(status = 'ok') AS ok, SUM(status = 'error') AS errors,"
            " COALESCE(SUM(input_tokens), 0) AS tokens_in, COALESCE(SUM(output_tokens), 0) AS tokens_out,"
            " COALESCE(SUM(cost), 0) AS cost FROM exchanges" + where + " GROUP BY backend, model"
            " ORDER BY n DESC, backend, model",
            params,
        )
        groups = self._latency_percentiles(since, per_model=True)
        total_latency = self._latency_percentiles(since, per_model=False).get((None, None), {})
        per_model = [
            Usage(
                r["backend"],
                r["model"],
                r["n"],
                r["ok"],
                r["errors"],
                r["tokens_in"],
                r["tokens_out"],
                r["cost"],
                groups.get((r["backend"], r["model"]), {}),
            )
            for r in rows
        ]
        per_model = _merge_unnamed_models(per_model)
        total = Usage(
            None,
            None,
            sum(u.exchanges for u in per_model),
            sum(u.ok for u in per_model),
            sum(u.errors for u in per_model),
            sum(u.input_tokens for u in per_model),
            sum(u.output_tokens for u in per_model),
            sum(u.cost for u in per_model),
            total_latency,
        )
        return per_model, total

    def _latency_percentiles(
        self, since: str | None, *, per_model: bool
    ) -> dict[tuple[str | None, str | None], dict[float, float]]:
        """:data:`PERCENTILES` of answered exchanges' ``processing_time``, per backend and model or of all
        (key ``(None, None)``). Each group's latencies are ranked by a window function and only the two ranks
        around each percentile are fetched, then interpolated here (the same float product as in SQL)."""
        ranks = ", ".join(
            f"CAST((n - 1) * {p!r} AS INTEGER), CAST((n - 1) * {p!r} AS INTEGER) + 1" for p in PERCENTILES
        )
        keys = "backend, model" if per_model else "NULL AS backend, NULL AS model"
        over = "PARTITION BY backend, model " if per_model else ""
        rows = self._history_read(
            f"WITH ranked AS (SELECT {keys}, processing_time AS v,"
            f" ROW_NUMBER() OVER ({over}ORDER BY processing_time) - 1 AS i, COUNT(*) OVER ({over.strip()}) AS n"
            " FROM exchanges WHERE status = 'ok' AND processing_time IS NOT NULL"
            + (" AND created_at >= ?" if since else "")
            + f") SELECT backend, model, n, i, v FROM ranked WHERE i IN ({ranks})",
            (since,) if since else (),
        )
        values: dict[tuple[str | None, str | None], dict[int, float]] = {}
        counts: dict[tuple[str | None, str | None], int] = {}
        for row in rows:
            key = (row["backend"], row["model"])
            values.setdefault(key, {})[row["i"]] = row["v"]
            counts[key] = row["n"]
        result: dict[tuple[str | None, str | None], dict[float, float]] = {}
        for key, at in values.items():
            result[key] = {}
            for p in PERCENTILES:
                position = (counts[key] - 1) * p
                low = int(position)
                high = at.get(low + 1, at[low])
                result[key][p] = at[low] + (high - at[low]) * (position - low)
        return result


def _merge_unnamed_models(rows: list[Usage]) -> list[Usage]:
    """Exchanges that failed before any model answered record no model (``echo`` answers as model ``echo``,
    but its failed pages have none): counted in their backend's row when that backend has exactly one named
    model, instead of a second row for the same backend."""
    named: dict[str | None, list[Usage]] = {}
    for row in rows:
        if row.model is not None:
            named.setdefault(row.backend, []).append(row)
    merged: list[Usage] = []
    absorbed: dict[int, Usage] = {}
    for row in rows:
        targets = named.get(row.backend, [])
        if row.model is None and len(targets) == 1:
            target = targets[0]
            base = absorbed.get(id(target), target)
            absorbed[id(target)] = replace(
                base,
                exchanges=base.exchanges + row.exchanges,
                ok=base.ok + row.ok,
                errors=base.errors + row.errors,
                input_tokens=base.input_tokens + row.input_tokens,
                output_tokens=base.output_tokens + row.output_tokens,
                cost=base.cost + row.cost,
            )
            continue
        merged.append(row)
    out = [absorbed.get(id(row), row) for row in merged]
    return sorted(out, key=lambda u: (-u.exchanges, u.backend or "", u.model or ""))


def _no_such(exc: StoreError) -> bool:
    """Whether SQLite said a table or column is missing (an older or foreign schema), not a damaged file."""
    return "no such" in (exc.detail or "")
