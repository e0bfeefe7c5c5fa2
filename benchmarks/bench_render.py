"""Rendering speed of the song generator on one core, in audio seconds per wall second.

    python benchmarks/bench_render.py [--songs 8] [--seconds 30] [--profile default]

Soundfonts are loaded first (once per process, as in ``render_dataset``) and not timed; then
``--songs`` songs are rendered in memory (composition, FluidSynth, espeak-ng vocals, effects,
mixing) and timed. The process is pinned to one core and its threads limited to one, so the wall
number is the speed of one core (lower when other processes share it); the CPU number counts this
process and its espeak-ng children, i.e. the speed of one dedicated core. Target: >= 20.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracks.profiles import get_profile, song_seed  # noqa: E402
from tracks.render import get_renderer  # noqa: E402
from tracks.song import render_song  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the espeak-ng calls)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--songs", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--profile", default="default")
    p.add_argument("--seed", type=int, default=123)
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    profile = get_profile(args.profile)
    t0 = time.perf_counter()
    for name in profile.soundfonts_here():
        get_renderer(name)
    load = time.perf_counter() - t0
    wall0, cpu0 = time.perf_counter(), _cpu()
    sung = 0
    for i in range(args.songs):
        _, info = render_song(song_seed(args.seed, profile, "train", i), args.seconds, profile)
        sung += info["stems"]["vocals"]["source"]["kind"] == "espeak-ng"
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    audio = args.songs * args.seconds
    print(
        f"profile {profile.name}: {args.songs} songs x {args.seconds:.0f} s "
        f"({sung} with sung espeak-ng vocals), "
        f"soundfonts loaded in {load:.1f} s (once per process)"
    )
    print(
        f"rendering speed: {audio / wall:.1f} audio seconds per wall second on one core "
        f"({audio / cpu:.1f} per CPU second; {wall / args.songs:.2f} s per song)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
