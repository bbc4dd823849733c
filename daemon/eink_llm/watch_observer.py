"""The watchdog observer the watcher listens through: which kind, starting it, checking it, stopping it.

inotify (watchdog's native observer) unless polling is asked for; ``polling="auto"`` polls when a root is on a
network filesystem (:mod:`eink_llm.watch_mounts`), where inotify does not see remote changes, and when inotify's
watch or instance limit is reached. What the events mean is the watcher's business (:mod:`eink_llm.watcher`):
this module only schedules its handler.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from watchdog.events import FileSystemEventHandler
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from eink_llm.watch_mounts import MountTable, filesystem_type, is_network_fs

__all__ = ["WatchedRoot", "observer_alive", "start_observer", "stop_observer"]

_log = structlog.get_logger("eink_llm.watcher")  # the watcher's lines: one logger name for all of them

_INOTIFY_LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE})
_JOIN_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class WatchedRoot:
    path: Path  # absolute, as configured (may contain symlinks)
    real: Path  # resolved at start(): what is watched, and what every file must resolve under


def start_observer(
    roots: Sequence[WatchedRoot],
    handler: FileSystemEventHandler,
    *,
    polling: bool | Literal["auto"],
    polling_interval: float,
    mounts: Callable[[], MountTable | None],
    native_observer: Callable[[], BaseObserver],
) -> tuple[BaseObserver, bool]:
    """One started observer sending every root's events (recursively) to ``handler``, and whether it polls.

    With ``polling=False`` any :class:`OSError` from inotify (watch or instance limit) propagates; with
    ``"auto"`` those limits fall back to polling. An observer that fails to start is stopped: no thread is left.
    """
    use_polling = polling is True
    if polling == "auto":
        use_polling = _auto_wants_polling(roots, mounts, polling_interval)
    if not use_polling:
        try:
            return _schedule_and_start(native_observer(), roots, handler), False
        except OSError as exc:
            if polling != "auto" or exc.errno not in _INOTIFY_LIMIT_ERRNOS:
                raise
            _log.warning(
                "cannot use inotify (the inotify watch/instance limit is reached), falling back to "
                "polling the watched folders, which is slower and costs more CPU; to fix it raise the "
                "limit (sysctl fs.inotify.max_user_watches=524288 and fs.inotify.max_user_instances=512, "
                "persisted in /etc/sysctl.d/) or set watch.polling: true to silence this warning",
                error=str(exc),
                interval_seconds=polling_interval,
            )
    return _schedule_and_start(PollingObserver(timeout=polling_interval), roots, handler), True


def observer_alive(observer: BaseObserver) -> bool:
    """True while events can still arrive: the observer and every emitter thread alive.

    watchdog's observer thread stays alive when an emitter gives up (inotify emitter when its root is
    deleted, polling emitter when the root vanishes), so the emitters are checked one by one.
    """
    if not observer.is_alive():
        return False
    emitters = list(observer.emitters)
    if not emitters or not all(emitter.is_alive() for emitter in emitters):
        return False
    reader = getattr(observer, "_inotify_fd", None)  # watchdog >= 6: one reader thread per inotify observer
    return not (isinstance(reader, threading.Thread) and not reader.is_alive())


def stop_observer(observer: BaseObserver) -> None:
    """Stop ``observer`` and wait (bounded) for its threads; never raises for an observer that never started."""
    try:
        observer.stop()
    except Exception:
        _log.exception("error while stopping the folder observer")
    try:
        observer.join(_JOIN_TIMEOUT)
    except RuntimeError:
        return  # never started
    if observer.is_alive():
        _log.warning("the folder observer did not stop in time", timeout_seconds=_JOIN_TIMEOUT)


def _schedule_and_start(
    observer: BaseObserver, roots: Sequence[WatchedRoot], handler: FileSystemEventHandler
) -> BaseObserver:
    """Schedule every root on ``observer`` and start it; on failure stop it so no thread is left behind."""
    try:
        scheduled: list[Path] = []
        for root in sorted(roots, key=lambda r: len(r.real.parts)):
            if any(root.real.is_relative_to(parent) for parent in scheduled):
                continue  # a nested root is already covered by its parent's recursive watch
            # The resolved path is watched: inotify is told not to follow symlinks, so a symlinked root
            # would otherwise watch the link itself and miss every file directly inside it.
            observer.schedule(handler, str(root.real), recursive=True)
            scheduled.append(root.real)
        observer.start()
    except BaseException:
        stop_observer(observer)
        raise
    return observer


def _auto_wants_polling(
    roots: Sequence[WatchedRoot], mounts: Callable[[], MountTable | None], polling_interval: float
) -> bool:
    table = mounts()
    if table is None:
        return False
    for root in roots:
        fstype = filesystem_type(str(root.real), table)
        if fstype is not None and is_network_fs(fstype):
            _log.info(
                "a watched folder is on a network filesystem where inotify does not see remote changes; "
                "polling all watched folders",
                folder=str(root.path),
                filesystem=fstype,
                interval_seconds=polling_interval,
            )
            return True
    return False
