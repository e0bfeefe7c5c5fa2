"""Speed of the Wiener post-filter's two engines on the same window, measured in one run.

Prints, for one filter window (``--frames`` STFT frames of a 4096/1024 STFT, 4 stereo targets, the
default ensemble's shape), the seconds per window of ``engine: openunmix``
(``openunmix.filtering.expectation_maximization``) and ``engine: native`` (:mod:`blend.em`), their
ratio, and the largest difference between their outputs relative to the output's peak.

    python benchmarks/bench_wiener.py                   # 300 frames, 1 and 2 EM iterations, 2 threads
    python benchmarks/bench_wiener.py --frames 100 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def best_of(fn, repeats: int) -> tuple[float, torch.Tensor]:
    """Fastest wall time of ``repeats`` calls (after one warm-up) and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv=None) -> int:
    from blend.wiener import WienerSettings, filter_frames

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=300, help="frames per window (umx --wiener-win-len)")
    p.add_argument("--targets", type=int, default=4)
    p.add_argument("--iterations", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    spec = torch.randn(args.targets, 2, 2049, args.frames, dtype=torch.complex64, generator=g)
    mix = spec.sum(0) + 0.1 * torch.randn(2, 2049, args.frames, dtype=torch.complex64, generator=g)
    seconds = args.frames * 1024 / 44100
    print(f"one window: {args.targets} targets x 2 channels x 2049 bins x {args.frames} frames "
          f"({seconds:.1f} s of audio), {args.threads} threads, best of {args.repeats}")
    for iterations in args.iterations:
        lib, nat = (WienerSettings(iterations, engine=e) for e in ("openunmix", "native"))
        t_lib, y_lib = best_of(lambda s=lib: filter_frames(spec, mix, s), args.repeats)
        t_nat, y_nat = best_of(lambda s=nat: filter_frames(spec, mix, s), args.repeats)
        diff = float((y_lib - y_nat).abs().max() / y_lib.abs().max())
        print(f"iterations {iterations}: openunmix {t_lib * 1000:.0f} ms, native {t_nat * 1000:.0f} ms, "
              f"ratio {t_lib / t_nat:.1f}x; real-time factor {t_lib / seconds:.3f} vs {t_nat / seconds:.3f}; "
              f"max difference {diff:.1e} of the peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
