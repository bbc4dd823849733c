"""Running the daemon: threads, signals and systemd live here and nowhere else.

The main thread owns the watcher (it calls ``tick`` when a file may settle and a few times a second, rescans now
and then and checks the observer's health) and hands settled files to the intake thread, which hashes and queues
them. Worker threads claim jobs from the SQLite queue and hand each to the :class:`~eink_llm.pipeline.Pipeline`;
a writer thread writes answers that waited for their folder. Every thread is guarded and supervised.
SIGTERM/SIGINT stop claiming, give the answers in progress a grace period, and exit 0; whatever was still
running is taken up again at the next start.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TypeVar

import structlog

from eink_llm import delivery, intake, startup
from eink_llm.atomic import remove_stale_temps
from eink_llm.backends.base import Backend
from eink_llm.config import LoadedConfig, load_config
from eink_llm.config.schema import WatchConfig
from eink_llm.errors import EinkError, MissingExtraError, StoreError
from eink_llm.oneshot import ProcessResult, close_backends, open_backends, process_files, retry_failed, retry_files
from eink_llm.pipeline import Pipeline
from eink_llm.reader.cage import Cage
from eink_llm.reader.notebook_common import notebooks_installed
from eink_llm.status_page import StatusKeeper
from eink_llm.store import Job, Store, utc_now
from eink_llm.store.ports import JobIntake, JobQueue, QueueSummary
from eink_llm.watcher import SettledFile, Watcher

log = structlog.get_logger("eink_llm.service")

TICK_SECONDS = 0.25
STATUS_SECONDS = 5.0
#: How often kept answer PDFs older than storage.keep_answer_pdfs_days are dropped (and once at start).
PRUNE_SECONDS = 6 * 3600.0
IDLE_POLL_SECONDS = 1.0
EX_WATCH_FAILED = 1

_Part = TypeVar("_Part")


def notify(message: str) -> None:
    """Send one sd_notify message to ``$NOTIFY_SOCKET`` (systemd ``Type=notify``); a no-op without it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock,
    ):
        sock.connect(address)
        sock.sendall(message.encode())


