"""Hand-written `[hooks]` and `[photoprism]` keys that are wrong get one message each, naming
the key as written and the file it came from: a hook that is neither a command line nor a list
of strings was two lines about pydantic's union members ("hooks.on_success.str",
"hooks.on_success.list[str].1") said to come from "[default]", and a PhotoPrism URL was told to
look like Immich's."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.settings import SettingsError, load_settings


def _refusal(tmp_path: Path, text: str) -> list[str]:
    config = tmp_path / "lmd.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n{text}')
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    return str(caught.value).splitlines()[1:]


def test_a_hook_of_the_wrong_shape_is_one_line_from_the_file(tmp_path: Path) -> None:
    [line] = _refusal(tmp_path, '[hooks]\non_success = ["notify", 1]\n')
    assert line == (
        "  hooks.on_success = ['notify', 1]: a hook is a command line (a string) or a list of"
        f" strings (the program and its arguments) [file {tmp_path / 'lmd.toml'}]"
    )


def test_a_photoprism_url_is_not_told_to_look_like_immich(tmp_path: Path) -> None:
    [line] = _refusal(tmp_path, '[photoprism]\nurl = "ftp://nas"\ntoken = "t"\n')
    assert line.startswith("  photoprism.url = 'ftp://nas': expected an http:// or https:// URL")
    assert "immich" not in line
