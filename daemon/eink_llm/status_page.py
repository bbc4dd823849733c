"""The tablet is the screen: the daemon's heartbeat, and a one-page STATUS PDF at the top of each watched folder.

:class:`StatusKeeper` is driven by the service's main loop (:meth:`StatusKeeper.tick`, and
:meth:`StatusKeeper.stop` on the way out); it starts no thread. On each check it writes the heartbeat (with the
state of every AI service's circuit breaker, which lives only in the daemon's memory) and then, for each folder
that has a page, takes the status snapshot (:func:`eink_llm.statusinfo.take_snapshot`, the same one
``eink-llm status`` prints), lays it out as Markdown and compares that with what the page shows. The page is
rewritten (atomically, :func:`eink_llm.atomic.atomic_write`) only when it differs, and at most once every
``status_page.min_interval`` seconds, so a burst of answers costs the sync client one upload; the last update,
on stop, says the daemon is stopped.

Nothing here may stop the daemon: a failure to write the heartbeat or a page is logged (once until it works
again) and tried at the next check.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from eink_llm import __version__
from eink_llm.atomic import atomic_write
from eink_llm.config import Config, FolderConfig
from eink_llm.fingerprint import is_unchanged
from eink_llm.naming import INFO_KIND, KIND_STATUS
from eink_llm.retry import Breakers
from eink_llm.statusinfo import (
    BUDGET_SPENT,
    ERROR,
    HEARTBEAT_SECONDS,
    StatusSnapshot,
    budget_line,
    clock,
    daemon_line,
    one_line,
    outcome_line,
    service_line,
    take_snapshot,
    this_host,
    waiting_line,
)
from eink_llm.store import Heartbeat, Outcome, ServiceState, utc_now
from eink_llm.store.ports import StatusKeeperStore

log = structlog.get_logger("eink_llm.status_page")

#: Marks our Markdown gives a meaning: escaped with a backslash, except the brackets, which with a backslash
#: open TeX math (``\(``, ``\[``) and so are written as character references.
#: A status page is far smaller; anything bigger is not one of ours.
MAX_PAGE_BYTES = 4 * 1024 * 1024
STATUS_MARK = f"/{INFO_KIND} ({KIND_STATUS})".encode("ascii")

_MARKDOWN_MARKS = re.compile(r"([\\`*_{}<>#+\-.!|~$&\"])")
_BRACKETS = str.maketrans({"[": "&#91;", "]": "&#93;", "(": "&#40;", ")": "&#41;"})


def md(text: str) -> str:
    """Plain text (a file name, an error) shown as it is inside Markdown."""
    return _MARKDOWN_MARKS.sub(r"\\\1", text).translate(_BRACKETS)


_HEADLINE = {
    "running": "running",
    "stopped": "STOPPED",
    "stale": "NOT RESPONDING",
    "never": "not running",
    "unknown": "in an unknown state",
}


def page_markdown(snapshot: StatusSnapshot, recent: int | None = None, waiting: int | None = None) -> str:
    """The page's content (without the time it was written: that alone is no change). ``recent`` and
    ``waiting`` shorten the lists of latest outcomes and waiting files, to keep it on one page."""
    now = snapshot.taken_at
    parts = [f"# eink-llm is {_HEADLINE[snapshot.daemon.state]}", md(daemon_line(snapshot)), "## Now"]
    now_lines = []
    for job in snapshot.working:
        now_lines.append(f"- **In progress:** {md(one_line(job.path.name, 60))}, since {clock(job.since, now)}")
    if snapshot.waiting_count:
        named = snapshot.waiting[:waiting] if waiting is not None else snapshot.waiting
        names = ", ".join(md(one_line(waiting_line(job, now), 90)) for job in named)
        more = snapshot.waiting_count - len(named)
        line = f"- **Waiting:** {snapshot.waiting_count}" + (f": {names}" if names else "")
        now_lines.append(line + (f" and {more} more" if more and names else ""))
    if not now_lines:
        now_lines.append("- Nothing in progress, nothing waiting.")
    parts.append("\n".join(now_lines))
    parts.append("## AI service")
    parts.append("\n".join(f"- {_service_markdown(snapshot, index)}" for index in range(len(snapshot.services))))
    parts.append("## Spending this month")
    budgets = (md(budget_line(budget, now)) for budget in snapshot.budgets)
    parts.append("\n".join(f"- {_bold(line, BUDGET_SPENT, 1)}" for line in budgets))
    parts.append("## Latest answers and errors")
    shown = snapshot.recent[:recent] if recent is not None else snapshot.recent
    if shown:
        parts.append("\n".join(f"- {_outcome_markdown(outcome, now)}" for outcome in shown))
    else:
        parts.append("- None yet.")
    return "\n\n".join(parts) + "\n"


def _service_markdown(snapshot: StatusSnapshot, index: int) -> str:
    service = snapshot.services[index]
    line = md(service_line(service, snapshot.taken_at))
    word = {"down": "down", "slow": "slow"}.get(service.state)
    return line.replace(f": {word}", f": **{word}**", 1) if word else line


def _outcome_markdown(outcome: Outcome, now: datetime) -> str:
    line = md(outcome_line(outcome, now))
    return line if outcome.ok else _bold(line, ERROR, 1)


def _bold(line: str, words: str, count: int = -1) -> str:
    """``line`` with ``words`` (plain letters and spaces: the same escaped or not) in bold."""
    return line.replace(words, f"**{words}**", count)


def _footer(written: datetime, min_interval: float) -> str:
    every = "" if min_interval < 1 else f", at most every {_seconds(min_interval)}"
    return (
        f"\n---\n\n*Written {clock(written, written)}. Rewritten when something changes{every}. Writing on this "
        "page changes nothing.*\n"
    )


def _seconds(value: float) -> str:
    return f"{value:g}\u00a0s" if value < 60 else f"{value / 60:g}\u00a0min"


def render_page(
    snapshot: StatusSnapshot, *, device: str | dict[str, Any], font_size: float, min_interval: float
) -> bytes:
    """The snapshot as the one-page PDF, for the folder's device: shortened, then in smaller type, until it fits."""
    from eink_llm.render.status import render_status  # reportlab is loaded with the first page, not at import

    pdf = b""
    for recent, waiting, size in _shorter(len(snapshot.recent), font_size):
        text = page_markdown(snapshot, recent, waiting) + _footer(snapshot.taken_at, min_interval)
        pdf, pages = render_status(text, device=device, font_size=size)
        if pages <= 1:
            break
    return pdf


