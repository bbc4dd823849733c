"""Which filesystem a watched folder is on, so ``polling="auto"`` can poll where inotify sees no remote changes.

Parses the Linux mount tables (/proc/self/mountinfo, else /proc/mounts) and knows the network and shared-folder
filesystem types; on other systems the tables are missing and nothing is detected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeAlias

__all__ = [
    "NETWORK_FILESYSTEMS",
    "MountTable",
    "filesystem_type",
    "is_network_fs",
    "parse_mountinfo",
    "parse_proc_mounts",
    "read_mounts",
]

# Filesystem types on which inotify does not report changes made elsewhere (on the server, the host, or by
# the FUSE daemon itself): polling is the only reliable way to see them. ``fuse.*`` types are the FUSE
# subtype as shown in /proc/self/mountinfo.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smb2",
        "smbfs",
        "ncpfs",
        "9p",  # WSL2 /mnt/c, QEMU/virtio shares
        "drvfs",  # WSL1
        "v9fs",
        "virtiofs",
        "vboxsf",  # VirtualBox shared folders
        "vmhgfs",
        "fuse.vmhgfs-fuse",  # VMware shared folders
        "fakeowner",  # Docker Desktop bind mounts
        "fuse.grpcfuse",  # Docker Desktop bind mounts
        "fuse.osxfs",  # Docker Desktop (old)
        "afs",
        "coda",
        "ceph",
        "fuse.ceph",
        "glusterfs",
        "fuse.glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "davfs",
        "fuse.davfs2",
        "fuse.sshfs",
        "fuse.rclone",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.juicefs",
    }
)

#: (mount point, filesystem type) pairs in mount order, as :func:`read_mounts` returns them.
MountTable: TypeAlias = Sequence[tuple[str, str]]

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape_mount_path(text: str) -> str:
    """/proc mount tables escape space, tab, newline and backslash as ``\\ooo``."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, fs type) pairs from /proc/self/mountinfo, in mount order."""
    mounts: list[tuple[str, str]] = []
    for line in text.splitlines():
        fields = line.split()
        try:
            separator = fields.index("-", 6)
        except ValueError:
            continue
        if separator + 1 < len(fields):
            mounts.append((_unescape_mount_path(fields[4]), fields[separator + 1]))
    return mounts


def parse_proc_mounts(text: str) -> list[tuple[str, str]]:
    """(mount point, fs type) pairs from /proc/mounts (``source mountpoint fstype options dump pass``)."""
    mounts: list[tuple[str, str]] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((_unescape_mount_path(fields[1]), fields[2]))
    return mounts


def read_mounts() -> list[tuple[str, str]] | None:
    """(mount point, fs type) pairs of this system, or None when there is no mount table to read."""
    for source, parse in (("/proc/self/mountinfo", parse_mountinfo), ("/proc/mounts", parse_proc_mounts)):
        try:
            with open(source, encoding="utf-8", errors="surrogateescape") as handle:
                return parse(handle.read())
        except OSError:
            continue
    return None  # not Linux: the native observer it is


def filesystem_type(path: str, mounts: MountTable) -> str | None:
    """Type of the filesystem holding ``path``: the longest mount point containing it (the last one mounted
    wins when several are stacked on the same point)."""
    best: str | None = None
    best_length = -1
    for mount_point, fstype in mounts:
        prefix = mount_point.rstrip("/") + "/"
        if (path == mount_point or path.startswith(prefix)) and len(mount_point) >= best_length:
            best, best_length = fstype, len(mount_point)
    return best


def is_network_fs(fstype: str) -> bool:
    """True for a filesystem type on which inotify misses changes made elsewhere (see NETWORK_FILESYSTEMS)."""
    return fstype in NETWORK_FILESYSTEMS
