"""The history commands: list, show, export, search, archive and stats over the exchanges in the database.

Each command is one function from plain arguments to an :class:`Output` (what to print); ``cli`` only parses
argv and prints. The database is opened read-only (safe while the daemon writes), except by ``archive``; a
missing database is "no history yet", never created. The SQL lives in :mod:`eink_llm.store.history`.

Times are shown in local time in the terminal; exports (Markdown, JSON, PDF) use UTC, like the answer PDFs.
The text and the export formats are made by :mod:`eink_llm.history_format`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from eink_llm import history_format as fmt
from eink_llm.errors import HistoryArgumentError, StoreError, UnknownConversationError
from eink_llm.store import Conversation, Store, iso
from eink_llm.store.ports import HistoryCommands

ExportFormat = Literal["md", "json", "pdf"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("md", "json", "pdf")


@dataclass(frozen=True, slots=True)
class Output:
    """What a command prints: ``text`` on stdout, ``note`` (if any) on stderr."""

    text: str
    note: str = ""


def _no_history(database: Path) -> str:
    return f"No history yet: there is no database at {database} (nothing has been answered)."


@contextmanager
def open_history(database: Path, *, write: bool = False) -> Iterator[HistoryCommands | None]:
    """The database for the commands (read-only unless ``write``), ``None`` if there is none yet; a database that
    lacks this version's migrations, or is damaged or unreadable, raises :class:`StoreError`."""
    if not database.exists():
        yield None
        return
    with Store.open(database, readonly=not write) as store:
        missing = store.missing_migrations()
        if missing:
            raise StoreError(
                f"The database {database} is from an older version of eink-llm.",
                "Start the daemon (eink-llm run) once: it updates the database, then the history can be read.",
                detail="missing migrations: " + ", ".join(missing),
            )
        yield store


def _conversation(
    store: HistoryCommands | None, database: Path, conversation_id: str
) -> tuple[HistoryCommands, Conversation]:
    """The conversation with this id, or the one whose id starts with it (a unique prefix is enough)."""
    conversation = store.get_conversation(conversation_id) if store is not None else None
    if store is not None and conversation is None and conversation_id.strip():
        matches = store.conversation_ids_starting(conversation_id.strip(), limit=6)
        if len(matches) == 1:
            conversation = store.get_conversation(matches[0])
        elif matches:
            shown = ", ".join(matches[:5]) + (", …" if len(matches) > 5 else "")
            raise HistoryArgumentError(
                f"{conversation_id!r} is the start of several conversation ids: {shown}.",
                "Give more of the id.",
            )
    if store is None or conversation is None:
        where = f" in {database}." if store is not None else f": {_no_history(database)}"
        raise UnknownConversationError(
            f"There is no conversation {conversation_id!r}{where}",
            "Run `eink-llm conversations list --all` to see the conversations and their ids.",
        )
    return store, conversation


# --- list -------------------------------------------------------------------------------------------------


def list_conversations(database: Path, *, include_archived: bool, limit: int, as_json: bool) -> Output:
    """Conversations, most recent activity first; archived ones only with ``include_archived``.
    ``limit`` 0 shows all."""
    with open_history(database) as store:
        if store is None:
            return Output("[]\n", _no_history(database)) if as_json else Output(_no_history(database) + "\n")
        items = store.conversation_listings(include_archived=include_archived, limit=limit or None)
        counts = store.conversation_counts()
    if as_json:
        return Output(fmt.to_json([fmt.listing_json(item) for item in items]))
    hidden = counts["archived"] if not include_archived else 0
    if not items:
        return Output("No conversations yet" + (f" ({hidden} archived: --all shows them)" if hidden else "") + ".\n")
    available = counts["active"] + (counts["archived"] if include_archived else 0)
    notes = []
    if len(items) < available:
        notes.append(f"{len(items)} most recent of {available} shown (--limit 0 shows all)")
    if hidden:
        notes.append(f"{hidden} archived not shown (--all shows them)")
    return Output(fmt.listing_table(items) + "\n" + ("\n" + "; ".join(notes) + ".\n" if notes else ""))


# --- show and export --------------------------------------------------------------------------------------


def show_conversation(database: Path, conversation_id: str) -> Output:
    """Every exchange of a conversation in order, with its question and answer (or error)."""
    with open_history(database) as opened:
        store, conversation = _conversation(opened, database, conversation_id)
        exchanges = store.conversation_exchanges(conversation.conversation_id)
    return Output(fmt.show_text(conversation, exchanges))


