"""Noticing new files in the synced folders, and deciding when a file is complete.

This module owns every filesystem event and knows nothing about the queue: the service calls :meth:`Watcher.tick`
from its main loop, and each file that has *settled* (size and modification time unchanged for
``settle_seconds``, still a regular file inside its root) is handed to the ``on_settled`` callback.

Why it is built this way (see the reference notes on sync clients and watchdog):

* Sync clients write under a temporary name and rename into place (Syncthing ``.syncthing.NAME.tmp``, rclone
  ``NAME.xxxx.partial``, browsers ``.part``/``.crdownload``), so a *move* is the normal way a file arrives, temp
  and system names are never candidates, and a file is only taken once it stopped changing. Event timing alone
  proves nothing (Syncthing even sets the remote mtime), so settling is decided by repeated ``lstat`` calls.
* An exception in a watchdog handler kills watchdog's dispatch thread and every later event is lost, so the
  handler only records paths (under a lock) and swallows and logs every error. All real work (stat, walking a
  folder that was moved in, calling back) happens in :meth:`Watcher.tick`, in the caller's thread.
* inotify silently loses events (queue overflow, watch limit hit deep in a tree) and does not fire at all on
  network filesystems; so :meth:`Watcher.start` scans once, the service calls :meth:`Watcher.scan` periodically,
  ``polling="auto"`` picks polling for network mounts and when the inotify limits are hit, and
  :meth:`Watcher.is_healthy` notices emitters that died (root deleted or unmounted) while the observer thread
  still looks alive.

Which names can be questions is decided in :mod:`eink_llm.watch_names`; which observer listens (inotify or
polling), and whether it is still alive, in :mod:`eink_llm.watch_observer` (which filesystems need polling in
:mod:`eink_llm.watch_mounts`). ``is_candidate`` and ``CANDIDATE_SUFFIXES`` are re-exported here.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from eink_llm.watch_mounts import NETWORK_FILESYSTEMS, MountTable, read_mounts
from eink_llm.watch_names import CANDIDATE_SUFFIXES, is_candidate, is_candidate_name, is_ignored_dir_name
from eink_llm.watch_observer import WatchedRoot, observer_alive, start_observer, stop_observer

__all__ = [
    "CANDIDATE_SUFFIXES",
    "NETWORK_FILESYSTEMS",
    "SettledFile",
    "Watcher",
    "is_candidate",
]

_log = structlog.get_logger(__name__)


#: What a file looks like to ``stat``: size, mtime, inode and ctime (ns). The ctime is there because a sync client
#: may write new content of the same size and then set the old mtime back (``utime``): the kernel moves the ctime
#: on every write, rename into place and ``utime``, and nothing can set it back. (A ``chmod`` moves it too: that
#: file is reported again and its queue identity, the content's SHA-256, finds it known.)
Signature = tuple[int, int, int, int]


def signature(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class SettledFile:
    """A file that stopped changing: what the service puts into the queue."""

    path: Path  # absolute, spelled under ``root`` as it was given to the Watcher
    root: Path  # the watched root it belongs to (the deepest one, if roots are nested)
    size: int
    mtime_ns: int


@dataclass(slots=True)
class _Pending:
    """A path that an event or a scan noted and that has not settled yet."""

    root: Path
    first_noted: float
    last_noted: float  # last event for this path: settling also needs this much quiet
    key: Signature | None = None  # what the file looked like at the last stat (:func:`signature`)
    stable_since: float = 0.0  # since when ``key`` is known to hold: the event that explains it, else its stat
    stat_at: float = 0.0  # when the last stat was taken


class _Handler(FileSystemEventHandler):
    """Forwards watchdog events to the watcher, and never lets an exception escape into watchdog."""

    def __init__(self, watcher: Watcher) -> None:
        super().__init__()
        self._watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._watcher._on_event(event)
        except Exception:
            with contextlib.suppress(Exception):  # logging must not kill the dispatch thread either
                _log.exception("ignoring a filesystem event that could not be handled", fs_event=_safe_repr(event))


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


class Watcher:
    """Watches one or more root folders recursively and reports each file once it has settled.

    Only watchdog's own threads run; the event handler records paths and returns. Everything else happens in
    the thread that calls :meth:`tick` / :meth:`scan`, so ``on_settled`` runs there too, and an exception it
    raises propagates out of :meth:`tick` (the file is not marked as reported, so the next :meth:`scan` picks it
    up again; files that settled in the same tick stay pending for the next tick).

    The watcher can be started again after :meth:`stop` (for instance to rebuild a dead observer); what it
    remembers about pending and reported files is kept.

    ``clock``, ``mounts`` and ``native_observer`` are what the watcher takes from the system (the monotonic
    clock, the mount table in /proc, watchdog's inotify observer); tests hand in their own.
    """

    def __init__(
        self,
        roots: Sequence[Path],
        *,
        on_settled: Callable[[SettledFile], None],
        settle_seconds: float = 2.0,
        polling: bool | Literal["auto"] = "auto",
        polling_interval: float = 5.0,
        reserved_names: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
        settle_for: Callable[[Path, Path], float] | None = None,
        mounts: Callable[[], MountTable | None] = read_mounts,
        native_observer: Callable[[], BaseObserver] = Observer,
    ) -> None:
        if not roots:
            raise ValueError("Watcher needs at least one root folder")
        if polling not in (True, False, "auto"):
            raise ValueError(f"polling must be True, False or 'auto', not {polling!r}")
        if settle_seconds < 0:
            raise ValueError(f"settle_seconds must be >= 0, not {settle_seconds!r}")
        if polling_interval <= 0:
            raise ValueError(f"polling_interval must be > 0, not {polling_interval!r}")
        unique: dict[Path, None] = {}
        for root in roots:
            unique[Path(os.path.abspath(root))] = None
        self._root_paths = list(unique)
        self._on_settled = on_settled
        self._settle = float(settle_seconds)
        #: A path's own settle period from (its path, its root), e.g. longer for notebooks or per folder.
        self._settle_for = settle_for
        self._polling = polling
        self._polling_interval = float(polling_interval)
        self._clock = clock
        #: This system's mount table for ``polling="auto"`` (None: no table, so no network mount is detected).
        self._mounts = mounts
        #: The platform's event-driven observer (inotify on Linux), used unless polling.
        self._native_observer = native_observer
        #: Our own files directly in a root (the status page): never reported.
        self._reserved = frozenset(name.casefold() for name in reserved_names)

        self._lock = threading.Lock()
        self._pending: dict[Path, _Pending] = {}
        self._reported: dict[Path, Signature] = {}  # path -> its signature when last reported; present files only
        self._dirs_to_scan: dict[Path, Path] = {}  # folder that appeared -> its root; walked by the next tick()
        # Resolved now so scan()/tick() work before start(); start() resolves again (the root may be a mount point).
        self._roots = self._resolve_roots()
        self._observer: BaseObserver | None = None
        self._using_polling = polling is True

    # --- public API ----------------------------------------------------------------------------------

    @property
    def using_polling(self) -> bool:
        """Whether the running (or last started) observer polls instead of using inotify."""
        return self._using_polling

    def start(self) -> None:
        """Start one observer watching every root recursively, then scan every root once.

        Raises :class:`FileNotFoundError` (or :class:`NotADirectoryError`) naming a root that is missing; the
        folder is not created here, the service decides that. With ``polling=False`` any :class:`OSError` from
        inotify (watch or instance limit) propagates; with ``"auto"`` those limits fall back to polling.
        """
        if self._observer is not None:
            raise RuntimeError("the watcher is already started")
        for root in self._root_paths:
            if not root.exists():
                raise FileNotFoundError(errno.ENOENT, f"The watched folder {root} does not exist", str(root))
            if not root.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"The watched folder {root} is not a folder", str(root))
        roots = self._resolve_roots()
        with self._lock:
            self._roots = roots
        self._observer, self._using_polling = start_observer(
            roots,
            _Handler(self),
            polling=self._polling,
            polling_interval=self._polling_interval,
            mounts=self._mounts,
            native_observer=self._native_observer,
        )
        self.scan()

    def stop(self) -> None:
        """Stop the observer and wait (bounded) for its threads. Safe to call any number of times."""
        observer, self._observer = self._observer, None
        if observer is None:
            return
        stop_observer(observer)

    def scan(self) -> None:
        """Walk every root (never following symlinks) and note every candidate file.

        Catches files that arrived while the daemon was down and events that inotify dropped. A file whose size
        and mtime equal what was last reported for it is skipped; reported paths that no longer exist are
        forgotten, which keeps that memory bounded by the files actually present.
        """
        for root in self._roots_snapshot():
            if not os.path.isdir(root.path):
                _log.warning("a watched folder is missing, not scanning it", folder=str(root.path))
                continue
            seen, complete = self._walk(root.path, root.path)
            if complete:
                with self._lock:
                    gone = [p for p in self._reported if p not in seen and self._root_of_path(p) == root.path]
                    for path in gone:
                        del self._reported[path]

    def tick(self) -> list[SettledFile]:
        """Stat the noted files; report, remove and return those that settled.

        A file settles when no event arrived for it for ``settle_seconds`` and its (size, mtime_ns, inode) has
        not changed since the last event (or, for a change no event explains, for ``settle_seconds`` of stats).
        It must still be a regular file (not a symlink) whose resolved path lies under the resolved root.
        Vanished files are dropped silently. A file that changes later is noted again by its event (or the
        next scan) and reported again.
        """
        with self._lock:
            dirs, self._dirs_to_scan = self._dirs_to_scan, {}
        for folder, root in dirs.items():
            self._walk(folder, root)

        now = self._clock()
        with self._lock:
            items = list(self._pending.items())
        settled: list[tuple[Path, _Pending, SettledFile, Signature]] = []
        for path, entry in items:
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                self._forget_if_current(path, entry, reported_too=True)
                continue
            except OSError as exc:  # permissions, I/O error on a flaky mount: try again next tick
                _log.debug("cannot stat a noted file yet", path=str(path), error=str(exc))
                with self._lock:
                    entry.stat_at = now
                continue
            if not stat.S_ISREG(st.st_mode):
                _log.debug("ignoring a path that is not a regular file", path=str(path))
                self._forget_if_current(path, entry, reported_too=False)
                continue
            key = signature(st)
            with self._lock:
                if self._pending.get(path) is not entry:
                    continue  # deleted or replaced meanwhile
                if entry.key != key:
                    # New or changed. An event noted since the previous stat explains the change: the file has
                    # looked like this since that event (its last write), so the settle period starts there, not
                    # at this tick. A change no event explains (a lost event) starts it now.
                    explained = entry.last_noted >= entry.stat_at
                    entry.key, entry.stable_since = key, entry.last_noted if explained else now
                entry.stat_at = now
                settle = self._settle_of(path, entry.root)
                if now - entry.stable_since < settle or now - entry.last_noted < settle:
                    continue
                del self._pending[path]
                if self._reported.get(path) == key:
                    continue  # noted again (duplicate event, scan) but unchanged since we reported it
            if not self._resolves_inside(path, entry.root):
                _log.warning("ignoring a file that resolves outside its watched folder", path=str(path))
                continue
            _log.debug("file settled", path=str(path), waited_seconds=round(now - entry.first_noted, 3))
            settled.append((path, entry, SettledFile(path, entry.root, st.st_size, st.st_mtime_ns), key))

        reported: list[SettledFile] = []
        for index, (path, _entry, item, key) in enumerate(settled):
            try:
                self._on_settled(item)
            except BaseException:
                # Not marked as reported: the next scan notes it again. The others go back to pending.
                with self._lock:
                    for other_path, other_entry, _item, _key in settled[index + 1 :]:
                        self._pending.setdefault(other_path, other_entry)
                raise
            with self._lock:
                self._reported[path] = key
            reported.append(item)
        return reported

    def next_due(self) -> float | None:
        """The earliest clock time at which a noted file may settle (``None`` if none will by time alone): the
        caller ticks then, so settling adds no tick's worth of delay. Folders waiting to be walked are due now.
        A file a tick already looked at after it was due (its stat failed) is not due again: no busy loop."""
        with self._lock:
            if self._dirs_to_scan:
                return self._clock()
            dues = []
            for path, entry in self._pending.items():
                due = max(entry.stable_since if entry.key is not None else entry.last_noted, entry.last_noted)
                due += self._settle_of(path, entry.root)
                if entry.stat_at < due:  # else a tick already looked at it since it was due
                    dues.append(due)
            return min(dues, default=None)

    def _settle_of(self, path: Path, root: Path) -> float:
        if self._settle_for is None:
            return self._settle
        try:
            return max(0.0, float(self._settle_for(path, root)))
        except Exception:  # a rule that fails must not stop the watcher: the common period then
            _log.exception("could not tell a file's settle period", path=str(path))
            return self._settle

    def is_healthy(self) -> bool:
        """True while events can still arrive: the observer and all its threads alive (see
        :func:`~eink_llm.watch_observer.observer_alive`), every root a folder."""
        observer = self._observer
        if observer is None or not observer_alive(observer):
            return False
        return all(os.path.isdir(root) for root in self._root_paths)

    # --- event handling (watchdog's dispatch thread) -------------------------------------------------

    def _on_event(self, event: FileSystemEvent) -> None:
        """Record what an event means for us; called by :class:`_Handler`, must stay cheap."""
        kind = event.event_type
        if kind not in ("created", "modified", "moved", "closed", "deleted"):
            return  # opened, closed_no_write, attrib: content unchanged (an mtime-only change settles via stat)
        src = os.fsdecode(event.src_path) if event.src_path else ""
        dest = os.fsdecode(event.dest_path) if kind == "moved" and event.dest_path else ""
        now = self._clock()
        with self._lock:
            if event.is_directory:
                if kind in ("deleted", "moved") and src:
                    self._forget_tree_locked(src)
                target = dest if kind == "moved" else src if kind == "created" else ""
                if target:
                    located = self._locate_locked(target)
                    if located is not None and located[0] != located[1] and self._dir_is_watched(*located):
                        self._dirs_to_scan[located[0]] = located[1]
                return
            if kind in ("deleted", "moved") and src:
                located = self._locate_locked(src)
                if located is not None:
                    self._pending.pop(located[0], None)
                    self._reported.pop(located[0], None)
            target = dest if kind == "moved" else "" if kind == "deleted" else src
            if target:
                located = self._locate_locked(target)
                if located is not None and is_candidate(*located, self._reserved):
                    self._note_locked(located[0], located[1], now)

    # --- internals -----------------------------------------------------------------------------------

    def _resolve_roots(self) -> list[WatchedRoot]:
        roots = [WatchedRoot(path, Path(os.path.realpath(path))) for path in self._root_paths]
        # Deepest first, so a file in nested roots belongs to the innermost one.
        return sorted(roots, key=lambda r: len(r.real.parts), reverse=True)

    def _roots_snapshot(self) -> list[WatchedRoot]:
        with self._lock:
            return list(self._roots)

    def _locate_locked(self, event_path: str) -> tuple[Path, Path] | None:
        """Map a path from an event (spelled under a resolved root) to (path under the configured root, root)."""
        path = Path(event_path)
        for root in self._roots:
            if path.is_relative_to(root.real):
                return root.path.joinpath(path.relative_to(root.real)), root.path
        for root in self._roots:  # paths spelled the configured way (direct calls, scans)
            if path.is_relative_to(root.path):
                return path, root.path
        return None

    def _root_of_path(self, path: Path) -> Path | None:
        for root in self._roots:
            if path.is_relative_to(root.path):
                return root.path
        return None

    @staticmethod
    def _dir_is_watched(folder: Path, root: Path) -> bool:
        try:
            parts = folder.relative_to(root).parts
        except ValueError:
            return False
        return not any(is_ignored_dir_name(part) for part in parts)

    def _note_locked(self, path: Path, root: Path, now: float) -> None:
        entry = self._pending.get(path)
        if entry is None:
            self._pending[path] = _Pending(root=root, first_noted=now, last_noted=now)
        else:
            entry.last_noted = now

    def _forget_tree_locked(self, folder: str) -> None:
        located = self._locate_locked(folder)
        if located is None:
            return
        top = located[0]
        for mapping in (self._pending, self._reported):
            for path in [p for p in mapping if p.is_relative_to(top)]:
                del mapping[path]

    def _forget_if_current(self, path: Path, entry: _Pending, *, reported_too: bool) -> None:
        with self._lock:
            if self._pending.get(path) is entry:
                del self._pending[path]
                if reported_too:
                    self._reported.pop(path, None)

    def _resolves_inside(self, path: Path, root: Path) -> bool:
        real_root = next((r.real for r in self._roots_snapshot() if r.path == root), None)
        if real_root is None:
            return False
        return Path(os.path.realpath(path)).is_relative_to(real_root)

    def _walk(self, top: Path, root: Path) -> tuple[set[Path], bool]:
        """Note every candidate below ``top`` (in ``root``); return the candidates seen and whether all was read."""
        seen: set[Path] = set()
        complete = True
        other_roots = {r.path for r in self._roots_snapshot()} - {root}  # nested roots are walked on their own
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as iterator:
                    entries = list(iterator)
            except FileNotFoundError:
                complete = complete and folder != top
                continue  # removed while we walked
            except OSError as exc:
                _log.warning("cannot read a folder while scanning", folder=str(folder), error=str(exc))
                complete = False
                continue
            found: list[tuple[Path, Signature]] = []
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        child = Path(entry.path)
                        if not is_ignored_dir_name(entry.name) and child not in other_roots:
                            stack.append(child)
                    elif (
                        entry.is_file(follow_symlinks=False)
                        and is_candidate_name(entry.name)
                        and not (folder == root and entry.name.casefold() in self._reserved)
                    ):
                        st = entry.stat(follow_symlinks=False)
                        found.append((Path(entry.path), signature(st)))
                except OSError:
                    continue  # vanished between listing and stat
            if found:
                self._note_found(found, root)
            seen.update(path for path, _key in found)
        return seen, complete

    def _note_found(self, found: Iterable[tuple[Path, Signature]], root: Path) -> None:
        """Note files a scan found, unless unchanged since reported; a scan is not an event, so the settle
        timer of a file that is already pending is left alone."""
        now = self._clock()
        with self._lock:
            for path, key in found:
                if path in self._pending or self._reported.get(path) == key:
                    continue
                self._pending[path] = _Pending(root=root, first_noted=now, last_noted=now)
