"""Reading in a cage: every input is decoded in a separate, long-lived process with hard limits.

A file that passes every size check can still be a bomb: a 2 MB PDF whose 10×10 picture has a 46000×46000 soft
mask, a content stream that inflates to 1.5 GB, two million drawing operations on one page. Decoded in the
daemon, such a file takes the daemon's memory past the service's ``MemoryMax`` or holds a worker for minutes.
So the decoding (PDF pages drawn by PDFium, pictures by Pillow, the text layer) runs in a reading process
(:mod:`~eink_llm.reader.cage_child`; what it sends back is checked by :mod:`~eink_llm.reader.cage_result`),
started as ``python -m`` (never a fork of the threaded daemon), with:

* **memory**: ``RLIMIT_AS`` of ``input.max_decode_memory_mb``, set by the process on itself at start;
* **CPU time**: ``RLIMIT_CPU``, renewed before each file to ``input.max_decode_cpu_seconds`` beyond what it used;
* **wall time**: ``input.max_decode_seconds``, enforced here: past it the process is killed.

A breach ends only the reading process. The file gets an :class:`~eink_llm.errors.InputBeyondLimitsError` that
says which limit it needed more than and which option to raise, and a fresh process is started at once, warm
for the next file. The daemon only ever holds the file's bytes (bounded by ``input.max_file_mb``) and the
decoded pages, checked against the page count and size limits before they are read off the pipe.

**A small pool, one process per worker.** Processes are kept warm (started with the daemon, reused for every
file), so a page costs what it did in-process plus the copy over a pipe (a page is ~1 MB of grey pixels). The
pool holds as many processes as the daemon has workers: decoding is never serialized (in-process, PDFium's
global lock made two workers take turns; two processes each have their own PDFium), and an idle process costs
~40 MB. The ``process`` command uses a pool of one.

**Never outliving the daemon.** Each process asks for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``; the
pool starts them all from one long-lived thread, because that signal follows the starting *thread*), exits
when its request pipe ends, and :meth:`Cage.close` ends them on stop; :meth:`Cage.renew` replaces them on reload.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from eink_llm.errors import (
    CorruptInputError,
    InputBeyondLimitsError,
    InputError,
    ReaderUnavailableError,
)
from eink_llm.reader.cage_result import document, memory_error
from eink_llm.reader.cage_wire import LENGTH, MAX_HEADER_BYTES, WireError, frame, parse_header
from eink_llm.reader.files import Kind
from eink_llm.reader.limits import (
    DEFAULT_LIMITS,
    EXPORT_AGAIN,
    MAX_PRINT_BYTES,
    InputDocument,
    InputLimits,
    PageSieve,
)

log = structlog.get_logger("eink_llm.reader.cage")

#: How long a new reading process may take to import its libraries and say it is ready (not the file's time).
START_SECONDS = 60.0
#: How long a process that was asked to stop may take before it is killed.
STOP_SECONDS = 2.0
#: Pipe buffer size asked for (Linux caps it at /proc/sys/fs/pipe-max-size, 1 MB by default).
PIPE_BYTES = 1024 * 1024
#: The text layer is bounded by the reader; this only keeps a broken process from sending gigabytes.
MAX_TEXT_BYTES = 64 * 1024 * 1024


class _Broken(Exception):
    """The reading process died, overran its time, or spoke nonsense: it must be replaced."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "timeout", "died" or "garbled"


