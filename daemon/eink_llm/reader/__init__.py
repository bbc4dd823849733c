"""The input stage: an exported PDF or image becomes grayscale page images plus any text layer.

Input comes from a sync folder, so it can be anything: a half-synced download, a password-protected export, a
text file or an HTML error page named ``.pdf``, a phone photo lying on its side, a decompression bomb. Each bad
file becomes a typed :class:`~eink_llm.errors.InputError` whose ``what`` names the file and says in plain words
what is wrong, and whose ``todo`` says what to do on the tablet. Nothing else escapes :func:`read_input` for bad
input: a page that cannot be read must become an ERROR_ PDF, never a crashed worker.

Limits are checked before memory is committed, because the pixel count of a decoded page, not the file size, is
what exhausts memory (a 1 kB PNG can declare 30000×30000 pixels, a one-page PDF can be 5 m wide): the file size
before reading it, a PDF's page count and page sizes before rendering, an image's size from its header before
decoding.

The package is split by concern:

* :mod:`~eink_llm.reader.files` — :func:`read_input`: bounded reading, format sniffing, :func:`sha256_file`;
* :mod:`~eink_llm.reader.cage` — decoding in separate processes with hard memory and time limits (the daemon's
  way; :mod:`~eink_llm.reader.cage_child` is the process, :mod:`~eink_llm.reader.cage_wire` the pipe format,
  :mod:`~eink_llm.reader.cage_result` what comes back, checked);
* :mod:`~eink_llm.reader.pagetree` — a PDF's real page count, whatever its ``/Count`` claims;
* :mod:`~eink_llm.reader.pdf` — PDFs through pypdfium2, under :data:`PDFIUM_LOCK`;
* :mod:`~eink_llm.reader.origin` — recognising our own answers coming back under another name (PDF metadata);
* :mod:`~eink_llm.reader.image` — pictures through Pillow;
* :mod:`~eink_llm.reader.supernote`, :mod:`~eink_llm.reader.remarkable`, :mod:`~eink_llm.reader.rmdoc` — native
  notebooks (the optional ``notebooks`` extra; :mod:`~eink_llm.reader.notebook_common` what they share);
* :mod:`~eink_llm.reader.limits` — limits, the result type, shared advice and the PNG encoder.
"""

from __future__ import annotations

from eink_llm.backends.base import PageImage
from eink_llm.reader.files import Decoder, decode_bytes, read_input, records_input, sha256_file
from eink_llm.reader.limits import (
    MAX_PRINT_BYTES,
    PRINT_LONG_EDGE,
    SUPPORTED_SUFFIXES,
    InputDocument,
    InputLimits,
    PageSieve,
    Skipped,
)
from eink_llm.reader.origin import PdfOrigin
from eink_llm.reader.pdf import PDFIUM_LOCK
from eink_llm.reader.pdf import _clean_text as _clean_text  # the tests check it directly

__all__ = [
    "MAX_PRINT_BYTES",
    "PDFIUM_LOCK",
    "PRINT_LONG_EDGE",
    "SUPPORTED_SUFFIXES",
    "Decoder",
    "InputDocument",
    "InputLimits",
    "PageImage",
    "PageSieve",
    "PdfOrigin",
    "Skipped",
    "decode_bytes",
    "read_input",
    "records_input",
    "sha256_file",
]
