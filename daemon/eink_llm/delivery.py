"""Answers that could not be written yet: kept in the database, written as soon as their folder takes them.

A model's answer is paid for, so a write that fails (disk full, read-only or unmounted folder, a folder replaced
by a file) never loses it and never asks the model again: the pipeline records the exchange as usual and keeps
the rendered PDF in ``unwritten_outputs`` in the same transaction; :func:`deliver_due` (called by the daemon's
writer thread) tries again with backoff (2 s, doubling, at most a minute apart), for as long as it takes. The
same holds for an ERROR_ PDF. ``eink-llm status`` lists what is waiting and why.

The output's hash was recorded before the first attempt (``record_output``), so the watcher never takes the
file for a question when it finally appears.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from eink_llm.atomic import atomic_write
from eink_llm.errors import OutputError
from eink_llm.store import utc_now
from eink_llm.store.ports import UnwrittenOutputs

log = structlog.get_logger("eink_llm.delivery")

FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 60.0


def retry_at(failed_attempts: int, now: datetime | None = None) -> datetime:
    """When to try a write again after ``failed_attempts`` failures (>= 1)."""
    delay = min(FIRST_RETRY_SECONDS * 2 ** max(failed_attempts - 1, 0), MAX_RETRY_SECONDS)
    return (now or utc_now()) + timedelta(seconds=delay)


def deliver_due(store: UnwrittenOutputs, now: datetime | None = None) -> int:
    """Try every kept PDF whose attempt is due; returns how many were written. Store errors propagate (the
    caller backs off); a write that fails again is rescheduled."""
    written = 0
    for item in store.due_unwritten(now):
        try:
            atomic_write(item.path, item.pdf, root=item.root)  # no link followed below the watched folder
        except OutputError as exc:
            store.write_failed_again(item.exchange_id, at=retry_at(item.attempts + 1), error=exc.user_message())
            log.warning(
                "an answer is still waiting for its folder to take it",
                output=str(item.path),
                attempts=item.attempts + 1,
                error=exc.user_message(),
                detail=exc.detail,
            )
            continue
        store.output_written(item.exchange_id)
        written += 1
        log.info("wrote an answer that was waiting for its folder", output=str(item.path), attempts=item.attempts + 1)
    return written
