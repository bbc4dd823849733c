"""The reading process: ``python -m eink_llm.reader.cage_child MEMORY_BYTES PARENT_PID``.

Started by :mod:`eink_llm.reader.cage`, never by hand. It sets its own hard limits first (address space, no core
files, killed when the daemon dies, the OOM killer's first choice), says it is ready, then answers requests on
stdin, one at a time, until stdin ends (the daemon closed the pipe or died): a file's bytes and limits in, its
decoded pages or a typed error out (:mod:`~eink_llm.reader.cage_wire`). Before each file the CPU-time limit is
set to what has been used so far plus that file's allowance, so a file that spins gets SIGXCPU and this process
dies, not the daemon.

Nothing here trusts the file: a breach ends this process, which is what the limits are for.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import math
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from eink_llm.errors import InputError
from eink_llm.page_sieve import PrintSieve
from eink_llm.reader.cage_wire import read_message, write_message
from eink_llm.reader.files import Kind, decode_bytes
from eink_llm.reader.limits import InputDocument, InputLimits, Skipped, describe

PR_SET_PDEATHSIG = 1
KINDS: frozenset[str] = frozenset({"pdf", "png", "jpeg", "webp", "tiff", "note", "rm", "zip"})


def main(argv: list[str]) -> int:
    memory_bytes, parent = int(argv[0]), int(argv[1])
    _die_with_parent(parent)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not write a core file of up to the limit
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    _first_to_go()
    requests = sys.stdin.buffer
    # The results go out on a private copy of stdout; fd 1 itself points at stderr from now on, so a library
    # that prints can never corrupt a message.
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    write_message(results, {"ready": True, "pid": os.getpid()})
    while True:
        message = read_message(requests)
        if message is None:  # the daemon closed the pipe, or died: nothing more to do
            return 0
        header, blobs = message
        _allow_cpu(float(header["limits"]["max_decode_cpu_seconds"]))
        reply, pages = _decode(header, blobs[0], blobs[1:])
        write_message(results, reply, pages)


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the daemon's thread that started us ends (Linux), and give up if it is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


def _first_to_go() -> None:
    """If the whole service runs short of memory (its unit's ``MemoryMax``), the kernel's OOM killer must pick
    this process, never the daemon: the most a process may ask for itself without privileges."""
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("1000")


def _allow_cpu(seconds: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    soft = math.ceil(used + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _decode(header: dict[str, Any], data: bytes, known: list[bytes]) -> tuple[dict[str, Any], list[bytes | bytearray]]:
    name = str(header["name"])
    kind = str(header["kind"])
    if kind not in KINDS:
        return {"ok": False, "error": "CorruptInputError", "what": f"{name}: unknown format {kind!r}"}, []
    limits = InputLimits(**header["limits"])
    # A notebook read against its last version's prints: its pages sieved here, one at a time (page_sieve.py).
    sieve = PrintSieve(known, limits.max_pages) if "known" in header else None
    try:
        document = decode_bytes(name, data, _kind(kind), limits, sieve)
    except InputError as exc:
        # The readers turn a MemoryError into an InputError ("raise ... from None" keeps it as the context).
        memory = isinstance(exc.__context__, MemoryError)
        return _error(type(exc).__name__, exc.what, exc.todo, exc.detail, memory=memory), []
    except MemoryError as exc:
        return _error("InputTooLargeError", name, "", repr(exc), memory=True), []
    except Exception as exc:  # anything else is still this file's doing
        return _error("CorruptInputError", f"{name} could not be read.", "", describe(exc)), []
    return _result(document)


def _kind(kind: str) -> Kind:
    assert kind in KINDS
    return kind  # type: ignore[return-value]


def _error(error: str, what: str, todo: str, detail: str | None, *, memory: bool = False) -> dict[str, Any]:
    return {"ok": False, "error": error, "what": what, "todo": todo, "detail": detail, "memory": memory}


def _result(document: InputDocument) -> tuple[dict[str, Any], list[bytes | bytearray]]:
    pages = [image if image.mode == "L" else image.convert("L") for image in document.images]
    origin = document.origin
    header: dict[str, Any] = {
        "ok": True,
        "kind": document.kind,
        "page_count": document.page_count,
        "sizes": [[page.width, page.height] for page in pages],
        "origin": None
        if origin is None
        else {
            "conversation_id": origin.conversation_id,
            "exchange": origin.exchange,
            "source": origin.source,
            "unchanged": origin.unchanged,
        },
        "status_page": document.status_page,
        "text_cut": None if document.text_cut is None else dataclasses.asdict(document.text_cut),
    }
    prints: list[bytes | bytearray] = []
    if document.skipped:  # per page: carried (None), the known print it equals, or its own print (after the pages)
        header["skipped"] = [_skipped(entry) for entry in document.skipped]
        prints = [entry.print for entry in document.skipped if entry is not None and entry.known is None]
    return header, [document.text.encode("utf-8", errors="replace"), *(_pixels(page) for page in pages), *prints]


def _skipped(entry: Skipped | None) -> int | str | None:
    """A page of a sieved notebook on the wire: carried (``None``), the known print it equals, or a print sent."""
    if entry is None or entry.known is not None:
        return None if entry is None else entry.known
    return "blank" if entry.blank else "print"


def _pixels(page: Image.Image) -> bytearray:
    """The page's grey pixels, row by row. Pasted into an image that shares a bytearray's memory: a plain copy,
    ten times faster than ``tobytes()``, which runs the raw encoder in small chunks."""
    buffer = bytearray(page.width * page.height)
    target = Image.frombuffer("L", page.size, buffer, "raw", "L", 0, 1)
    target.readonly = False  # write through to ``buffer`` (Pillow would otherwise copy on the first paste)
    target.paste(page, (0, 0))
    return buffer


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
