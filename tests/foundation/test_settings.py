"""Settings: TOML + environment, readable errors, and where every value came from."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from datetime import time
from pathlib import Path

import pytest

from daemon.settings import (
    Settings,
    SettingsError,
    describe_sources,
    load_settings,
    parse_window,
)
from tests.foundation.lmd_entry import run_lmd

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("LMD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lmd.toml"
    path.write_text(text)
    return path


def assert_refused(tmp_path: Path, toml: str, fragment: str) -> None:
    """Loading `toml` fails with a message holding `fragment` and naming the file."""
    path = write(tmp_path, toml)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert fragment in str(info.value)
    assert f"[file {path}]" in str(info.value)


def test_documented_default_file_loads_and_equals_the_code_defaults(tmp_path: Path) -> None:
    documented = load_settings(REPO / "config" / "lmd.toml", state_dir=tmp_path)
    built_in = Settings(state_dir=tmp_path)
    assert documented.model_dump() == built_in.model_dump()


def test_every_setting_is_documented_with_a_comment() -> None:
    text = (REPO / "config" / "lmd.toml").read_text()
    lines = text.splitlines()
    for key, _value, _source in describe_sources(Settings(), None):
        leaf = key.split(".")[-1]
        index = next(
            (i for i, line in enumerate(lines) if line.lstrip("# ").startswith(f"{leaf} =")),
            None,
        )
        assert index is not None, f"{key} is not in config/lmd.toml"
        assert lines[index - 1].startswith("#"), f"{key} has no comment above it"


def test_file_then_env_precedence_and_sources(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path, '[worker]\nlease_seconds = 200\nmax_attempts = 7\n')
    monkeypatch.setenv("LMD_WORKER__MAX_ATTEMPTS", "9")
    settings = load_settings(path, state_dir=tmp_path)
    assert settings.worker.lease_seconds == 200
    assert settings.worker.max_attempts == 9
    sources = {key: source for key, _v, source in describe_sources(settings, path)}
    assert sources["worker.lease_seconds"] == f"file {path}"
    assert sources["worker.max_attempts"] == "env LMD_WORKER__MAX_ATTEMPTS"
    assert sources["worker.heartbeat_seconds"] == "default"


def test_lmd_config_env_selects_the_file(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path, 'library = "/photos"\n')
    monkeypatch.setenv("LMD_CONFIG", str(path))
    assert load_settings().library == Path("/photos")


def test_paths_derive_from_state_dir(tmp_path: Path) -> None:
    settings = load_settings(None, state_dir=tmp_path / "state")
    assert settings.database_url == f"sqlite:///{tmp_path / 'state' / 'lmd.sqlite3'}"
    assert settings.output.tree == tmp_path / "state" / "restored"
    assert settings.output.backup_dir == tmp_path / "state" / "backups"


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ('[worker]\nlease_seconds = "soon"\n', "worker.lease_seconds = 'soon'"),
        ('[worker]\nwindows = ["1am-7am"]\n', "worker.windows"),
        ('[output]\nmode = "overwrite"\n', "output.mode = 'overwrite'"),
        ('[scan]\nschedule = "every night"\n', "crontab"),
        ('[restorer]\nname = "livemoments"\n', "needs restorer.checkpoint"),
        ('[worker]\nheartbeat_seconds = 300\n', "shorter than worker.lease_seconds"),
        ('colour = "blue"\n', "colour = 'blue': unknown setting"),
        ('database_url = "mysql://x"\n', "sqlite:/// or postgresql://"),
        ('[scan]\nignore = ["@eaDir", 7]\n', "scan.ignore.1 = 7"),
    ],
)
def test_bad_values_name_key_value_and_expectation(tmp_path: Path, toml: str, fragment: str):
    assert_refused(tmp_path, toml, fragment)


def test_invalid_toml_and_missing_file_are_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(write(tmp_path, "[worker\n"))
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_windows_parse_and_wrap() -> None:
    assert parse_window("01:00-07:30") == (time(1, 0), time(7, 30))
    assert parse_window("22:00-24:00") == (time(22, 0), time(0, 0))
    with pytest.raises(ValueError):
        parse_window("25:00-01:00")


def test_cli_bad_config_exits_1_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, '[worker]\nmax_attempts = 0\n')
    result = run_lmd(tmp_path, "--config", str(path), "config", "show")
    assert result.returncode == 1
    assert "worker.max_attempts = 0" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_config_show_json_reports_sources(tmp_path: Path) -> None:
    path = write(tmp_path, f'state_dir = "{tmp_path}"\n[output]\nmode = "replace"\n')
    # the file names the state dir here, so the helper's LMD_STATE_DIR must not override it
    result = run_lmd(
        tmp_path, "--config", str(path), "config", "show", "--json", env={"LMD_STATE_DIR": None}
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["output.mode"] == {"value": "replace", "source": f"file {path}"}
    assert payload["output.location"]["source"] == "default"
    assert tomllib.loads(path.read_text())["state_dir"] == payload["state_dir"]["value"]


def test_cli_usage_error_exits_2(tmp_path: Path) -> None:
    assert run_lmd(tmp_path, "config", "show", "--no-such-flag").returncode == 2


# --- values that used to end in tracebacks or in failing jobs (issue 11, item 4) -------------


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[worker]\nlease_seconds = inf\n", "worker.lease_seconds = inf: Input should be a finite"),
        ("[worker]\nlease_seconds = 1e12\n", "worker.lease_seconds = 1000000000000.0"),
        ("[worker]\ndefer_seconds = nan\n", "worker.defer_seconds = nan"),
        ("[worker]\npoll_seconds = 1e300\n", "worker.poll_seconds"),
        ("[watcher]\npolling_interval = -inf\n", "watcher.polling_interval"),
        ("[restorer]\nidle_unload_seconds = inf\n", "restorer.idle_unload_seconds"),
        ("[worker]\nmax_attempts = 100000000000000000000\n", "worker.max_attempts"),
        ("[scan]\nmax_file_bytes = 100000000000000000000\n", "scan.max_file_bytes"),
        (f'[worker]\nid = "{"w" * 256}"\n', "worker.id"),
        ('state_dir = "/tmp/a\\u0000b"\n', "state_dir = '/tmp/a\\x00b': a path cannot contain"),
        ("[restorer]\nparams = {tone_sigma = nan}\n", "tone_sigma must be a finite number"),
        ("[restorer]\nparams = {tone_sigma = 1e300}\n", "tone_sigma must be within"),
        ("[restorer]\nparams = {tile = 1e30}\n", "parameter tile must be within"),
        ('[restorer]\nparams = {flow = "farneback"}\n', "flow must be one of dis, raft"),
        ("[restorer]\nparams = {bogus = 1}\n", "unknown parameters bogus"),
        ("[restorer]\nparams = {tile = {a = 1}}\n", "parameter tile must be a number"),
        ('[restorer]\nname = "livemoments"\ncheckpoint = "/m"\nparams = {tile = 100}\n',
         "livemoments: tile must be a positive multiple of 16, got 100"),
        ('[restorer]\nname = "livemoments"\ncheckpoint = "/m"\nparams = {tile_size = 512}\n',
         "livemoments: unknown parameter 'tile_size'"),
    ],
)
def test_out_of_range_values_are_refused_at_load(tmp_path: Path, toml: str, fragment: str):
    assert_refused(tmp_path, toml, fragment)


def test_values_at_the_edges_of_the_ranges_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[worker]\nlease_seconds = 86400\nmax_attempts = 1000\ndefer_seconds = 604800\n"
        "[restorer]\nparams = {tile = 512, overlap = 64, tone_sigma = 0}\n",
    )
    settings = load_settings(path, state_dir=tmp_path)
    assert settings.worker.max_attempts == 1000
    assert settings.restorer.params == {"tile": 512, "overlap": 64, "tone_sigma": 0}


def test_a_list_in_the_environment_that_is_not_json_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("LMD_WORKER__WINDOWS", "01:00-07:00")
    with pytest.raises(SettingsError) as info:
        load_settings(None)
    message = str(info.value)
    assert "worker.windows = '01:00-07:00'" in message
    assert """LMD_WORKER__WINDOWS='["01:00-07:00"]'""" in message
    assert "[env LMD_WORKER__WINDOWS]" in message


def test_a_bad_item_of_a_list_from_the_environment_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("LMD_WORKER__WINDOWS", '["25:00-01:00"]')
    with pytest.raises(SettingsError, match=r"\[env LMD_WORKER__WINDOWS\]"):
        load_settings(None)


def test_a_flag_is_named_as_the_source(tmp_path: Path) -> None:
    flags = {"logging.level": "--log-level"}
    settings = load_settings(None, flags=flags, state_dir=tmp_path, logging={"level": "debug"})
    sources = {key: source for key, _v, source in describe_sources(settings, None, flags)}
    assert sources["logging.level"] == "flag --log-level"
    assert sources["logging.format"] == "default"
    with pytest.raises(SettingsError, match=r"logging.level = 'loud'.*\[flag --log-level\]"):
        load_settings(None, flags=flags, logging={"level": "loud"})


def test_restorer_schemas_are_asked_without_importing_torch() -> None:
    """Settings load in every command; the guided schema must not pull in torch (seconds)."""
    code = (
        "import sys; from core.registry import validate_params as v;"
        "print(v('guided', {'tile': 64, 'tone_sigma': float('nan')}));"
        "print(v('guided', {'tile': 256})); print(v('livemoments', {'tile': 512}));"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    nan_problems, fine, livemoments_fine, torch_loaded = done.stdout.splitlines()
    assert "tone_sigma must be a finite number" in nan_problems
    assert fine == livemoments_fine == "[]" and torch_loaded == "False"
