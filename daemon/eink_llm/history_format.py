"""Formatting for the history commands: titles, times, text tables, and the Markdown, JSON and PDF exports.

Pure functions of the store's records (no database, no argv); :mod:`eink_llm.history` runs the commands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from eink_llm import redact
from eink_llm.store import Conversation, Exchange, SearchHit
from eink_llm.store.history import PERCENTILES, ConversationListing, Usage

#: Longest conversation title shown (the first question, on one line).
TITLE_CHARS = 60
#: Version of the JSON export's layout.
EXPORT_VERSION = 1

# --- small helpers ----------------------------------------------------------------------------------------


def one_line(text: str | None, limit: int | None = None) -> str:
    line = " ".join((text or "").split())
    if limit is not None and len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line


def title_of(transcription: str | None, question: str | None, input_file: str | None) -> str:
    """A conversation's title: its first question as read (else the typed text, else the file name)."""
    for candidate in (transcription, question, input_file):
        if one_line(candidate):
            return one_line(candidate, TITLE_CHARS)
    return "(no question recorded)"


def parse_time(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local_time(stamp: str | None) -> str:
    moment = parse_time(stamp)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "-"


def utc_time(stamp: str | None) -> str:
    moment = parse_time(stamp)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; columns whose index is in ``right`` are right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [
            str(cell).rjust(w) if i in right else str(cell).ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def tokens_text(exchange: Exchange) -> str:
    if not exchange.tokens_used:
        return "-"
    split = ""
    if exchange.input_tokens is not None and exchange.output_tokens is not None:
        split = f" ({exchange.input_tokens:,} in, {exchange.output_tokens:,} out)"
    return f"{exchange.tokens_used:,} tokens{split}"


def seconds_text(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "-"


def model_text(exchange: Exchange) -> str:
    return "/".join(part for part in (exchange.backend, exchange.model) if part) or "-"


def first_question(exchanges: Sequence[Exchange]) -> tuple[str | None, str | None, str | None]:
    """What a conversation's title is made of: the first exchange's transcription, text and file name."""
    if not exchanges:
        return None, None, None
    first = exchanges[0]
    return first.transcription, first.question_text, first.input_file


def masked(exchanges: Sequence[Exchange]) -> list[Exchange]:
    """The exchanges with their error texts masked (``redact.py``): databases written before masking keep keys."""
    return [replace(ex, error_text=redact.optional(ex.error_text)) if ex.error_text else ex for ex in exchanges]


def indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line.strip() else "" for line in text.strip().splitlines())


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# --- list, show, search, stats ----------------------------------------------------------------------------


def listing_json(item: ConversationListing) -> dict[str, Any]:
    return {
        "conversation_id": item.conversation_id,
        "status": item.status,
        "exchanges": item.total_exchanges,
        "created_at": item.created_at,
        "last_activity": item.last_activity,
        "title": title_of(item.first_transcription, item.first_question, item.first_input_file),
    }


def listing_table(items: Sequence[ConversationListing]) -> str:
    rows = [
        [
            item.conversation_id,
            item.status,
            str(item.total_exchanges),
            local_time(item.last_activity),
            title_of(item.first_transcription, item.first_question, item.first_input_file),
        ]
        for item in items
    ]
    return table(["conversation", "status", "exchanges", "last activity", "title"], rows, right=[2])


def show_text(conversation: Conversation, exchanges: Sequence[Exchange]) -> str:
    """Every exchange in order: number, time, status, model, tokens, latency, files, question, answer/error."""
    exchanges = masked(exchanges)
    lines = [
        f"{conversation.conversation_id} ({conversation.status}): {plural(len(exchanges), 'exchange')},"
        f" started {local_time(conversation.created_at)}, last activity {local_time(conversation.last_activity)}",
        f"Title: {title_of(*first_question(exchanges))}",
    ]
    for ex in exchanges:
        facts = [
            local_time(ex.created_at),
            ex.status,
            model_text(ex),
            tokens_text(ex),
            seconds_text(ex.processing_time),
        ]
        lines += [
            "",
            f"#{ex.sequence_number}  " + "  ".join(facts),
            f"  input:  {ex.input_file}",
            f"  output: {ex.output_file or '-'}",
            "  You asked:",
            indent(ex.asked() or "(no transcription or text recorded)"),
        ]
        if ex.status == "pending":
            lines += ["  Answer:", "    (not answered yet)"]
        elif ex.error_text or not ex.response_text:
            lines += ["  Error:", indent(ex.error_text or "(no answer was recorded)")]
        else:
            lines += ["  Answer:", indent(ex.response_text)]
    return "\n".join(lines) + "\n"


def hit_json(hit: SearchHit, created_at: str | None) -> dict[str, Any]:
    return {
        "conversation_id": hit.conversation_id,
        "sequence_number": hit.sequence_number,
        "exchange_id": hit.exchange_id,
        "created_at": created_at,
        "snippet": one_line(hit.snippet),
        "rank": hit.rank,
    }


def hits_table(hits: Sequence[SearchHit], times: dict[int, str]) -> str:
    rows = [
        [h.conversation_id, f"#{h.sequence_number}", local_time(times.get(h.exchange_id)), one_line(h.snippet)]
        for h in hits
    ]
    return table(["conversation", "#", "time", "match"], rows, right=[1])


def usage_json(usage: Usage) -> dict[str, Any]:
    item: dict[str, Any] = {"backend": usage.backend, "model": usage.model} if usage.backend or usage.model else {}
    item.update(
        exchanges=usage.exchanges,
        ok=usage.ok,
        errors=usage.errors,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost=round(usage.cost, 6),
    )
    for p in PERCENTILES:
        value = usage.latency.get(p)
        item[f"latency_p{round(p * 100)}"] = round(value, 3) if value is not None else None
    return item


def usage_table(per_model: Sequence[Usage], total: Usage) -> str:
    """One row per backend and model, then the totals; a cost column only when something cost anything."""
    show_cost = total.cost > 0
    headers = ["backend", "model", "exchanges", "ok", "errors", "input tokens", "output tokens"]
    headers += [f"p{round(p * 100)} latency" for p in PERCENTILES] + (["cost"] if show_cost else [])

    def row(u: Usage, backend: str, model: str) -> list[str]:
        cells = [backend, model, f"{u.exchanges:,}", f"{u.ok:,}", f"{u.errors:,}"]
        cells += [f"{u.input_tokens:,}", f"{u.output_tokens:,}"]
        cells += [f"{u.latency[p]:.2f} s" if p in u.latency else "-" for p in PERCENTILES]
        return cells + ([f"{u.cost:.2f}"] if show_cost else [])

    rows = [row(u, u.backend or "-", u.model or "-") for u in per_model]
    rows.append(row(total, "total", ""))
    return table(headers, rows, right=range(2, len(headers)))


# --- export -----------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})(?=\s)")
_FENCE = re.compile(r"^\s*(```|~~~)")


def demote_headings(markdown: str, levels: int = 2) -> str:
    """The answer's own headings pushed ``levels`` down (at most ``######``), outside code fences, so they
    sit below the export's title and exchange headings."""
    out = []
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            line = _HEADING.sub(lambda m: "#" * min(6, len(m.group(1)) + levels), line)
        out.append(line)
    return "\n".join(out)


def export_markdown(conversation: Conversation, exchanges: Sequence[Exchange]) -> str:
    """A title, then per exchange a heading, its facts and files, the question quoted, the answer or error."""
    exchanges = masked(exchanges)
    parts = [
        f"# {title_of(*first_question(exchanges))}",
        f"Conversation `{conversation.conversation_id}` ({conversation.status}) · "
        f"{plural(len(exchanges), 'exchange')} · started {utc_time(conversation.created_at)}"
        f" · last activity {utc_time(conversation.last_activity)}",
    ]
    for ex in exchanges:
        facts = [utc_time(ex.created_at), ex.status, model_text(ex), tokens_text(ex), seconds_text(ex.processing_time)]
        files = f"`{ex.input_file}`" + (f" → `{ex.output_file}`" if ex.output_file else "")
        question = ex.asked()
        quoted = "\n".join(f"> {line}".rstrip() for line in question.splitlines()) if question else "> (none)"
        parts += [f"## Exchange {ex.sequence_number}", "*" + " · ".join(facts) + "*  \n" + files]
        parts.append("**You asked:**\n\n" + quoted)
        if ex.status == "pending":
            parts.append("*Not answered yet.*")
        elif ex.error_text or not ex.response_text:
            parts.append("**No answer:** " + (ex.error_text or "none was recorded").strip())
        else:
            parts.append("**Answer:**\n\n" + demote_headings(ex.response_text.strip()))
    return "\n\n".join(parts) + "\n"


def export_json(conversation: Conversation, exchanges: Sequence[Exchange]) -> dict[str, Any]:
    """Everything the database knows of the conversation; ``Exchange(**item)`` rebuilds each exchange."""
    exchanges = masked(exchanges)
    return {
        "format": "eink-llm conversation",
        "version": EXPORT_VERSION,
        "title": title_of(*first_question(exchanges)),
        "conversation": asdict(conversation),
        "exchanges": [asdict(ex) for ex in exchanges],
    }


def export_pdf(
    conversation: Conversation, exchanges: Sequence[Exchange], *, device: str | dict[str, Any], font_size: float
) -> bytes:
    """One e-ink PDF of the whole conversation, a top-level bookmark per exchange (the renderer is imported
    only here: the other commands need not pay for it)."""
    exchanges = masked(exchanges)
    from eink_llm.render import ConversationEntry, render_conversation

    entries = [
        ConversationEntry(
            sequence=ex.sequence_number,
            created_at=parse_time(ex.created_at) or datetime.now(UTC),
            question=ex.asked(),
            answer=ex.response_text if ex.status == "ok" else None,
            error=ex.error_text or ("Not answered yet." if ex.status == "pending" else None),
            model=ex.model or "",
        )
        for ex in exchanges
    ]
    title = title_of(*first_question(exchanges))
    return render_conversation(title, conversation.conversation_id, entries, device=device, font_size=font_size)
