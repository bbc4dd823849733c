"""PDFium, shared by the reader and the renderer: the one lock every pdfium call takes, and a digest of what a
PDF's pages hold, which lets an answer we wrote be recognised as unchanged without the database.

The digest covers the page count, each page's size, its annotation count, and the type and bounds (rounded to
whole points) of every top-level page object. Handwriting added on a tablet changes it: ink is written as new
path or image objects, as ink annotations, or the whole page is re-exported as other objects. Rewriting the
same pages (a tool saving the file again, new metadata) does not.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pypdfium2.raw as pdfium_c

#: Held around every pypdfium2 call in the process. Any module that calls pdfium must hold it.
PDFIUM_LOCK = threading.Lock()

#: Length of :func:`pages_digest` (hex digits).
DIGEST_LENGTH = 32


def pages_digest(document: Any) -> str:
    """The digest of a pypdfium2 ``PdfDocument``'s pages, as hex. Call with :data:`PDFIUM_LOCK` held."""
    digest = hashlib.blake2b(digest_size=DIGEST_LENGTH // 2)
    count = len(document)
    digest.update(f"pages {count}\n".encode())
    for index in range(count):
        page = document[index]
        try:
            width, height = page.get_size()
            annotations = int(pdfium_c.FPDFPage_GetAnnotCount(page.raw))
            digest.update(f"page {round(width)}x{round(height)} annotations {annotations}\n".encode())
            for obj in page.get_objects(max_depth=1):
                left, bottom, right, top = obj.get_bounds()
                digest.update(f"{obj.type} {round(left)} {round(bottom)} {round(right)} {round(top)}\n".encode())
        finally:
            page.close()
    return digest.hexdigest()
