"""Coverage-guided fuzzing of every file reader (issue 11 item 1), with atheris (libFuzzer).

One target per reader: `jpeg` (JPEG segments), `heif` (HEIF boxes, items, `iloc`), `quicktime`
(QuickTime/MP4 `moov`), `aae` (AAE plists), `motion` (Motion Photo XMP, SEFT trailer, `mpvd`,
and the embedded movie), `exif` (the TIFF walker and the Apple MakerNote) and `xmp` (the XMP
reader and the Container directory). Seeds are the in-code builders of `daemon.library.synth`
and the real phone files in `../shared/fixtures/real/`, which libFuzzer reads where they are
(they are passed as a read-only corpus folder, never copied; the EXIF and XMP targets get the
blocks the readers extract from them).

Every input runs under a watch: an exception other than `UnreadableFile` is a crash (its input
and traceback are kept and fuzzing goes on), an input that takes more than 2 s of CPU or leaves
the process above 500 MB of peak RSS is flagged and kept. libFuzzer's own limits (`-timeout`,
`-rss_limit_mb`) stay as a backstop for a hang or a runaway allocation.

    .venv/bin/python bench/fuzz.py [--seconds 120] [--keep DIR] [TARGET ...]

prints, per target: executions, coverage, crashes, flagged inputs and the slowest input.
Why atheris: it is Google's maintained libFuzzer binding for Python, ships manylinux wheels
for CPython 3.11, and instruments pure-Python modules at import (`pip install lmd[fuzz]`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REAL = ROOT.parent / "shared" / "fixtures" / "real"
SLOW_S = 2.0
BIG_MB = 500
CID = "11111111-2222-3333-4444-555555555555"
#: targets whose input is a whole file: they also get the real phone files as seeds
WHOLE_FILE = {"jpeg": 4 << 20, "heif": 4 << 20, "quicktime": 1 << 20, "motion": 4 << 20,
              "aae": 64 << 10}
TARGETS = ("jpeg", "heif", "quicktime", "aae", "motion", "exif", "xmp")


# --------------------------------------------------------------------------- seeds (parent)


def build_seeds(target: str, into: Path) -> int:
    """Write the synthetic seeds of `target` into `into`; returns how many."""
    import numpy as np

    from daemon.files import exif
    from daemon.library import stills, synth

    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    rgb = frames[0]
    mp4 = synth.encode_video(frames, 30.0, "mp4")
    tmp = into / ".build"
    tmp.mkdir(parents=True, exist_ok=True)
    files: dict[str, Callable[[Path], object]] = {}
    if target == "jpeg":
        files = {
            "apple.jpg": lambda p: synth.write_apple_still(p, rgb, CID, "jpeg"),
            "google.jpg": lambda p: synth.write_google_motion_jpeg(p, rgb, mp4, 1000),
            "samsung.jpg": lambda p: synth.write_samsung_seft_jpeg(p, rgb, mp4),
        }
    elif target == "heif":
        files = {
            "apple.heic": lambda p: synth.write_apple_still(p, rgb, CID, "heic"),
            "mpvd.heic": lambda p: synth.write_heic_mpvd(p, rgb, mp4, 1000),
        }
    elif target == "quicktime":
        files = {
            "live.mov": lambda p: synth.write_live_mov(p, frames, 30.0, CID, 0.05),
            "plain.mp4": lambda p: p.write_bytes(mp4),
        }
    elif target == "motion":
        files = {
            "google.jpg": lambda p: synth.write_google_motion_jpeg(p, rgb, mp4, 1000),
            "samsung.jpg": lambda p: synth.write_samsung_seft_jpeg(p, rgb, mp4),
            "mpvd.heic": lambda p: synth.write_heic_mpvd(p, rgb, mp4, 1000),
        }
    elif target == "aae":
        files = {
            "key.aae": lambda p: synth.write_aae(p, 0.1, ["Crop"]),
            "key_bin.aae": lambda p: synth.write_aae(p, 0.1, binary=True),
            "other.aae": lambda p: synth.write_aae(p, None, ["SmartTone"]),
        }
    n = 0
    for name, write in files.items():
        write(into / name)
        n += 1
    if target == "exif":
        blocks = (exif.build_apple_exif(CID), exif.build_apple_exif(CID, orientation_value=6))
        for i, block in enumerate(blocks):
            (into / f"synth{i}.tiff").write_bytes(block)
            n += 1
    if target == "xmp":
        (into / "motion.xmp").write_bytes(synth.motion_xmp(1000, 4096))
        n += 1
    if target in ("exif", "xmp") and REAL.is_dir():
        for real in sorted(REAL.iterdir()):
            try:
                meta = stills.read_still_meta(real)
            except Exception:  # not a still: no block to seed with
                continue
            block = meta.exif if target == "exif" else meta.xmp
            if block:
                (into / f"real-{real.stem}.bin").write_bytes(block)
                n += 1
    for leftover in tmp.iterdir():
        leftover.unlink()
    tmp.rmdir()
    return n


# --------------------------------------------------------------------------- targets (child)


def _readers(target: str, scratch: Path) -> Callable[[bytes], object]:
    """The function one input runs through (imported under atheris' instrumentation)."""
    from daemon.files import exif, xmp
    from daemon.library import aae, motion, quicktime, stills

    def as_file(data: bytes) -> Path:
        scratch.write_bytes(data)
        return scratch

    def still(data: bytes) -> object:
        return stills.read_still_meta(as_file(data))

    def mov(data: bytes) -> object:
        return quicktime.read_mov_info(as_file(data))

    def motion_photo(data: bytes) -> object:
        path = as_file(data)
        found = motion.read_motion(path, stills.read_still_meta(path))
        if found is not None:
            quicktime.read_mov_info(path, found.video_offset, found.video_length)
        return found

    def tiff(data: bytes) -> object:
        block = exif.strip_exif_header(data)
        return exif.apple_content_identifier(block), exif.orientation(block)

    def packet(data: bytes) -> object:
        xmp.parse_packet(data)
        return motion.read_motion_xmp(data)

    return {
        "jpeg": still, "heif": still, "quicktime": mov, "aae": aae.parse_aae,
        "motion": motion_photo, "exif": tiff, "xmp": packet,
    }[target]


class Watch:
    """Runs one input, keeps crashers and flagged inputs, and writes the figures to a file."""

    def __init__(self, fn: Callable[[bytes], object], out: Path, unreadable: type) -> None:
        self.fn, self.out, self.unreadable = fn, out, unreadable
        self.figures = {"inputs": 0, "crashes": 0, "unique_crashes": 0, "slow": 0, "big": 0,
                        "max_cpu_s": 0.0, "max_wall_s": 0.0, "peak_rss_mb": 0.0, "refused": 0}
        self.seen: set[str] = set()
        self.written = 0.0

    def __call__(self, data: bytes) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            self.fn(data)
        except self.unreadable:
            self.figures["refused"] += 1
        except Exception as exc:  # anything else is what fuzzing looks for
            self._crash(data, exc)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        f = self.figures
        f["inputs"] += 1
        f["max_cpu_s"] = max(f["max_cpu_s"], cpu)
        f["max_wall_s"] = max(f["max_wall_s"], wall)
        if cpu > SLOW_S:
            f["slow"] += 1
            self._keep("slow", data, f"{cpu:.2f} s CPU, {wall:.2f} s wall")
        if rss_mb > BIG_MB and f["peak_rss_mb"] <= BIG_MB:
            f["big"] += 1
            self._keep("big", data, f"peak RSS {rss_mb:.0f} MB")
        f["peak_rss_mb"] = rss_mb
        now = time.monotonic()
        if now - self.written > 1.0:
            self.save()
            self.written = now

    def _crash(self, data: bytes, exc: Exception) -> None:
        self.figures["crashes"] += 1
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{type(exc).__name__}@{tb[-1].filename}:{tb[-1].lineno}" if tb else repr(exc)
        if where not in self.seen:
            self.seen.add(where)
            self.figures["unique_crashes"] += 1
            text = "".join(traceback.format_exception(exc))
            self._keep("crash", data, text)
            self.save()

    def _keep(self, kind: str, data: bytes, why: str) -> None:
        name = f"{kind}-{hashlib.sha1(data).hexdigest()[:12]}"
        (self.out / f"{name}.bin").write_bytes(data)
        (self.out / f"{name}.txt").write_text(why)

    def save(self) -> None:
        (self.out / "figures.json").write_text(json.dumps(self.figures))


def child(target: str, out: Path, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["daemon.files", "daemon.library", "plistlib"]):
        from daemon.files.errors import UnreadableFile

        fn = _readers(target, _scratch(out))
    watch = Watch(fn, out, UnreadableFile)
    atheris.Setup([sys.argv[0], *libfuzzer_args], watch)
    try:
        atheris.Fuzz()
    finally:
        watch.save()


def _scratch(out: Path) -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else out
    return base / f"lmd-fuzz-{os.getpid()}.input"


# --------------------------------------------------------------------------- driver (parent)

_FINAL = re.compile(r"stat::(number_of_executed_units|peak_rss_mb):\s+(\d+)")
_COV = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)")


