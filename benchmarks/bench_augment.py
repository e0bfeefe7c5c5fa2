"""Augmentation throughput next to one Open-Unmix training step's, measured in the same run.

Prints audio seconds per wall second (one example = ``--seconds`` of 4 stereo stems) for:

* every preset of configs/augment/ run per example in this process, and the default's cheap part
  (no Rubber Band), its expensive part forced on (p=1), and a formant shift of the vocals;
* the batch transforms (source shuffling) on a collated batch;
* the cache path: rendering the default's expensive part into a cache (one-off), then reading
  random chunks from it plus the cheap part online;
* the worker path: a DataLoader with ``-j`` worker processes running the full default pipeline;
* one training step of a one-target Open-Unmix (openunmix.model.OpenUnmix, torch STFT,
  forward + MSE + backward + Adam) on a batch of ``--batch`` x ``--seconds`` chunks.

    python benchmarks/bench_augment.py                 # about 3-4 minutes on 2 CPU cores
    python benchmarks/bench_augment.py --quick         # fewer repeats
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import augment  # noqa: E402
from augment.cache import open_cache, render_cache  # noqa: E402

RATE = 44100


def song_like(seconds: float, seed: int) -> np.ndarray:
    """``(4, 2, T)`` float32 stems with tones, clicks and noise (content Rubber Band has to work on)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    bass = 0.3 * np.sin(2 * np.pi * 55 * t)
    drums = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.25):
        i = int(start * RATE)
        drums[i : i + 2000] += rng.standard_normal(len(drums[i : i + 2000])) * np.exp(-np.arange(2000) / 300)
    other = 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
    vocals = 0.2 * np.sin(2 * np.pi * 220 * t + 3 * np.sin(2 * np.pi * 5 * t))
    stems = np.stack([bass, 0.3 * drums, other, vocals])[:, None].repeat(2, axis=1)
    stems += 0.01 * rng.standard_normal(stems.shape)
    return stems.astype(np.float32)


class FakeTrack:
    """In-memory song with the ``tracks.Track`` interface."""

    def __init__(self, name, stems):
        self.name, self.path, self.rate, self.stems = name, name, RATE, stems
        self.length = stems.shape[-1]

    def load(self, start=0, frames=None):
        stems = self.stems[..., start : None if frames is None else start + frames]
        return stems.sum(axis=0), stems


def timed(fn, min_seconds: float, max_runs: int, min_runs: int = 2) -> tuple[float, int]:
    """Mean seconds per call over at least ``min_runs`` calls (until ``min_seconds`` or ``max_runs``)."""
    fn()  # warm-up
    runs, start = 0, time.perf_counter()
    while runs < min_runs or (time.perf_counter() - start < min_seconds and runs < max_runs):
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs, runs


def forced_entry() -> dict:
    """The default's pitch/tempo change with its 20% gate forced open."""
    return {"name": "repitch", "p": 1.0, "cents": {"choices": [-200, -100, 100, 200]},
            "factor": {"uniform": [0.88, 1.12]}}


def per_example(pipeline, stems, args, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(stems)
    out_frames = pipeline.output_length(x.shape[-1])
    # A transform that fires some of the time needs enough runs for a fair average.
    sometimes = any(t.expensive and 0 < t.p < 1 for t in pipeline.example_transforms)
    per_call, runs = timed(lambda: pipeline.example(x, g), args.min_seconds, args.max_runs,
                           min_runs=args.min_runs_random if sometimes else 2)
    return out_frames / RATE / per_call, runs


def train_step_throughput(hidden: int, args) -> float:
    from openunmix.model import OpenUnmix
    from openunmix.transforms import ComplexNorm, make_filterbanks

    torch.manual_seed(0)
    encoder, _ = make_filterbanks(n_fft=4096, n_hop=1024, sample_rate=float(RATE), method="torch")
    norm = ComplexNorm(mono=False)
    model = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=hidden, max_bin=1487)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    frames = int(args.seconds * RATE)
    mix = torch.randn(args.batch, 2, frames) * 0.1
    target = torch.randn(args.batch, 2, frames) * 0.05

    def step():
        x = norm(encoder(mix))
        y = norm(encoder(target))
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    per_step, _ = timed(step, args.min_seconds, args.max_runs)
    return args.batch * args.seconds / per_step


class _Chunks(torch.utils.data.Dataset):
    def __init__(self, tracks, frames, transform, count):
        self.tracks, self.frames, self.transform, self.count = tracks, frames, transform, count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        pipeline = self.transform.pipeline
        frames = pipeline.input_length(self.frames)
        stems = pipeline.load_chunk(self.tracks, index % len(self.tracks), frames, g)
        return self.transform(stems)


