"""Speed and memory of every member on a 3-minute song, against the library's own call.

For each member, in a fresh subprocess with ``--threads`` torch threads, it prints:

* ``RTF``: wall seconds of ``member.separate(song)`` (chunked, bounded memory) per second of audio;
* ``peak RSS``: the process's peak resident memory after that call (imports included);
* ``wrap``: our ``member`` call over the library's own call on the same weights and the same input
  (target <= 1.05): umx: ``member(song)`` vs ``openunmix.model.Separator(song)``; demucs:
  ``member.separate`` vs ``demucs.apply.apply_model`` (same split/overlap); convtasnet: ``member(song)``
  vs asteroid's ``ConvTasNet`` on the channels; nussl: ``member(song)`` vs nussl's REPET-SIM + HPSS;
  members that are our own modules: ``member(song)`` vs the module's unwrapped ``forward``;
* ``chunked``: ``member.separate`` (chunks, overlap, context) over the library's whole-song call: the
  price of flat memory.

The song is the test mixtures of ``--data-dir`` tiled to ``--seconds`` (noise when there are none).
Members load their shipped weights (``models/weights``); without them, the architecture of
``configs/train/<member>.yaml`` with random weights (same compute), marked ``random``.

    python benchmarks/bench_members.py                          # every member, 3 minutes, 2 threads
    python benchmarks/bench_members.py --members fnn umx --seconds 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RATE = 44100


def song(seconds: float, data_dir: Path) -> np.ndarray:
    """``(2, seconds * 44100)`` float32: test mixtures tiled to length, or noise."""
    from core.audio import match_channels, read_audio

    length = int(seconds * RATE)
    parts = [match_channels(read_audio(p)[0], 2) for p in sorted(data_dir.glob("test/*/mixture.wav"))[:8]]
    if not parts:
        return (0.1 * np.random.default_rng(0).standard_normal((2, length))).astype(np.float32)
    base = np.concatenate(parts, axis=1)
    return np.ascontiguousarray(np.tile(base, (1, length // base.shape[1] + 1))[:, :length])


def load(name: str):
    """The shipped member (``models/weights/<name>.pth``: a registered member's name, or a second
    shipped variant such as ``umx-4096``), or the config's architecture with random weights; and
    whether random."""
    import yaml

    import models
    from models.manifest import WEIGHTS_DIR

    path = WEIGHTS_DIR / f"{name}.pth"
    if path.is_file():
        return models.load_member(path), False
    cls = models.get(name)
    if not cls.trainable:
        return cls(), False
    config = ROOT / "configs" / "train" / f"{name}.yaml"
    kwargs = (yaml.safe_load(config.read_text()) or {}).get("model", {}) if config.is_file() else {}
    return cls(**kwargs).eval(), True


def default_names() -> list[str]:
    """Every registered member, then every shipped variant named otherwise (``umx-4096``)."""
    import models
    from models.manifest import WEIGHTS_DIR

    names = list(models.names())
    return names + [p.stem for p in sorted(WEIGHTS_DIR.glob("*.pth")) if p.stem not in names]


def library_call(member, mix):
    """The library's own call on the member's weights: ``(C, T)`` -> ``(S, C, T)`` tensor."""
    import torch

    if member.name == "umx":
        return member.separator(mix[None])[0]
    if member.name == "demucs":
        from demucs.apply import apply_model

        return apply_model(member.model, mix[None], shifts=0, split=True, overlap=member.default_overlap)[0]
    if member.name == "convtasnet":
        out = member.model(mix[:, None])  # (C, S, T): asteroid, one channel at a time
        return out[..., : mix.shape[-1]].transpose(0, 1)
    if member.name == "nussl":
        return torch.from_numpy(member._separate_one(mix.numpy()))
    return type(member).forward(member, mix[None])[0]


def wrapped_call(member, mix):
    """Our call compared with :func:`library_call` (demucs: ``separate``, which is apply_model)."""
    if member.name == "demucs":
        return member.separate(mix)
    return member(mix[None])[0]


def measure(name: str, seconds: float, data_dir: Path, threads: int) -> dict:
    """Run in the child process: time and memory of one member."""
    import torch

    torch.set_num_threads(threads)
    mix = torch.from_numpy(song(seconds, data_dir))
    member, random = load(name)
    with torch.inference_mode():
        start = time.perf_counter()
        member.separate(mix)
        ours = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        timings = {}
        for label, fn in (("library", library_call), ("wrapped", wrapped_call)):
            start = time.perf_counter()
            fn(member, mix)
            timings[label] = time.perf_counter() - start
    return {
        "member": name,
        "random_weights": random,
        "seconds": seconds,
        "threads": threads,
        "rtf": ours / seconds,
        "peak_rss_mb": peak,
        "wrap_ratio": timings["wrapped"] / timings["library"],
        "chunked_ratio": ours / timings["library"],
        "library_s": timings["library"],
        "separate_s": ours,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="RTF, peak RSS and wrapper overhead of every member.")
    parser.add_argument("--members", nargs="*", default=None,
                        help="registered members or shipped weight names (default: all + shipped variants)")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "corpus"))
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: measure this member
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.seconds, Path(args.data_dir), args.threads)))
        return 0
    results = []
    print(f"{args.seconds:.0f} s song, {args.threads} threads")
    print(f"{'member':12s} {'RTF':>7s} {'peak RSS':>9s} {'wrap':>6s} {'chunked':>8s}")
    for name in args.members or default_names():
        cmd = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--seconds",
            str(args.seconds),
            "--threads",
            str(args.threads),
            "--data-dir",
            args.data_dir,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            print(f"{name:12s} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(r)
        note = "  (random weights)" if r["random_weights"] else ""
        print(
            f"{name:12s} {r['rtf']:7.3f} {r['peak_rss_mb']:7.0f}MB {r['wrap_ratio']:6.2f} "
            f"{r['chunked_ratio']:8.2f}{note}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
