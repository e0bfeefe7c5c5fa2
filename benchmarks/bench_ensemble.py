"""Speed and memory of the ensemble predictor's separation (members + λ blend + Wiener filter).

Prints, each measured in a fresh subprocess pinned to ``--threads`` CPU cores:

* on a ``--seconds`` song (default 3 minutes): the whole ensemble's real-time factor (wall seconds
  per second of audio; target <= 0.25 on 2 cores) and the share of blend + Wiener in it (target
  <= 10 %), also without the Wiener filter;
* peak RSS on a ``--long-seconds`` song (default 10 minutes; target <= 2 GB) and its growth from the
  short song, next to the growth of the audio buffers alone: the ensemble itself should not grow
  with the song. Measured twice: streaming the stems to files as ``prediction()`` (the grader
  path) does, where only the mixture is a whole-song buffer, and holding the whole stems in memory
  as ``separate()`` (``predict.py FILE``, whose ``--clip-mode rescale`` needs each stem's peak) does.

The speed runs stream too (WAV float32 files in a temporary folder).

The song is the demo test songs (``data/test/*/mixture.wav``) repeated to length, or noise when
there are none. Members come from the config's checkpoints; a member whose checkpoint is missing is
replaced by its registered architecture with random weights and default size (same compute, no
quality), and the report says so.

    python benchmarks/bench_ensemble.py                       # 3 and 10 minutes, 2 cores
    python benchmarks/bench_ensemble.py --seconds 30 --long-seconds 100 --json out.json   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RATE = 44100


def song(seconds: float) -> np.ndarray:
    """``(2, seconds * 44100)`` float32: the demo test mixtures tiled, or noise."""
    from core.audio import match_channels, read_audio

    length = int(seconds * RATE)
    parts = []
    for path in sorted((ROOT / "data" / "test").glob("*/mixture.wav")):
        audio, rate = read_audio(path)
        if rate == RATE:
            parts.append(match_channels(audio, 2))
    if not parts:
        return (0.1 * np.random.default_rng(0).standard_normal((2, length))).astype(np.float32)
    base = np.concatenate(parts, axis=1)
    return np.ascontiguousarray(np.tile(base, (1, length // base.shape[1] + 1))[:, :length])


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_members(config):
    """The config's members; a missing checkpoint -> its registered architecture, random weights."""
    import models
    from blend import members as members_mod

    loaded, stand_ins = [], []
    for spec in config.members:
        if spec.checkpoint is not None and not spec.path.is_file():
            loaded.append(models.get(spec.name)().eval())
            stand_ins.append(spec.name)
        else:
            loaded.append(members_mod.load(spec))
    return loaded, stand_ins


def worker(args) -> dict:
    """One measurement in this process: load, separate a song of ``args.seconds``, report."""
    import torch

    cpus = sorted(os.sched_getaffinity(0))[: args.threads]
    os.sched_setaffinity(0, cpus)
    torch.set_num_threads(args.threads)
    from blend.config import load_config
    from blend.ensemble import Ensemble
    from core.audio import audio_writers

    config = load_config(args.config)
    members, stand_ins = load_members(config)
    ensemble = Ensemble(config, members=members, wiener=not args.no_wiener)
    mixture = song(args.seconds)
    before = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {t: Path(tmp) / f"{t}.wav" for t in config.targets}
        wall, cpu = time.perf_counter(), time.process_time()
        if args.in_memory:
            out = ensemble.separate(mixture)
            assert out.shape == (len(config.targets),) + mixture.shape
        else:
            with audio_writers(paths, RATE, mixture.shape[0], "FLOAT") as write:
                ensemble.separate(mixture, sink=lambda start, block: write(dict(zip(config.targets, block))))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"seconds": args.seconds, "wiener": not args.no_wiener, "stream": not args.in_memory,
            "wall_s": wall, "cpu_s": cpu,
            "rtf": wall / args.seconds, "members_s": ensemble.timings["members"],
            "blend_s": ensemble.timings["blend"], "blend_share": ensemble.timings["blend"] / wall,
            "rss_before_separate_mb": before,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "nb_outputs": ensemble.renderer.nb_outputs, "stand_ins": stand_ins, "threads": args.threads,
            "cpus": cpus, "members": list(config.member_names)}


def measure(args, seconds: float, wiener: bool = True, in_memory: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--config", args.config, "--seconds", str(seconds),
           "--threads", str(args.threads)] + ([] if wiener else ["--no-wiener"]) + (
           ["--in-memory"] if in_memory else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"benchmark worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "blend" / "configs" / "default.yaml"))
    p.add_argument("--seconds", type=float, default=180.0, help="song length for speed (default 3 min)")
    p.add_argument("--long-seconds", type=float, default=600.0,
                   help="song length for memory (default 10 min)")
    p.add_argument("--threads", type=int, default=2, help="CPU cores to pin each run to (default 2)")
    p.add_argument("--json", default=None, help="also write the measurements here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-wiener", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    short = measure(args, args.seconds)
    plain = measure(args, args.seconds, wiener=False)
    long = measure(args, args.long_seconds)
    short_mem = measure(args, args.seconds, in_memory=True)
    long_mem = measure(args, args.long_seconds, in_memory=True)
    channels = 2
    mb = channels * (args.long_seconds - args.seconds) * RATE * 4 / 2**20  # one float32 signal
    buffers = {"stream": mb, "in_memory": (1 + long["nb_outputs"]) * mb}  # mixture (+ output stems)
    if short["stand_ins"]:
        print(f"note: no checkpoint for {short['stand_ins']}: registered architecture, random weights, "
              "default size (same compute, meaningless output)")
    print(f"members: {short['members']}; {args.threads} cores (cpus {short['cpus']}); config {args.config}")
    print(f"{args.seconds:.0f} s song: real-time factor {short['rtf']:.3f} (target <= 0.25); "
          f"members {short['members_s']:.1f} s, blend + Wiener {short['blend_s']:.1f} s = "
          f"{100 * short['blend_share']:.1f} % of {short['wall_s']:.1f} s (target <= 10 %); "
          f"CPU {short['cpu_s']:.1f} s")
    print(f"{args.seconds:.0f} s song without Wiener: real-time factor {plain['rtf']:.3f}; "
          f"blend {100 * plain['blend_share']:.1f} %")
    for label, a, b, buf in (("streamed to files (prediction)", short, long, buffers["stream"]),
                             ("whole stems in memory (separate)", short_mem, long_mem, buffers["in_memory"])):
        growth = b["peak_rss_mb"] - a["peak_rss_mb"]
        print(f"peak RSS, {label}: {a['peak_rss_mb']:.0f} MB at {args.seconds:.0f} s, "
              f"{b['peak_rss_mb']:.0f} MB at {args.long_seconds:.0f} s (target <= 2048 MB); "
              f"growth {growth:.0f} MB vs. audio buffers {buf:.0f} MB: beyond them {growth - buf:+.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"short": short, "no_wiener": plain, "long": long,
                                               "short_in_memory": short_mem, "long_in_memory": long_mem,
                                               "audio_buffer_growth_mb": buffers}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
