"""Which filesystem a path lives on, read from /proc/self/mountinfo.

Two places need this: the store refuses to put a SQLite database on a network filesystem
(WAL needs shared memory on one host; locking over NFS/SMB corrupts databases), and the
watcher switches to polling there because inotify never sees another client's writes.
Reading mountinfo ourselves avoids a dependency and works for unprivileged users.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO_PATH = Path("/proc/self/mountinfo")

# Filesystem types whose data lives on another machine (or behind a userspace daemon that
# may forward to one). FUSE is included wholesale: sshfs, rclone, s3fs... all report fuse.*.
NETWORK_FS_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "ceph",
        "glusterfs",
        "sshfs",
        "afs",
        "ncpfs",
        "lustre",
        "gpfs",
        "ocfs2",
        "gfs2",
        "davfs",
        "fuse",
        "fuseblk",
    }
)


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of mountinfo: where a filesystem is mounted, its type and its source."""

    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040...)."""
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and len(field[i + 1 : i + 4]) == 3:
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse mountinfo text (see proc(5)); malformed lines are ignored."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if "-" not in parts or len(parts) < 7:
            continue
        sep = parts.index("-")
        if sep + 1 >= len(parts):
            continue
        fstype = parts[sep + 1]
        source = parts[sep + 2] if sep + 2 < len(parts) else ""
        mounts.append(Mount(_unescape(parts[4]), fstype, _unescape(source)))
    return mounts


def read_mounts(mountinfo_path: Path | None = None) -> list[Mount]:
    path = mountinfo_path or MOUNTINFO_PATH
    try:
        return parse_mountinfo(path.read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError:
        return []


def _real_path(path: Path) -> Path:
    """The absolute path with symlinks resolved as far as it exists (a database file, or
    its directory, may not exist yet; the rest is appended as written)."""
    path = Path(os.path.abspath(path))
    missing: list[str] = []
    while not path.exists() and path != path.parent:
        missing.append(path.name)
        path = path.parent
    with contextlib.suppress(OSError):
        path = path.resolve()
    return path.joinpath(*reversed(missing))


def mount_of(path: Path | str, mountinfo_path: Path | None = None) -> Mount | None:
    """The mount that holds `path` (the longest matching mount point; later mounts win ties)."""
    target = str(_real_path(Path(path)))
    best: Mount | None = None
    for mount in read_mounts(mountinfo_path):
        mp = mount.mount_point.rstrip("/") or "/"
        inside = target == mp or target.startswith(mp + "/") or mp == "/"
        if inside and (best is None or len(mp) >= len(best.mount_point.rstrip("/") or "/")):
            best = mount
    return best


def filesystem_type(path: Path | str, mountinfo_path: Path | None = None) -> str | None:
    """The filesystem type (`ext4`, `nfs4`, `fuse.sshfs`...) of `path`, None if unknown."""
    mount = mount_of(path, mountinfo_path)
    return mount.fstype if mount else None


def is_network_fstype(fstype: str) -> bool:
    base = fstype.split(".", 1)[0]
    return fstype in NETWORK_FS_TYPES or base in NETWORK_FS_TYPES


def is_network_fs(path: Path | str, mountinfo_path: Path | None = None) -> bool:
    """True when `path` is on NFS, SMB/CIFS, FUSE, 9p, Ceph, GlusterFS, sshfs and the like."""
    fstype = filesystem_type(path, mountinfo_path)
    return fstype is not None and is_network_fstype(fstype)
