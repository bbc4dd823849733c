"""What the model is told about the conversation so far, within a token budget.

A follow-up only makes sense with what came before, but a long conversation must not blow the request up. The
budget (``context.history_tokens``, default 6,000 estimated tokens) holds, in this order of priority:

1. **the rolling summary** of older exchanges (at most a quarter of the budget), when some earlier exchange no
   longer fits in full;
2. **the most recent exchanges in full**, newest first until the budget is used, sent as chat turns (oldest
   first) — an exchange is kept or dropped whole: half an answer is worse than none;
3. **the most relevant older exchanges**, found by SQLite FTS5 (BM25) with the new question's words (its text
   layer, when the tablet sends one) — within the conversation, and with ``context.memory`` across all of them;
   up to a quarter of the budget is kept for them.

Summary and relevant exchanges go into the system prompt as background. The summary is refreshed by the model
itself (:func:`summary_request`, the original design's ``update_context_summary``) once the conversation has
outgrown the budget; the pipeline asks after recording an exchange.

Token counts are estimated locally, never by a network call (:mod:`~eink_llm.text_tokens`): about four characters
a token for alphabetic scripts, one token a character for CJK (as BPE tokenizers roughly count them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eink_llm.backends.base import LLMRequest, Message, ModelOptions
from eink_llm.store import Conversation, Exchange
from eink_llm.store.ports import ContextSource
from eink_llm.text_tokens import estimate_tokens as estimate_tokens  # where it was; still imported from here

SUMMARY_SHARE = 0.25
RELEVANT_SHARE = 0.25
MAX_RELEVANT = 4

SUMMARY_PROMPT = (
    "You keep a running summary of a conversation between a user, who writes by hand on an e-ink tablet, and an "
    "assistant. Write the updated summary only: the user's goals and questions, the facts, results and decisions "
    "so far, and anything the assistant promised. Plain sentences or a short list; no preamble."
)


def question_as_read(exchange: Exchange) -> str:
    """The user's side of an earlier exchange, as we know it (:meth:`Exchange.asked`), else where it came from."""
    return exchange.asked() or f"(Handwritten pages from the file {exchange.input_file}.)"


@dataclass(frozen=True, slots=True)
class Context:
    """The history turns and the background for one request, and what went into them (for the record)."""

    history: tuple[Message, ...] = ()
    background: str = ""
    recent: tuple[int, ...] = ()  # sequence numbers sent in full
    relevant: tuple[int, ...] = ()  # exchange ids found by search
    summary_used: bool = False
    tokens: int = 0

    def system_prompt(self, base: str) -> str:
        return f"{base}\n\n{self.background}" if self.background else base


def _turn(exchange: Exchange) -> tuple[Message, Message]:
    return Message("user", question_as_read(exchange)), Message("assistant", exchange.response_text or "")


def _cost(turn: tuple[Message, Message]) -> int:
    return estimate_tokens(turn[0].text) + estimate_tokens(turn[1].text)


def recent_turns(exchanges: Sequence[Exchange], budget: int) -> tuple[tuple[Message, ...], tuple[int, ...], int]:
    """Earlier answered exchanges (oldest first) → chat turns of the most recent that fit ``budget`` (kept or
    dropped whole: half an answer is worse than none), with their sequence numbers and estimated cost."""
    kept: list[tuple[Exchange, tuple[Message, Message]]] = []
    used = 0
    for exchange in reversed(exchanges):
        if exchange.status != "ok" or not exchange.response_text:
            continue
        turn = _turn(exchange)
        cost = _cost(turn)
        if used + cost > budget:
            break
        kept.append((exchange, turn))
        used += cost
    kept.reverse()
    messages = tuple(message for _, turn in kept for message in turn)
    return messages, tuple(e.sequence_number for e, _ in kept), used


def build_context(
    store: ContextSource,
    conversation: Conversation | None,
    sequence: int,
    query: str,
    budget: int,
    *,
    memory: bool = False,
) -> Context:
    """The context for exchange ``sequence`` of ``conversation`` (``None``: a new conversation).

    ``query`` is what is known of the new question as text (its text layer; handwriting has none until the
    model reads it), used to find relevant older exchanges.
    """
    earlier = store.history(conversation.conversation_id, sequence) if conversation else []
    answered = [e for e in earlier if e.status == "ok" and e.response_text]
    fits_whole = len(recent_turns(answered, budget)[1]) == len(answered)

    summary = ""
    if not fits_whole and conversation is not None and conversation.context_summary:
        text = _truncate(conversation.context_summary.strip(), int(budget * SUMMARY_SHARE))
        summary = f"Summary of the earlier part of this conversation:\n{text}"
    searchable = bool(query.strip()) and (memory or not fits_whole)
    reserve = int(budget * RELEVANT_SHARE) if searchable else 0
    history, recent, used = recent_turns(answered, budget - estimate_tokens(summary) - reserve)
    used += estimate_tokens(summary)
    parts = [summary] if summary else []

    relevant: list[int] = []
    if searchable:
        sent = [e.exchange_id for e in answered if e.sequence_number in recent]
        lines, relevant, cost = _relevant(store, conversation, sequence, sent, query, budget - used, memory=memory)
        if lines:
            parts.append("Earlier exchanges that may be relevant to the new question:\n\n" + "\n\n".join(lines))
            used += cost
    return Context(
        history=history,
        background="\n\n".join(parts),
        recent=recent,
        relevant=tuple(relevant),
        summary_used=bool(summary),
        tokens=used,
    )


