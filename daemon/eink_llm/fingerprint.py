"""An answer's fingerprint: a digest of the PDF's own bytes, written into the PDF, so that one of our answers
can be recognised as unchanged from the file alone (without the database, which may have been lost).

The renderer writes the Info entry ``/EinkLLMDigest (000…0)`` and, once the PDF exists, :func:`seal` replaces
the zeros with the digest of the whole file taken *with the zeros in place*; the lengths match, so no byte
offset moves. :func:`is_unchanged` recomputes it the same way. Any change to the file's bytes (a pen stroke, an
annotation appended, the file saved again by another program) makes it differ; a copy made by a sync client
does not. The digest is not a signature: a file that fakes one only makes us skip it.
"""

from __future__ import annotations

import hashlib

from eink_llm.naming import INFO_DIGEST

#: Hex digits of the digest (BLAKE2b, 16 bytes).
DIGEST_LENGTH = 32
PLACEHOLDER = "0" * DIGEST_LENGTH
_ENTRY = f"/{INFO_DIGEST} (".encode("ascii")
_HEX_DIGITS = frozenset(b"0123456789abcdef")


def _digest(pdf: bytes, start: int) -> bytes:
    """The digest of ``pdf`` with the placeholder's zeros at ``start``."""
    digest = hashlib.blake2b(digest_size=DIGEST_LENGTH // 2)
    digest.update(memoryview(pdf)[:start])
    digest.update(PLACEHOLDER.encode("ascii"))
    digest.update(memoryview(pdf)[start + DIGEST_LENGTH :])
    return digest.hexdigest().encode("ascii")


def _value_at(pdf: bytes) -> int | None:
    """Where the digest entry's value starts, if the file has a well-formed one."""
    at = pdf.find(_ENTRY)
    if at < 0:
        return None
    start = at + len(_ENTRY)
    value = pdf[start : start + DIGEST_LENGTH + 1]
    if len(value) != DIGEST_LENGTH + 1 or value[-1:] != b")" or not set(value[:-1]) <= _HEX_DIGITS:
        return None
    return start


def seal(pdf: bytes) -> bytes:
    """``pdf`` with its digest in place of the placeholder (unchanged if it has none)."""
    start = _value_at(pdf)
    if start is None or pdf[start : start + DIGEST_LENGTH] != PLACEHOLDER.encode("ascii"):
        return pdf
    return pdf[:start] + _digest(pdf, start) + pdf[start + DIGEST_LENGTH :]


def is_unchanged(pdf: bytes) -> bool:
    """Whether ``pdf`` is a sealed file exactly as it was sealed."""
    start = _value_at(pdf)
    return start is not None and _digest(pdf, start) == pdf[start : start + DIGEST_LENGTH]