def _shorter(recent: int, font_size: float) -> Iterator[tuple[int, int | None, float]]:
    """Ever shorter versions of the page: fewer latest outcomes, fewer waiting files named, then smaller type."""
    sizes = dict.fromkeys(max(8.0, round(font_size * factor, 1)) for factor in (1.0, 0.85, 0.7, 0.0))
    for size in sizes:
        yield recent, None, size
        yield min(recent, 3), 1, size
        yield min(recent, 1), 0, size
        yield 0, 0, size


def remove_own_page(path: Path) -> bool:
    """Delete ``path`` if it is a status page of ours exactly as we wrote it (never a file someone wrote on)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PAGE_BYTES + 1)
        if len(data) > MAX_PAGE_BYTES or STATUS_MARK not in data or not is_unchanged(data):
            return False
        path.unlink()
    except OSError:
        return False
    log.info("removed the status page, which is turned off", path=str(path))
    return True


@dataclass(slots=True)
class _Page:
    folder: FolderConfig
    path: Path
    shown: str | None = None  # the content last written
    written_at: float = -math.inf  # monotonic
    failing: bool = False


@dataclass(slots=True)
class StatusKeeper:
    """The heartbeat and the folders' status pages; driven by the service's main loop (no thread of its own)."""

    store: StatusKeeperStore
    config: Config
    breakers: Callable[[], Breakers]
    clock: Callable[[], float] = time.monotonic
    started_at: datetime = field(default_factory=utc_now)
    pages: list[_Page] = field(default_factory=list)
    _next_check: float = -math.inf
    _beat_failing: bool = False

    def __post_init__(self) -> None:
        self.configure(self.config)

    def configure(self, config: Config) -> None:
        """Take a (re)loaded config: which folders have a page, and its name. What a page showed is kept; a page
        turned off (or renamed) is removed if it is ours and unchanged, so it cannot go on telling old news."""
        old = {page.path: page for page in self.pages}
        self.config = config
        settings = config.status_page
        self.pages = []
        retired = set(old)
        for folder in config.watch.folders:
            path = folder.path / settings.name
            if settings.enabled and folder.status_page:
                self.pages.append(old.get(path) or _Page(folder, path))
                self.pages[-1].folder = folder
                retired.discard(path)
            else:
                retired.add(path)
        for path in sorted(retired):
            remove_own_page(path)
        self._next_check = -math.inf

    @property
    def check_every(self) -> float:
        return min(max(self.config.status_page.min_interval / 2, 0.25), HEARTBEAT_SECONDS)

    def tick(self) -> None:
        """Call often; does its work every :attr:`check_every` seconds."""
        now = self.clock()
        if now < self._next_check:
            return
        self._next_check = now + self.check_every
        self._beat()
        self._update(final=False)

    def stop(self) -> None:
        """The last word: the heartbeat says stopped, and so does every page (whatever the interval)."""
        self._beat(stopped=utc_now())
        self._update(final=True)

    # --- internals ---------------------------------------------------------------------------------------

    def _beat(self, stopped: datetime | None = None) -> None:
        now = utc_now()
        services = {
            name: ServiceState(failures, down, now + timedelta(seconds=wait) if down else None)
            for name, (failures, down, wait) in self.breakers().states().items()
        }
        beat = Heartbeat(os.getpid(), this_host(), __version__, self.started_at, now, stopped, services)
        try:
            self.store.beat(beat)
        except Exception as exc:  # a busy or broken database must not stop the daemon
            if not self._beat_failing:
                log.warning("could not record the daemon's heartbeat", error=str(exc))
            self._beat_failing = True
            return
        self._beat_failing = False

    def _update(self, *, final: bool) -> None:
        min_interval = self.config.status_page.min_interval
        for page in self.pages:
            now = self.clock()
            if not final and now - page.written_at < min_interval:
                continue
            try:
                self._update_page(page, now, min_interval)
            except Exception as exc:  # a missing folder, a full disk, a bug: logged, tried again next time
                if not page.failing:
                    log.warning("could not update the status page", path=str(page.path), error=str(exc))
                page.failing = True
            else:
                page.failing = False

    def _update_page(self, page: _Page, now: float, min_interval: float) -> None:
        snapshot = take_snapshot(self.store, self.config, folder=page.folder, now=utc_now())
        content = page_markdown(snapshot)
        if content == page.shown and page.path.exists():  # unchanged (a deleted page comes back)
            return
        output = self.config.profile(page.folder.profile).output
        pdf = render_page(snapshot, device=output.device, font_size=output.font_size, min_interval=min_interval)
        atomic_write(page.path, pdf)
        page.shown, page.written_at = content, now
        log.debug("status page written", path=str(page.path), bytes=len(pdf))
