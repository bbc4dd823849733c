"""What both native notebook readers (:mod:`~eink_llm.reader.supernote`, :mod:`~eink_llm.reader.remarkable`)
share: the advice they give, the error for the missing extra, the length limit, the pages taken one at a time
through a :class:`~eink_llm.reader.limits.PageSieve`, and the text layer read within its token budget."""

from __future__ import annotations

import importlib.util

from PIL import Image

from eink_llm.errors import InputTooLargeError, MissingExtraError
from eink_llm.reader.limits import InputDocument, InputLimits, PageSieve, Skipped, TextCut, describe
from eink_llm.reader.pdf import TextLayer as TextLayer  # the PDF's, read page by page within the same budget

SYNC_AGAIN = (
    "Let the notebook sync completely (open and close it on the tablet to save it again), or export the page as PDF."
)
NOTEBOOK_PAGES = (
    "Continue in a new notebook (each notebook's new pages are answered as you write), or raise input.max_pages "
    "in the config."
)
LONG_NOTEBOOK = (
    "Continue in a new notebook (each notebook's new pages are answered as you write), or raise "
    "input.max_notebook_pages in the config."
)
EXTRA = "notebooks"
#: What the extra installs, as imported: Supernote's reader and reMarkable's.
EXTRA_MODULES = ("supernotelib", "rmscene")


def missing_extra(name: str, what: str, exc: BaseException) -> MissingExtraError:
    """The ERROR_ for a notebook file when the optional reader is not installed."""
    return MissingExtraError(
        f"{name} is {what}; reading notebooks straight from the folder needs eink-llm's optional "
        f"'{EXTRA}' extra, which is not installed on the server.",
        f"Install it on the server (pip install 'eink-llm[{EXTRA}]') and restart eink-llm: this file is then "
        "read again by itself. Or export the page on the tablet as PDF into this folder.",
        detail=describe(exc),
    )


def notebooks_installed() -> bool:
    """Whether the ``notebooks`` extra's readers can be imported here (without importing them)."""
    return all(importlib.util.find_spec(module) is not None for module in EXTRA_MODULES)


def check_length(name: str, what: str, count: int, limits: InputLimits, sieve: PageSieve | None) -> None:
    """A notebook read through a sieve may be ``max_notebook_pages`` long (only its changed pages are carried,
    at most ``max_pages``); without one, every page is carried, so ``max_pages`` bounds it."""
    limit, todo = (limits.max_pages, NOTEBOOK_PAGES) if sieve is None else (limits.max_notebook_pages, LONG_NOTEBOOK)
    if count > limit:
        raise InputTooLargeError(f"{name} is {what} of {count} pages; the limit is {limit}.", todo)


class Pages:
    """A notebook's pages as they are decoded, one at a time: each is carried as an image, or, through the sieve,
    only said to be the same as a known page (or, past ``max_pages`` changed ones, kept as its print)."""

    def __init__(self, sieve: PageSieve | None) -> None:
        self._sieve = sieve
        self.images: list[Image.Image] = []
        self._skipped: list[Skipped | None] = []

    def add(self, page: Image.Image) -> None:
        entry = self._sieve.take(page) if self._sieve is not None else None
        if entry is None:
            self.images.append(page)
        self._skipped.append(entry)

    def __len__(self) -> int:
        return len(self._skipped)

    def document(self, text: str, text_cut: TextCut | None) -> InputDocument:
        skipped = tuple(self._skipped) if self._sieve is not None else ()
        return InputDocument("notebook", tuple(self.images), text, len(self), text_cut=text_cut, skipped=skipped)
