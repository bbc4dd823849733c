"""Free text → a safe SQLite FTS5 query."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)
#: Words too common to find anything by (English; other languages' words are all kept).
_STOP_WORDS = frozenset(
    _WORD.findall(
        "a an and are as at be but by can could did do does for from had has have how i if in into is it its me my"
        " no not of on or our please she so than that the their them then there these they this to was we were"
        " what when where which who why will with would you your"
    )
)


def fts_query(text: str, *, match_all: bool = False, max_terms: int = 32) -> str:
    """Free text → a safe FTS5 query: each word quoted (so ``AND``, ``*``, ``"`` or ``NEAR(`` in a page are just
    words), stop words and one-letter words dropped, at most ``max_terms`` distinct words."""
    terms: list[str] = []
    for word in _WORD.findall(text.lower()):
        if (len(word) < 2 or word in _STOP_WORDS) and not match_all:
            continue
        if word not in terms:
            terms.append(word)
        if len(terms) >= max_terms:
            break
    return (" AND " if match_all else " OR ").join(f'"{term}"' for term in terms)