class _Child:
    """One reading process and its two pipes."""

    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        self.generation = 0
        self.ready = False
        self.usage: Any = None  # resource usage, once reaped
        self.status: int | None = None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eink_llm.reader.cage_child", str(memory_bytes), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd="/",
            env=_child_env(),
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in = self.process.stdin.fileno()
        self._out = self.process.stdout.fileno()
        self._reader = io.FileIO(self._out, "rb", closefd=False)
        os.set_blocking(self._in, False)
        for fd in (self._in, self._out):  # a page is ~1 MB: fewer, larger hops between the processes
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        """Whether it still runs. Reaped here with ``wait4`` rather than ``Popen.poll`` (which would drop the
        resource usage that tells a CPU-time breach from a memory one)."""
        if self.status is None:
            self._reap(os.WNOHANG)
        return self.status is None

    def decode(
        self, name: str, data: bytes, kind: Kind, limits: InputLimits, known: Sequence[bytes] | None
    ) -> InputDocument:
        if not self.ready:
            header, _ = self._receive(time.monotonic() + START_SECONDS, limits, startup=True)
            if header.get("ready") is not True:
                raise _Broken("garbled")
            self.ready = True
        deadline = time.monotonic() + limits.max_decode_seconds
        request: dict[str, Any] = {"name": name, "kind": kind, "limits": dataclasses.asdict(limits)}
        if known is not None:  # a notebook read against its last version: the child sieves with these prints
            request["known"] = len(known)
        self._send(frame(request, [data, *(known or ())]), deadline)
        header, blobs = self._receive(deadline, limits)
        return document(name, header, blobs, limits, len(known) if known is not None else None)

    # --- the pipes, with the deadline ------------------------------------------------------------------

    def _send(self, pieces: list[bytes | bytearray | memoryview], deadline: float) -> None:
        poller = select.poll()
        poller.register(self._in, select.POLLOUT)
        for piece in pieces:
            view = memoryview(piece)
            while view:
                self._wait(poller, deadline)
                try:
                    written = os.write(self._in, view)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, OSError):
                    raise _Broken("died") from None
                view = view[written:]

    def _receive(
        self, deadline: float, limits: InputLimits, *, startup: bool = False
    ) -> tuple[dict[str, Any], list[bytearray]]:
        poller = select.poll()
        poller.register(self._out, select.POLLIN)
        (size,) = LENGTH.unpack(self._read(poller, LENGTH.size, deadline))
        if size > MAX_HEADER_BYTES:
            raise _Broken("garbled")
        try:
            header = parse_header(self._read(poller, size, deadline))
        except WireError:
            raise _Broken("garbled") from None
        lengths: list[int] = header["blobs"]
        # Pages carried are at most max_pages; a notebook's other pages come back at most as their prints.
        prints = limits.max_notebook_pages * MAX_PRINT_BYTES
        bound = 0 if startup else MAX_TEXT_BYTES + limits.max_pages * limits.max_long_edge_px**2 + prints
        if sum(lengths) > bound:
            raise _Broken("garbled")
        return header, [self._read(poller, length, deadline) for length in lengths]

    def _read(self, poller: select.poll, size: int, deadline: float) -> bytearray:
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            self._wait(poller, deadline)
            try:
                count = self._reader.readinto(view[got:])  # what the pipe holds now, straight into place
            except OSError:
                raise _Broken("died") from None
            if not count:
                raise _Broken("died")
            got += count
        return buffer

    @staticmethod
    def _wait(poller: select.poll, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise _Broken("timeout")

    # --- ending ----------------------------------------------------------------------------------------

    def kill(self) -> None:
        """End the process now and reap it, keeping its resource usage (CPU time, peak memory)."""
        if self.status is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)  # not yet reaped (status is None): still our child's pid
        self._reap(0)

    def stop(self) -> None:
        """Close its request pipe (it exits at once when idle); kill it if it does not."""
        if self.status is not None:
            return
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        deadline = time.monotonic() + STOP_SECONDS
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.kill()

    def _reap(self, options: int) -> None:
        try:
            pid, status, usage = os.wait4(self.process.pid, options)
        except ChildProcessError:  # reaped elsewhere (cannot happen while only this class waits for it)
            pid, status, usage = self.process.pid, 0, None
        if pid == 0:  # WNOHANG: still running
            return
        self.status, self.usage = status, usage
        self.process.returncode = os.waitstatus_to_exitcode(status)
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()


