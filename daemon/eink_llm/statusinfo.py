"""What the daemon is doing, as one snapshot: the single source of ``eink-llm status`` and of the STATUS page.

:func:`take_snapshot` reads everything from the database (so another process sees exactly what the daemon's
own page shows): the daemon's heartbeat (running, since when, which version; the state of each AI service's
circuit breaker), the work in progress and waiting, each profile's spending against its budget, and the latest
answers and errors. :func:`snapshot_text` renders it for the terminal; :mod:`eink_llm.status_page` renders the
same snapshot, through :func:`page_markdown`, as the one-page PDF on the tablet.

Times on the page are absolute (``since 14:02``), never "for 3 minutes", so the page changes only when
something happens, not every minute; the terminal adds the durations.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from eink_llm import redact
from eink_llm.asking import service_key
from eink_llm.budget import check_budget, period_starts
from eink_llm.config import Config, FolderConfig, Profile
from eink_llm.store import Heartbeat, Outcome, RunningJob, WaitingJob
from eink_llm.store.ports import BudgetUsage, SnapshotStore

#: How often a running daemon writes its heartbeat, and after how long without one it counts as gone.
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = timedelta(seconds=60)
#: How many waiting files and latest outcomes are named (the page is one page).
WAITING_SHOWN = 3
RECENT_SHOWN = 5

BUDGET_SPENT = "Budget spent until"
ERROR = "ERROR"

DaemonState = Literal["running", "stale", "stopped", "never", "unknown"]
ServiceWord = Literal["answering", "slow", "down", "unknown"]


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    state: DaemonState
    heartbeat: Heartbeat | None

    @property
    def up(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    profile: str
    backend: str
    model: str | None
    state: ServiceWord
    #: down: when it is tried next; slow: since when the question in progress waits for it.
    when: datetime | None = None
    failures: int = 0


@dataclass(frozen=True, slots=True)
class BudgetInfo:
    profile: str
    tokens: int  # this month
    cost: float
    monthly_tokens: int | None
    monthly_cost: float | None
    resets_at: datetime  # the start of next month (UTC)
    #: When a cap is reached: which one, and when it resets.
    spent: str | None = None
    spent_resets_at: datetime | None = None
    today_tokens: int = 0
    today_cost: float = 0.0
    daily_tokens: int | None = None
    daily_cost: float | None = None


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    taken_at: datetime
    folder: Path | None  # the watched folder it is about; None: all of them
    daemon: DaemonInfo
    working: tuple[RunningJob, ...]
    waiting: tuple[WaitingJob, ...]
    waiting_count: int
    services: tuple[ServiceInfo, ...]
    budgets: tuple[BudgetInfo, ...]
    recent: tuple[Outcome, ...]


def this_host() -> str:
    return socket.gethostname()


def daemon_info(heartbeat: Heartbeat | None, now: datetime) -> DaemonInfo:
    """Running, stale (no beat for :data:`STALE_AFTER`: killed or hung), stopped, or never seen."""
    if heartbeat is None:
        return DaemonInfo("never", None)
    if heartbeat.stopped_at is not None:
        return DaemonInfo("stopped", heartbeat)
    if now - heartbeat.beat_at > STALE_AFTER:
        return DaemonInfo("stale", heartbeat)
    return DaemonInfo("running", heartbeat)


def folder_profiles(config: Config, folder: FolderConfig | None) -> list[str]:
    """The profiles that answer in a folder (its own, its subfolders', their fallbacks); all when ``None``."""
    if folder is None:
        return config.profile_names()
    named = [folder.profile, *folder.subfolders.values()]
    seen: dict[str, None] = {}
    while named:
        name = named.pop(0)
        if name not in seen:
            seen[name] = None
            named.extend(config.profile(name).fallback)
    return list(seen)


def _service(
    profile: Profile, config: Config, daemon: DaemonInfo, working: tuple[RunningJob, ...], now: datetime
) -> ServiceInfo:
    llm = profile.llm
    if not daemon.up or daemon.heartbeat is None:
        return ServiceInfo(profile.name, llm.backend, llm.model, "unknown")
    state = daemon.heartbeat.services.get(service_key(profile))
    if state is not None and state.down:
        return ServiceInfo(profile.name, llm.backend, llm.model, "down", state.next_probe_at, state.failures)
    if state is not None and state.failures:
        return ServiceInfo(profile.name, llm.backend, llm.model, "slow", None, state.failures)
    slow_after = timedelta(seconds=llm.timeout_seconds / 2)
    mine = [job for job in working if config.profile_for(job.path) == profile.name and now - job.since > slow_after]
    if mine:
        return ServiceInfo(profile.name, llm.backend, llm.model, "slow", mine[0].since)
    return ServiceInfo(profile.name, llm.backend, llm.model, "answering")


def _budget(store: BudgetUsage, profile: Profile, now: datetime) -> BudgetInfo:
    day, _tomorrow, month, next_month = period_starts(now)
    tokens, cost = store.usage_since(profile.name, month)
    budget = profile.budget
    daily = budget.daily_tokens is not None or budget.daily_cost is not None
    today_tokens, today_cost = store.usage_since(profile.name, day) if daily else (0, 0.0)
    over = check_budget(store, profile, now)
    return BudgetInfo(
        profile.name,
        tokens,
        cost,
        budget.monthly_tokens,
        budget.monthly_cost,
        next_month,
        over.what if over else None,
        over.resets_at if over else None,
        today_tokens,
        today_cost,
        budget.daily_tokens,
        budget.daily_cost,
    )


def take_snapshot(
    store: SnapshotStore,
    config: Config,
    *,
    folder: FolderConfig | None = None,
    now: datetime | None = None,
    recent: int = RECENT_SHOWN,
) -> StatusSnapshot:
    """Everything ``status`` and the STATUS page show, from the database. With ``folder``, only that watched
    folder's files (a folder may belong to another user) and the profiles that answer there."""
    now = now or datetime.now(UTC)
    root = folder.path if folder is not None else None
    daemon = daemon_info(store.heartbeat(), now)
    if daemon.state == "never" and not store.has_heartbeat():
        daemon = DaemonInfo("unknown", None)
    working = tuple(store.running_jobs(root)) if daemon.up else ()
    waiting, waiting_count = store.waiting_jobs(root, WAITING_SHOWN)
    profiles = [config.profile(name) for name in folder_profiles(config, folder)]
    return StatusSnapshot(
        taken_at=now,
        folder=root,
        daemon=daemon,
        working=working,
        waiting=tuple(waiting),
        waiting_count=waiting_count,
        services=tuple(_service(p, config, daemon, working, now) for p in profiles),
        budgets=tuple(_budget(store, p, now) for p in profiles),
        recent=tuple(store.latest_outcomes(root, recent)),
    )


# --- words shared by both renderings ---------------------------------------------------------------------------


def clock(moment: datetime | None, now: datetime) -> str:
    """A moment in the server's local time: ``14:02`` today, else ``Sat 5 Dec 14:02``."""
    if moment is None or moment.year < 2000:
        return "?"
    local, today = moment.astimezone(), now.astimezone()
    if local.date() == today.date():
        return f"{local:%H:%M}"
    if abs((local.date() - today.date()).days) < 300:
        return f"{local:%a} {local.day} {local:%b %H:%M}"
    return f"{local.day} {local:%b %Y %H:%M}"


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds // 86400} days"


def one_line(text: str | None, limit: int = 70) -> str:
    """``text`` (a file name, an error: anything) as one printable line of at most ``limit`` characters, secrets
    masked before it is cut (errors stored by an older version were not masked, and a cut key is not recognised)."""
    flat = " ".join(_CONTROL.sub("?", redact.text(text or "")).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


#: Control characters (C0 and C1, but not the whitespace that ``split`` takes care of): never printed.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def daemon_line(snapshot: StatusSnapshot) -> str:
    """``Running since 14:02 (version 0.1.0, pid 123 on host).``, or why not."""
    info, now = snapshot.daemon, snapshot.taken_at
    beat = info.heartbeat
    if info.state == "unknown":
        return "Unknown: the database is older than this version; the daemon updates it when it next starts."
    if beat is None:
        return "Not running: no daemon has run on this database yet."
    where = f"version {beat.version}, pid {beat.pid}" + (f" on {beat.host}" if beat.host != this_host() else "")
    if info.state == "running":
        return f"Running since {clock(beat.started_at, now)} ({where})."
    if info.state == "stopped":
        return f"Stopped at {clock(beat.stopped_at, now)} (ran since {clock(beat.started_at, now)}; {where})."
    return (
        f"Not responding: its last sign of life was at {clock(beat.beat_at, now)} (started "
        f"{clock(beat.started_at, now)}; {where}). It may have crashed or been killed."
    )


def service_line(service: ServiceInfo, now: datetime) -> str:
    model = f"{service.backend} {service.model}" if service.model else service.backend
    if service.state == "down":
        retry = f"; next try at {clock(service.when, now)}" if service.when else ""
        return f"{service.profile} ({model}): down{retry}"
    if service.state == "slow":
        if service.when is not None:
            return f"{service.profile} ({model}): slow, no answer yet to a question sent at {clock(service.when, now)}"
        return f"{service.profile} ({model}): slow, {service.failures} failed tries in a row"
    if service.state == "unknown":
        return f"{service.profile} ({model}): not being asked (the daemon is not running)"
    return f"{service.profile} ({model}): answering"


def money(value: float) -> str:
    return f"{value:,.2f}"


def _spending(tokens: int, cost: float, token_cap: int | None, cost_cap: float | None) -> str:
    parts = [f"{tokens:,} tokens" if token_cap is None else f"{tokens:,} of {token_cap:,} tokens"]
    if cost or cost_cap is not None:
        parts.append(money(cost) + (f" of {money(cost_cap)}" if cost_cap is not None else ""))
    return ", ".join(parts)


def budget_line(budget: BudgetInfo, now: datetime) -> str:
    line = f"{budget.profile}: {_spending(budget.tokens, budget.cost, budget.monthly_tokens, budget.monthly_cost)}"
    line += " this month"
    if budget.daily_tokens is not None or budget.daily_cost is not None:
        today = _spending(budget.today_tokens, budget.today_cost, budget.daily_tokens, budget.daily_cost)
        line += f" ({today} today)"
    if budget.spent:
        return f"{line}. {BUDGET_SPENT} {clock(budget.spent_resets_at, now)}"
    if budget.monthly_tokens is not None or budget.monthly_cost is not None:
        line += f"; resets {clock(budget.resets_at, now)}"
    return line


def outcome_line(outcome: Outcome, now: datetime) -> str:
    name = one_line(outcome.input_file, 60)
    if outcome.ok:
        return f"{clock(outcome.at, now)} answered {name}"
    return f"{clock(outcome.at, now)} {ERROR} {name}: {one_line(outcome.error, 60)}"


def waiting_line(job: WaitingJob, now: datetime) -> str:
    name = one_line(job.path.name, 60)
    if job.last_error and job.next_attempt_at > now:
        return f"{name} (next try at {clock(job.next_attempt_at, now)}: {one_line(job.last_error, 50)})"
    return name


# --- the terminal -------------------------------------------------------------------------------------------------


def snapshot_text(snapshot: StatusSnapshot, database: Path) -> str:
    """``eink-llm status``: the snapshot as plain text, with durations."""
    now = snapshot.taken_at
    lines = [f"Daemon: {daemon_line(snapshot)}"]
    beat = snapshot.daemon.heartbeat
    if snapshot.daemon.state == "running" and beat is not None:
        lines[0] += f" Up {duration((now - beat.started_at).total_seconds())}."
    lines.append(f"Database: {database}")
    lines.append("")
    if snapshot.working:
        for job in snapshot.working:
            took = duration((now - job.since).total_seconds())
            lines.append(f"In progress: {one_line(str(job.path), 200)} (since {clock(job.since, now)}, {took})")
    else:
        lines.append("In progress: nothing")
    if snapshot.waiting_count:
        lines.append(f"Waiting: {snapshot.waiting_count}")
        lines.extend(f"  {waiting_line(job, now)}" for job in snapshot.waiting)
        if snapshot.waiting_count > len(snapshot.waiting):
            lines.append(f"  … and {snapshot.waiting_count - len(snapshot.waiting)} more")
    else:
        lines.append("Waiting: nothing")
    lines.append("")
    lines.append("AI service:")
    lines.extend(f"  {service_line(service, now)}" for service in snapshot.services)
    lines.append("Spending:")
    lines.extend(f"  {budget_line(budget, now)}" for budget in snapshot.budgets)
    lines.append("")
    lines.append("Latest answers and errors:" if snapshot.recent else "Latest answers and errors: none yet")
    lines.extend(f"  {outcome_line(outcome, now)}" for outcome in snapshot.recent)
    return "\n".join(lines) + "\n"
