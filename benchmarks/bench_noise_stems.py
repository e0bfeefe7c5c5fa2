"""Compare the noise-stem strategies: hiding (corr, MI, spectral similarity), noise-likeness
(flatness), clipping, exactness and speed, against the correlation lower bound.

    python -m benchmarks.bench_noise_stems [--input FILE ...] [--stems 2 3 4 8] [--seeds 0 1]
        [--seconds 5] [--out data/noise_stems/bench]

Signals: a full-scale 220 Hz square wave (+-1.0), full-scale clipped Gaussian noise, a synthetic
song (bass, chords, drums; peak 1.0, about -16 dBFS RMS) and every ``--input`` file (real music).
Prints Markdown tables (means over stems and seeds; ``corr max`` is the largest stem; ``x/N dB
<250 Hz`` the input's share of a stem over its noise in the bass band), a tilt sweep
of the ``polytope`` law (the correlation / mutual-information trade-off) and a naive reference
(``x/N`` plus unbounded Gaussian noise at the default strategy's stem power: how often it clips). Writes
``results.json`` and ``tradeoff.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment import noise_metrics, noise_stems, noise_strategies  # noqa: E402
from core.audio import read_audio  # noqa: E402

RATE = 44100
TILTS = (0.0, 1.0, 2.0, 3.0, 4.0)


def square(seconds: float, rate: int = RATE) -> np.ndarray:
    """``(1, T)`` full-scale 220 Hz square wave, values exactly +-1.0."""
    t = np.arange(int(seconds * rate))
    return np.where((t * 220 // (rate // 2)) % 2 == 0, 1.0, -1.0).astype(np.float32)[None]


def clipped_noise(seconds: float, rate: int = RATE, seed: int = 7) -> np.ndarray:
    """``(1, T)`` Gaussian noise at 3x full scale clipped to +-1.0 (dense full-scale samples)."""
    rng = np.random.default_rng(seed)
    return np.clip(3 * rng.standard_normal((1, int(seconds * rate))), -1, 1).astype(np.float32)


def synth_song(seconds: float, rate: int = RATE, seed: int = 3) -> np.ndarray:
    """``(2, T)`` a small song: bass line, chords, kick and hi-hat, peak-normalised to 1.0."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    beat = 0.5  # 120 bpm
    step = np.floor(t / beat).astype(int)
    phase = t - step * beat
    bass_f = np.array([55.0, 55.0, 73.4, 65.4])[(step // 2) % 4]
    bass = 0.5 * np.sin(2 * np.pi * bass_f * t) * np.exp(-3 * phase)
    chords = sum(0.12 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) for f in (220.0, 277.2, 329.6, 440.0))
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-30 * phase)) * phase) * np.exp(-12 * phase)
    hat_phase = t % (beat / 2)
    hat = 0.15 * rng.standard_normal(t.size) * np.exp(-60 * hat_phase)
    left = bass + chords + kick + 0.7 * hat
    right = bass + 0.8 * chords + kick + 1.3 * hat
    mix = np.stack([left, right])
    return (mix / np.max(np.abs(mix))).astype(np.float32)


def load_signals(args) -> dict[str, np.ndarray]:
    signals = {
        "square": square(args.seconds),
        "clipped-noise": clipped_noise(args.seconds),
        "synth-song": synth_song(args.seconds),
    }
    for path in args.input:
        audio, rate = read_audio(path)
        signals[Path(path).stem] = audio
    return signals


