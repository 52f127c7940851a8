"""States, identities and filesystem detection: the pure parts of the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon import fsinfo
from daemon.store import TRANSITIONS, InvalidTransition, JobState, check_transition, job_identity
from daemon.store.states import (
    ACTIVE_STATES,
    COMMAND_STATES,
    COMMAND_TARGETS,
    FINISHED_STATES,
    Command,
    describe_states,
)

SIGS = {
    "reference": {"size": 10, "mtime_ns": 5, "content_hash": "r"},
    "video": {"size": 20, "mtime_ns": 5, "content_hash": "v"},
}


def test_every_state_has_transitions_and_required_states_exist() -> None:
    required = {"pending", "running", "deferred", "succeeded", "failed", "cancelled", "skipped"}
    assert required <= {s.value for s in JobState}
    assert set(TRANSITIONS) == set(JobState)
    assert set(JobState) == ACTIVE_STATES | FINISHED_STATES
    for targets in TRANSITIONS.values():
        assert targets <= set(JobState)


def test_every_command_makes_a_listed_transition() -> None:
    """The command table sits beside the transition table and never contradicts it."""
    assert set(COMMAND_STATES) == set(COMMAND_TARGETS) == set(Command)
    for command, states in COMMAND_STATES.items():
        for state in states:
            assert COMMAND_TARGETS[command] in TRANSITIONS[state], (command, state)
    assert describe_states(COMMAND_STATES[Command.RETRY]) == "failed, cancelled or skipped"


def test_check_transition() -> None:
    check_transition("pending", "running")
    check_transition(JobState.RUNNING, JobState.DEFERRED)
    check_transition(JobState.FAILED, JobState.PENDING)
    with pytest.raises(InvalidTransition, match="a succeeded job cannot become running"):
        check_transition(JobState.SUCCEEDED, JobState.RUNNING)
    with pytest.raises(InvalidTransition):
        check_transition(JobState.PENDING, JobState.SUCCEEDED)  # never without running
    with pytest.raises(ValueError):
        check_transition("pending", "bogus")


def test_identity_is_stable_and_ignores_mtime_and_key_order() -> None:
    base = job_identity(SIGS, 1.25, "guided", "w", {"a": 1, "b": [1, 2]})
    assert len(base) == 64 and int(base, 16) >= 0
    reordered = {"video": dict(SIGS["video"]), "reference": dict(SIGS["reference"])}
    reordered["video"]["mtime_ns"] = 999  # a touch or copy changes no content
    assert job_identity(reordered, 1.25, "guided", "w", {"b": [1, 2], "a": 1}) == base
    assert job_identity(SIGS, 1.2500000001, "guided", "w", {"a": 1, "b": [1, 2]}) == base


@pytest.mark.parametrize(
    "change",
    [
        {"t1": 1.26},
        {"restorer": "livemoments"},
        {"weights": "w2"},
        {"params": {"a": 2, "b": [1, 2]}},
        {"sigs": {**SIGS, "video": {"size": 20, "mtime_ns": 5, "content_hash": "v2"}}},
        {"t1": None},
    ],
)
def test_identity_changes_with_each_input(change: dict) -> None:
    args = {"sigs": SIGS, "t1": 1.25, "restorer": "guided", "weights": "w",
            "params": {"a": 1, "b": [1, 2]}}
    def ident(a: dict) -> str:
        return job_identity(a["sigs"], a["t1"], a["restorer"], a["weights"], a["params"])
    assert ident({**args, **change}) != ident(args)


MOUNTINFO = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "30 22 0:40 / /mnt/nas rw - nfs4 nas:/volume1 rw,vers=4.1\n"
    "31 22 0:41 / /mnt/smb\\040share rw - cifs //nas/photos rw\n"
    "32 22 0:42 / /mnt/cloud rw - fuse.rclone remote: rw\n"
    "33 30 8:2 / /mnt/nas/local rw - ext4 /dev/sdb1 rw\n"
    "garbage line\n"
)


@pytest.mark.parametrize(
    ("path", "fstype", "network"),
    [
        ("/home/me/photos", "ext4", False),
        ("/mnt/nas/photos/IMG_1.HEIC", "nfs4", True),
        ("/mnt/nasty", "ext4", False),  # a prefix of the name is not a parent
        ("/mnt/smb share/x", "cifs", True),
        ("/mnt/cloud/a", "fuse.rclone", True),
        ("/mnt/nas/local/db.sqlite3", "ext4", False),  # the nested local mount wins
    ],
)
def test_filesystem_type_from_mountinfo(
    tmp_path: Path, path: str, fstype: str, network: bool
) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert fsinfo.filesystem_type(path, info) == fstype
    assert fsinfo.is_network_fs(path, info) is network


def test_real_mount_table(tmp_path: Path) -> None:
    assert fsinfo.filesystem_type(tmp_path) is not None
    assert fsinfo.is_network_fs("/proc") is False
    assert fsinfo.filesystem_type("/proc/self") == "proc"
