"""What both native notebook readers (:mod:`~eink_llm.reader.supernote`, :mod:`~eink_llm.reader.remarkable`)
share: the advice they give, the error for the missing extra, and the text layer read within its token budget."""

from __future__ import annotations

from eink_llm.errors import UnsupportedInputError
from eink_llm.reader.limits import describe
from eink_llm.reader.pdf import TextLayer as TextLayer  # the PDF's, read page by page within the same budget

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