def band_leak_db(stem, audio, nb_stems, band=(20.0, 250.0), rate=RATE) -> float:
    """Power of the input's share ``x/N`` over the rest of the stem, in dB, within ``band`` (Hz).

    Every symmetric strategy keeps ``E[stem | x] = x/N``; white noise spreads its power over the
    whole spectrum while music concentrates in the bass, so this is where the input shows most.
    """
    from scipy import signal

    share = np.asarray(audio, np.float64) / nb_stems
    freqs, p_share = signal.welch(share, fs=rate, nperseg=8192, axis=-1)
    _, p_rest = signal.welch(np.asarray(stem, np.float64) - share, fs=rate, nperseg=8192, axis=-1)
    keep = (freqs >= band[0]) & (freqs <= band[1])
    rest = p_rest[..., keep].sum()
    return float(10 * np.log10(max(p_share[..., keep].sum(), 1e-30) / rest)) if rest > 0 else float("inf")


def measure(audio, nb_stems, strategy, seeds) -> dict:
    """Means over stems and seeds of the stem report, plus timing, clipping and exactness."""
    rows, seconds, exact, peak = [], 0.0, True, 0.0
    target = noise_stems.quantize(audio, noise_stems.grid_exponent(nb_stems, float(np.abs(audio).max())))
    for seed in seeds:
        start = time.perf_counter()
        stems = noise_stems.split(audio, nb_stems, seed=seed, strategy=strategy)
        seconds += time.perf_counter() - start
        exact &= bool(np.array_equal(np.sum(stems, axis=0, dtype=np.float32), target))
        peak = max(peak, float(np.abs(stems).max()))
        report = noise_metrics.stem_report(audio, stems)
        for row, stem in zip(report, stems):
            row["bass_leak_db"] = band_leak_db(stem, audio, nb_stems)
        rows.extend(report)
    out = {key: float(np.mean([r[key] for r in rows])) for key in ("corr", "mi_bits", "specsim", "flatness",
                                                                    "rms_dbfs", "bass_leak_db")}
    out["corr_max"] = float(max(r["corr"] for r in rows))
    out["mi_sd"] = float(np.std([r["mi_bits"] for r in rows]))
    out["peak"] = peak
    out["exact"] = exact
    out["x_realtime"] = seconds / len(seeds) / (audio.shape[-1] / RATE)
    return out


def naive_clipping(audio, nb_stems, stem_rms, seed=0) -> float:
    """Fraction of samples above 1 in ``x/N + zero-sum Gaussian noise`` of stem RMS ``stem_rms``."""
    rng = np.random.default_rng(seed)
    x = np.asarray(audio, np.float64)
    noise = rng.standard_normal((nb_stems,) + x.shape)
    noise -= noise.mean(axis=0)
    sigma = np.sqrt(max(stem_rms**2 - np.mean((x / nb_stems) ** 2), 0.0))
    stems = x / nb_stems + noise * sigma / np.sqrt(1 - 1 / nb_stems)
    return float(np.mean(np.abs(stems) > 1.0))


