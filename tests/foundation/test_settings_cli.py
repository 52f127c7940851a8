"""Settings errors through the real `lmd` entry point: exit 1, the key, the value and where it
came from on stderr, never a traceback; `lmd doctor` reports them as its first finding. (The
ranges themselves are checked in-process in test_settings.py: an interpreter start each costs a
second.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.foundation.lmd_entry import flat, run_lmd


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ("", {"LMD_WORKER__WINDOWS": "01:00-07:00"},
         "worker.windows = '01:00-07:00'"),
        ("[restorer]\nparams = {tone_sigma = nan}\n", {},
         "restorer.params: guided: parameter tone_sigma must be a finite number, got nan"),
    ],
)
def test_config_show_names_key_value_and_source(tmp_path: Path, toml, env, expected) -> None:
    config = tmp_path / "lmd.toml"
    config.write_text(toml)
    done = run_lmd(tmp_path, "--config", str(config), "config", "show", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    err = flat(done.stderr)
    assert expected in err
    source = f"[env {next(iter(env))}]" if env else f"[file {config}]"
    assert source in err  # printed literally, not eaten as console markup


def test_doctor_reports_bad_restorer_params_first(tmp_path: Path) -> None:
    config = tmp_path / "lmd.toml"
    config.write_text("[restorer]\nparams = {tone_sigma = nan}\n")
    done = run_lmd(tmp_path, "--config", str(config), "doctor", "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    findings = json.loads(done.stdout)
    assert findings[0]["check"] == "config" and findings[0]["status"] == "fail"
    assert "tone_sigma must be a finite number" in findings[0]["detail"]
    assert f"[file {config}]" in findings[0]["detail"]



def test_doctor_piped_prints_a_bad_config_on_one_line(tmp_path: Path) -> None:
    """Piped, `lmd doctor` prints one tab-separated line per finding; a configuration error of
    several lines (one per bad key) showed there as a literal `\\n` between the keys."""
    config = tmp_path / "lmd.toml"
    config.write_text('[watcher]\nmode = "bogus"\n[worker]\nmax_attempts = -1\n')
    done = run_lmd(tmp_path, "--config", str(config), "doctor")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "\\n" not in done.stdout
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert all(len(row) == 4 for row in rows)
    (detail,) = [row[2] for row in rows if row[0] == "config"]
    assert "watcher.mode = 'bogus'" in detail and "worker.max_attempts = -1" in detail