def _relevant(
    store: ContextSource,
    conversation: Conversation | None,
    sequence: int,
    sent: Sequence[int],
    query: str,
    room: int,
    *,
    memory: bool,
) -> tuple[list[str], list[int], int]:
    """Older exchanges matching ``query`` (not those already sent in full), formatted within ``room`` tokens."""
    own = conversation.conversation_id if conversation else None
    hits = []
    if own is not None:
        hits = store.search(query, conversation_id=own, before_sequence=sequence, exclude=sent, limit=MAX_RELEVANT)
    if memory:  # the same user's other conversations only (multi-user folders stay apart)
        user = conversation.user_id if conversation else None
        found = store.search(query, limit=MAX_RELEVANT * 3, of_user=True, user_id=user)
        others = [h for h in found if h.conversation_id != own]
        hits += others[: max(MAX_RELEVANT - len(hits), 1)]
    if not hits:
        return [], [], 0
    by_id = {e.exchange_id: e for e in store.exchanges_by_id([h.exchange_id for h in hits])}
    lines: list[str] = []
    ids: list[int] = []
    used = 0
    each = room // len(hits)
    for hit in hits:
        exchange = by_id.get(hit.exchange_id)
        if exchange is None or not exchange.response_text:
            continue
        where = (
            f"Exchange {exchange.sequence_number} of this conversation"
            if exchange.conversation_id == own
            else f"From another conversation ({exchange.created_at[:10]})"
        )
        header = f"[{where}] The user asked: {_truncate(question_as_read(exchange), each // 3)}\nYou answered: "
        body = _truncate(exchange.response_text, each - estimate_tokens(header))
        if not body:
            continue
        cost = estimate_tokens(header + body)
        if used + cost > room:
            break
        lines.append(header + body)
        ids.append(exchange.exchange_id)
        used += cost
    return lines, ids, used


def _truncate(text: str, tokens: int) -> str:
    """``text`` cut to about ``tokens`` estimated tokens, at a word boundary, with an ellipsis."""
    if tokens <= 0:
        return ""
    if estimate_tokens(text) <= tokens:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix within the budget (estimate_tokens is monotonic in length)
        middle = (low + high + 1) // 2
        if estimate_tokens(text[:middle]) + 1 <= tokens:
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    space = cut.rfind(" ")
    if space > low * 0.8:
        cut = cut[:space]
    return cut.rstrip() + " …"


# --- the rolling summary ---------------------------------------------------------------------------------------


def summary_request(
    conversation: Conversation, exchanges: Sequence[Exchange], budget: int, options: ModelOptions
) -> tuple[LLMRequest, int] | None:
    """After an exchange is recorded: the request that updates the conversation's rolling summary, and the last
    exchange it will cover — or ``None`` while everything not yet summarised still fits in full.

    ``exchanges`` are the conversation's answered exchanges so far, oldest first. The summary then covers all
    but the newest exchange, so it is refreshed only every few exchanges, not after each one.
    """
    answered = [e for e in exchanges if e.status == "ok" and e.response_text]
    if len(answered) < 2:
        return None
    _, recent, _ = recent_turns(answered, int(budget * (1 - SUMMARY_SHARE - RELEVANT_SHARE)))
    oldest_in_full = recent[0] if recent else answered[-1].sequence_number + 1
    if oldest_in_full - 1 <= conversation.summary_through:
        return None
    through = answered[-2].sequence_number
    new = [e for e in answered if conversation.summary_through < e.sequence_number <= through]
    limit = max(int(budget * SUMMARY_SHARE), 64)
    parts = []
    if conversation.context_summary:
        parts.append(f"The summary so far:\n{conversation.context_summary.strip()}")
    for exchange in new:
        parts.append(
            f"Exchange {exchange.sequence_number}.\nThe user asked: {question_as_read(exchange)}\n"
            f"The assistant answered: {_truncate(exchange.response_text or '', limit * 2)}"
        )
    words = max(int(limit * 0.6), 40)
    request = LLMRequest(
        system_prompt=SUMMARY_PROMPT,
        instruction=f"Update the summary with the exchanges below. Use at most {words} words.",
        text="\n\n".join(parts),
        options=ModelOptions(model=options.model, max_output_tokens=limit, temperature=options.temperature),
        source_name="summary",
    )
    return request, through
