"""The shipped unit files pass `systemd-analyze verify`, and sysusers/tmpfiles apply cleanly.

The units name /opt/lmd/.venv/bin/lmd, which does not exist on a test machine, so the test copies
them into a temporary directory with ExecStart pointing at a real executable; everything else is
verified as shipped. A deliberately misspelt directive must make verify fail, which proves the
check is not a no-op.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
SHIPPED_EXEC = "/opt/lmd/.venv/bin/lmd"
ANALYZE = shutil.which("systemd-analyze")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def staged(tmp_path: Path, edit: dict[str, tuple[str, str]] | None = None) -> Path:
    fake = tmp_path / "bin" / "lmd"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    out = tmp_path / "units"
    out.mkdir()
    for src in [*UNITS.glob("*.service"), *UNITS.glob("*.timer")]:
        text = src.read_text().replace(SHIPPED_EXEC, str(fake))
        if edit and src.name in edit:
            old, new = edit[src.name]
            assert old in text
            text = text.replace(old, new)
        (out / src.name).write_text(text)
    return out


def verify(directory: Path) -> subprocess.CompletedProcess[str]:
    if ANALYZE is None:
        pytest.skip("systemd-analyze not installed")
    names = sorted(p.name for p in directory.iterdir())
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", "--recursive-errors=no", *[f"./{n}" for n in names]],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_units_verify_clean(tmp_path):
    done = verify(staged(tmp_path))
    ours = [line for line in done.stderr.splitlines() if "lmd" in line]
    assert done.returncode == 0, done.stderr
    assert ours == [], done.stderr


def test_verify_catches_a_broken_directive(tmp_path):
    broken = staged(tmp_path, {"lmd.service": ("NoNewPrivileges=yes", "NoNewPrivilegs=yes")})
    done = verify(broken)
    assert done.returncode != 0
    assert "NoNewPrivilegs" in done.stderr


def test_service_contract():
    svc = unit("lmd.service")
    s, u = svc["Service"], svc["Unit"]
    assert s["Type"] == "notify"
    assert s["ExecStart"] == f"{SHIPPED_EXEC} run"
    assert s["User"] == "lmd"
    assert "DynamicUser" not in s
    assert s["StateDirectory"] == "lmd"
    assert s["ProtectSystem"] == "strict"
    assert s["NoNewPrivileges"] == "yes"
    assert s["KillMode"] == "mixed"
    assert "PrivateDevices" not in s  # would hide the GPU
    assert "ReadWritePaths" not in s  # only added by the admin for replace/beside modes
    assert u["RequiresMountsFor"]
    assert "WatchdogSec" in s
    timer = unit("lmd-rescan.timer")["Timer"]
    assert timer["Persistent"] == "true"
    rescan = unit("lmd-rescan.service")["Service"]
    assert rescan["Type"] == "oneshot"
    assert rescan["ExecStart"] == f"{SHIPPED_EXEC} scan"


def test_sysusers_and_tmpfiles_apply_to_a_temp_root(tmp_path):
    sysusers, tmpfiles = shutil.which("systemd-sysusers"), shutil.which("systemd-tmpfiles")
    if sysusers is None or tmpfiles is None:
        pytest.skip("systemd-sysusers/systemd-tmpfiles not installed")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(
        [sysusers, f"--root={root}", str(UNITS / "lmd.sysusers.conf")],
        check=True,
        capture_output=True,
    )
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (root / "etc/passwd").read_text().splitlines()
    }
    assert passwd["lmd"][5] == "/var/lib/lmd"
    groups = {
        line.split(":")[0]: line.split(":")[3]
        for line in (root / "etc/group").read_text().splitlines()
    }
    assert "lmd" in groups["video"].split(",")
    assert "lmd" in groups["render"].split(",")
    done = subprocess.run(
        [tmpfiles, f"--root={root}", "--create", str(UNITS / "lmd.tmpfiles.conf")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    backups = root / "var/lib/lmd/backups"
    assert backups.is_dir()
    assert backups.stat().st_mode & 0o777 == 0o700
    assert (root / "var/lib/lmd/restored").is_dir()
    assert backups.stat().st_uid == int(passwd["lmd"][2])
