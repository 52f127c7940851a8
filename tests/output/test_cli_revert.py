"""`lmd revert ASSET|--all` end to end through typer (the command module on its own root)."""

from __future__ import annotations

import json
import os

import pytest

from daemon.output import commit_replace, digest_file, plan_output

from .helpers import gradient, revert_cli

main = revert_cli


@pytest.fixture
def replaced(tmp_path, apple_source, monkeypatch):
    for key in [k for k in os.environ if k.startswith("LMD_")]:
        monkeypatch.delenv(key)
    lib = tmp_path / "library"
    (lib / "2024").mkdir(parents=True)
    state = tmp_path / "state"
    config = tmp_path / "lmd.toml"
    config.write_text(f'library = "{lib}"\nstate_dir = "{state}"\n[output]\nmode = "replace"\n')
    targets = []
    for name in ("IMG_E0001.JPG", "IMG_E0002.HEIC"):
        src = apple_source(name)
        target = lib / "2024" / name
        os.replace(src, target)
        targets.append((target, digest_file(target)))

    class Out:
        mode, location, tree, suffix = "replace", "tree", None, "_lmd"
        backup_dir = state / "backups"

    for target, _ in targets:
        commit_replace(plan_output(target, lib, Out()), gradient(), target, {"restorer": "t"})
    return config, lib, targets


def test_revert_one_by_library_relative_path(replaced, capsys):
    config, _lib, targets = replaced
    (first, first_hash), (second, second_hash) = targets
    assert main(["--config", str(config), "revert", "2024/IMG_E0001.JPG"]) == 0
    assert digest_file(first) == first_hash
    assert digest_file(second) != second_hash
    assert "reverted" in capsys.readouterr().out


def test_revert_all_dry_run_then_real(replaced, capsys):
    config, _lib, targets = replaced
    assert main(["--config", str(config), "revert", "--all", "--dry-run", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {e["result"] for e in listed} == {"would revert"}
    assert len(listed) == 2
    assert main(["--config", str(config), "revert", "--all"]) == 0
    assert all(digest_file(t) == h for t, h in targets)
    assert main(["--config", str(config), "revert", "--all"]) == 1  # nothing left


def test_revert_refuses_edited_file(replaced, capsys):
    config, _lib, targets = replaced
    target, original_hash = targets[0]
    target.write_bytes(b"edited by hand")
    assert main(["--config", str(config), "revert", str(target)]) == 1
    assert target.read_bytes() == b"edited by hand"
    assert main(["--config", str(config), "revert", str(target), "--force"]) == 0
    assert digest_file(target) == original_hash


def test_revert_needs_asset_or_all(replaced):
    config, _lib, _targets = replaced
    assert main(["--config", str(config), "revert"]) == 2


def test_revert_all_goes_on_past_a_damaged_record(replaced, capsys):
    """One unreadable record (a truncated or hand-edited .lmd.json) is reported and the exit
    status says so, but every other original is still put back."""
    config, _lib, targets = replaced
    records = sorted((config.parent / "state" / "backups").rglob("*.lmd.json"))
    assert len(records) == 2
    records[0].write_text("{ truncated")
    assert main(["--config", str(config), "revert", "--all"]) == 1
    err = capsys.readouterr().err
    assert "unreadable replace record" in err
    restored = [digest_file(t) == h for t, h in targets]
    assert restored.count(True) == 1


def test_revert_json_on_a_terminal_is_plain_json(replaced, tmp_path):
    """`--json` is for programs even when a person runs it in a terminal: one JSON document,
    no colour or highlighting codes (it printed rich's highlighted JSON there)."""
    from tests.foundation.lmd_entry import lmd_command, lmd_env
    from tests.foundation.test_cli_conventions import run_in_terminal

    config, _lib, targets = replaced
    env = lmd_env(tmp_path, {"TERM": "xterm-256color"})
    env.pop("NO_COLOR", None)
    command = [*lmd_command(), "--config", str(config), "revert", "--all", "--dry-run", "--json"]
    printed = run_in_terminal(["sh", "-c", " ".join(command) + " 2>/dev/null"], env, tmp_path)
    assert "\x1b[" not in printed, printed
    assert {entry["target"] for entry in json.loads(printed)} == {str(t) for t, _ in targets}


def test_revert_takes_a_name_as_lmd_shows_it(tmp_path, apple_source, monkeypatch, capsys):
    """A still whose name is not UTF-8 is shown escaped (`caf\\xe9.JPG`); that text, copied from
    a listing, names it for `lmd revert` as the name's own bytes do."""
    for key in [k for k in os.environ if k.startswith("LMD_")]:
        monkeypatch.delenv(key)
    lib = tmp_path / "library"
    (lib / "2024").mkdir(parents=True)
    config = tmp_path / "lmd.toml"
    config.write_text(f'library = "{lib}"\nstate_dir = "{tmp_path / "state"}"\n'
                      '[output]\nmode = "replace"\n')
    target = lib / "2024" / os.fsdecode(b"caf\xe9.JPG")
    os.replace(apple_source("IMG_E0001.JPG"), target)
    original = digest_file(target)

    class Out:
        mode, location, tree, suffix = "replace", "tree", None, "_lmd"
        backup_dir = tmp_path / "state" / "backups"

    commit_replace(plan_output(target, lib, Out()), gradient(), target, {"restorer": "t"})
    assert digest_file(target) != original
    assert main(["--config", str(config), "revert", "2024/caf\\xe9.JPG"]) == 0
    assert digest_file(target) == original
    assert "caf\\xe9.JPG" in capsys.readouterr().out
