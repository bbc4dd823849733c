"""From a path to bytes and a format: the entry point :func:`read_input`, bounded reading, and sniffing.

The type is decided by the file's first bytes, not its name, because sync tools and tablets get names wrong;
a file that is neither a PDF nor a picture is described in words a tablet user recognises ("a web page",
"a reMarkable notebook page, not an exported one").
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Literal, Protocol

from eink_llm import confined
from eink_llm.errors import (
    CorruptInputError,
    InputChangedError,
    InputError,
    InputTooLargeError,
    UnsupportedInputError,
)
from eink_llm.naming import INFO_INPUT
from eink_llm.reader.image import read_image
from eink_llm.reader.limits import (
    DEFAULT_LIMITS,
    EXPORT_AGAIN,
    EXPORT_SUPPORTED,
    InputDocument,
    InputLimits,
    PageSieve,
    bytes_text,
    check_file_size,
)
from eink_llm.reader.pdf import read_pdf
from eink_llm.reader.remarkable import read_rm
from eink_llm.reader.rmdoc import read_rmdoc
from eink_llm.reader.supernote import read_note

#: A format the reader decodes, as sniffed from the first bytes.
Kind = Literal["pdf", "png", "jpeg", "webp", "tiff", "note", "rm", "zip"]


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks so a large file never sits in memory (the queue's identity). A link
    in the final component is not followed (``ELOOP``): the watcher queues only regular files."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class Decoder(Protocol):
    """What turns a file's bytes into pages: :class:`~eink_llm.reader.cage.Cage` (a separate process with hard
    limits, what the daemon uses) or :func:`decode_bytes` in this process."""

    def decode(
        self, name: str, data: bytes, kind: Kind, limits: InputLimits, sieve: PageSieve | None = None
    ) -> InputDocument: ...


def read_input(
    path: Path,
    limits: InputLimits = DEFAULT_LIMITS,
    decoder: Decoder | None = None,
    *,
    root: Path | None = None,
    sha256: str | None = None,
    sieve: PageSieve | None = None,
) -> InputDocument:
    """Read ``path`` (a PDF or an image) into grayscale pages, or raise an :class:`InputError` saying why not.

    ``root`` is the watched folder: no link is followed below it (see :mod:`eink_llm.confined`; without it, the
    file's own folder). ``sha256``, the hash the file was queued with, must match the bytes read, else
    :class:`InputChangedError` (the file changed after it was queued, and is not answered under this job).
    The bytes are read and their format sniffed here; the decoding itself, where hostile files do their harm,
    runs in ``decoder`` (the reading cage), or in this process when none is given (tests, tools). ``sieve``: a
    native notebook is read against the prints of its last answered version (only changed pages carried as
    images, up to ``max_notebook_pages`` long); other inputs ignore it. In the cage, only its known prints go
    over (the reading process makes its own sieve of them)."""
    name = path.name
    data = _read_bytes(path, limits, root=root)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise InputChangedError(
            f"{name} changed after it was queued, so this version was not answered.",
            "Nothing needs doing: the changed file is answered on its own once it has finished syncing.",
        )
    kind = _sniff(data)
    if kind is not None:
        if kind not in ("note", "zip"):
            sieve = None
        if decoder is not None:
            return decoder.decode(name, data, kind, limits, sieve)
        return decode_bytes(name, data, kind, limits, sieve)
    looks_like = _describe_unknown(data)
    if path.suffix.lower() == ".pdf":
        raise UnsupportedInputError(
            f"{name} is named .pdf but is not a PDF: it is {looks_like}.",
            "Export the page from the tablet again as PDF or PNG.",
        )
    raise UnsupportedInputError(
        f"{name} is not a PDF or an image eink-llm can read: it is {looks_like}.", EXPORT_SUPPORTED
    )


def decode_bytes(
    name: str, data: bytes, kind: Kind, limits: InputLimits, sieve: PageSieve | None = None
) -> InputDocument:
    """Decode a file's bytes of a sniffed ``kind`` in this process (the reading cage runs this inside)."""
    if kind == "pdf":
        return read_pdf(name, data, limits)
    if kind == "note":
        return read_note(name, data, limits, sieve)
    if kind == "rm":
        return read_rm(name, data, limits)
    if kind == "zip":  # a reMarkable document, or told apart from one inside the cage (a zip is hostile)
        return read_rmdoc(name, data, limits, sieve)
    return read_image(name, data, kind, limits)


def records_input(answer: Path, sha256: str, limits: InputLimits, *, root: Path | None = None) -> bool:
    """Whether ``answer``, one of our answers or error pages, records that it answers the input with this SHA-256
    (the ``/EinkLLMInput`` entry the renderer writes, plain in its Info dictionary). Only what is read like an
    input is looked at (a regular file within the size limit, reached without following a link below ``root``);
    anything else records nothing."""
    try:
        data = _read_bytes(answer, limits, root=root)
    except InputError:
        return False
    return f"/{INFO_INPUT} ({sha256})".encode("ascii") in data


def _read_bytes(path: Path, limits: InputLimits, *, root: Path | None = None) -> bytes:
    """The file's bytes, read from one descriptor opened without following links below ``root`` (default: the
    file's folder), refusing non-files and oversized files before reading them into memory."""
    name = path.name
    try:
        fd = confined.open_file(root if root is not None else path.parent, path)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # a FIFO would block the worker forever; a folder is not a page
                raise UnsupportedInputError(f"{name} is not a regular file (it is a folder or a device).", EXPORT_AGAIN)
            check_file_size(name, info.st_size, limits)
            # Bounded: a file still being written may have grown since fstat().
            data = _read_up_to(fd, limits.max_file_bytes + 1)
        finally:
            os.close(fd)
    except InputError:
        raise
    except FileNotFoundError as exc:
        raise CorruptInputError(
            f"{name} disappeared before it could be read.",
            "If you moved or deleted it on purpose, nothing needs doing; otherwise export the page again.",
            detail=str(exc),
        ) from None
    except PermissionError as exc:
        raise CorruptInputError(
            f"{name} could not be opened: eink-llm is not allowed to read it.",
            "Check that the synced folder is readable by the user eink-llm runs as, then export the page again.",
            detail=str(exc),
        ) from None
    except OSError as exc:
        if confined.is_link_error(exc) or exc.errno == errno.EXDEV:
            raise InputChangedError(
                f"{name} is now a link (or lies in a folder that is now a link), so it was not read.",
                "eink-llm reads only files inside the watched folder and never follows links there. "
                "Put the file itself into the folder if you want an answer.",
                detail=str(exc),
            ) from None
        raise CorruptInputError(f"{name} could not be read from the disk.", EXPORT_AGAIN, detail=str(exc)) from None
    if len(data) > limits.max_file_bytes:
        raise InputTooLargeError(
            f"{name} grew beyond the limit of {bytes_text(limits.max_file_bytes)} while it was being read.",
            "Let the export finish syncing; if it is really this large, export fewer pages or raise "
            "input.max_file_mb in the config.",
        )
    if not data:
        raise CorruptInputError(f"{name} is empty (0 bytes); it may not have finished syncing.", EXPORT_AGAIN)
    return data


def _read_up_to(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes from the descriptor (a read may return fewer than asked before the end)."""
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _sniff(data: bytes) -> Kind | None:
    """The format the bytes are in, from their magic numbers."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic and BigTIFF, both byte orders
        return "tiff"
    # The PDF header may follow up to 1024 bytes of junk (a byte-order mark, a mail header); PDFium accepts that.
    # Checked after the image signatures, which sit at offset 0: a PNG may mention "%PDF-" in a text chunk.
    if b"%PDF-" in data[:1024]:
        return "pdf"
    # Native notebooks (read when the optional ``notebooks`` extra is installed; an ERROR_ names it otherwise).
    if head.startswith(b"noteSN_FILE_VER_"):
        return "note"
    if data.startswith(b"reMarkable .lines file"):
        return "rm"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # a .rmdoc; any other zip is told so in the cage
        return "zip"
    return None


def _describe_unknown(data: bytes) -> str:
    """What an unreadable file seems to be, in words a tablet user recognises."""
    head = data[:64]
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF picture"
    if head[:2] == b"BM" and len(data) >= 26 and int.from_bytes(data[2:6], "little") == len(data):
        return "a BMP picture"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis"):
        return "an HEIC or AVIF photo"
    if head.startswith(b"SN_FILE_ASA_"):
        return "a notebook from the first Supernote (A6), which eink-llm cannot read"
    sample = data[:4096]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sample's end is still text.
        text = sample[: exc.start].decode("utf-8") if exc.start > len(sample) - 4 else ""
    if text and sum(ch.isprintable() or ch in "\r\n\t" for ch in text) >= 0.95 * len(text):
        lowered = text.lstrip().lower()
        if lowered.startswith(("<!doctype html", "<html")):
            return "a web page (perhaps an error page from the sync service)"
        return "a text file"
    return "in a format eink-llm does not know"
