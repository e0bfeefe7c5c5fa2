"""Does the enhancer help? SDR per target with and without it, its cost, and the tuner's decision.

* :func:`tune_section` / :func:`choose_targets` are what the tuning run calls: given validation
  estimates, references and mixtures per target, they run the enhancer on every candidate target
  and keep it only where the mean SDR (the grader's global SDR, averaged over songs) improves by
  more than ``min_gain`` dB.
* ``python -m enhancer.evaluate`` produces the README's figures on a split: SDR per target with and
  without the enhancer and its real-time factor, from a folder of a predictor's estimates
  (``python -m enhancer.pairs --split test ...`` writes one), as JSON, Markdown and a PNG.

Shapes: ``(nb_channels, nb_timesteps)`` per song and target.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.audio import read_audio
from core.constants import SAMPLE_RATE, TARGETS
from core.metrics import global_sdr

#: the smallest mean validation gain (dB) that enables the enhancer for a target: the issue's goal
#: (a smaller validation gain, +0.08 dB on drums, turned into -0.09 dB on the test split)
MIN_GAIN_DB = 0.3


def score(enhance, estimates: Mapping[str, Sequence[np.ndarray]],
          references: Mapping[str, Sequence[np.ndarray]], mixtures: Sequence[np.ndarray]) -> dict[str, dict]:
    """SDR per target with and without the enhancer.

    Args:
        enhance: ``enhance(target, estimate (C, T), mixture (C, T)) -> (C, T)`` (e.g.
            ``partial(Enhancer.enhance, force=True)``).
        estimates, references: ``{target: [song (C, T), ...]}``, songs in the order of ``mixtures``.
        mixtures: ``[song (C, T), ...]``.

    Returns:
        ``{target: {"without", "with", "gain", "improved", "songs", "seconds", "audio_seconds", "rtf"}}``
        with mean SDRs in dB, songs improved, and the enhancer's time and real-time factor.
    """
    table = {}
    for target, songs in estimates.items():
        if len(songs) != len(mixtures) or len(references[target]) != len(mixtures):
            raise ValueError(f"{target}: {len(songs)} estimates, {len(references[target])} references, "
                             f"{len(mixtures)} mixtures")
        without, with_, elapsed, audio = [], [], 0.0, 0.0
        for est, ref, mix in zip(songs, references[target], mixtures):
            start = time.perf_counter()
            out = enhance(target, est, mix)
            elapsed += time.perf_counter() - start
            audio += est.shape[-1] / SAMPLE_RATE
            without.append(global_sdr(ref, est))
            with_.append(global_sdr(ref, out))
        gains = np.subtract(with_, without)
        table[target] = {
            "without": float(np.mean(without)), "with": float(np.mean(with_)), "gain": float(np.mean(gains)),
            "improved": int(np.sum(gains > 0)), "songs": len(without),
            "seconds": elapsed, "audio_seconds": audio, "rtf": elapsed / max(audio, 1e-9),
        }
    return table


def choose_targets(enhancer, estimates: Mapping[str, Sequence[np.ndarray]],
                   references: Mapping[str, Sequence[np.ndarray]], mixtures: Sequence[np.ndarray],
                   min_gain: float = MIN_GAIN_DB) -> tuple[list[str], dict[str, dict]]:
    """Targets the enhancer should be enabled for: mean validation SDR gain above ``min_gain`` dB.

    Args:
        enhancer: an :class:`enhancer.apply.Enhancer` holding every candidate target, or any
            ``enhance(target, estimate, mixture)`` callable.
        estimates, references, mixtures: as in :func:`score` (validation songs).
        min_gain: the smallest mean gain in dB that enables a target (guards against noise).

    Returns:
        ``(enabled targets in TARGETS order, score table)``.
    """
    run = enhancer.enhance if hasattr(enhancer, "enhance") else enhancer
    table = score(run, estimates, references, mixtures)
    for row in table.values():
        row["enabled"] = bool(row["gain"] > min_gain)
    enabled = [t for t in TARGETS if t in table and table[t]["enabled"]]
    return enabled, table


def tune_section(section: Mapping, estimates, references, mixtures, base_dir=None,
                 min_gain: float = MIN_GAIN_DB) -> tuple[dict, dict[str, dict]]:
    """The tuner's entry point: keep the targets of a candidate ``enhancer:`` section that help.

    Args:
        section: candidate specs, e.g. ``{t: {"base": ..., "adapter": ...} for t in TARGETS}``.
        estimates, references, mixtures: validation songs, as in :func:`score` (after λ and Wiener).
        base_dir: folder relative paths of ``section`` start from.
        min_gain: see :func:`choose_targets`.

    Returns:
        ``(section restricted to the enabled targets, score table)``: write the first as the
        ensemble config's ``enhancer:`` (empty: the stage stays off).
    """
    from enhancer.apply import from_config

    enhancer = from_config(section, base_dir)
    if enhancer is None:
        return {}, {}
    enabled, table = choose_targets(enhancer, {t: v for t, v in estimates.items() if t in enhancer.stems},
                                    references, mixtures, min_gain)
    return {t: dict(section[t]) for t in enabled}, table


def markdown(table: dict[str, dict]) -> str:
    """The score table as Markdown (SDR in dB, real-time factor)."""
    lines = ["| target | SDR without | SDR with | gain | songs improved | RTF |", "|---|---|---|---|---|---|"]
    for target, row in table.items():
        lines.append(f"| {target} | {row['without']:.2f} | {row['with']:.2f} | {row['gain']:+.2f} | "
                     f"{row['improved']}/{row['songs']} | {row['rtf']:.3f} |")
    return "\n".join(lines)


def plot(table: dict[str, dict], path: str | Path, title: str = "enhancer") -> Path:
    """Bar chart of SDR per target with and without the enhancer (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(table)
    x = np.arange(len(targets))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(x - 0.2, [table[t]["without"] for t in targets], 0.4, label="without")
    ax.bar(x + 0.2, [table[t]["with"] for t in targets], 0.4, label="with enhancer")
    ax.set_xticks(x, targets)
    ax.set_ylabel("global SDR (dB)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def load_split(data_dir, split: str, estimates_dir, targets: Sequence[str]):
    """Mixtures, references and a predictor's estimates of a split, as :func:`score` takes them."""
    import tracks as tracks_mod
    from enhancer.pairs import check_estimates, estimate_path

    found = tracks_mod.open_tracks(data_dir, split=split)
    check_estimates(estimates_dir, found, targets)
    mixtures, references, estimates = [], {t: [] for t in targets}, {t: [] for t in targets}
    for track in found:
        mixture, stems = track.load()
        mixtures.append(mixture)
        for target in targets:
            references[target].append(stems[list(TARGETS).index(target)])
            estimates[target].append(read_audio(estimate_path(estimates_dir, track.name, target))[0])
    return mixtures, references, estimates


def main(argv=None) -> int:
    from enhancer.apply import from_config

    parser = argparse.ArgumentParser(prog="python -m enhancer.evaluate",
                                     description="SDR per target with and without the enhancer, and its cost")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="test", choices=["train", "valid", "test"])
    parser.add_argument("--estimates", required=True, help="folder EST/<song>/<target>.wav of the predictor")
    parser.add_argument("--base", required=True, help="base enhancer .pth")
    parser.add_argument("--adapter", action="append", default=[], metavar="TARGET=PATH")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--segment", type=float, default=4.0)
    parser.add_argument("--min-gain", type=float, default=MIN_GAIN_DB)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-o", "--out", required=True, help="report folder (scores.json, scores.md, sdr.png)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    adapters = dict(item.split("=", 1) for item in args.adapter)
    section = {t: {"base": str(Path(args.base).resolve()), "segment": args.segment} for t in args.targets}
    for target, path in adapters.items():
        section[target]["adapter"] = str(Path(path).resolve())
    enhancer = from_config(section)
    mixtures, references, estimates = load_split(args.data_dir, args.split, args.estimates, args.targets)
    bar = tqdm(total=len(args.targets) * len(mixtures), desc="enhancing", unit="stem")

    def run(target, est, mix):
        bar.update()
        return enhancer.enhance(target, est, mix)

    enabled, table = choose_targets(run, estimates, references, mixtures, args.min_gain)
    bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"split": args.split, "songs": len(mixtures), "enabled": enabled, "table": table,
              "base": args.base, "adapters": adapters}
    (out / "scores.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "scores.md").write_text(markdown(table) + "\n")
    plot(table, out / "sdr.png", f"enhancer on '{args.split}' ({len(mixtures)} songs)")
    print(markdown(table))
    print(f"enabled (gain > {args.min_gain} dB): {enabled or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
