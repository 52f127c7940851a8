"""A tiny sd_notify(3) client: tell systemd when lmd is ready, what it does, that it is alive.

Why our own and not `sdnotify`/`systemd-python`: the protocol is one datagram per message on the
unix socket named by $NOTIFY_SOCKET (a path, or `@name` for the abstract namespace), and a
pure-Python client avoids a C dependency on NAS boxes. Every call is a no-op when the variable is
unset (not under systemd, tests, `lmd run` in a terminal), and a send error never crashes the
daemon: being unable to report status is not a reason to stop restoring photos.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends state lines (`READY=1`, `STATUS=...`) to the service manager."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address
        self._watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, unset: bool = False) -> Notifier:
        """Build from $NOTIFY_SOCKET / $WATCHDOG_USEC / $WATCHDOG_PID.

        The watchdog applies only when WATCHDOG_PID is unset or names this process (systemd sets
        it so that children do not inherit the duty). `unset=True` removes the variables from
        os.environ, like sd_notify's unset_environment, so subprocesses cannot notify for us.
        """
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        watchdog: int | None = None
        raw_usec = env.get("WATCHDOG_USEC")
        raw_pid = env.get("WATCHDOG_PID")
        if raw_usec:
            with contextlib.suppress(ValueError):
                pid_ok = not raw_pid or int(raw_pid) == os.getpid()
                usec = int(raw_usec)
                if pid_ok and usec > 0:
                    watchdog = usec
        if unset and environ is None:
            for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                os.environ.pop(key, None)
        return cls(address, watchdog_usec=watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def _target(self) -> str | bytes:
        assert self.address is not None
        if self.address.startswith("@"):
            return b"\0" + self.address[1:].encode()  # abstract namespace socket
        return self.address

    def notify(self, *lines: str) -> bool:
        """Send one datagram of newline-separated assignments; True when it was sent."""
        if self.address is None:
            return False
        if not (self.address.startswith(("/", "@"))):
            log.warning("notify_socket_unsupported", path=self.address)  # e.g. vsock: addresses
            return False
        message = "\n".join(lines).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the daemon on a slow or stuck listener: a full queue drops
                # this message (the next ping or status follows soon) instead of hanging.
                self._sock.setblocking(False)
            self._sock.sendto(message, self._target())
        except OSError as exc:
            log.warning("notify_failed", error=str(exc))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1: the database is migrated and the watcher is up (see the service loop)."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """STATUS=...: the one line `systemctl status lmd` shows."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: proof of liveness, from the main loop or a restorer step callback."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC=: more time to finish the item in flight while stopping/starting."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of WatchdogSec), or None when no watchdog is set."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(text: str) -> str:
    return " ".join(text.split())
