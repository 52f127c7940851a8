"""`lmd doctor`: checks the things that go wrong on real boxes, each with a fix.

Every check returns a `Finding` (ok / warn / fail, what was seen, what to do) and never raises:
a doctor that crashes on the problem it should diagnose is no use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from daemon.fsinfo import filesystem_type, is_network_fs
from daemon.settings import Settings
from daemon.watcher import (
    choose_mode,
    count_directories,
    inotify_limits,
    suggested_max_watches,
)


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        # one finding is one line (a row of the table; piped, a tab-separated line, where a
        # newline inside a field prints as a literal `\n`): a message of several lines (a
        # settings error names each bad key on a line of its own) is joined into one
        for name in ("detail", "fix"):
            object.__setattr__(self, name, _one_line(getattr(self, name)))

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _one_line(text: str) -> str:
    """`text` on one line: its lines joined with "; " (after a line ending in ":", a space)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    out = lines[0] if lines else ""
    for line in lines[1:]:
        out += (" " if out.endswith(":") else "; ") + line
    return out


def config_finding(config_path: Path | None, error: str | None) -> Finding:
    """The configuration itself: which file, and whether every value (restorer parameters
    included, through the restorer's schema) passed validation. Reported first, and alone when
    it failed, since no other check can run on settings that do not load."""
    from daemon.settings import SettingsError, resolve_config_path

    try:
        path = resolve_config_path(config_path)
    except SettingsError:
        path = config_path
    where = str(path) if path is not None else "no file (defaults and LMD_ variables)"
    if error is not None:
        return Finding("config", "fail", error,
                       "fix each key the detail names (ranges and syntax: config/lmd.toml)")
    return Finding("config", "ok", f"{where}: every value valid")


def check_database(settings: Settings) -> Finding:
    from sqlalchemy import text

    from daemon.store.db import create_store_engine, current_revision, head_revision
    from daemon.store.errors import NoDatabase

    url = settings.database_url
    try:
        engine = create_store_engine(url, create=False)  # doctor only reads: creates nothing
    except NoDatabase as exc:
        return Finding("database", "warn", str(exc), "`lmd scan` or `lmd run` creates it")
    except Exception as exc:
        return Finding("database", "fail", f"{url}: {exc}",
                       "check database_url and that the state directory is on a local disk")
    try:
        current, head = current_revision(engine), head_revision()
        integrity = "ok"
        if engine.url.get_backend_name() == "sqlite":
            with engine.connect() as conn:
                integrity = str(conn.execute(text("PRAGMA quick_check")).scalar())
    except Exception as exc:
        return Finding("database", "fail", f"{url}: {exc}",
                       "check the server is reachable, or restore the database from a backup")
    finally:
        engine.dispose()
    if integrity != "ok":
        return Finding("database", "fail", f"integrity check: {integrity}",
                       "restore the newest backup copy next to the database file")
    if current != head:
        return Finding("database", "warn", f"schema at {current or 'none'}, lmd needs {head}",
                       "`lmd run` migrates at start (after taking a backup copy)")
    return Finding("database", "ok", f"{url} is at the newest schema ({head})")


def check_library(settings: Settings) -> Finding:
    library = settings.library
    if library is None:
        return Finding("library", "fail", "no library configured", "set `library` in lmd.toml")
    path = Path(library)
    if not path.is_dir():
        return Finding("library", "fail", f"{path} is not a directory (not mounted?)",
                       "mount the library or fix `library`")
    if not os.access(path, os.R_OK | os.X_OK):
        return Finding("library", "fail", f"{path} is not readable by uid {os.geteuid()}",
                       "add the lmd user to the library's group (SupplementaryGroups=)")
    writes = settings.output.mode == "replace" or settings.output.location == "beside"
    if writes and not os.access(path, os.W_OK):
        return Finding("library", "fail", f"{path} is not writable but output mode writes there",
                       "grant write access and add it to ReadWritePaths=, or use sidecar tree")
    return Finding("library", "ok", f"{path} ({filesystem_type(path)}) readable"
                   + (", writable" if writes else ""))


def check_watch_mode(settings: Settings) -> Finding:
    if settings.library is None or not Path(settings.library).is_dir():
        return Finding("watcher", "warn", "no library to watch")
    path = Path(settings.library)
    mode = choose_mode(settings.watcher.mode, path)
    fs = filesystem_type(path)
    if mode == "inotify" and is_network_fs(path):
        return Finding("watcher", "warn", f"inotify forced on a {fs} mount: remote writes are "
                       "invisible", 'set watcher.mode = "auto" or "polling"')
    return Finding("watcher", "ok", f"{mode} on {fs}"
                   + (f", every {settings.watcher.polling_interval:g} s" if mode == "polling"
                      else ""))


def check_inotify(settings: Settings) -> Finding:
    limits = inotify_limits()
    watches = limits.get("max_user_watches")
    if settings.library is None or not Path(settings.library).is_dir() or watches is None:
        return Finding("inotify", "ok", f"max_user_watches={watches}")
    dirs = count_directories(Path(settings.library))
    if dirs >= watches * 0.8:
        return Finding("inotify", "warn", f"{dirs} directories vs max_user_watches={watches}",
                       f"sysctl fs.inotify.max_user_watches={suggested_max_watches(dirs)}")
    return Finding("inotify", "ok", f"{dirs} directories, max_user_watches={watches}")


