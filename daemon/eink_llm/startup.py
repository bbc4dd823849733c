"""The start-up checks: one list of everything that would stop ``run`` or turn every page into an ERROR_.

``run``, ``process``, a reload (SIGHUP) and ``check-config`` all call :func:`require`, so ``check-config``
says exactly what ``run`` would, with the same exit code, and lists every problem at once: profile names and
their overrides, each profile's backend (built, then closed) and its required settings, page sizes, the
bundled fonts, the watched folders and the database location.

The rule for watched folders (README, config.example.yaml): relative paths are relative to the config file, ``~``
is expanded; a missing folder whose parent exists is created at start (``check-config`` only says it will
be); a missing parent is refused, since that usually means a disk or share that is not mounted.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from eink_llm.backends import create_backend, missing_settings
from eink_llm.config import DEFAULT_PROFILE, LoadedConfig, Profile, Profiles
from eink_llm.config.messages import Marks, place
from eink_llm.errors import EX_CONFIG, EX_IOERR, EX_NOINPUT, EinkError, StartupError
from eink_llm.render import get_device
from eink_llm.render.fonts import ensure_fonts

log = structlog.get_logger("eink_llm.startup")


@dataclass(frozen=True, slots=True)
class Problem:
    message: str
    exit_code: int = EX_CONFIG


@dataclass(slots=True)
class Report:
    problems: list[Problem] = field(default_factory=list)
    #: Things that are fine but worth saying (a folder that will be created).
    notes: list[str] = field(default_factory=list)

    def add(self, message: str, exit_code: int = EX_CONFIG) -> None:
        if all(p.message != message for p in self.problems):  # a profile inheriting a bad backend: say it once
            self.problems.append(Problem(message, exit_code))


def check(loaded: LoadedConfig, *, create_folders: bool = False, folders: bool = True) -> Report:
    """Every problem found; ``create_folders`` makes missing watched folders whose parent exists."""
    report = Report()
    config, marks = loaded.config, loaded.marks
    for message in config.profile_problems(marks):
        report.add(message)
    for name, profile in Profiles(config, skip_invalid=True).items():  # the invalid ones are reported just above
        _check_backend(report, loaded, name, profile)
        _check_device(report, loaded, name, profile)
    try:
        ensure_fonts()
    except EinkError as exc:
        report.add(_sentence(exc), exc.exit_code)
    if folders:
        _check_folders(report, loaded, create=create_folders)
    _check_database(report, loaded.database_path)
    return report


def require(loaded: LoadedConfig, *, create_folders: bool = False, folders: bool = True) -> Report:
    """:func:`check`, raising one :class:`StartupError` that lists every problem (exit code: the first's)."""
    report = check(loaded, create_folders=create_folders, folders=folders)
    if report.problems:
        source = loaded.source or "the built-in defaults"
        raise StartupError(
            f"The configuration from {source} cannot be used:\n  " + "\n  ".join(p.message for p in report.problems),
            "Fix these entries (`eink-llm check-config` checks again); config.example.yaml documents every option.",
            exit_code=report.problems[0].exit_code,
        )
    return report


def _where(loaded: LoadedConfig, profile: str, section: str, key: str) -> tuple[str | int, ...]:
    """Where a profile's setting comes from: its own override, else the top-level section."""
    spec = loaded.config.profiles.get(profile)
    overrides = getattr(spec, section, {}) if spec else {}
    return ("profiles", profile, section, key) if key in overrides else (section, key)


def _at(where: tuple[str | int, ...], marks: Marks) -> str:
    return ".".join(map(str, where)) + place(where, marks)


def _sentence(exc: EinkError) -> str:
    return f"{exc.what} {exc.todo}".strip()


def _check_backend(report: Report, loaded: LoadedConfig, name: str, profile: Profile) -> None:
    settings = profile.llm.backend_settings()
    used = "" if name == DEFAULT_PROFILE else f" (profile {name!r})"
    try:
        backend = create_backend(settings)
    except EinkError as exc:
        report.add(f"{_at(_where(loaded, name, 'llm', 'backend'), loaded.marks)}{used}: {_sentence(exc)}")
        return
    ready = getattr(backend, "check_ready", None)  # optional: what a backend can tell before the first question
    try:
        if callable(ready):
            ready()
    except EinkError as exc:
        report.add(f"{_at(_where(loaded, name, 'llm', 'options'), loaded.marks)}{used}: {_sentence(exc)}")
    finally:
        with contextlib.suppress(Exception):
            backend.close()
    for setting in missing_settings(settings):
        report.add(
            f"{_at(_where(loaded, name, 'llm', setting), loaded.marks)}{used}: the {settings.backend} backend "
            f"needs llm.{setting}, and it is not set (every page would become an ERROR_). Set it; "
            "docs/backends.md has examples."
        )


def _check_device(report: Report, loaded: LoadedConfig, name: str, profile: Profile) -> None:
    try:
        get_device(profile.output.device)
    except EinkError as exc:
        where = _at(_where(loaded, name, "output", "device"), loaded.marks)
        used = "" if name == DEFAULT_PROFILE else f" (profile {name!r})"
        report.add(f"{where}{used}: {_sentence(exc)}")


def _check_folders(report: Report, loaded: LoadedConfig, *, create: bool) -> None:
    for index, folder in enumerate(loaded.config.watch.folders):
        path = folder.path
        at = _at(("watch", "folders", index), loaded.marks)
        if path.is_dir():
            continue
        if path.exists() or path.is_symlink():
            report.add(f"{at}: {path} is a file, not a folder. Point watch.folders at the synced folder.")
            continue
        parent = path.parent
        if not parent.is_dir():
            report.add(
                f"{at}: neither {path} nor its parent folder {parent} exists. If it is on a disk or network "
                "share, mount it; else create the folder, or fix watch.folders.",
                EX_NOINPUT,
            )
            continue
        if not create:
            report.notes.append(f"{path} does not exist yet; `eink-llm run` will create it.")
            continue
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            report.add(f"{at}: {path} does not exist and cannot be created ({exc.strerror}).", EX_NOINPUT)
            continue
        log.info("created the watched folder", path=str(path))


def _check_database(report: Report, database: Path) -> None:
    where = f"storage.database: {database}"
    if database.exists():
        if database.is_dir():
            report.add(f"{where} is a folder; it must name a file.")
        elif not (os.access(database, os.R_OK | os.W_OK) and os.access(database.parent, os.W_OK | os.X_OK)):
            report.add(
                f"{where} is not writable by this user (it and its folder must be, for SQLite's journal). "
                "Fix the owner or mode, or set storage.database elsewhere.",
                EX_IOERR,
            )
        return
    existing = database.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        report.add(
            f"{where} cannot be created: {existing} is not a writable folder. "
            "Fix its owner or mode, or set storage.database elsewhere.",
            EX_IOERR,
        )