class Daemon:
    """``eink-llm run``: watch, queue, answer, until a stop signal.

    Threads: the main thread runs the watcher loop and sd_notify and never touches a file's bytes or waits on
    the database; ``intake`` hashes settled files and queues them; ``worker-N`` answer jobs; ``writer`` writes
    answers that were waiting for their folder, drops old answer copies and refreshes the status line. Each
    runs under a guard that logs and backs off on any exception, and the main loop replaces a thread that died
    anyway; WATCHDOG=1 is sent only while all of them (and the watcher) are alive.
    """

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self._stopping = threading.Event()
        self._reload = threading.Event()
        self._backends: list[Backend] = []
        self._wake = threading.Event()
        self._workers: list[threading.Thread] = []
        self._threads: dict[str, tuple[Callable[[Store], None], threading.Thread]] = {}
        self._settled: queue.SimpleQueue[SettledFile] = queue.SimpleQueue()
        self._status_text = "STATUS=starting"
        # Built by run() once the database is open (a reload swaps the pipeline and may swap the watcher);
        # the methods that use them run only from then on, and read them through _built().
        self._cage: Cage | None = None
        self._pipeline: Pipeline | None = None
        self._status: StatusKeeper | None = None
        self._watcher: Watcher | None = None
        self._watcher_config: tuple[WatchConfig, list[str]] | None = None  # what the watcher was built from

    # --- lifecycle -------------------------------------------------------------------------------------

    def run(self) -> int:
        startup.require(self.loaded, create_folders=True)
        self._prepare_folders(self.loaded)
        self._install_signals()
        store = self._open_store()
        if store is None:
            return 0  # stopped while waiting for the database
        backends = open_backends(self.config)
        self._backends.extend(backends.values())
        # One warm reading process per worker; it outlives reloads (its limits follow the config per file).
        cage = self._cage = Cage(self.config.service.workers, self.config.input.limits())
        try:
            self._pipeline = Pipeline(self.config, store, backends, decoder=cage)
            status = self._status = StatusKeeper(store, self.config, lambda: _built(self._pipeline).breakers)
            with contextlib.suppress(EinkError):  # the writer thread keeps it up to date
                self._status_text = self._status_line(store)
            watcher = self._watcher = self._new_watcher()
            for number in range(self.config.service.workers):
                self._start_thread(f"worker-{number + 1}", self._work, store)
            self._start_thread("intake", self._take_in, store)
            self._start_thread("writer", self._keep_up, store)
            watcher.start()
            log.info(
                "watching",
                folders=[str(f.path) for f in self.config.watch.folders],
                profiles=self.config.profile_names(),
                backend=self.config.llm.backend,
                model=self.config.llm.model,
                database=str(store.path),
                polling=watcher.using_polling,
            )
            notify("READY=1\n" + self._status_text)
            code = self._main_loop(store)
            self.stop()  # also when the loop ended on its own (dead watcher): workers must not claim more
            notify("STOPPING=1")
            _built(self._watcher).stop()  # the current one: a reload may have replaced it
            self._finish_workers(store)
            status.stop()  # after the workers: the page's last word is "stopped"
            return code
        finally:
            close_backends(self._backends)  # retired ones too: closing one mid-request would fail that answer
            store.close()
            cage.close()  # after the store: a job still reading now cannot record a misleading ERROR_

    def _open_store(self) -> Store | None:
        """Open the database and put back jobs a crash left running; a locked or full database is waited out
        (a damaged or unreadable one is not: exit 74 with what to do). ``None`` if stopped meanwhile."""
        failures = 0
        while not self._stopping.is_set():
            store = None
            try:
                store = Store.open(self.loaded.database_path, busy_timeout=self.config.storage.busy_timeout_seconds)
                requeued = store.requeue_running()
            except StoreError as exc:
                if store is not None:
                    store.close()
                if not exc.retryable:
                    raise
                failures += 1
                delay = min(0.5 * 2 ** (failures - 1), 30.0)
                log.warning("the database is not available yet; trying again", seconds=delay, error=str(exc))
                notify(f"STATUS=waiting for the database: {exc.what}")
                self._stopping.wait(delay)
                continue
            if requeued:
                log.info("resuming jobs interrupted by a stop or crash", jobs=requeued)
            self._retry_for_installed_extras(store)
            return store
        return None

    @staticmethod
    def _retry_for_installed_extras(store: Store) -> None:
        """Notebooks that failed for want of the ``notebooks`` extra are tried again once it is installed: their
        ERROR_ page said "install it and restart eink-llm"."""
        if not notebooks_installed():
            return
        try:
            reopened = store.reopen_failed_with(MissingExtraError.__name__)
        except StoreError as exc:  # not worth failing the start for: `eink-llm retry --failed` does the same
            log.warning("could not put back the notebooks that waited for the extra", error=str(exc))
            return
        if reopened:
            log.info("the 'notebooks' extra is installed now: reading the notebooks that waited for it", jobs=reopened)

    def reload(self) -> None:
        """Ask the main loop to re-read the config (what SIGHUP does)."""
        self._reload.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @staticmethod
    def _prepare_folders(loaded: LoadedConfig) -> None:
        """Remove temp files an interrupted write left (the start-up checks made sure the folders exist)."""
        for folder in loaded.config.watch.folders:
            if folder.path.is_dir():
                for stale in remove_stale_temps(folder.path):
                    log.info("removed a temp file left by an interrupted write", path=str(stale))

    def _install_signals(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("stopping", signal=signal.Signals(signum).name)
            self.stop()

        def on_hangup(_signum: int, _frame: FrameType | None) -> None:
            self.reload()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_hangup)

    def _new_watcher(self) -> Watcher:
        watch = self.config.watch
        reserved = [self.config.status_page.name] if self.config.status_page.enabled else []
        self._watcher_config = (watch, reserved)
        return Watcher(
            [f.path for f in watch.folders],
            on_settled=self._settled.put,  # hashed and queued by the intake thread: this loop never reads a file
            settle_seconds=watch.settle_seconds,
            polling=watch.polling,
            polling_interval=watch.polling_interval_seconds,
            reserved_names=reserved,
            settle_for=_settle_rule(watch),
        )

    def _main_loop(self, store: Store) -> int:
        rescan_every = self.config.service.rescan_seconds
        next_rescan = time.monotonic() + rescan_every
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        next_ping = 0.0
        while not self._stopping.wait(self._until_next_tick()):
            if self._reload.is_set():
                self._reload.clear()
                self._apply_reload(store)
                rescan_every = self.config.service.rescan_seconds
            watcher = _built(self._watcher)
            watcher.tick()
            now = time.monotonic()
            if rescan_every and now >= next_rescan:
                watcher.scan()
                next_rescan = now + rescan_every
            if not watcher.is_healthy():
                log.error(
                    "the folder watcher stopped (folder deleted or unmounted?); exiting so the service "
                    "manager can restart it"
                )
                return EX_WATCH_FAILED
            threads_alive = self._supervise(store)
            if now >= next_ping:
                # WATCHDOG=1 vouches for a healthy watcher and live threads; without it systemd restarts us.
                ping = "WATCHDOG=1\n" if watchdog_usec and threads_alive else ""
                notify(ping + self._status_text)
                next_ping = now + (min(watchdog_usec / 2e6, STATUS_SECONDS) if watchdog_usec else STATUS_SECONDS)
        return 0

    def _until_next_tick(self) -> float:
        """Sleep until the next file may settle (so settling adds no tick's worth of delay), at most a tick."""
        due = _built(self._watcher).next_due()
        if due is None:
            return TICK_SECONDS
        return min(TICK_SECONDS, max(due - time.monotonic() + 0.001, 0.001))

    # --- threads ---------------------------------------------------------------------------------------

    def _start_thread(self, name: str, body: Callable[[Store], None], store: Store) -> None:
        thread = threading.Thread(target=self._guarded, args=(name, body, store), name=name, daemon=True)
        self._threads[name] = (body, thread)
        if name.startswith("worker-"):
            self._workers = [t for n, (_b, t) in self._threads.items() if n.startswith("worker-")]
        thread.start()

    def _guarded(self, name: str, body: Callable[[Store], None], store: Store) -> None:
        """Run ``body`` until stopping; any exception is logged and the body runs again after a backoff
        (0.5 s doubling to 30 s), so a database that is locked or full for a while never ends a thread."""
        failures = 0
        while not self._stopping.is_set():
            try:
                body(store)
                return
            except Exception as exc:
                failures += 1
                delay = min(0.5 * 2 ** (failures - 1), 30.0)
                with contextlib.suppress(Exception):
                    if isinstance(exc, EinkError):
                        log.error("thread hit an error; backing off", thread=name, seconds=delay, error=str(exc))
                    else:
                        log.exception("thread hit an unexpected error; backing off", thread=name, seconds=delay)
                self._stopping.wait(delay)

    def _supervise(self, store: Store) -> bool:
        """Replace any thread that died (it should not: each is guarded); True if all were alive."""
        all_alive = True
        for name, (body, thread) in list(self._threads.items()):
            if thread.is_alive() or self._stopping.is_set():
                continue
            all_alive = False
            log.error("a daemon thread died; starting a new one", thread=name)
            self._start_thread(name, body, store)
        return all_alive

    def _take_in(self, store: JobIntake) -> None:
        """The intake thread: hash each settled file and queue it; retry while the database refuses."""
        while not self._stopping.is_set():
            try:
                settled = self._settled.get(timeout=IDLE_POLL_SECONDS)
            except queue.Empty:
                continue
            self._queue_file(store, settled)

    def _queue_file(self, store: JobIntake, settled: SettledFile) -> None:
        limit = self.config.input.limits().max_file_bytes
        try:
            sha = intake.content_id(settled.path, settled.size, settled.mtime_ns, limit)
        except OSError as exc:  # vanished or unreadable between settling and hashing
            log.warning("could not queue file", path=str(settled.path), error=str(exc))
            return
        failures = 0
        while True:
            try:
                job = intake.enqueue(store, self.config, settled.path, sha, settled.size, settled.mtime_ns)
                break
            except Exception as exc:  # locked or full: the file settled, so it must be queued; wait it out
                failures += 1
                if not isinstance(exc, StoreError) and failures > 5:  # a bug: do not hold up the files behind it
                    log.exception("could not queue file; it is taken up at the next start", path=str(settled.path))
                    return
                delay = min(0.5 * 2 ** (failures - 1), 30.0)
                log.warning(
                    "cannot queue a file yet; trying again", path=str(settled.path), seconds=delay, error=str(exc)
                )
                if self._stopping.wait(delay):
                    return  # not queued: the scan at the next start finds it
        if job is not None:
            log.info("queued", path=str(settled.path), job=job)
            self._wake.set()

    def _keep_up(self, store: Store) -> None:
        """The writer thread: answers waiting for their folder, old answer copies, the status line."""
        next_prune = 0.0
        while not self._stopping.is_set():
            delivery.deliver_due(store)
            if time.monotonic() >= next_prune:
                self._forget_old_answer_pdfs(store)
                next_prune = time.monotonic() + PRUNE_SECONDS
            self._status_text = self._status_line(store)
            _built(self._status).tick()  # the heartbeat, and the STATUS pages when they changed: off the main loop
            self._stopping.wait(IDLE_POLL_SECONDS)

    def _forget_old_answer_pdfs(self, store: Store) -> None:
        days = self.config.storage.keep_answer_pdfs_days
        try:
            forgotten = store.forget_answer_pdfs(utc_now() - timedelta(days=days))
        except EinkError as exc:
            log.warning("could not drop old answer copies", error=str(exc))
            return
        if forgotten:
            log.info("dropped old answer copies", count=forgotten, older_than_days=days)

    def _status_line(self, store: QueueSummary) -> str:
        counts = store.queue_counts()
        services = _built(self._pipeline).breakers.open_services()
        down = f" (AI service down, probing: {', '.join(services)})" if services else ""
        waiting = store.count_unwritten()
        unwritten = f", {waiting} answers waiting for their folder to be writable" if waiting else ""
        return f"STATUS=queue: {counts['pending']} waiting, {counts['running']} in progress{unwritten}{down}"

    def _apply_reload(self, store: Store) -> None:
        """Swap in a new config, or keep the old one and say why. Workers pick up the new pipeline for their
        next job; an answer in progress finishes with the old one."""
        notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            loaded = load_config(self.loaded.source)
            startup.require(loaded, create_folders=True)
            self._prepare_folders(loaded)
            backends = open_backends(loaded.config)
        except EinkError as exc:
            log.error("reload failed; keeping the running configuration", error=str(exc))
            notify("READY=1")
            return
        config = loaded.config
        for key, old, new in (
            ("service.workers", self.config.service.workers, config.service.workers),
            ("storage.database", self.loaded.database_path, loaded.database_path),
            (
                "storage.busy_timeout_seconds",
                self.config.storage.busy_timeout_seconds,
                config.storage.busy_timeout_seconds,
            ),
        ):
            if old != new:
                log.warning("this option takes effect at the next restart", option=key)
        self._backends.extend(backends.values())
        self.loaded, self.config = loaded, config
        cage = _built(self._cage)
        cage.renew(config.input.limits())  # fresh reading processes under the new limits
        self._pipeline = Pipeline(config, store, backends, _built(self._pipeline).breakers, decoder=cage)
        _built(self._status).configure(config)
        reserved = [config.status_page.name] if config.status_page.enabled else []
        if (config.watch, reserved) != self._watcher_config:
            _built(self._watcher).stop()
            watcher = self._watcher = self._new_watcher()
            watcher.start()
        log.info("configuration reloaded", source=str(loaded.source or "built-in defaults"))
        notify("READY=1")

    # --- workers ---------------------------------------------------------------------------------------

    def _work(self, store: JobQueue) -> None:
        while not self._stopping.is_set():
            pipeline = _built(self._pipeline)  # read per job: a reload swaps it
            if not pipeline.breakers.may_claim():  # every model is down: leave the queue alone between probes
                self._stopping.wait(IDLE_POLL_SECONDS)
                continue
            self._wake.clear()  # before claiming: a job queued from now on wakes the wait below
            job = store.claim_job()  # a store error goes to the guard, which backs off
            if job is None:
                self._wake.wait(IDLE_POLL_SECONDS)
                continue
            try:
                pipeline.run(job)
            except BaseException as exc:  # the pipeline turns failures into ERROR_ PDFs; this is the last guard
                log.exception("job crashed; will try again", job=job.job_id, path=str(job.path))
                self._put_back(pipeline, job, exc)
                if not isinstance(exc, Exception):
                    raise  # SystemExit from a plugin's sys.exit(): this thread ends, the main loop starts another

    def _put_back(self, pipeline: Pipeline, job: Job, exc: BaseException) -> None:
        """Return a job whose run raised to the queue, insisting (a job left running would wait for a
        restart). A database that is locked or full for a while does not use up one of the job's attempts; a bug
        does, so a job that always fails this way ends as an ERROR_ after retry.max_attempts."""
        refund = isinstance(exc, StoreError) and exc.retryable
        retry = self.config.retry
        delay = min(retry.initial_delay_seconds * 2 ** max(job.attempts - 1, 0), retry.max_delay_seconds)
        failures = 0
        while True:
            try:
                at = utc_now() + timedelta(seconds=delay)
                pipeline.store.retry_later(job.job_id, at=at, error=str(exc), refund_attempt=refund)
                return
            except Exception as again:
                failures += 1
                wait = min(0.5 * 2 ** (failures - 1), 30.0)
                log.warning("cannot put a job back yet; trying again", job=job.job_id, seconds=wait, error=str(again))
                if self._stopping.wait(wait):
                    return  # left running: the next start puts it back

    def _finish_workers(self, store: JobQueue) -> None:
        deadline = time.monotonic() + self.config.service.shutdown_grace_seconds
        for thread in [t for _b, t in self._threads.values()]:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._workers):
            log.warning("an answer was still in progress at shutdown; it will be redone at the next start")
            try:  # a clean stop is not the file's fault: give the attempt back (a crash does not get here)
                store.requeue_running(refund=True)
            except EinkError as exc:
                log.warning("could not put the interrupted answer back now; the next start does", error=str(exc))


__all__ = [
    "Daemon",
    "ProcessResult",
    "close_backends",
    "notify",
    "open_backends",
    "process_files",
    "retry_failed",
    "retry_files",
]


def _built(part: _Part | None) -> _Part:
    """One of the parts run() builds (the pipeline, the watcher...), in a method that runs only once it has."""
    if part is None:
        raise RuntimeError("the daemon used a part of itself before run() built it")
    return part


def _settle_rule(watch: WatchConfig) -> Callable[[Path, Path], float]:
    """Each file's settle period: its folder's (or the common one), longer for native notebooks."""
    folders = {Path(os.path.abspath(folder.path)): folder for folder in watch.folders}

    def settle(path: Path, root: Path) -> float:
        return watch.settle_seconds_for(folders.get(root), path.name)

    return settle
