"""Post-job hooks with real subprocesses: what the hook receives, timeouts that kill the whole
process group, failures that are logged, and a runner that never blocks its caller."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from daemon.publish import hooks
from daemon.publish.hooks import OUTPUT_TAIL_BYTES, HookRunner, run_hook, run_hooks
from daemon.publish.outcome import JobOutcome
from daemon.publish.settings import HooksSettings

PY = sys.executable


def outcome(
    job_id: int = 7, event: str = "success", asset: str = "2026/IMG_0001.HEIC"
) -> JobOutcome:
    return JobOutcome(  # type: ignore[arg-type]
        job_id=job_id,
        asset=asset,
        original=Path("/library/2026/IMG_0001 ü.HEIC"),
        output=None if event == "failure" else Path("/out/2026/IMG_0001.HEIC"),
        mode="sidecar-tree",
        event=event,
        error="decode failed" if event == "failure" else None,
        restorer="guided",
    )


def recorder(dest: Path) -> list[str]:
    """A hook (argv, no shell) that saves its stdin and its LMD_* variables to `dest`."""
    code = (
        "import json, os, sys; "
        "doc = json.load(sys.stdin); "
        "env = {k: v for k, v in os.environ.items() if k.startswith('LMD_')}; "
        f"open({str(dest)!r}, 'w').write(json.dumps({{'doc': doc, 'env': env}}))"
    )
    return [PY, "-c", code]


def wait_for(condition, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll `condition` until true or the (generous) deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of an exited shell is reparented and reaped by init; a zombie counts dead.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_hook_gets_the_job_on_stdin_and_in_the_environment(tmp_path: Path) -> None:
    dest = tmp_path / "seen.json"
    job = outcome()
    result = run_hook(recorder(dest), job, timeout=30)
    assert result.ok, result
    seen = json.loads(dest.read_text())
    assert seen["doc"] == job.to_document()
    assert seen["doc"]["original"] == "/library/2026/IMG_0001 ü.HEIC"
    assert seen["doc"]["job_id"] == 7 and seen["doc"]["mode"] == "sidecar-tree"
    assert seen["env"] == {
        "LMD_EVENT": "success",
        "LMD_JOB_ID": "7",
        "LMD_ASSET": "2026/IMG_0001.HEIC",
        "LMD_ORIGINAL": "/library/2026/IMG_0001 ü.HEIC",
        "LMD_OUTPUT": "/out/2026/IMG_0001.HEIC",
        "LMD_MODE": "sidecar-tree",
        "LMD_ERROR": "",
        "LMD_RESTORER": "guided",
        "LMD_KIND": "still",
    }


def test_a_string_is_a_shell_command_and_names_cannot_inject(tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    evil = outcome(asset=f"$(touch {tmp_path}/pwned); `touch {tmp_path}/pwned2`")
    command = f'printf "%s|%s" "$LMD_EVENT" "$LMD_ASSET" > {shlex.quote(str(dest))}'
    assert run_hook(command, evil, timeout=30).ok
    assert dest.read_text() == f"success|{evil.asset}"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_failure_runs_on_failure_only(tmp_path: Path) -> None:
    ok_file, fail_file = tmp_path / "ok.json", tmp_path / "fail.json"
    settings = HooksSettings(on_success=recorder(ok_file), on_failure=recorder(fail_file))
    result = run_hooks(settings, outcome(event="failure"))
    assert result is not None and result.ok
    assert not ok_file.exists()
    doc = json.loads(fail_file.read_text())["doc"]
    assert doc["event"] == "failure" and doc["error"] == "decode failed" and doc["output"] is None
    assert run_hooks(HooksSettings(on_failure=recorder(fail_file)), outcome()) is None


def test_a_failing_hook_is_logged_with_its_output() -> None:
    settings = HooksSettings(on_success="echo 'no such album' >&2; exit 3")
    with capture_logs() as logs:
        result = run_hooks(settings, outcome())
    assert result is not None and result.returncode == 3 and not result.ok
    entry = next(e for e in logs if e["event"] == "hook failed")
    assert entry["log_level"] == "error" and entry["returncode"] == 3 and entry["job_id"] == 7
    assert "no such album" in entry["output"]


def test_a_missing_command_is_logged_not_raised(tmp_path: Path) -> None:
    settings = HooksSettings(on_success=[str(tmp_path / "not-there")])
    with capture_logs() as logs:
        result = run_hooks(settings, outcome())
    assert result is not None and result.error and not result.ok
    assert any(e["event"] == "hook could not start" for e in logs)


def test_a_hanging_hook_and_its_children_are_killed_at_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = 0.5
    monkeypatch.setattr(hooks, "KILL_GRACE_SECONDS", grace)
    pids = tmp_path / "pids"
    # The shell starts a child that ignores SIGTERM, records both pids, then hangs.
    command = (
        f"sh -c 'trap \"\" TERM; sleep 300' & echo $! > {shlex.quote(str(pids))}.tmp; "
        f"echo $$ >> {shlex.quote(str(pids))}.tmp; mv {shlex.quote(str(pids))}.tmp "
        f"{shlex.quote(str(pids))}; sleep 300"
    )
    timeout = 0.5
    started = time.monotonic()
    with capture_logs() as logs:
        result = run_hooks(HooksSettings(on_success=command, timeout_seconds=timeout), outcome())
    elapsed = time.monotonic() - started
    assert result is not None and result.timed_out and result.returncode is None
    # timeout + SIGTERM grace (the child ignores TERM, so SIGKILL ends it) + reading the
    # output tail (at most 1 s) + process start-up on a loaded 2-core machine.
    assert elapsed < timeout + grace + 1.0 + 5.0
    assert any(e["event"] == "hook timed out and was killed" for e in logs)
    assert wait_for(pids.exists)
    for pid in map(int, pids.read_text().split()):
        assert wait_for(lambda pid=pid: not alive(pid)), f"process {pid} survived"


def test_a_hook_that_ignores_stdin_and_floods_its_output_is_bounded() -> None:
    code = "import sys; sys.stdout.write('x' * (8 << 20) + 'END')"
    result = run_hook([PY, "-c", code], outcome(), timeout=60)
    assert result.ok
    assert len(result.output) <= OUTPUT_TAIL_BYTES and result.output.endswith("xEND")


def test_runner_never_blocks_and_keeps_going_after_a_hanging_hook(tmp_path: Path) -> None:
    marker = tmp_path / "job-{}.done"
    command = (
        'if [ "$LMD_JOB_ID" = 1 ]; then sleep 300; fi; '
        f'touch {shlex.quote(str(tmp_path))}/job-"$LMD_JOB_ID".done'
    )
    runner = HookRunner(HooksSettings(on_success=command, timeout_seconds=2.0))
    started = time.monotonic()
    for job_id in (1, 2, 3):
        runner.submit(outcome(job_id))
    # Three submits behind a hook that sleeps 300 s: a submit that waited for it would have
    # taken at least its 2 s timeout; queueing takes microseconds (2 s leaves room for load)
    assert time.monotonic() - started < 2.0
    assert runner.wait_idle(timeout=30)
    assert Path(str(marker).format(2)).exists() and Path(str(marker).format(3)).exists()
    assert not Path(str(marker).format(1)).exists()
    runner.close()


def test_runner_drops_the_oldest_past_max_pending_and_reports_it(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    command = f"while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.05; done; echo $LMD_JOB_ID"
    runner = HookRunner(HooksSettings(on_success=command, timeout_seconds=60, max_pending=2))
    with capture_logs() as logs:
        runner.submit(outcome(1))
        assert wait_for(lambda: not runner._pending)  # job 1 is running, holding the thread
        for job_id in (2, 3, 4):
            runner.submit(outcome(job_id))
        gate.touch()
        assert runner.wait_idle(timeout=30)
    dropped = [e["job_id"] for e in logs if e["event"].startswith("hook dropped")]
    finished = [e["job_id"] for e in logs if e["event"] == "hook finished"]
    assert dropped == [2] and finished == [1, 3, 4]
    runner.close()


def test_close_kills_the_running_hook_and_reports_those_left_unrun(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = f"echo $$ > {shlex.quote(str(pid_file))}.tmp; mv {shlex.quote(str(pid_file))}.tmp "
    command += f"{shlex.quote(str(pid_file))}; exec sleep 300"
    runner = HookRunner(HooksSettings(on_success=command, timeout_seconds=600))
    with capture_logs() as logs:
        runner.submit(outcome(1))
        assert wait_for(pid_file.exists)
        runner.submit(outcome(2))
        started = time.monotonic()
        runner.close()
        # the stop is noticed within 0.1 s; `exec sleep` dies on SIGTERM at once
        assert time.monotonic() - started < 5.0
        runner.submit(outcome(3))
    assert wait_for(lambda: not alive(int(pid_file.read_text())))
    unrun = [e["job_id"] for e in logs if e["event"] == "hook not run: lmd is stopping"]
    assert unrun == [2, 3]
    assert [e["job_id"] for e in logs if e["event"] == "hook killed: lmd is stopping"] == [1]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"on_success": ""}, "cannot be empty"),
        ({"on_success": []}, "cannot be empty"),
        ({"on_failure": ["a\x00b"]}, "NUL"),
        ({"timeout_seconds": 0}, "greater than 0"),
        ({"timeout_seconds": float("inf")}, "finite"),
        ({"on_sucess": "x"}, "Extra inputs"),
    ],
)
def test_bad_hook_settings_are_refused(value: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HooksSettings(**value)  # type: ignore[arg-type]