def worker_throughput(pipeline, tracks, args) -> float:
    frames = int(args.seconds * RATE)
    transform = pipeline.as_transform(seed=0, length=frames)
    count = args.jobs * args.worker_examples
    loader = torch.utils.data.DataLoader(_Chunks(tracks, frames, transform, count), batch_size=1,
                                         num_workers=args.jobs, multiprocessing_context="fork")
    start = time.perf_counter()
    n = sum(1 for _ in loader)
    return n * args.seconds / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="example length (default 6)")
    parser.add_argument("--batch", type=int, default=8, help="training batch (default 8)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="DataLoader workers (default 2)")
    parser.add_argument("--min-seconds", type=float, default=4.0, help="time each case at least this long")
    parser.add_argument("--max-runs", type=int, default=20)
    parser.add_argument("--min-runs-random", type=int, default=15,
                        help="runs for pipelines whose Rubber Band part fires only sometimes (default 15)")
    parser.add_argument("--worker-examples", type=int, default=6, help="examples per worker")
    parser.add_argument("--quick", action="store_true", help="short timings")
    args = parser.parse_args(argv)
    if args.quick:
        args.min_seconds, args.max_runs, args.worker_examples, args.min_runs_random = 1.0, 3, 2, 3

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; example = 4 stereo stems x "
          f"{args.seconds:g} s at {RATE} Hz; figures are audio seconds per wall second")
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start")
    stems = song_like(args.seconds * 1.2, 0)  # room for tempo crops
    default = augment.load_config("default")
    rows = []

    def report(label, value, note=""):
        rows.append((label, value))
        print(f"  {label:<46} {value:10.1f} s/s  {note}", flush=True)

    print("per example, in process:")
    for name in augment.presets():
        value, runs = per_example(augment.load_config(name), stems, args)
        report(f"preset {name}", value, f"({runs} runs)")
    cheap_value, runs = per_example(default.cheap(), stems, args)
    report("default, cheap part only", cheap_value, f"({runs} runs)")
    forced = augment.load_config({"example": [forced_entry()]})
    forced_value, runs = per_example(forced, stems, args)
    report("repitch forced on (p=1), all 4 stems", forced_value, f"({runs} runs)")
    quick = augment.load_config({"example": [{**forced_entry(), "high_quality": False}]})
    value, runs = per_example(quick, stems, args)
    report("  same, high_quality: false (less accurate)", value, f"({runs} runs)")
    formant = augment.load_config({"example": [{"name": "formant_shift", "sources": ["vocals"],
                                                "cents": {"choices": [-150, -100, 100, 150]}}]})
    value, runs = per_example(formant, stems, args)
    report("formant_shift forced on, vocals only", value, f"({runs} runs)")

    p = default.expensive().example_transforms[0].p
    report("default, expected from the parts", 1 / (p / forced_value + 1 / cheap_value),
           f"(1 / ({p:g} / repitch + 1 / cheap); the measured figure varies with the draws)")

    print("per batch:")
    batch = torch.from_numpy(np.stack([stems[..., : int(args.seconds * RATE)]] * args.batch))
    g = torch.Generator().manual_seed(0)
    per_call, _ = timed(lambda: default.batch(batch, g), args.min_seconds, args.max_runs * 5)
    report(f"default batch part (remix), batch {args.batch}", args.batch * args.seconds / per_call)

    print("cache path:")
    songs = [FakeTrack(f"song{i}", song_like(30.0, i)) for i in range(2)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        render_cache(songs, tmp, forced, variants=1, seed=0, progress=False)
        render = 2 * 30.0 / (time.perf_counter() - start)
        report("render cache (repitch on whole 30 s songs)", render, "(one-off, per variant)")
        cached = open_cache(tmp, songs)
        cheap = default.cheap()
        frames = int(args.seconds * RATE)

        def from_cache():
            stems_ = cheap.load_chunk(cached, int(torch.randint(len(cached), (1,), generator=g)), frames, g)
            return cheap.example(stems_, g)

        per_call, _ = timed(from_cache, args.min_seconds, args.max_runs * 5)
        report("read cached chunk + cheap part online", args.seconds / per_call)

    print(f"worker path (DataLoader, {args.jobs} workers, load + repitch forced on + default's cheap part):")
    heavy = augment.load_config({"chunking": {"independent_offsets": 1.0},
                                 "example": [forced_entry()] + [{"name": t.name} for t in
                                                                default.cheap().example_transforms]})
    value, _ = per_example(heavy, stems, args)
    report("in process (for comparison)", value)
    report(f"{args.jobs} DataLoader workers", worker_throughput(heavy, songs, args))

    print(f"training step (one-target OpenUnmix, batch {args.batch} x {args.seconds:g} s, fwd+bwd+Adam):")
    for hidden in args.hidden:
        report(f"OpenUnmix hidden {hidden}", train_step_throughput(hidden, args))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
