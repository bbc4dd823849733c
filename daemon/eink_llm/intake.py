"""From a settled file to a queue row: its identity (the SHA-256 of its bytes, or its size over the limit) and
what its order key is made of (the conversation its name names, its folder-mode folder; the key itself is
:func:`eink_llm.store.queue.order_key`). The daemon runs this on a thread of its own, never on the watcher's
loop: hashing reads the whole file, and the database may be locked for a while (``service.py`` retries).

A file over ``input.max_file_mb`` (seen from the watcher's ``stat``) is never read: it is queued under an
identity made of its size and modification time, and the pipeline answers it with an ERROR_ that says it is too
large. A file that grows past the limit while it is hashed gets the same identity; hashing reads at most the
limit plus one block, so a 10 GB sparse file costs nothing.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from eink_llm import naming
from eink_llm.config import Config
from eink_llm.store.ports import JobIntake

#: Prefix of the queue identity of a file over the size limit (never read, so never hashed).
OVERSIZED = "oversized:"
_BLOCK = 1 << 20


def content_id(path: Path, size: int, mtime_ns: int, max_bytes: int) -> str:
    """The queue's identity of the file: hex SHA-256 of its bytes, or :data:`OVERSIZED` + size and mtime when
    it is (or grows while read) over ``max_bytes``. Raises :class:`OSError` if it cannot be read."""
    if size > max_bytes:
        return f"{OVERSIZED}{size}:{mtime_ns}"
    digest = hashlib.sha256()
    read = 0
    # Non-blocking and not through a symlink: a FIFO swapped in after settling must not hang this thread.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        while block := handle.read(_BLOCK):
            read += len(block)
            if read > max_bytes:
                return f"{OVERSIZED}{read}+:{mtime_ns}"
            digest.update(block)
    return digest.hexdigest()


def root_for(config: Config, path: Path) -> tuple[Path, str | None]:
    """The watched folder ``path`` lies in and its user, or the file's own folder (``process`` elsewhere)."""
    folder = config.folder_for(path)
    return (folder.path, folder.user) if folder else (path.parent, None)


def enqueue(store: JobIntake, config: Config, path: Path, sha256: str, size: int, mtime_ns: int) -> int | None:
    """Queue a file, with what its order key is made of (:func:`eink_llm.store.queue.order_key`: jobs naming the
    same conversation, jobs in the same folder-mode folder, and versions of the same file run one at a time)."""
    root, user = root_for(config, path)
    return store.enqueue(
        path,
        root=root,
        sha256=sha256,
        size=size,
        mtime_ns=mtime_ns,
        user_id=user,
        conversation_hint=naming.find_conversation_id(path.name),
        conversation_folder=config.conversation_folder(path),
    )
