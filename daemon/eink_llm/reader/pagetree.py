"""How many pages a PDF really has: the page tree's real kids, not what its ``/Count`` claims.

PDFium takes a page tree's ``/Count`` at its word (below about a million), so a one-page PDF whose tree says
``/Count 1000000`` reports a million pages, and an honest limit on the page count refuses it. Looking a page up
by number walks the real tree, though, and finds nothing past the real kids. So when the claimed count is over
the limit, the real one is found by looking pages up (``FPDF_GetPageSizeByIndexF``: the page's dictionary only,
its content is not parsed), by bisection: a few dozen cheap look-ups, whatever the claim. Call with the reader's
pdfium lock held.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pypdfium2.raw as pdfium_c


def page_count(document: Any, limit: int) -> int:
    """The number of pages ``document`` (a ``pypdfium2.PdfDocument``) holds; exact up to ``limit``, and
    beyond it the real count of a tree whose pages are found in order."""
    claimed = len(document)
    if claimed <= limit:
        return claimed
    if not _exists(document, 0):
        return 0
    low, high = 0, claimed  # page `low` exists; page `high` is past the end (or the claim's own end)
    while high - low > 1:
        middle = (low + high) // 2
        if _exists(document, middle):
            low = middle
        else:
            high = middle
    return low + 1


def _exists(document: Any, index: int) -> bool:
    size = pdfium_c.FS_SIZEF()
    return bool(pdfium_c.FPDF_GetPageSizeByIndexF(document.raw, index, ctypes.byref(size)))