def table(title, header, lines) -> str:
    out = [f"\n### {title}\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in line) + " |" for line in lines]
    return "\n".join(out)


def run(args) -> dict:
    signals = load_signals(args)
    results = {"strategies": {}, "tilt": {}, "naive": {}, "bound": {}}
    for name, audio in signals.items():
        rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
        lines = []
        for n in args.stems:
            bound = noise_metrics.correlation_lower_bound(audio, n)
            results["bound"][f"{name}/{n}"] = bound
            for strategy in noise_strategies.names():
                r = measure(audio, n, strategy, args.seeds)
                results["strategies"][f"{name}/{n}/{strategy}"] = r
                lines.append([n, strategy, f"{r['corr']:.3f}", f"{r['corr_max']:.3f}", f"{bound:.3f}",
                              f"{r['mi_bits']:.4f}", f"{r['specsim']:.3f}", f"{r['bass_leak_db']:.1f}",
                              f"{r['flatness']:.3f}",
                              f"{r['rms_dbfs']:.1f}", f"{r['peak']:.6f}", "yes" if r["exact"] else "NO",
                              f"{r['x_realtime']:.3f}"])
            default = results["strategies"][f"{name}/{n}/{noise_strategies.DEFAULT}"]
            results["naive"][f"{name}/{n}"] = naive_clipping(audio, n, 10 ** (default["rms_dbfs"] / 20))
        print(table(f"{name} ({audio.shape[0]} ch, {audio.shape[-1] / RATE:.1f} s, peak "
                    f"{np.abs(audio).max():.3f}, RMS {20 * np.log10(rms):.1f} dBFS)",
                    ["N", "strategy", "corr", "corr max", "corr bound", "MI bits", "spec sim",
                     "x/N dB <250 Hz", "flatness",
                     "stem dBFS", "peak", "exact sum", "x real time"], lines))
    print(table(f"naive x/N + unbounded Gaussian noise at the {noise_strategies.DEFAULT} stem level: "
                "samples that clip",
                ["signal", *[f"N={n}" for n in args.stems]],
                [[name, *[f"{100 * results['naive'][f'{name}/{n}']:.1f} %" for n in args.stems]]
                 for name in signals]))
    sweep_name = list(signals)[-1]
    audio = signals[sweep_name]
    lines = []
    for n in args.stems:
        for tilt in TILTS:
            strategy = noise_strategies.Strategy(
                f"polytope-tilt{tilt:g}", functools.partial(noise_strategies.polytope, tilt=tilt), "")
            r = measure(audio, n, strategy, args.seeds)
            results["tilt"][f"{sweep_name}/{n}/{tilt:g}"] = r
            lines.append([n, f"{tilt:g}", f"{r['corr']:.3f}", f"{r['mi_bits']:.4f}", f"{r['mi_sd']:.4f}",
                          f"{r['specsim']:.3f}", f"{r['rms_dbfs']:.1f}"])
    print(table(f"polytope tilt sweep on {sweep_name} (base density cosh(tilt * s))",
                ["N", "tilt", "corr", "MI bits", "MI sd", "spec sim", "stem dBFS"], lines))
    return results


def plot(results, path: Path, stems, full_scale=("square", "clipped-noise")) -> None:
    """Correlation (as a multiple of its lower bound) against MI, per N, for the music signals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = dict(zip(noise_strategies.names(), "o^sDv"))
    fig, axes = plt.subplots(1, len(stems), figsize=(4.2 * len(stems), 3.8), squeeze=False)
    for ax, n in zip(axes[0], stems):
        for strategy in noise_strategies.names():
            pts = []
            for key, r in results["strategies"].items():
                signal, nb, name = key.rsplit("/", 2)
                if int(nb) == n and name == strategy and signal not in full_scale:
                    pts.append((r["corr"] / results["bound"][f"{signal}/{n}"], max(r["mi_bits"], 1e-4)))
            ax.scatter(*zip(*pts), label=strategy, marker=markers[strategy], s=28, alpha=0.7)
        tilt = []
        for key, r in results["tilt"].items():
            signal, nb, _ = key.rsplit("/", 2)
            if int(nb) == n:
                tilt.append((r["corr"] / results["bound"][f"{signal}/{n}"], max(r["mi_bits"], 1e-4)))
        ax.plot(*zip(*sorted(tilt)), "k--", lw=0.8, label="polytope, tilt 0..4")
        ax.axvline(1.0, color="grey", lw=0.6)
        ax.set(xlabel="correlation / lower bound", ylabel="MI (bits/sample)", yscale="log", title=f"N = {n}")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("music signals: the lower-left corner hides best; x = 1 is the bound", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", nargs="*", default=[], help="real audio files to add")
    parser.add_argument("--stems", nargs="+", type=int, default=[2, 3, 4, 8])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the synthetic signals")
    parser.add_argument("--out", default="data/noise_stems/bench", help="folder for the JSON and the plot")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from --out/results.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.replot:
        plot(json.loads((out / "results.json").read_text()), out / "tradeoff.png", args.stems)
        return 0
    results = run(args)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "tradeoff.png", args.stems)
    print(f"\nwrote {out / 'results.json'} and {out / 'tradeoff.png'} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
