"""What a command-line user expects of `lmd` (issue 13 items 1, 5, 7): `--version`, `-h`
everywhere with examples, documented exit codes, usage errors instead of tracebacks, an
internal-error line instead of a raw traceback, and NO_COLOR on a terminal. (Job IDs beyond the
store's integers: tests/store/test_store_cli_entry.py.)

Most checks run the real `lmd` script in a subprocess; the walk over every command calls the
same `main` in-process, since one interpreter start per command would cost a second each.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from importlib.metadata import version
from pathlib import Path

import pytest
import typer.main

from daemon.cli import app, main
from tests.foundation.lmd_entry import REPO, flat, lmd_command, lmd_env, run_lmd


def command_paths() -> list[str]:
    """Every command and group under `lmd`, as typed ("jobs list")."""
    paths: list[str] = []

    def walk(command, prefix: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            path = f"{prefix} {name}".strip()
            paths.append(path)
            walk(sub, path)

    walk(typer.main.get_command(app), "")
    return paths


def test_version_and_short_help(tmp_path: Path) -> None:
    done = run_lmd(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"lmd {version('lmd')}"

    done = run_lmd(tmp_path, "-h")
    assert done.returncode == 0, done.stderr
    text = flat(done.stdout)
    assert "Exit codes: 0 done, 1 failed" in text
    assert "2 usage error" in text and "70 internal error" in text
    assert text.index("Examples:") > text.index("Commands")
    assert "lmd demo" in text[text.index("Examples:"):]

    done = run_lmd(tmp_path, "jobs", "show", "-h")
    assert done.returncode == 0, done.stderr
    assert "lmd jobs show 42" in flat(done.stdout).split("Examples:")[-1]


def test_every_command_takes_h_and_ends_with_examples(capsys) -> None:
    paths = command_paths()
    assert {"scan", "jobs list", "config show", "model check"} <= set(paths)
    for path in paths:
        assert main([*path.split(), "-h"]) == 0, path
        out = flat(capsys.readouterr().out)
        assert f"Usage: lmd {path}" in out, path
        examples = out.split("Examples:")
        assert len(examples) == 2, f"`lmd {path} -h` has no examples"
        assert examples[1].lstrip().startswith("lmd "), path


def test_readme_documents_the_exit_codes() -> None:
    text = (REPO / "README.md").read_text()
    for code, meaning in (("0", "done"), ("1", "failed"), ("2", "usage error"),
                          ("70", "internal error")):
        assert re.search(rf"^\| {code} \| {meaning}", text, re.MULTILINE), code


def test_a_bad_log_level_is_a_usage_error(tmp_path: Path) -> None:
    done = run_lmd(tmp_path, "--log-level", "bogus", "scan")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    err = flat(done.stderr)
    assert "--log-level" in err and "'bogus'" in err
    assert all(f"'{level}'" in err for level in ("debug", "info", "warning", "error"))


def test_scan_dry_run_without_library_says_so(tmp_path: Path) -> None:
    done = run_lmd(tmp_path, "scan", "--dry-run")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "no PATH given and no `library` configured" in flat(done.stderr)


BOOM = (
    "import sys, daemon.cli as cli\n"
    "@cli.app.command('boom')\n"
    "def boom() -> None:\n"
    "    raise RuntimeError('kaput [file x]')\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_exception_is_one_line_and_exit_70(tmp_path: Path, debug: bool) -> None:
    """`main`, the console script's function, with a command that raises what nothing
    expects; the traceback appears only when asked for."""
    args = ["--log-level", "debug", "boom"] if debug else ["boom"]
    done = subprocess.run(
        [sys.executable, "-c", BOOM, *args], cwd=tmp_path, env=lmd_env(tmp_path),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 70, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == ("lmd: internal error: RuntimeError: kaput [file x] "
                    "(run with --log-level debug for the details)")
    assert ("Traceback" in done.stderr) is debug


# --- NO_COLOR on a terminal --------------------------------------------------------------


def run_in_terminal(command: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run `command` with a pseudo-terminal as stdin, stdout and stderr; everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        proc.kill() if proc.poll() is None else None
        proc.wait(timeout=30)
    return b"".join(chunks).decode(errors="replace")


_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_COLOUR_CODES = {*range(30, 39), *range(40, 49), *range(90, 98), *range(100, 108)}


def colour_codes(text: str) -> set[int]:
    """SGR parameters that set a colour (bold, dim and reset are not colour)."""
    found = set()
    for match in _SGR.finditer(text):
        found |= {int(p) for p in match.group(1).split(";") if p} & _COLOUR_CODES
    return found


def test_no_color_is_honoured_on_a_terminal(tmp_path: Path) -> None:
    """A log line (the database migration), an error line and a usage error, on a TTY."""
    lmd = " ".join(lmd_command())
    # pause writes (it creates and migrates the database); jobs show only reads
    script = f"{lmd} pause; {lmd} jobs show 5; {lmd} --log-level bogus status"
    env = lmd_env(tmp_path, {"TERM": "xterm-256color"})
    env.pop("NO_COLOR", None)
    coloured = run_in_terminal(["sh", "-c", script], env, tmp_path)
    assert "database migrated" in coloured and "job 5 does not exist" in _SGR.sub("", coloured)
    assert colour_codes(coloured), "the control run must show colour, or the test proves nothing"

    fresh = {**env, "NO_COLOR": "1", "LMD_STATE_DIR": str(tmp_path / "fresh")}  # migrates again
    plain = run_in_terminal(["sh", "-c", script], fresh, tmp_path)
    assert "database migrated" in plain and "job 5 does not exist" in _SGR.sub("", plain)
    assert "Invalid value for '--log-level'" in flat(plain)
    assert colour_codes(plain) == set(), plain