def run_target(target: str, seconds: int, work: Path) -> dict[str, object]:
    out = work / target
    corpus = out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = build_seeds(target, corpus)
    args = [str(corpus)]
    if target in WHOLE_FILE and REAL.is_dir():
        args.append(str(REAL))  # read where they are: libFuzzer never writes to a seed folder
    max_len = WHOLE_FILE.get(target, 256 << 10)
    args += [f"-max_total_time={seconds}", f"-max_len={max_len}", "-timeout=30",
             "-rss_limit_mb=2048", "-print_final_stats=1", "-use_value_profile=1",
             f"-artifact_prefix={out}/libfuzzer-"]
    started = time.monotonic()
    proc = subprocess.run(
        ["nice", "-n", "10", sys.executable, __file__, "--child", target, "--out", str(out),
         "--", *args],
        capture_output=True, text=True, check=False,
    )
    (out / "libfuzzer.log").write_text(proc.stderr)
    figures: dict[str, object] = {"target": target, "seeds": seeds, "rc": proc.returncode,
                                  "seconds": round(time.monotonic() - started)}
    fig_file = out / "figures.json"
    if fig_file.exists():
        figures.update(json.loads(fig_file.read_text()))
    for key, value in _FINAL.findall(proc.stderr):
        figures[key] = int(value)
    cov = _COV.findall(proc.stderr)
    if cov:
        figures["cov"], figures["features"], figures["corpus"] = map(int, cov[-1])
    return figures