class Cage:
    """A pool of ``size`` warm reading processes. Thread-safe: each :meth:`decode` takes one process for itself."""

    def __init__(self, size: int = 1, limits: InputLimits = DEFAULT_LIMITS) -> None:
        self._idle: queue.SimpleQueue[_Child | None] = queue.SimpleQueue()
        # Every process is started from this one thread, which lives as long as the pool: PR_SET_PDEATHSIG
        # fires when the starting thread ends, and a worker thread may end before the daemon does.
        self._starter = ThreadPoolExecutor(1, thread_name_prefix="cage-start")
        self._lock = threading.Lock()
        self._children: set[_Child] = set()
        self._closed = False
        self._generation = 0  # raised by renew(): older processes are replaced
        self._memory_bytes = limits.max_decode_memory_bytes
        for _ in range(size):
            self._idle.put(self._start_or_none(limits.max_decode_memory_bytes))

    def decode(
        self, name: str, data: bytes, kind: Kind, limits: InputLimits, sieve: PageSieve | None = None
    ) -> InputDocument:
        """Decode in a reading process; a breach of its limits is an :class:`InputBeyondLimitsError`. ``sieve``:
        only its known prints go over; the reading process sieves the notebook's pages with a sieve of its own."""
        child = self._idle.get()
        try:
            if (
                child is None
                or not child.alive()
                or child.memory_bytes != limits.max_decode_memory_bytes
                or child.generation != self._generation
            ):
                self._retire(child)
                child = self._start(limits.max_decode_memory_bytes)
            try:
                return child.decode(name, data, kind, limits, sieve.known if sieve is not None else None)
            except _Broken as exc:
                failed = child
                failed.kill()
                if self._closed:
                    raise ReaderUnavailableError(
                        "eink-llm was stopping while your page was being read.",
                        "Nothing needs doing: it is read again at the next start.",
                        detail=_ending(failed),
                    ) from None
                if not failed.ready:
                    raise ReaderUnavailableError(
                        "eink-llm's reading process stopped before it was ready, so your page could not be read.",
                        "Export the page again; if this keeps happening, check the daemon's log and memory.",
                        detail=_ending(failed),
                    ) from None
                raise _breach(name, exc.reason, failed, limits) from None
        finally:
            self._give_back(child)

    def renew(self, limits: InputLimits) -> None:
        """After a reload: replace every process with a fresh one under ``limits`` (idle ones now, warm for the
        next file; one still reading when it is given back)."""
        with self._lock:
            self._generation += 1
            self._memory_bytes = limits.max_decode_memory_bytes
        drained = self._take_idle()
        for child in drained:
            self._retire(child)
            self._idle.put(None if self._closed else self._start_or_none(limits.max_decode_memory_bytes))

    def _take_idle(self) -> list[_Child | None]:
        """Every idle slot, taken out of the idle queue (a slot may hold no process: ``None``)."""
        drained: list[_Child | None] = []
        while True:
            try:
                drained.append(self._idle.get_nowait())
            except queue.Empty:
                return drained

    def pids(self) -> list[int]:
        with self._lock:
            return [child.pid for child in self._children if child.alive()]

    def close(self) -> None:
        """End every reading process: idle ones are asked to stop (their pipe is closed); one still reading is
        killed, and its worker, which owns its pipes, gets a :class:`ReaderUnavailableError`, not a breach."""
        with self._lock:
            self._closed = True
            children = set(self._children)
        drained = self._take_idle()
        for _ in drained:
            self._idle.put(None)  # a late decode() starts nothing: the starter is shut down below
        idle = {child for child in drained if child is not None}
        for child in idle:
            child.stop()
        for child in children - idle:
            with contextlib.suppress(ProcessLookupError):
                if child.status is None:
                    os.kill(child.pid, signal.SIGKILL)
        self._starter.shutdown(wait=True)

    def __enter__(self) -> Cage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the pool --------------------------------------------------------------------------------------

    def _start(self, memory_bytes: int) -> _Child:
        try:
            child = self._starter.submit(_Child, memory_bytes).result()
        except (OSError, RuntimeError) as exc:  # RuntimeError: the starter was shut down (closing)
            raise ReaderUnavailableError(
                "eink-llm could not start its reading process, so your page could not be read.",
                "Export the page again; if this keeps happening, check the daemon's log and memory.",
                detail=str(exc),
            ) from None
        with self._lock:
            child.generation = self._generation
            self._children.add(child)
            if self._closed:
                child.stop()
        return child

    def _start_or_none(self, memory_bytes: int) -> _Child | None:
        try:
            return self._start(memory_bytes)
        except ReaderUnavailableError as exc:
            log.error("could not start a reading process", error=exc.detail)
            return None

    def _retire(self, child: _Child | None) -> None:
        if child is None:
            return
        child.stop()
        with self._lock:
            self._children.discard(child)

    def _give_back(self, child: _Child | None) -> None:
        """Return a process to the pool; a dead one is replaced at once, so the next file finds a warm one."""
        if child is not None and (not child.alive() or child.generation != self._generation):
            self._retire(child)
            child = None if self._closed else self._start_or_none(self._memory_bytes)
        if self._closed and child is not None:
            self._retire(child)
        self._idle.put(child)


def _child_env() -> dict[str, str]:
    """A small environment: the reading process needs our import path, never the daemon's secrets."""
    env = {
        "PATH": os.defpath,
        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
        "PYTHONSAFEPATH": "1",  # never import from the working directory
        "PYTHONDONTWRITEBYTECODE": "1",
        "LC_ALL": "C.UTF-8",
    }
    return env


def _breach(name: str, reason: str, child: _Child, limits: InputLimits) -> InputError:
    """What a dead reading process means for the file, in words (and the technical cause as the detail)."""
    detail = _ending(child)
    status = child.status
    cpu = _cpu_seconds(child)
    killed_by = os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None
    if reason == "timeout":
        return InputBeyondLimitsError(
            f"Reading {name} took longer than {limits.max_decode_seconds:g} seconds, the limit for one file, "
            "so it was stopped.",
            "Export fewer pages or simpler pages; if the file is fine, raise input.max_decode_seconds in the config.",
            detail=detail,
        )
    if killed_by == signal.SIGXCPU or cpu >= limits.max_decode_cpu_seconds:
        return InputBeyondLimitsError(
            f"{name} needs more computing time to read than the {limits.max_decode_cpu_seconds:g} seconds "
            "eink-llm allows for one file, so it was stopped.",
            "Export fewer pages or simpler pages; if the file is fine, raise input.max_decode_cpu_seconds in "
            "the config.",
            detail=detail,
        )
    if reason == "garbled":
        return CorruptInputError(
            f"{name} could not be read: it upset the reading process.", EXPORT_AGAIN, detail=detail
        )
    return memory_error(name, limits, detail=detail)


def _cpu_seconds(child: _Child) -> float:
    usage = child.usage
    return float(usage.ru_utime + usage.ru_stime) if usage is not None else 0.0


def _ending(child: _Child) -> str:
    """How the reading process ended, for the log and the ERROR_ page's details."""
    status = child.status
    if status is None:
        how = "still running"
    elif os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        how = f"killed by {signal.Signals(number).name if number in signal.valid_signals() else number}"
    else:
        how = f"exited with status {os.WEXITSTATUS(status)}"
    usage = child.usage
    if usage is None:
        return f"reading process {how}"
    return (
        f"reading process {how} after {_cpu_seconds(child):.1f} s of CPU time, "
        f"peak memory {usage.ru_maxrss / 1024:.0f} MB"
    )
