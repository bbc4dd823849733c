"""What the model is told about the conversation so far.

Follow-ups only make sense with the earlier exchanges, but a long conversation must not blow the request up:
the history is the most recent exchanges that fit a token budget, sent oldest first as user/assistant turns.
Token counts are estimated locally (about four characters a token for prose), never by a network call.
"""

from __future__ import annotations

from collections.abc import Sequence

from eink_llm.backends.base import Message
from eink_llm.store import Exchange

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def question_as_read(exchange: Exchange) -> str:
    """The user's side of an earlier exchange, as we know it."""
    if exchange.question_text and exchange.question_text.strip():
        return exchange.question_text.strip()
    return f"(Handwritten pages from the file {exchange.input_file}.)"


def build_history(exchanges: Sequence[Exchange], budget_tokens: int) -> tuple[Message, ...]:
    """Earlier answered exchanges (oldest first) → chat turns, keeping the most recent that fit the budget.

    An exchange is kept or dropped whole: half an answer is worse than none.
    """
    kept: list[tuple[Message, Message]] = []
    used = 0
    for exchange in reversed(exchanges):
        if exchange.status != "ok" or not exchange.response_text:
            continue
        turn = (
            Message("user", question_as_read(exchange)),
            Message("assistant", exchange.response_text),
        )
        cost = estimate_tokens(turn[0].text) + estimate_tokens(turn[1].text)
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    return tuple(message for turn in reversed(kept) for message in turn)