def check_state_dir(settings: Settings) -> Finding:
    state = Path(settings.state_dir)
    probe = state if state.exists() else state.parent
    if is_network_fs(probe):
        return Finding("state_dir", "fail", f"{state} is on {filesystem_type(probe)}",
                       "keep state_dir (the SQLite database) on a local disk")
    if probe.exists() and not os.access(probe, os.W_OK):
        return Finding("state_dir", "fail", f"{probe} is not writable",
                       "StateDirectory=lmd in the unit creates it with the right owner")
    return Finding("state_dir", "ok", f"{state} ({filesystem_type(probe)})")


def check_exiftool(settings: Settings) -> Finding:
    exe = shutil.which("exiftool")
    if exe is None:
        return Finding("exiftool", "warn", "not installed (optional: for checking outputs)",
                       "apt-get install libimage-exiftool-perl")
    try:
        version = subprocess.run([exe, "-ver"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding("exiftool", "warn", f"{exe} does not run: {exc}")
    return Finding("exiftool", "ok", f"{exe} {version.stdout.strip()}")


def check_gpu(settings: Settings) -> Finding:
    try:
        import torch
    except ImportError as exc:
        return Finding("gpu", "fail", f"torch missing: {exc}", "reinstall lmd")
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return Finding("gpu", "ok", f"{props.name}, {props.total_memory / 2**30:.1f} GiB")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return Finding("gpu", "ok", "Apple MPS")
    status = "warn" if settings.restorer.name == "livemoments" else "ok"
    return Finding("gpu", status, f"no GPU visible to torch {torch.__version__}; CPU only",
                   "install the CUDA build of torch and check /dev/nvidia* access "
                   "(no PrivateDevices=, user in video/render groups)" if status == "warn" else "")


def check_checkpoint(settings: Settings) -> Finding:
    if settings.restorer.name != "livemoments":
        return Finding("checkpoint", "ok", f"restorer {settings.restorer.name} needs no weights")
    directory = Path(settings.restorer.checkpoint or "")
    try:
        from core.livemoments.validate import validate_checkpoint

        report = validate_checkpoint(directory)
    except Exception as exc:
        return Finding("checkpoint", "fail", f"{directory}: {exc}",
                       "`lmd model check DIR` lists what is missing")
    if not report.ok:
        return Finding("checkpoint", "fail", f"{directory}: {'; '.join(report.errors)}",
                       "`lmd model check DIR` lists what is missing")
    # The configured tile against this model (its transformer caps the tile): a job with a
    # tile it cannot take would fail, so say so now, with the largest tile it takes.
    from core.livemoments.params import DEFAULTS, tile_problems

    tile = settings.restorer.params.get("tile", DEFAULTS["tile"])
    problems = tile_problems(int(tile), report.transformer_config, report.vae_config)
    if problems:
        return Finding("checkpoint", "fail", f"{directory}: {problems[0]}",
                       f"set [restorer] params = {{tile = {report.max_tile}}} or smaller")
    largest = f"tiles up to {report.max_tile} px" if report.max_tile else "any tile size"
    return Finding("checkpoint", "ok", f"{directory}: usable, {largest}"
                   + (" (random weights)" if report.random_weights else ""))


def check_review(settings: Settings) -> Finding:
    """The review page as `[review]` configures it: a host beyond this machine needs the token
    (the page refuses to start without one), and the port must be free to bind (or already
    held by the `lmd run` that serves it)."""
    import errno
    import socket

    from daemon.review.web.security import ServeRefused, check_bind, is_loopback

    review = settings.review
    host, port = review.host, review.port
    token = review.token.get_secret_value() if review.token is not None else None
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    try:
        check_bind(host, token)
    except ServeRefused as exc:
        return Finding("review", "fail", str(exc),
                       "set [review] token (LMD_REVIEW__TOKEN) or host = \"127.0.0.1\"")
    reach = "this machine only" if is_loopback(host) else "the network, token required"
    served = "served by lmd run" if review.serve else "lmd review serve (serve = false)"
    try:
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host.strip("[]"), port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return Finding("review", "warn", f"{where}: port {port} is in use",
                           "fine if lmd run serves the page there; else set [review] port")
        return Finding("review", "fail", f"{where}: cannot listen there ({exc.strerror or exc})",
                       "set [review] host to an address of this machine (127.0.0.1)")
    return Finding("review", "ok", f"{where} ({reach}; {served})")


def check_faces(settings: Settings) -> Finding:
    """The face-identity guard (`core.faces`, the `lmd[faces]` extra): without it every
    restoration's face check says "not available" and identity drift goes unseen."""
    from core.faces import availability

    ok, reason = availability()
    if ok:
        return Finding("faces", "ok", "dlib face detector and identity model loaded")
    return Finding("faces", "warn", reason or "not available",
                   "pip install 'lmd[faces]' (dlib-bin, face-recognition-models)")


CHECKS: tuple[Callable[[Settings], Finding], ...] = (
    check_state_dir,
    check_database,
    check_library,
    check_watch_mode,
    check_inotify,
    check_exiftool,
    check_gpu,
    check_checkpoint,
    check_review,
    check_faces,
)


def run_checks(settings: Settings) -> list[Finding]:
    findings = []
    for check in CHECKS:
        name = check.__name__.removeprefix("check_")
        try:
            findings.append(check(settings))
        except Exception as exc:  # a doctor never crashes
            findings.append(Finding(name, "fail", f"check crashed: {exc}"))
    return findings
