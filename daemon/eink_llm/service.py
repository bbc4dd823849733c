"""Running the daemon: threads, signals and systemd live here and nowhere else.

The main thread owns the watcher (it calls ``tick`` a few times a second, rescans now and then and checks the
observer's health) and turns settled files into queue rows. Worker threads claim jobs from the SQLite queue and
hand each to the :class:`~eink_llm.pipeline.Pipeline`. SIGTERM/SIGINT stop claiming, give the answers in
progress a grace period, and exit 0; whatever was still running is taken up again at the next start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

import structlog

from eink_llm import naming, startup
from eink_llm.atomic import remove_stale_temps
from eink_llm.backends import create_backend
from eink_llm.backends.base import Backend
from eink_llm.config import Config, LoadedConfig, load_config
from eink_llm.errors import EinkError, InputError
from eink_llm.logsetup import register_secrets
from eink_llm.pipeline import Outcome, Pipeline
from eink_llm.reader import sha256_file
from eink_llm.reader.cage import Cage
from eink_llm.retry import Breakers
from eink_llm.status_page import StatusKeeper
from eink_llm.store import Store, utc_now
from eink_llm.watcher import SettledFile, Watcher

log = structlog.get_logger("eink_llm.service")

TICK_SECONDS = 0.25
STATUS_SECONDS = 5.0
#: How often kept answer PDFs older than storage.keep_answer_pdfs_days are dropped (and once at start).
PRUNE_SECONDS = 6 * 3600.0
IDLE_POLL_SECONDS = 1.0
EX_WATCH_FAILED = 1


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


def open_backends(config: Config) -> dict[str, Backend]:
    """One backend per profile (the pipeline picks by folder). Close them with :func:`close_backends`."""
    backends: dict[str, Backend] = {}
    try:
        for name in config.profile_names():
            settings = config.profile(name).llm.backend_settings()
            register_secrets([settings.api_key])
            backends[name] = create_backend(settings)
    except BaseException:
        close_backends(backends.values())
        raise
    return backends


def close_backends(backends: Iterable[Backend]) -> None:
    for backend in backends:
        with contextlib.suppress(Exception):
            backend.close()


def _root_for(config: Config, path: Path) -> tuple[Path, str | None]:
    """The watched folder ``path`` lies in and its user, or the file's own folder (``process`` elsewhere)."""
    folder = config.folder_for(path)
    return (folder.path, folder.user) if folder else (path.parent, None)


def _enqueue(store: Store, config: Config, path: Path, sha256: str, size: int, mtime_ns: int) -> int | None:
    """Queue a settled file. Jobs with the same order key run one at a time, in order: those naming the same
    conversation, those in the same folder-mode folder, and versions of the same file."""
    root, user = _root_for(config, path)
    hint = naming.find_conversation_id(path.name)
    folder = config.conversation_folder(path)
    order_key = f"conv:{hint}" if hint else f"folder:{folder}" if folder else f"path:{path}"
    return store.enqueue(
        path,
        root=root,
        sha256=sha256,
        size=size,
        mtime_ns=mtime_ns,
        user_id=user,
        conversation_hint=hint,
        order_key=order_key,
    )


