"""What ``eink-llm status`` and the STATUS page read: the daemon's heartbeat, the work in progress and waiting,
and the latest outcomes.

The heartbeat is one row (``daemon_heartbeat``, id 1) that a running daemon writes at start and every few
seconds after, with its pid, host, version and the state of each AI service's circuit breaker (which lives in
the daemon's memory), and marks stopped when it exits. Another process tells from it whether a daemon is running
on this database: a beat older than a few intervals means it died without saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from eink_llm.store.db import Database
from eink_llm.store.records import iso


@dataclass(frozen=True, slots=True)
class ServiceState:
    """One AI service's circuit breaker, as the daemon last saw it."""

    failures: int = 0  # transient failures in a row
    down: bool = False
    next_probe_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    pid: int
    host: str
    version: str
    started_at: datetime
    beat_at: datetime
    stopped_at: datetime | None = None
    services: dict[str, ServiceState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunningJob:
    path: Path
    since: datetime  # when it was claimed (this attempt)
    attempts: int


@dataclass(frozen=True, slots=True)
class WaitingJob:
    path: Path
    queued_at: datetime
    next_attempt_at: datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished exchange: answered, or an ERROR_ page."""

    at: datetime
    input_file: str
    ok: bool
    output_file: str | None
    error: str | None


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _services(text: Any) -> dict[str, ServiceState]:
    """The services column, read defensively: a damaged value costs the detail, never the status."""
    try:
        raw = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    found: dict[str, ServiceState] = {}
    for name, value in raw.items() if isinstance(raw, dict) else ():
        if isinstance(name, str) and isinstance(value, dict):
            failures = value.get("failures")
            found[name] = ServiceState(
                failures if isinstance(failures, int) else 0,
                value.get("down") is True,
                _time(value.get("next_probe_at")),
            )
    return found


def _where_root(root: Path | None, column: str = "root") -> tuple[str, list[Any]]:
    return (f" AND {column} = ?", [str(root)]) if root is not None else ("", [])


class StatusStore(Database):
    # --- the heartbeat (written by the daemon) ---------------------------------------------------------------

    def beat(self, beat: Heartbeat) -> None:
        """Record that this daemon is alive (the first beat also says since when)."""
        services = {
            name: {
                "failures": state.failures,
                "down": state.down,
                "next_probe_at": iso(state.next_probe_at) if state.next_probe_at else None,
            }
            for name, state in beat.services.items()
        }
        with self._write() as db:
            db.execute(
                "INSERT INTO daemon_heartbeat (id, pid, host, version, started_at, beat_at, stopped_at, services)"
                " VALUES (1, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET pid = excluded.pid,"
                " host = excluded.host, version = excluded.version, started_at = excluded.started_at,"
                " beat_at = excluded.beat_at, stopped_at = excluded.stopped_at, services = excluded.services",
                (
                    beat.pid,
                    beat.host,
                    beat.version,
                    iso(beat.started_at),
                    iso(beat.beat_at),
                    iso(beat.stopped_at) if beat.stopped_at else None,
                    json.dumps(services, sort_keys=True),
                ),
            )

    def heartbeat(self) -> Heartbeat | None:
        """The last daemon's heartbeat; ``None`` if no daemon ever ran on this database (or it predates the
        heartbeat, read by an opener that cannot migrate)."""
        if not self.has_heartbeat():
            return None
        rows = self._read("SELECT * FROM daemon_heartbeat WHERE id = 1")
        if not rows:
            return None
        row = rows[0]
        started, beat = _time(row["started_at"]), _time(row["beat_at"])
        if started is None or beat is None:
            return None
        return Heartbeat(
            int(row["pid"]),
            str(row["host"]),
            str(row["version"]),
            started,
            beat,
            _time(row["stopped_at"]),
            _services(row["services"]),
        )

    def has_heartbeat(self) -> bool:
        """Whether the database has the heartbeat at all (a daemon of an older version never wrote one)."""
        rows = self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'daemon_heartbeat'")
        return bool(rows)

    # --- the work (read by the status snapshot) ---------------------------------------------------------------

    def running_jobs(self, root: Path | None = None) -> list[RunningJob]:
        """Jobs being answered now (of one watched folder, or of all), longest running first."""
        where, params = _where_root(root)
        rows = self._read(
            f"SELECT path, updated_at, attempts FROM jobs WHERE state = 'running'{where} ORDER BY updated_at, job_id",
            params,
        )
        return [RunningJob(Path(r["path"]), _time(r["updated_at"]) or datetime.min, int(r["attempts"])) for r in rows]

    def waiting_jobs(self, root: Path | None = None, limit: int = 5) -> tuple[list[WaitingJob], int]:
        """The first ``limit`` jobs waiting their turn (oldest first), and how many wait in all."""
        where, params = _where_root(root)
        count = self._read(f"SELECT COUNT(*) AS n FROM jobs WHERE state = 'pending'{where}", params)[0]["n"]
        rows = self._read(
            "SELECT path, created_at, next_attempt_at, last_error FROM jobs"
            f" WHERE state = 'pending'{where} ORDER BY job_id LIMIT ?",
            [*params, limit],
        )
        waiting = [
            WaitingJob(
                Path(r["path"]),
                _time(r["created_at"]) or datetime.min,
                _time(r["next_attempt_at"]) or datetime.min,
                r["last_error"],
            )
            for r in rows
        ]
        return waiting, int(count)

    def latest_outcomes(self, root: Path | None = None, limit: int = 5) -> list[Outcome]:
        """The last finished exchanges (answers and ERROR_ pages), newest first."""
        where, params = _where_root(root, "j.root")
        rows = self._read(
            "SELECT e.completed_at, e.input_file, e.status, e.output_file, e.error_text FROM exchanges e"
            f" LEFT JOIN jobs j ON j.job_id = e.job_id WHERE e.status IN ('ok', 'error'){where}"
            " ORDER BY e.completed_at DESC, e.exchange_id DESC LIMIT ?",
            [*params, limit],
        )
        return [
            Outcome(
                _time(r["completed_at"]) or datetime.min,
                str(r["input_file"]),
                r["status"] == "ok",
                r["output_file"],
                r["error_text"],
            )
            for r in rows
        ]
