"""Files below a watched folder, reached without following links.

The watched folder is written by other devices and programs, so anything in it may be swapped for a symbolic
link between the moment the watcher saw it and the moment a worker opens it. The rule: **no link is followed
below the watched root**. The root itself is opened as configured (it may be a link, say ``~/Sync`` to a
bigger disk); every component below it is opened relative to its parent's descriptor with ``O_NOFOLLOW`` (and
``O_DIRECTORY`` for folders), so a component that is a link fails with ``ELOOP`` (``ENOTDIR`` for a file
where a folder was), whatever it points to. Reads then come from the opened descriptor and writes go through
the folder's descriptor (:mod:`eink_llm.atomic`), so what was checked is what is used.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

#: The errors that mean "a link, or something that is not a folder, stood where a folder or file was".
LINK_ERRNOS = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EMLINK})


def parts_below(root: Path, path: Path) -> tuple[str, ...]:
    """The names leading from ``root`` to ``path`` (lexically; both absolute or both relative). Raises
    ``OSError(EXDEV)`` when ``path`` is not below ``root`` or takes a ``..`` step."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise OSError(errno.EXDEV, "not inside the watched folder", str(path)) from None
    if any(part in ("", ".", "..") for part in parts):
        raise OSError(errno.EXDEV, "a '..' step leaves the watched folder", str(path))
    return parts


def open_folder(root: Path, folder: Path) -> int:
    """A descriptor of ``folder`` (``root`` itself or below it), each component below ``root`` opened with
    ``O_NOFOLLOW | O_DIRECTORY`` from its parent's descriptor. The caller closes it."""
    parts = parts_below(root, folder)
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for part in parts:
            child = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def folder(root: Path, path: Path) -> Iterator[int]:
    """:func:`open_folder` as a context manager."""
    fd = open_folder(root, path)
    try:
        yield fd
    finally:
        os.close(fd)


def open_file(root: Path, path: Path) -> int:
    """A read-only descriptor of the file ``path`` below ``root``, reached with no link followed; the final
    name is opened with ``O_NOFOLLOW`` (and ``O_NONBLOCK``, so a FIFO put there cannot block the caller: check
    the result with ``os.fstat`` before reading). The caller closes it."""
    if path == root:
        raise OSError(errno.EISDIR, "the watched folder itself is not a file", str(path))
    with folder(root, path.parent) as parent:
        return os.open(path.name, os.O_RDONLY | _NOFOLLOW | _NOCTTY | _NONBLOCK | _CLOEXEC, dir_fd=parent)


def is_link_error(exc: OSError) -> bool:
    return exc.errno in LINK_ERRNOS
