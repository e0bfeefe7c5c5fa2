"""Cost of the enhancer stage: real-time factor per target, parameters, adapter sizes, peak memory.

    python benchmarks/bench_enhancer.py --seconds 180 --threads 2
    python benchmarks/bench_enhancer.py --base enhancer/weights/base.pth \
        --adapter vocals=enhancer/weights/vocals.pth --targets vocals

Without ``--base`` a fresh base of the shipped size (with a random, non-identity output layer and a
random adapter) is timed: the cost does not depend on the weights. The song is random stereo
noise shaped like music (the network's cost does not depend on the content either).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from enhancer.apply import Enhancer  # noqa: E402
from enhancer.checkpoint import load_adapter, load_base  # noqa: E402
from enhancer.lora import AdaptedEnhancer, randomize_adapter  # noqa: E402
from enhancer.model import PhaseEnhancer, count_parameters  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="song length")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--segment", type=float, default=4.0, help="seconds per block")
    parser.add_argument("--base", help="base enhancer .pth (default: a fresh one of the shipped size)")
    parser.add_argument("--adapter", action="append", default=[], metavar="TARGET=PATH")
    parser.add_argument("--targets", nargs="+", default=["vocals"], help="targets to time")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.base:
        model = AdaptedEnhancer(load_base(args.base))
        for item in args.adapter:
            target, path = item.split("=", 1)
            load_adapter(model, path, name=target)
    else:
        base = PhaseEnhancer()
        with torch.no_grad():
            base.out.weight.normal_(0, 0.02)
        model = AdaptedEnhancer(base)
        for target in args.targets:
            model.add_adapter(target)
            randomize_adapter(model, target)
    enhancer = Enhancer.with_model(model, args.targets, segment=args.segment)
    rng = np.random.default_rng(0)
    length = int(args.seconds * 44100)
    mixture = (0.1 * rng.standard_normal((2, length))).astype(np.float32)
    estimate = (0.5 * mixture + 0.01 * rng.standard_normal((2, length))).astype(np.float32)
    rss_before = peak_rss_mb()
    rows = {}
    for target in args.targets:
        wall, cpu = time.perf_counter(), time.process_time()
        enhancer.enhance(target, estimate, mixture)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows[target] = {"wall_s": round(wall, 2), "rtf": round(wall / args.seconds, 4),
                        "cpu_rtf": round(cpu / args.seconds, 4), "adapter": enhancer.adapter_for(target)}
    base_params = count_parameters(PhaseEnhancer(model.config))
    report = {
        "seconds": args.seconds, "threads": args.threads, "segment_s": args.segment,
        "base_parameters": base_params,
        "adapter_parameters": {name: model.adapter_parameters(name) for name in model.adapters},
        "adapter_share": {name: round(model.adapter_parameters(name) / base_params, 4)
                          for name in model.adapters},
        "targets": rows,
        "peak_rss_mb": round(peak_rss_mb(), 1), "peak_rss_growth_mb": round(peak_rss_mb() - rss_before, 1),
    }
    print(json.dumps(report, indent=2))
    mean_rtf = float(np.mean([r["rtf"] for r in rows.values()]))
    print(f"enhancer: {mean_rtf:.3f} x real time per enabled target on {args.threads} threads "
          f"({args.seconds:.0f} s song, {base_params} base parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
