"""The one way the daemon writes into a synced folder: atomically.

A sync client must never see a half-written PDF, so bytes go to a temporary file in the same folder, are
flushed to disk, and are then renamed over the final name in one step; finally the folder itself is fsynced so
the rename survives a power cut. The temporary name is ``.syncthing.<name>.<6 hex>.tmp``: Syncthing never syncs its own
temp names, it is a hidden ``*.tmp`` file that Nextcloud, OneDrive and the watcher skip as well, and Syncthing
removes a stale one left by a crash.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
from pathlib import Path

from eink_llm import confined
from eink_llm.errors import OutputError

TEMP_PREFIX = ".syncthing."
TEMP_SUFFIX = ".tmp"
#: The longest file name most file systems take, in bytes (ext4, XFS, Btrfs, APFS, NTFS in UTF-16 units).
NAME_MAX = 255
#: How many bytes the temp name adds to the final one: ``.syncthing.`` + ``.<6 hex>`` + ``.tmp``.
TEMP_OVERHEAD = len(TEMP_PREFIX) + 1 + 6 + len(TEMP_SUFFIX)

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def temp_name_for(final: Path) -> Path:
    return final.with_name(_temp_name(final.name))


def _temp_name(name: str) -> str:
    return f"{TEMP_PREFIX}{name}.{secrets.token_hex(3)}{TEMP_SUFFIX}"


def atomic_write(path: Path, data: bytes, mode: int = 0o644, *, root: Path | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one.

    With ``root`` (the watched folder), the folder the file goes into is reached from ``root`` without
    following a link in any component below it (:mod:`eink_llm.confined`), and the temp file, the rename and
    the folder's fsync all go through that folder's descriptor: a folder swapped for a link never receives the
    file. Without ``root`` the folder is opened as given."""
    try:
        folder = _open_folder(path.parent, root)
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        _write_in(folder, path.name, data, mode)
    except OSError as exc:
        raise _output_error(path, exc) from None
    finally:
        os.close(folder)


def _open_folder(folder: Path, root: Path | None) -> int:
    """A descriptor of ``folder``: reached from ``root`` without following a link below it, or as given."""
    if root is not None:
        return confined.open_folder(root, folder)
    return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)


def _write_in(folder: int, name: str, data: bytes, mode: int) -> None:
    temp = _temp_name(name)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode, dir_fd=folder)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=folder)
        raise
    with contextlib.suppress(OSError):  # some file systems cannot fsync a folder; the rename is still atomic
        os.fsync(folder)


def _output_error(path: Path, exc: OSError) -> OutputError:
    """Say what really went wrong: a full disk, a name too long, a folder made a link are different fixes."""
    where = path.parent
    code = exc.errno
    detail = f"{type(exc).__name__}: {exc}"
    if code == errno.ENAMETOOLONG:
        return OutputError(
            f"The answer's file name is too long for the file system of {where}.",
            "Give the page a shorter name and export it again.",
            detail=detail,
            errno=code,
        )
    if code in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(
            f"The answer could not be saved to {where}: the disk is full (or the quota is used up).",
            "Free some space; the answer is written again on the next attempt.",
            detail=detail,
            errno=code,
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(
            f"The answer could not be saved to {where}: the daemon may not write there.",
            "Make the folder writable by the user eink-llm runs as (and not a read-only mount).",
            detail=detail,
            errno=code,
        )
    if code in confined.LINK_ERRNOS or code == errno.EXDEV:
        return OutputError(
            f"The answer was not saved: {where} is not a folder inside the watched folder any more (it was "
            "replaced by a link or a file).",
            "eink-llm never writes through links below the watched folder. Put a real folder there.",
            detail=detail,
            errno=code,
        )
    if code == errno.ENOENT:
        return OutputError(
            f"The answer could not be saved: the folder {where} no longer exists.",
            "Create the folder again (or export the page again into an existing one).",
            detail=detail,
            errno=code,
        )
    return OutputError(
        f"The answer could not be saved to {where}.",
        "Check that the folder exists, is writable by the daemon and the disk is not full.",
        detail=detail,
        errno=code,
    )


def remove_if_unchanged(
    path: Path, sha256: str, max_bytes: int = 64 * 1024 * 1024, *, root: Path | None = None
) -> bool:
    """Remove a file we wrote (an ERROR_ page a retry has replaced), but only while it is byte for byte what we
    wrote: one the user wrote on, or anything else now at that name, is left alone. True if removed.

    The file is first moved aside under a temp name (which sync clients skip), checked there, and moved back
    if it changed, so a write by the user between the check and the removal is not lost. Everything goes
    through the folder's descriptor, reached from ``root`` without following a link (as :func:`atomic_write`).
    """
    aside = _temp_name(path.name)
    try:
        folder = _open_folder(path.parent, root)
    except OSError:
        return False
    try:
        try:
            os.rename(path.name, aside, src_dir_fd=folder, dst_dir_fd=folder)
        except OSError:
            return False
        try:
            fd = os.open(aside, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC, dir_fd=folder)
            with os.fdopen(fd, "rb") as handle:
                digest = hashlib.sha256()
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                    if handle.tell() > max_bytes:
                        break
            if digest.hexdigest() == sha256:
                os.unlink(aside, dir_fd=folder)
                with contextlib.suppress(OSError):
                    os.fsync(folder)
                return True
        except OSError:
            pass
        with contextlib.suppress(OSError):
            os.stat(path.name, dir_fd=folder, follow_symlinks=False)  # something new took the name: keep both
            return False
        with contextlib.suppress(OSError):
            os.rename(aside, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        return False
    finally:
        os.close(folder)


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
