"""Run the real `lmd` console script, as a person types it, in a subprocess.

The script is the one pip installed next to this interpreter (`.venv/bin/lmd`, an editable
install of this tree); a checkout without it falls back to `python -m daemon.cli`, which calls
the same `main`. The environment is cleaned of LMD_ variables so the caller says exactly which
settings apply, and the state directory always points into the test's temporary directory (as
root, lmd's default is /var/lib/lmd).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LMD = Path(sys.executable).with_name("lmd")


def lmd_command() -> list[str]:
    return [str(LMD)] if LMD.is_file() else [sys.executable, "-m", "daemon.cli"]


def lmd_env(tmp_path: Path, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The clean environment with `extra` added; a None in `extra` removes that variable (e.g.
    LMD_STATE_DIR, for a test whose config file must be the one that names the state dir)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LMD_")}
    env.pop("NO_COLOR", None)
    env.update(
        LMD_STATE_DIR=str(tmp_path / "state"),
        XDG_STATE_HOME=str(tmp_path / "xdg"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),  # no user's ~/.config/lmd/lmd.toml
        PYTHONPATH=str(REPO),
    )
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_lmd(
    tmp_path: Path,
    *args: str,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`lmd ARGS...` in `tmp_path` with `env` added to a clean environment (see `lmd_env`)."""
    return subprocess.run(
        [*lmd_command(), *args], cwd=tmp_path, env=lmd_env(tmp_path, env),
        capture_output=True, text=True, timeout=timeout,
    )


def flat(text: str) -> str:
    """Rich wraps long lines at the console width; compare messages with whitespace folded."""
    return " ".join(text.split())
