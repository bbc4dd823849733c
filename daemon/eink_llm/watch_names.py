"""Which file and folder names in a synced folder can be a question from the tablet.

Pure, lexical rules (nothing here touches the disk): candidate suffixes, and the temporary, system, hidden and
conflict-copy names that sync clients, NAS software and operating systems leave behind, which are never candidates.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "CANDIDATE_SUFFIXES",
    "NOTEBOOK_SUFFIXES",
    "is_candidate",
    "is_candidate_name",
    "is_ignored_dir_name",
    "is_notebook_name",
]

#: Native notebooks (read with the optional ``notebooks`` extra): saved in place while being written.
NOTEBOOK_SUFFIXES = frozenset({".note", ".rm", ".rmdoc"})
CANDIDATE_SUFFIXES = frozenset({".pdf", ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}) | NOTEBOOK_SUFFIXES

# Folders that belong to sync clients, NAS software or operating systems, never to the user (compared
# case-insensitively). Every hidden folder (leading ".") is ignored as well, which already covers the dotted names
# below; they are listed so the intent is visible. ``.Trash-1000`` (Linux desktop trash) is one more hidden one.
_IGNORED_DIR_NAMES = frozenset(
    name.casefold()
    for name in (
        ".stfolder",  # Syncthing folder marker
        ".stversions",  # Syncthing file versioning
        ".localized",  # macOS
        "@eaDir",  # Synology thumbnails/metadata
        ".Spotlight-V100",  # macOS
        ".Trashes",  # macOS
        ".fseventsd",  # macOS
        ".TemporaryItems",  # macOS
        "__MACOSX",  # resource forks from zip files made on macOS
        "$RECYCLE.BIN",  # Windows
        "System Volume Information",  # Windows
        "#recycle",  # Synology/QNAP recycle bin
        "#snapshot",  # Synology snapshots
        "lost+found",  # fsck
    )
)

# File names that are temporary, OS bookkeeping or sync artefacts (fnmatch-style, matched against the
# case-folded name). Most of them do not end in a candidate suffix anyway; they are listed so that widening
# CANDIDATE_SUFFIXES can never let one through, and so the tests document every client's convention.
_IGNORED_NAME_PATTERNS = (
    ".*",  # hidden: .syncthing.NAME.tmp, .~lock.NAME#, ._NAME (AppleDouble), .DS_Store, rsync/Dropbox temps
    "~syncthing~*",  # Syncthing temp on Windows
    "~$*",  # Microsoft Office owner files
    "*~",  # editor backups
    "*.partial",  # rclone, OneDrive (abraunegg)
    "*.part",  # Firefox, Nextcloud
    "*.crdownload",  # Chrome
    "*.filepart",  # Nextcloud, WinSCP
    "*.download",  # Safari
    "*.tmp",
    "*.temp",
    "*.swp",
    "*.sync-conflict-*",  # Syncthing conflict copy: NAME.sync-conflict-YYYYMMDD-HHMMSS-DEVICE.ext
    "desktop.ini",
    "thumbs.db",
    "ehthumbs.db",
)

# Conflict copies made by other clients. They are a second version of a file the user already exported, not a
# new question, and answering one would answer twice (or answer the losing version). A user who really wants
# one answered renames it. These are matched precisely, so "my_conflict-notes.pdf" is still a candidate:
#   Nextcloud/ownCloud (older clients, excluded from sync by Nextcloud itself): NAME_conflict-YYYYMMDD-HHMMSS.ext
#   Nextcloud >= 2.5 and Dropbox: "NAME (conflicted copy 2024-01-31 120000).ext",
#   "NAME (Bob's conflicted copy 2024-01-31).ext"
_CONFLICT_RE = re.compile(r"_conflict-\d{8}-\d{6}|\([^()]*conflicted copy[^()]*\)", re.IGNORECASE)


def is_ignored_dir_name(name: str) -> bool:
    """True for a folder name that is never the user's (hidden, sync-client, NAS or OS folder): never walked."""
    return name.startswith(".") or name.casefold() in _IGNORED_DIR_NAMES


def is_candidate_name(name: str) -> bool:
    """The file-name half of :func:`is_candidate` (no folder checks)."""
    folded = name.casefold()
    if os.path.splitext(folded)[1] not in CANDIDATE_SUFFIXES:
        return False
    if any(_fnmatch(folded, pattern) for pattern in _IGNORED_NAME_PATTERNS):
        return False
    return _CONFLICT_RE.search(name) is None


_PATTERN_CACHE: dict[str, re.Pattern[str]] = {}


def _fnmatch(name: str, pattern: str) -> bool:
    """``fnmatch.fnmatchcase`` without its platform-dependent case handling (the name is already case-folded)."""
    compiled = _PATTERN_CACHE.get(pattern)
    if compiled is None:
        compiled = re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z", re.DOTALL)
        _PATTERN_CACHE[pattern] = compiled
    return compiled.match(name) is not None


def is_candidate(path: Path, root: Path, reserved: frozenset[str] = frozenset()) -> bool:
    """True when ``path`` (inside ``root``) could be a question exported from the tablet.

    The file must have a candidate suffix (any case), must not be a sync-client temp file, an OS/NAS bookkeeping
    file, a hidden file or a conflict copy, and no folder between ``root`` and the file may be an ignored one
    (hidden, ``.stversions``, ``@eaDir``, ``__MACOSX``, …). ``reserved`` are case-folded names of our own
    files directly in ``root`` (the status page), never questions there. The check is purely lexical: it
    neither touches the disk nor resolves symlinks (``tick`` does that before reporting), so both paths must be
    given the same way (both absolute, say). The root's own name and the folders above it do not matter.
    """
    try:
        relative = path.relative_to(root)
    except ValueError:
        return False
    parts = relative.parts
    if not parts or ".." in parts:
        return False
    if any(is_ignored_dir_name(part) for part in parts[:-1]):
        return False
    if len(parts) == 1 and parts[0].casefold() in reserved:
        return False
    return is_candidate_name(parts[-1])


def is_notebook_name(name: str) -> bool:
    """Whether ``name`` ends like a native notebook (any case): such files get the notebook settle period."""
    return os.path.splitext(name.casefold())[1] in NOTEBOOK_SUFFIXES
