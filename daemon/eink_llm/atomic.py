"""The one way the daemon writes into a synced folder: atomically.

A sync client must never see a half-written PDF, so bytes go to a temporary file in the same folder, are
flushed to disk, and are then renamed over the final name in one step; finally the folder itself is fsynced so
the rename survives a power cut. The temporary name is ``.syncthing.<name>.tmp``: Syncthing never syncs its own
temp names, it is a hidden ``*.tmp`` file that Nextcloud, OneDrive and the watcher skip as well, and Syncthing
removes a stale one left by a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from eink_llm.errors import OutputError

TEMP_PREFIX = ".syncthing."
TEMP_SUFFIX = ".tmp"


def temp_name_for(final: Path) -> Path:
    return final.with_name(f"{TEMP_PREFIX}{final.name}.{secrets.token_hex(3)}{TEMP_SUFFIX}")


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one."""
    temp = temp_name_for(path)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise OutputError(
            f"The answer could not be saved to {path.parent}.",
            "Check that the folder exists, is writable by the daemon and the disk is not full.",
            detail=f"{type(exc).__name__}: {exc}",
        ) from None


def remove_if_unchanged(path: Path, sha256: str, max_bytes: int = 64 * 1024 * 1024) -> bool:
    """Remove a file we wrote (an ERROR_ page a retry has replaced), but only while it is byte for byte what we
    wrote: one the user wrote on, or anything else now at that name, is left alone. True if removed.

    The file is first moved aside under a temp name (which sync clients skip), checked there, and moved back
    if it changed, so a write by the user between the check and the removal is not lost.
    """
    aside = temp_name_for(path)
    try:
        os.rename(path, aside)
    except OSError:
        return False
    try:
        digest = hashlib.sha256()
        with aside.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                if handle.tell() > max_bytes:
                    break
        if digest.hexdigest() == sha256:
            aside.unlink()
            _fsync_dir(path.parent)
            return True
    except OSError:
        pass
    with contextlib.suppress(OSError):
        if not path.exists():
            os.rename(aside, path)
    return False


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # some filesystems (and Windows) cannot open a directory; the rename is still atomic
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def is_our_temp(name: str) -> bool:
    """A temp file of ours (not Syncthing's own ``.syncthing.X.tmp``, which has no random tag)."""
    if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
        return False
    tag = name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
    return len(tag) == 6 and all(c in "0123456789abcdef" for c in tag)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files a crash left behind below ``folder``. Call only when no write is in progress."""
    removed = []
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if is_our_temp(name):
                stale = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    stale.unlink()
                    removed.append(stale)
    return removed