def export_conversation(
    database: Path,
    conversation_id: str,
    export_format: ExportFormat,
    output: Path | None,
    *,
    device: str | dict[str, Any] = "remarkable2",
    font_size: float = 11.0,
) -> Output:
    """Markdown or JSON to ``output`` (stdout without one); PDF to ``output``, else ``./<id>.pdf``. Files are
    written atomically."""
    from eink_llm.atomic import atomic_write

    with open_history(database) as opened:
        store, conversation = _conversation(opened, database, conversation_id)
        exchanges = store.conversation_exchanges(conversation.conversation_id)
    if export_format == "pdf":
        data = fmt.export_pdf(conversation, exchanges, device=device, font_size=font_size)
        output = output or Path(f"{conversation_id}.pdf")
    else:
        if export_format == "md":
            text = fmt.export_markdown(conversation, exchanges)
        else:
            text = fmt.to_json(fmt.export_json(conversation, exchanges))
        if output is None:
            return Output(text)
        data = text.encode()
    atomic_write(output, data)
    return Output(f"{output}: {fmt.plural(len(exchanges), 'exchange')}, {len(data) / 1024:.0f} KiB\n")


# --- search -----------------------------------------------------------------------------------------------


def search_history(database: Path, query: str, *, conversation_id: str | None, limit: int, as_json: bool) -> Output:
    """Answered exchanges whose question or answer has every word of ``query`` (BM25, best first); if none has
    all of them, those with any of them, saying so."""
    from eink_llm.store import fts_query

    limit = max(1, limit)
    if not fts_query(query, match_all=True):
        raise HistoryArgumentError(
            f"There is nothing to search for in {query!r}.", "Search for one or more words (letters or digits)."
        )
    with open_history(database) as store:
        if store is None:
            empty = fmt.to_json({"query": query, "matched": "all", "hits": []})
            return Output(empty, _no_history(database)) if as_json else Output(_no_history(database) + "\n")
        if conversation_id is not None:
            conversation_id = _conversation(store, database, conversation_id)[1].conversation_id
        matched = "all"
        hits = store.search(query, conversation_id=conversation_id, limit=limit, match_all=True)
        if not hits:
            hits = store.search(query, conversation_id=conversation_id, limit=limit, match_all=False)
            matched = "any"
        times = {ex.exchange_id: ex.created_at for ex in store.exchanges_by_id([h.exchange_id for h in hits])}
    if as_json:
        found = [fmt.hit_json(hit, times.get(hit.exchange_id)) for hit in hits]
        return Output(fmt.to_json({"query": query, "matched": matched, "hits": found}))
    where = f" in {conversation_id}" if conversation_id else ""
    if not hits:
        return Output(f"No answered exchange{where} contains any of the words of {query!r}.\n")
    more = f" (the first {limit}: --limit shows more)" if len(hits) >= limit else ""
    if matched == "all":
        head = f"Exchanges{where} with every word of {query!r}, best first{more}:"
    else:
        head = f"No exchange{where} has every word of {query!r}. Exchanges with some of them, best first{more}:"
    return Output(head + "\n" + fmt.hits_table(hits, times) + "\n")


# --- archive ----------------------------------------------------------------------------------------------


def archive_conversation(database: Path, conversation_id: str) -> Output:
    """Mark a conversation archived (idempotent): hidden from the list, never continued by the daemon."""
    with open_history(database, write=True) as opened:
        store, conversation = _conversation(opened, database, conversation_id)
        conversation_id = conversation.conversation_id
        if conversation.status == "archived":
            return Output(f"{conversation_id} was already archived.\n")
        store.archive_conversation(conversation_id)
    return Output(f"{conversation_id} archived: hidden from the list, and new pages start a new conversation.\n")


# --- stats ------------------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``YYYY-MM-DD`` (local midnight), an ISO date-time (local unless it says its zone), or ``Nh``/``Nd``/
    ``Nw`` (hours, days, weeks ago)."""
    relative = _RELATIVE.match(text)
    if relative:
        unit = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}[relative.group(2)]
        return (now or datetime.now(UTC)) - int(relative.group(1)) * unit
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HistoryArgumentError(
            f"{text!r} is not a date.", "Give --since as YYYY-MM-DD, YYYY-MM-DDTHH:MM, or 7d (days), 12h, 2w ago."
        ) from None
    return moment if moment.tzinfo else moment.astimezone()  # naive: local time


def usage_stats(database: Path, *, since: str | None, as_json: bool) -> Output:
    """Finished exchanges, outcomes, tokens and latency percentiles per backend and model, and in total."""
    start = parse_since(since) if since else None
    with open_history(database) as store:
        if store is None:
            empty = fmt.to_json({"since": None, "models": [], "total": None})
            return Output(empty, _no_history(database)) if as_json else Output(_no_history(database) + "\n")
        per_model, total = store.usage(iso(start) if start else None)
    if as_json:
        models = [{"backend": u.backend, "model": u.model, **fmt.usage_json(u)} for u in per_model]
        return Output(
            fmt.to_json({"since": iso(start) if start else None, "models": models, "total": fmt.usage_json(total)})
        )
    period = f"since {start.astimezone().strftime('%Y-%m-%d %H:%M')}" if start else "all time"
    if not total.exchanges:
        return Output(f"No finished exchanges ({period}).\n")
    return Output(f"Finished exchanges, {period} (latency of answered ones):\n{fmt.usage_table(per_model, total)}\n")
