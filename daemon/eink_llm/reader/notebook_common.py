"""What both native notebook readers (:mod:`~eink_llm.reader.supernote`, :mod:`~eink_llm.reader.remarkable`)
share: the advice they give, the error for the missing extra, and the text layer read within its token budget."""

from __future__ import annotations

from collections.abc import Callable

from eink_llm.errors import UnsupportedInputError
from eink_llm.reader.limits import TextCut, describe
from eink_llm.reader.pdf import _clean_text
from eink_llm.text_tokens import cut_to_tokens, estimate_tokens

SYNC_AGAIN = (
    "Let the notebook sync completely (open and close it on the tablet to save it again), or export the page as PDF."
)
NOTEBOOK_PAGES = (
    "Continue in a new notebook (each notebook's new pages are answered as you write), or raise input.max_pages "
    "in the config."
)
EXTRA = "notebooks"


def missing_extra(name: str, what: str, exc: BaseException) -> UnsupportedInputError:
    """The ERROR_ for a notebook file when the optional reader is not installed."""
    return UnsupportedInputError(
        f"{name} is {what}; reading notebooks straight from the folder needs eink-llm's optional "
        f"'{EXTRA}' extra, which is not installed on the server.",
        f"Install it on the server (pip install 'eink-llm[{EXTRA}]') and restart eink-llm, or export the page on "
        "the tablet as PDF into this folder.",
        detail=describe(exc),
    )


class TextLayer:
    """Page texts joined with a blank line, cut to ``budget`` estimated tokens (0: no text at all). Pages after
    the budget is spent are not read; how the text was cut is reported like a PDF's (:class:`TextCut`)."""

    def __init__(self, budget: int) -> None:
        self.budget = max(budget, 0)
        self.left = self.budget
        self.texts: list[str] = []
        self.read_chars = 0
        self.cut_page: int | None = None
        self.unread: list[int] = []
        self.spent = self.budget == 0

    def add(self, page: int, read: Callable[[], str]) -> None:
        if self.spent:
            if self.budget:
                self.unread.append(page)
            return
        cleaned = _clean_text(read())
        if not cleaned.strip():
            return
        self.read_chars += len(cleaned)
        room = self.left - (1 if self.texts else 0)  # a page break costs a token
        kept = cut_to_tokens(cleaned, room)
        if kept:
            self.texts.append(kept)
            self.left = room - estimate_tokens(kept)
        if len(kept) < len(cleaned):
            self.spent = True
            if kept:
                self.cut_page = page
            else:
                self.unread.append(page)

    def text(self) -> str:
        return "\n\n".join(self.texts)

    def cut(self) -> TextCut | None:
        if not self.spent or not self.budget:
            return None
        text = self.text()
        return TextCut(
            budget_tokens=self.budget,
            kept_chars=len(text),
            kept_tokens=estimate_tokens(text),
            read_chars=self.read_chars,
            exact=not self.unread,
            cut_page=self.cut_page,
            unread_pages=tuple(self.unread),
        )
