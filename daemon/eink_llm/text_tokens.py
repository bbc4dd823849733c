"""How many tokens a text is estimated to cost, and a text cut to a number of tokens.

Estimated locally, never by a network call: about four characters a token for alphabetic scripts, one token a
character for CJK (as BPE tokenizers roughly count them). The history budget (:mod:`~eink_llm.context`), the
input's text layer (:mod:`~eink_llm.reader`) and the request ceiling (:mod:`~eink_llm.ceiling`) all count this
way, so their budgets add up.
"""

from __future__ import annotations

import re

CHARS_PER_TOKEN = 4
_DENSE = re.compile(r"[\u1100-\u11ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f]")


def estimate_tokens(text: str) -> int:
    dense = len(_DENSE.findall(text))
    return dense + (len(text) - dense + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def most_chars(tokens: int) -> int:
    """The longest text that can cost at most ``tokens``: no prefix longer than this needs to be looked at."""
    return max(tokens, 0) * CHARS_PER_TOKEN


def cut_to_tokens(text: str, tokens: int) -> str:
    """The longest prefix of ``text`` estimated at most ``tokens``, ended at a word boundary when one is near.

    Only the first :func:`most_chars` characters are looked at, so a huge text costs no more than a short one.
    """
    if tokens <= 0:
        return ""
    if len(text) <= most_chars(tokens) and estimate_tokens(text) <= tokens:
        return text
    text = text[: most_chars(tokens)]
    low, high = 0, len(text)
    while low < high:  # the longest prefix within the budget (estimate_tokens is monotonic in length)
        middle = (low + high + 1) // 2
        if estimate_tokens(text[:middle]) <= tokens:
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > low * 0.8:
        cut = cut[:space]
    return cut.rstrip()
