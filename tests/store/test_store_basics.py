"""States, identities and filesystem detection: the pure parts of the store."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from daemon import fsinfo
from daemon.store import TRANSITIONS, InvalidTransition, JobState, check_transition, job_identity
from daemon.store.states import (
    ACTIVE_STATES,
    CLAIMABLE_STATES,
    COMMAND_STATES,
    COMMAND_TARGETS,
    FINISHED_STATES,
    Command,
    can_transition,
    describe_states,
)

SIGS = {
    "reference": {"size": 10, "mtime_ns": 5, "content_hash": "r"},
    "video": {"size": 20, "mtime_ns": 5, "content_hash": "v"},
}


def _reachable(start: JobState) -> set[JobState]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_lifecycle_has_no_dead_ends_and_results_need_a_claim() -> None:
    """What the store relies on: every state can be reached from a new (pending) job and can
    lead back to pending (a person can always re-queue); a job succeeds or fails only from
    running, and runs only when claimed from a claimable state; active and finished states
    split the enum."""
    required = {"pending", "running", "deferred", "succeeded", "failed", "cancelled", "skipped"}
    assert {s.value for s in JobState} == required
    assert ACTIVE_STATES.isdisjoint(FINISHED_STATES)
    assert set(JobState) == ACTIVE_STATES | FINISHED_STATES
    for state in JobState:
        assert state in _reachable(JobState.PENDING), state
        assert JobState.PENDING in _reachable(state) - {state} or state is JobState.PENDING
    entering = {new: {old for old in JobState if new in TRANSITIONS[old]} for new in JobState}
    assert entering[JobState.SUCCEEDED] == {JobState.RUNNING}
    assert entering[JobState.FAILED] == {JobState.RUNNING}
    assert entering[JobState.RUNNING] == CLAIMABLE_STATES


def test_check_transition_answers_from_the_table_for_every_pair() -> None:
    for old in JobState:
        for new in JobState:
            allowed = new in TRANSITIONS[old]
            assert can_transition(old, new) is allowed
            if allowed:
                check_transition(old.value, new.value)
            else:
                with pytest.raises(InvalidTransition):
                    check_transition(old, new)


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


@pytest.mark.skipif(shutil.which("findmnt") is None, reason="needs util-linux findmnt")
def test_real_mount_table_agrees_with_findmnt(tmp_path: Path) -> None:
    """On this machine's own mount table, the filesystem of a path is the one util-linux's
    findmnt reports (both read /proc/self/mountinfo, independently)."""
    for path in (tmp_path, Path("/proc/self"), Path("/"), Path(__file__)):
        found = subprocess.run(
            ["findmnt", "-n", "-o", "FSTYPE", "-T", str(path)],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()
        assert fsinfo.filesystem_type(path) == found, path
        assert fsinfo.is_network_fs(path) is fsinfo.is_network_fstype(found)
    assert fsinfo.filesystem_type("/proc/self") == "proc"
