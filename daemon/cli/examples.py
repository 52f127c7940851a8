"""The examples at the end of every `lmd … --help`, kept in one table.

Why one table instead of an `epilog=` on each command: commands live in several modules owned
by different people, and a help page without an example is easy to miss; `attach_examples`
fills the epilog of every registered command and group from here, and the test that walks the
command tree fails for any command missing from `EXAMPLES`.

Keys are command paths as typed after `lmd` ("" is `lmd` itself); values are (command line,
what it does) pairs, one or two of them.
"""

from __future__ import annotations

import typer
from rich.markup import escape
from typer.main import get_command_name

EXIT_CODES_HELP = (
    "Exit codes: 0 done, 1 failed (the message says why), 2 usage error (a wrong option or"
    " value), 70 internal error (a bug: rerun with --log-level debug for the traceback),"
    " 130 interrupted."
)

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "": [
        ("lmd demo", "build a sample library and restore it on the CPU"),
        ("lmd --config /etc/lmd/lmd.toml doctor", "check a set-up before `lmd run`"),
    ],
    "status": [
        ("lmd status", "jobs per state, workers, last scan, recent failures"),
        ("lmd status --json", "the same for scripts"),
    ],
    "reprocess": [
        ("lmd reprocess --since 7d --dry-run", "count what the last week's jobs would redo"),
        ("lmd reprocess --since 2026-05-01 --state failed", "re-queue failures since May"),
    ],
    "pause": [("lmd pause", "workers finish their job in flight, then claim nothing new")],
    "resume": [("lmd resume", "workers claim jobs again")],
    "scan": [
        ("lmd scan", "scan the configured library and enqueue what needs restoring"),
        ("lmd scan --dry-run ~/Pictures/iPhone", "only list the Live Photos found"),
    ],
    "restore": [
        ("lmd restore --reference IMG_1234.HEIC --frame IMG_E1234.HEIC --video IMG_1234.MOV"
         " -o restored.heic", "one photo outside the queue, with its video as the queue does"),
        ("lmd restore --reference a.heic --frame b.heic -o out.jpg --compare cmp.jpg -p tile=512",
         "with the comparison picture and a restorer parameter"),
    ],
    "restore-video": [
        ("lmd restore-video --reference IMG_1234.HEIC --video IMG_1234.MOV -o restored.MOV",
         "restore a Live Photo's video, still paired with its still"),
        ("lmd restore-video --reference PXL_1.MP.jpg --video PXL_1.MP.jpg -o PXL_1.mp4 "
         "--compare xt.png",
         "a Motion Photo's video as a sidecar MP4, with X-T slices"),
    ],
    "review": [
        ("lmd review list --state awaiting", "restorations waiting for a decision"),
        ("lmd review serve", "the review page on http://127.0.0.1:8765/"),
    ],
    "review list": [
        ("lmd review list", "every restoration and its review state"),
        ("lmd review list --state awaiting --json", "the waiting ones for scripts"),
    ],
    "review accept": [
        ("lmd review accept 12 13", "publish jobs 12 and 13 as the output mode says"),
        ("lmd review accept --all", "publish everything awaiting review"),
    ],
    "review reject": [("lmd review reject 12", "discard (or revert) job 12's restoration")],
    "review redo": [
        ("lmd review redo 12 --restorer livemoments", "reject job 12, restore it again with "
         "the diffusion model"),
    ],
    "review serve": [
        ("lmd review serve", "serve the page on [review] host and port"),
        ("LMD_REVIEW__TOKEN=... lmd review serve --host 0.0.0.0", "on the network, with a token"),
    ],
    "revert": [
        ("lmd revert 2024/IMG_E1234.HEIC", "put back one still that replace mode swapped"),
        ("lmd revert --all --dry-run", "list every still that would be put back"),
    ],
    "run": [
        ("lmd run", "the daemon, as the systemd unit starts it"),
        ("lmd --log-level debug run", "the same with debug logs"),
    ],
    "work": [
        ("lmd work", "run every queued job now, ignoring the worker windows"),
        ("lmd work --max-jobs 1", "run one job and stop"),
    ],
    "demo": [
        ("lmd demo", "sample library in ./lmd-demo, restored with guided"),
        ("lmd demo --dir /tmp/lmd-demo --count 5", "five photos somewhere else"),
    ],
    "doctor": [
        ("lmd doctor", "check config, database, library, watcher, GPU and checkpoint"),
        ("lmd doctor --json", "the findings for scripts (exit 1 when one fails)"),
    ],
    "config": [("lmd config show", "every setting, its value and where it came from")],
    "config show": [
        ("lmd config show", "every setting, its value and where it came from"),
        ("lmd --config ./lmd.toml config show --json", "a given file, as JSON"),
    ],
    "jobs": [
        ("lmd jobs list --state failed", "what failed"),
        ("lmd jobs retry --failed", "queue every failed job again"),
    ],
    "jobs list": [
        ("lmd jobs list", "the newest 50 jobs"),
        ("lmd jobs list --state failed --limit 10 --json", "the last ten failures as JSON"),
    ],
    "jobs show": [("lmd jobs show 42", "one job's fields and its history")],
    "jobs retry": [
        ("lmd jobs retry 42", "queue job 42 again with fresh attempts"),
        ("lmd jobs retry --failed", "queue every failed job again"),
    ],
    "jobs cancel": [("lmd jobs cancel 42", "job 42 will not run")],
    "model": [("lmd model check /var/lib/lmd/models/livemoments", "is this checkpoint usable?")],
    "model check": [
        ("lmd model check /var/lib/lmd/models/livemoments", "is this checkpoint usable?"),
        ("lmd model check", "the configured restorer.checkpoint"),
    ],
    "model init": [("lmd model init /tmp/tiny-model", "random tiny weights for wiring checks")],
    "model embed-prompt": [
        ("lmd model embed-prompt /var/lib/lmd/models/livemoments --sd3 ~/sd3-medium",
         "compute the prompt embeddings once"),
    ],
    "train": [
        ("lmd train pairs --from-library ~/Pictures/iPhone -o ~/lmd-pairs",
         "real pairs from your own Live Photos"),
        ("lmd train fit --init ckpt --pairs ~/lmd-pairs -o ~/lmd-run", "fine-tune on them"),
    ],
    "train pairs": [
        ("lmd train pairs --from-video clip1.mp4 clip2.mp4 -o pairs-video",
         "synthetic pairs from high-quality clips"),
        ("lmd train pairs --from-library ~/Pictures/iPhone -o pairs-mine --tile 1024",
         "real pairs from a library (only read)"),
    ],
    "train fit": [
        ("lmd train fit --init /var/lib/lmd/models/livemoments --pairs pairs-mine -o run1"
         " --lora-rank 16 --grad-checkpointing --mixed-precision bf16",
         "LoRA fine-tune on a 24 GB card; the same command continues an interrupted run"),
        ("lmd train fit --init ckpt --pairs pairs-video --pairs pairs-mine -o run2 --json",
         "full fine-tune, JSON lines per evaluation"),
    ],
    "train eval": [
        ("lmd train eval --pairs pairs-mine --split val --restorer livemoments"
         " -p checkpoint=run1/checkpoint", "is the fine-tune better?"),
        ("lmd train eval --pairs pairs-mine --restorer guided --json", "a baseline, as JSON"),
    ],
}


def epilog(path: str) -> str | None:
    """The help epilog for the command at `path`; typer renders one paragraph per line."""
    examples = EXAMPLES.get(path)
    if not examples:
        return None
    lines = ["Examples:"] + [f"{escape(line)}    # {escape(what)}" for line, what in examples]
    if path == "":
        lines.append(escape(EXIT_CODES_HELP))
    return "\n\n".join(lines)


def attach_examples(app: typer.Typer, prefix: str = "") -> None:
    """Set the epilog of every command and group registered on `app` (recursively)."""
    for command in app.registered_commands:
        name = command.name or get_command_name(command.callback.__name__)  # type: ignore[union-attr]
        path = f"{prefix} {name}".strip()
        command.epilog = command.epilog or epilog(path)
    for group in app.registered_groups:
        name = group.name or (group.typer_instance.info.name if group.typer_instance else None)
        path = f"{prefix} {name}".strip()
        group.epilog = group.epilog or epilog(path)
        if group.typer_instance is not None:
            attach_examples(group.typer_instance, path)
