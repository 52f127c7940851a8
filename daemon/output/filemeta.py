"""What a file is besides its bytes: type (regular or symlink), mode, owner, mtime, xattrs.

Replace mode keeps this beside the backup so `lmd revert` gives back exactly what was there: a
symlink comes back as a symlink to the same place, and the mode, owner, mtime and extended
attributes (user tags, ACLs in `system.posix_acl_*`) come back with the bytes. The backup file
itself may sit on a filesystem without xattrs, or be touched by a backup tool, so these live in
the record, not only on the backup copy.
"""

from __future__ import annotations

import base64
import contextlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FileMeta:
    """A file's metadata as lmd found it. `link` is the symlink's text when the file was one."""

    mode: int
    uid: int
    gid: int
    mtime_ns: int
    xattrs: Mapping[str, bytes] = field(default_factory=dict)
    link: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "mtime_ns": self.mtime_ns,
            "xattrs": {k: base64.b64encode(v).decode("ascii") for k, v in self.xattrs.items()},
            "link": self.link,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileMeta:
        return cls(
            mode=int(data["mode"]),
            uid=int(data["uid"]),
            gid=int(data["gid"]),
            mtime_ns=int(data["mtime_ns"]),
            xattrs={str(k): base64.b64decode(v) for k, v in dict(data.get("xattrs") or {}).items()},
            link=None if data.get("link") is None else str(data["link"]),
        )


def read_xattrs(fd: int) -> dict[str, bytes]:
    """Every extended attribute of the open file `fd` it can read ({} where unsupported)."""
    try:
        names = os.listxattr(fd)
    except OSError:  # ENOTSUP: the filesystem has none
        return {}
    found: dict[str, bytes] = {}
    for name in names:
        with contextlib.suppress(OSError):  # vanished, or a namespace we may not read
            found[name] = os.getxattr(fd, name)
    return found


def meta_of_file(fd: int) -> FileMeta:
    """The metadata of an open regular file."""
    st = os.fstat(fd)
    return FileMeta(
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime_ns=st.st_mtime_ns,
        xattrs=read_xattrs(fd),
    )


def meta_of_link(st: os.stat_result, link: str) -> FileMeta:
    """The metadata of a symlink from its lstat (Linux allows no user xattrs on symlinks)."""
    return FileMeta(
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime_ns=st.st_mtime_ns,
        link=link,
    )


def apply_xattrs(fd: int, xattrs: Mapping[str, bytes]) -> list[str]:
    """Set `xattrs` on the open file; returns the names that could not be set (e.g. a
    `trusted.*` attribute without privileges), which the caller reports."""
    missed: list[str] = []
    for name, value in xattrs.items():
        try:
            os.setxattr(fd, name, value)
        except OSError as exc:
            missed.append(name)
            log.warning("xattr_not_restored", name=name, error=exc.strerror or str(exc))
    return missed