def report(rows: list[dict[str, object]], work: Path) -> None:
    head = (f"{'target':10} {'s':>4} {'execs':>8} {'exec/s':>7} {'cov':>5} {'corp':>5} "
            f"{'crash':>5} {'>2s':>4} {'>500MB':>6} {'max cpu':>8} {'max wall':>8} {'rss MB':>6}")
    print(head)
    total_s = total_execs = 0
    for r in rows:
        execs = int(r.get("number_of_executed_units", r.get("inputs", 0)))  # type: ignore[arg-type]
        secs = int(r["seconds"])  # type: ignore[arg-type]
        total_s, total_execs = total_s + secs, total_execs + execs
        print(f"{r['target']:10} {secs:>4} {execs:>8} {execs / max(secs, 1):>7.0f} "
              f"{r.get('cov', '?'):>5} {r.get('corpus', '?'):>5} {r.get('unique_crashes', '?'):>5} "
              f"{r.get('slow', '?'):>4} {r.get('big', '?'):>6} "
              f"{float(r.get('max_cpu_s', 0)) * 1000:>6.0f}ms "  # type: ignore[arg-type]
              f"{float(r.get('max_wall_s', 0)) * 1000:>6.0f}ms "  # type: ignore[arg-type]
              f"{r.get('peak_rss_mb', '?'):>6}")
        if r["rc"] not in (0,):
            print(f"  {r['target']}: libFuzzer exited {r['rc']} (see {work / str(r['target'])})")
    print(f"total: {total_s} s, {total_execs} inputs; kept inputs and logs in {work}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--seconds", type=int, default=120, help="per target")
    parser.add_argument("--keep", type=Path, help="work folder (default: a new temp folder)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    fuzz_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.child:
        child(args.child, args.out, fuzz_args)
        return
    try:
        import atheris  # noqa: F401 - only to say how to get it before building seeds
    except ImportError:
        sys.exit("bench/fuzz.py needs atheris: .venv/bin/pip install 'atheris>=2.3' (lmd[fuzz])")
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {', '.join(TARGETS)}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="lmd-fuzz-"))
    rows = []
    for target in args.targets:
        rows.append(run_target(target, args.seconds, work))
        print(json.dumps(rows[-1]), flush=True)
    report(rows, work)


if __name__ == "__main__":
    main()