class Daemon:
    """``eink-llm run``: watch, queue, answer, until a stop signal."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self._stopping = threading.Event()
        self._reload = threading.Event()
        self._backends: list[Backend] = []
        self._wake = threading.Event()
        self._workers: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------------------------

    def run(self) -> int:
        startup.require(self.loaded, create_folders=True)
        self._prepare_folders(self.loaded)
        store = Store.open(self.loaded.database_path)
        backends = open_backends(self.config)
        self._backends.extend(backends.values())
        # One warm reading process per worker; it outlives reloads (its limits follow the config per file).
        self._cage = Cage(self.config.service.workers, self.config.input.limits())
        try:
            requeued = store.requeue_running()
            if requeued:
                log.info("resuming jobs interrupted by a stop or crash", jobs=requeued)
            self._pipeline = Pipeline(self.config, store, backends, decoder=self._cage)
            self._status = StatusKeeper(store, self.config, lambda: self._pipeline.breakers)
            self._watcher = self._new_watcher(store)
            self._install_signals()
            for number in range(self.config.service.workers):
                thread = threading.Thread(target=self._work, name=f"worker-{number + 1}", daemon=True)
                thread.start()
                self._workers.append(thread)
            self._watcher.start()
            log.info(
                "watching",
                folders=[str(f.path) for f in self.config.watch.folders],
                profiles=self.config.profile_names(),
                backend=self.config.llm.backend,
                model=self.config.llm.model,
                database=str(store.path),
                polling=self._watcher.using_polling,
            )
            notify("READY=1\n" + self._status_line(store))
            code = self._main_loop(store)
            self.stop()  # also when the loop ended on its own (dead watcher): workers must not claim more
            notify("STOPPING=1")
            self._watcher.stop()
            self._finish_workers()
            self._status.stop()  # after the workers: the page's last word is "stopped"
            return code
        finally:
            close_backends(self._backends)  # retired ones too: closing one mid-request would fail that answer
            store.close()
            self._cage.close()  # after the store: a job still reading now cannot record a misleading ERROR_

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

    def _new_watcher(self, store: Store) -> Watcher:
        watch = self.config.watch
        reserved = [self.config.status_page.name] if self.config.status_page.enabled else []
        self._watcher_config = (watch, reserved)

        def on_settled(settled: SettledFile) -> None:
            try:
                sha = sha256_file(settled.path)
                job = _enqueue(store, self.config, settled.path, sha, settled.size, settled.mtime_ns)
            except (OSError, InputError) as exc:  # vanished or unreadable between settling and hashing
                log.warning("could not queue file", path=str(settled.path), error=str(exc))
                return
            if job is not None:
                log.info("queued", path=str(settled.path), job=job)
                self._wake.set()

        return Watcher(
            [f.path for f in watch.folders],
            on_settled=on_settled,
            settle_seconds=watch.settle_seconds,
            polling=watch.polling,
            polling_interval=watch.polling_interval_seconds,
            reserved_names=reserved,
        )

    def _main_loop(self, store: Store) -> int:
        rescan_every = self.config.service.rescan_seconds
        next_rescan = time.monotonic() + rescan_every
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        next_ping = 0.0
        next_prune = 0.0
        while not self._stopping.wait(TICK_SECONDS):
            if self._reload.is_set():
                self._reload.clear()
                self._apply_reload(store)
                rescan_every = self.config.service.rescan_seconds
            watcher = self._watcher
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
            self._status.tick()  # the heartbeat, and the STATUS pages when they changed
            if now >= next_prune:
                self._forget_old_answer_pdfs(store)
                next_prune = now + PRUNE_SECONDS
            if now >= next_ping:  # only reached while the watcher is healthy: that is what WATCHDOG=1 vouches for
                notify(("WATCHDOG=1\n" if watchdog_usec else "") + self._status_line(store))
                next_ping = now + (min(watchdog_usec / 2e6, STATUS_SECONDS) if watchdog_usec else STATUS_SECONDS)
        return 0

    def _forget_old_answer_pdfs(self, store: Store) -> None:
        days = self.config.storage.keep_answer_pdfs_days
        try:
            forgotten = store.forget_answer_pdfs(utc_now() - timedelta(days=days))
        except EinkError as exc:
            log.warning("could not drop old answer copies", error=str(exc))
            return
        if forgotten:
            log.info("dropped old answer copies", count=forgotten, older_than_days=days)

    def _status_line(self, store: Store) -> str:
        counts = store.queue_counts()
        services = self._pipeline.breakers.open_services()
        down = f" (AI service down, probing: {', '.join(services)})" if services else ""
        return f"STATUS=queue: {counts['pending']} waiting, {counts['running']} in progress{down}"

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
        ):
            if old != new:
                log.warning("this option takes effect at the next restart", option=key)
        self._backends.extend(backends.values())
        self.loaded, self.config = loaded, config
        self._cage.renew(config.input.limits())  # fresh reading processes under the new limits
        self._pipeline = Pipeline(config, store, backends, self._pipeline.breakers, decoder=self._cage)
        self._status.configure(config)
        reserved = [config.status_page.name] if config.status_page.enabled else []
        if (config.watch, reserved) != self._watcher_config:
            self._watcher.stop()
            self._watcher = self._new_watcher(store)
            self._watcher.start()
        log.info("configuration reloaded", source=str(loaded.source or "built-in defaults"))
        notify("READY=1")

    # --- workers ---------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            pipeline = self._pipeline  # read per job: a reload swaps it
            if not pipeline.breakers.may_claim():  # every model is down: leave the queue alone between probes
                self._stopping.wait(IDLE_POLL_SECONDS)
                continue
            try:
                job = pipeline.store.claim_job()
            except EinkError as exc:
                log.error("cannot read the queue", error=str(exc))
                self._stopping.wait(IDLE_POLL_SECONDS * 5)
                continue
            if job is None:
                self._wake.wait(IDLE_POLL_SECONDS)
                self._wake.clear()
                continue
            try:
                pipeline.run(job)
            except Exception as exc:  # the pipeline turns failures into ERROR_ PDFs; this is the last guard
                log.exception("job crashed; will try again", job=job.job_id, path=str(job.path))
                with contextlib.suppress(Exception):
                    pipeline.store.retry_later(job.job_id, at=utc_now() + timedelta(seconds=60), error=str(exc))

    def _finish_workers(self) -> None:
        deadline = time.monotonic() + self.config.service.shutdown_grace_seconds
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._workers):
            log.warning("an answer was still in progress at shutdown; it will be redone at the next start")


# --- one-shot processing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessResult:
    path: Path
    outcome: Outcome | None
    message: str

    @property
    def answered(self) -> bool:
        """It has its answer: now, or earlier (a re-export with nothing new on it is not asked again)."""
        if self.outcome is None:
            return False
        return self.outcome.status == "ok" or (self.outcome.status == "skipped" and self.outcome.error is None)


def process_files(loaded: LoadedConfig, files: Sequence[Path]) -> list[ProcessResult]:
    """``eink-llm process``: run the given files through the same queue and pipeline, without a watcher.

    A file whose content was already handled at that path is not answered again; its earlier outcome is
    reported instead.
    """

    def queue(store: Store, config: Config, results: dict[int, Path], done: list[ProcessResult]) -> None:
        for file in files:
            path = file.expanduser().resolve()
            if not path.is_file():
                done.append(ProcessResult(path, None, f"{file}: no such file"))
                continue
            stat = path.stat()
            sha = sha256_file(path)
            if store.is_own_output(sha):
                done.append(ProcessResult(path, None, f"{file}: this is an answer eink-llm wrote; skipped"))
                continue
            job_id = _enqueue(store, config, path, sha, stat.st_size, stat.st_mtime_ns)
            if job_id is None:
                done.append(_earlier_result(store, path, sha))
            else:
                results[job_id] = path

    return _one_shot(loaded, queue)


def retry_files(loaded: LoadedConfig, files: Sequence[Path]) -> list[ProcessResult]:
    """``eink-llm retry FILE…``: try failed pages again. FILE is the page or its ERROR_ file; the exchange keeps
    its number, and the answer replaces the ERROR_ page (while that is unchanged)."""

    def queue(store: Store, config: Config, results: dict[int, Path], done: list[ProcessResult]) -> None:
        for file in files:
            path = file.expanduser().resolve()
            if not path.is_file():
                done.append(ProcessResult(path, None, f"{file}: no such file"))
                continue
            sha = sha256_file(path)
            job = store.failed_job_for_output(path, sha) or store.find_job(path, sha)
            if job is None:
                done.append(ProcessResult(path, None, f"{file}: never queued; use `eink-llm process` for it"))
            elif store.reopen_job(job.job_id):
                results[job.job_id] = job.path
            else:
                done.append(ProcessResult(job.path, None, f"{file}: it has not failed ({job.state}); nothing to retry"))

    return _one_shot(loaded, queue)


def retry_failed(loaded: LoadedConfig, since: datetime | None) -> list[ProcessResult]:
    """``eink-llm retry --failed``: every page whose ERROR_ was not its own fault (since ``since``)."""

    def queue(store: Store, _config: Config, results: dict[int, Path], _done: list[ProcessResult]) -> None:
        for job in store.retryable_failures(since):
            if store.reopen_job(job.job_id):
                results[job.job_id] = job.path

    return _one_shot(loaded, queue)


def _one_shot(
    loaded: LoadedConfig, queue: Callable[[Store, Config, dict[int, Path], list[ProcessResult]], None]
) -> list[ProcessResult]:
    """Open the store and backends, let ``queue`` pick jobs, and run them to the end in this thread."""
    config = loaded.config
    startup.require(loaded, folders=False)
    results: dict[int, Path] = {}
    done: list[ProcessResult] = []
    with Store.open(loaded.database_path) as store, Cage(1, config.input.limits()) as cage:
        backends = open_backends(config)
        try:
            # One-shot: no outage mode, so an unreachable model ends in an ERROR_ PDF after max_attempts.
            pipeline = Pipeline(config, store, backends, Breakers(threshold=2**31), decoder=cage)
            queue(store, config, results, done)
            _drain(pipeline, results, done)
        finally:
            close_backends(backends.values())
    return done


def _drain(pipeline: Pipeline, jobs: dict[int, Path], done: list[ProcessResult]) -> None:
    """Run the given jobs to the end, in this thread, waiting out retry delays."""
    remaining = dict(jobs)
    while remaining:
        job = pipeline.store.claim_job(only=list(remaining))
        if job is None:
            for job_id in list(remaining):  # a running daemon took it: report what became of it
                other = pipeline.store.get_job(job_id)
                if other.state in {"done", "failed"}:
                    remaining.pop(job_id)
                    done.append(_earlier_result(pipeline.store, other.path, other.sha256))
            if not remaining:
                break
            due = pipeline.store.next_due()
            wait = (due - utc_now()).total_seconds() if due else IDLE_POLL_SECONDS
            time.sleep(min(max(wait, 0.05), 30.0))
            continue
        outcome = pipeline.run(job)
        if outcome.status == "retry":
            log.info("the AI is unavailable; waiting to try again", path=str(job.path))
            continue
        remaining.pop(job.job_id)
        if outcome.reopened is not None:  # ink on an ERROR_ page: its failed page is answered here too
            remaining[outcome.reopened] = pipeline.store.get_job(outcome.reopened).path
        if outcome.output:
            message = str(outcome.output)
        elif outcome.error:
            message = str(outcome.error)
        else:
            message = outcome.note or "nothing new on it since it was last answered"
        done.append(ProcessResult(job.path, outcome, message))


def _earlier_result(store: Store, path: Path, sha: str) -> ProcessResult:
    job = store.find_job(path, sha)
    exchange = store.exchange_for_job(job.job_id) if job else None
    if exchange is None or exchange.status == "pending":
        return ProcessResult(path, None, f"{path}: already queued; the running daemon will answer it")
    output = path.parent / exchange.output_file if exchange.output_file else None
    outcome = Outcome(
        exchange.job_id or 0,
        "ok" if exchange.status == "ok" else "error",
        output,
        exchange.conversation_id,
        exchange.sequence_number,
    )
    said = "answered" if exchange.status == "ok" else "failed"
    return ProcessResult(path, outcome, f"already {said} earlier: {output}")
