"""``eink-llm process`` and ``eink-llm retry``: the given files through the same queue and pipeline, once, without
a watcher or threads; and opening one backend per profile, which the daemon does too."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from eink_llm import intake, startup
from eink_llm.backends import create_backend
from eink_llm.backends.base import Backend
from eink_llm.config import Config, LoadedConfig, Profiles
from eink_llm.logsetup import register_secrets
from eink_llm.pipeline import Outcome, Pipeline
from eink_llm.reader.cage import Cage
from eink_llm.retry import Breakers
from eink_llm.store import Store, utc_now
from eink_llm.store.ports import JobLookup, OneShotStore

log = structlog.get_logger("eink_llm.oneshot")

IDLE_POLL_SECONDS = 1.0


def open_backends(config: Config) -> dict[str, Backend]:
    """One backend per profile (the pipeline picks by folder). Close them with :func:`close_backends`."""
    backends: dict[str, Backend] = {}
    try:
        for name, profile in Profiles(config).items():
            settings = profile.llm.backend_settings()
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
        if self.outcome.unwritten:
            return False
        return self.outcome.status == "ok" or (self.outcome.status == "skipped" and self.outcome.error is None)


def process_files(
    loaded: LoadedConfig, files: Sequence[Path], *, clock: Callable[[], datetime] = utc_now
) -> list[ProcessResult]:
    """``eink-llm process``: run the given files through the same queue and pipeline, without a watcher.

    A file whose content was already handled at that path is not answered again; its earlier outcome is
    reported instead. ``clock`` is the pipeline's (see :class:`Pipeline`).
    """

    def queue(store: OneShotStore, config: Config, results: dict[int, Path], done: list[ProcessResult]) -> None:
        for file in files:
            found = _identify(file, config, done)
            if found is None:
                continue
            path, sha, stat = found
            if store.is_own_output(sha):
                done.append(ProcessResult(path, None, f"{file}: this is an answer eink-llm wrote; skipped"))
                continue
            job_id = intake.enqueue(store, config, path, sha, stat.st_size, stat.st_mtime_ns)
            if job_id is None:
                done.append(_earlier_result(store, path, sha))
            else:
                results[job_id] = path

    return _one_shot(loaded, queue, clock=clock)


def retry_files(loaded: LoadedConfig, files: Sequence[Path]) -> list[ProcessResult]:
    """``eink-llm retry FILE…``: try failed pages again. FILE is the page or its ERROR_ file; the exchange keeps
    its number, and the answer replaces the ERROR_ page (while that is unchanged)."""

    def queue(store: OneShotStore, config: Config, results: dict[int, Path], done: list[ProcessResult]) -> None:
        for file in files:
            found = _identify(file, config, done)
            if found is None:
                continue
            path, sha, _stat = found
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

    def queue(store: OneShotStore, _config: Config, results: dict[int, Path], _done: list[ProcessResult]) -> None:
        for job in store.retryable_failures(since):
            if store.reopen_job(job.job_id):
                results[job.job_id] = job.path

    return _one_shot(loaded, queue)


def _identify(file: Path, config: Config, done: list[ProcessResult]) -> tuple[Path, str, os.stat_result] | None:
    """A file named on the command line: its full path, queue identity (as the watcher's intake makes it) and
    ``stat``; ``None`` (and a result saying so) when there is no such file."""
    path = file.expanduser().resolve()
    if not path.is_file():
        done.append(ProcessResult(path, None, f"{file}: no such file"))
        return None
    stat = path.stat()
    return path, intake.content_id(path, stat.st_size, stat.st_mtime_ns, config.input.limits().max_file_bytes), stat


def _one_shot(
    loaded: LoadedConfig,
    queue: Callable[[OneShotStore, Config, dict[int, Path], list[ProcessResult]], None],
    *,
    clock: Callable[[], datetime] = utc_now,
) -> list[ProcessResult]:
    """Open the store and backends, let ``queue`` pick jobs, and run them to the end in this thread."""
    config = loaded.config
    startup.require(loaded, folders=False)
    results: dict[int, Path] = {}
    done: list[ProcessResult] = []
    busy_timeout = config.storage.busy_timeout_seconds
    with Store.open(loaded.database_path, busy_timeout=busy_timeout) as store, Cage(1, config.input.limits()) as cage:
        backends = open_backends(config)
        try:
            # One-shot: no outage mode, so an unreachable model ends in an ERROR_ PDF after max_attempts.
            pipeline = Pipeline(config, store, backends, Breakers(threshold=2**31), decoder=cage, clock=clock)
            queue(store, config, results, done)
            _drain(pipeline, store, results, done)
        finally:
            close_backends(backends.values())
    return done


def _drain(pipeline: Pipeline, store: OneShotStore, jobs: dict[int, Path], done: list[ProcessResult]) -> None:
    """Run the given jobs to the end, in this thread, waiting out retry delays (``store`` is the pipeline's)."""
    remaining = dict(jobs)
    while remaining:
        job = store.claim_job(only=list(remaining))
        if job is None:
            for job_id in list(remaining):  # a running daemon took it: report what became of it
                other = store.get_job(job_id)
                if other.state in {"done", "failed"}:
                    remaining.pop(job_id)
                    done.append(_earlier_result(store, other.path, other.sha256))
            if not remaining:
                break
            due = store.next_due()
            wait = (due - utc_now()).total_seconds() if due else IDLE_POLL_SECONDS
            time.sleep(min(max(wait, 0.05), 30.0))
            continue
        outcome = pipeline.run(job)
        if outcome.status == "retry":
            log.info("the AI is unavailable; waiting to try again", path=str(job.path))
            continue
        remaining.pop(job.job_id)
        if outcome.reopened is not None:  # ink on an ERROR_ page: its failed page is answered here too
            remaining[outcome.reopened] = store.get_job(outcome.reopened).path
        if outcome.unwritten:
            message = (
                f"answered, but {outcome.output} could not be written; the answer is kept in the database and "
                "the daemon (eink-llm run) writes it as soon as the folder allows"
            )
        elif outcome.output:
            message = str(outcome.output)
        elif outcome.error:
            message = str(outcome.error)
        else:
            message = outcome.note or "nothing new on it since it was last answered"
        done.append(ProcessResult(job.path, outcome, message))


def _earlier_result(store: JobLookup, path: Path, sha: str) -> ProcessResult:
    job = store.find_job(path, sha)
    exchange = store.exchange_for_job(job.job_id) if job else None
    if exchange is None or exchange.status == "pending":
        return ProcessResult(path, None, f"{path}: already queued; the running daemon will answer it")
    output = path.parent / exchange.output_file if exchange.output_file else None
    outcome = Outcome(
        job_id=exchange.job_id or 0,
        status="ok" if exchange.status == "ok" else "error",
        output=output,
        conversation_id=exchange.conversation_id,
        exchange=exchange.sequence_number,
    )
    said = "answered" if exchange.status == "ok" else "failed"
    return ProcessResult(path, outcome, f"already {said} earlier: {output}")
