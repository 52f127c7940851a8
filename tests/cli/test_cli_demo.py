"""`lmd demo` (issue 13 item 2): it leaves `lmd-demo/lmd.toml` behind, prints the next
commands, and its output streams (`lmd demo > file` shows lines as they happen); `cd lmd-demo
&& lmd status` then looks at the demo's queue through `./lmd.toml`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.foundation.lmd_entry import lmd_command, lmd_env


def test_demo_streams_leaves_its_config_and_says_what_next(tmp_path: Path) -> None:
    env = lmd_env(tmp_path)
    env.pop("LMD_STATE_DIR")  # the demo's own lmd.toml decides, as for a person
    demo = tmp_path / "lmd-demo"
    log = tmp_path / "demo.log"
    with log.open("w") as out:  # `lmd demo > demo.log`
        proc = subprocess.Popen([*lmd_command(), "demo", "--count", "2", "--size", "96x72"],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.PIPE,
                                text=True)
        try:
            deadline = time.monotonic() + 120
            while "building 2 sample" not in log.read_text() and proc.poll() is None:
                assert time.monotonic() < deadline, "nothing written while the demo runs"
                time.sleep(0.02)  # polling the file for the line, not waiting for time
            # the first lines are in the file before the restorations and comparisons exist
            assert not (demo / "compare").exists(), "the output came at the end, all at once"
            _, err = proc.communicate(timeout=300)
        finally:
            proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err
    text = log.read_text()
    lines = text.splitlines()
    assert lines[0] == f"wrote {demo / 'lmd.toml'}"
    assert "job 1 of 2: succeeded 2026/IMG_1201" in text and "job 2 of 2: succeeded" in text
    assert f"comparison: {demo / 'compare' / 'IMG_1201_compare.jpg'}" in lines
    after = lines[lines.index("next:") + 1:]
    assert [line.split("#")[0].strip() for line in after] == [
        "cd lmd-demo && lmd status", "lmd jobs list", "lmd review serve"]
    assert f"comparisons: {demo / 'compare'}/ (frame | restored | reference, whole and at 1:1)" \
        in lines

    done = subprocess.run([*lmd_command(), "status", "--json"], cwd=demo, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["jobs"]["succeeded"] == 2
    assert status["database"] == f"sqlite:///{demo / 'state' / 'lmd.sqlite3'}"
