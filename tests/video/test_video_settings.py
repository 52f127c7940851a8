"""`[video]` settings (issue 14 item 2): off by default, and a wrong value stops lmd at load
with the key, what was wrong and where it came from, like every other section."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("LMD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))


def test_off_by_default_and_read_from_the_file(tmp_path: Path) -> None:
    default = load_settings(None).video
    assert (default.enabled, default.which, default.restorer, default.params) == (
        False, "reselected", "guided-video", {})
    path = tmp_path / "lmd.toml"
    path.write_text('[video]\nenabled = true\nwhich = "all"\nparams = { tone_sigma = 3.0 }\n')
    video = load_settings(path).video
    assert (video.enabled, video.which, video.params) == (True, "all", {"tone_sigma": 3.0})


@pytest.mark.parametrize(
    ("toml", "fragments"),
    [
        ('which = "some"', ["video.which", "'reselected'", "'all'"]),
        ('restorer = "guided"', ["video.restorer", "'guided-video'"]),
        ("params = { tone_sigma = nan }", ["video.params", "tone_sigma"]),
        ('params = { key_preset = "slowest" }', ["video.params", "key_preset"]),
        ("params = { no_such = 1 }", ["video.params", "no_such"]),
        ("enabled = 3", ["video.enabled"]),
        # the named restorer's own schema checks the parameters
        ('restorer = "livemoments-video"\nparams = { guidance_strength = 2.0 }',
         ["video.params", "livemoments-video", "guidance_strength"]),
        ('restorer = "livemoments-video"\nparams = { tone_sigma = 3.0 }',
         ["video.params", "tone_sigma"]),
        ("frames = 2", ["video.frames"]),
    ],
)
def test_a_wrong_value_is_refused_with_key_and_source(
    tmp_path: Path, toml: str, fragments: list[str]
) -> None:
    path = tmp_path / "lmd.toml"
    path.write_text(f"[video]\n{toml}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert f"[file {path}]" in message


def test_the_environment_is_named_as_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMD_VIDEO__WHICH", "every")
    with pytest.raises(SettingsError) as info:
        load_settings(None)
    assert "video.which" in str(info.value) and "LMD_VIDEO__WHICH" in str(info.value)
