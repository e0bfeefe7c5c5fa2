"""The README figures: an ensemble config against its parts and the baselines on a test split.

    python -m blend.evaluate --data-dir DIR [--split test] [--config blend/configs/default.yaml]
                             [--seconds S] [--baselines oracle-irm,scaled] [-o runs/blend-eval]

Per target, mean MDX 2021 global SDR over the songs of: each member alone (and which is best),
equal weights, the config's λ without the Wiener filter, the config's λ + Wiener (the ensemble), and
registered baseline predictors (``oracle-irm``: the oracle ratio mask; ``scaled``: mixture / 4).
Writes ``OUT/figures.md`` (table + the issue's goals: λ + Wiener ≥ best member + 1.0 dB, Wiener adds
≥ 0.3 dB), ``OUT/figures.json`` and ``OUT/figures.png`` (grouped bars). Member outputs come from the
tuning cache (:mod:`blend.cache`), so members run once per song.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from blend.cache import MemberCache
from blend.config import DEFAULT_CONFIG, load_config
from blend.report import sdr_table
from blend.tune import crop, prepare_songs, render_sdr
from blend.weights import equal_weights, one_hot
from core.files import write_text
from core.metrics import global_sdr

#: row labels of the usual baselines
LABELS = {"oracle-irm": "oracle ratio mask (oracle-irm)", "scaled": "mixture / 4 (scaled)"}
#: the issue's goals (dB): ensemble over the best single member; Wiener over λ alone
GOAL_OVER_BEST = 1.0
GOAL_WIENER = 0.3


def baseline_rows(names, tracks, targets, frames) -> dict:
    """``{label: {target: dB}}`` of registered predictors run through their file API on each song."""
    from submission.registry import create

    rows = {}
    for name in names:
        predictor = create(name)
        scores = []
        for track in tracks:
            mixture_file = Path(track.path) / "mixture.wav"
            if not mixture_file.is_file():
                raise SystemExit(f"--baselines: {track.path} has no mixture.wav (wav folders only)")
            estimates, _ = predictor.separate_file(mixture_file)
            mix, stems = track.load()
            order = [list(track.targets).index(t) for t in targets]
            est = np.stack([estimates[t] for t in targets])
            _, est = crop(mix, est, frames)
            _, refs = crop(mix, stems[order], frames)
            scores.append([global_sdr(r, e) for r, e in zip(refs, est)])
        label = LABELS.get(name, name)
        rows[label] = dict(zip(targets, np.mean(scores, axis=0).tolist()))
    return rows


def evaluate(tracks, config, cache: MemberCache, seconds=None, baselines=(), progress=True) -> dict:
    """All rows of the figure table plus the goal checks."""
    songs, available = prepare_songs(tracks, config, cache, seconds, progress)
    targets = config.targets
    rows = {}
    for name in config.member_names:
        rows[f"{name} alone"] = render_sdr(songs, one_hot(config.member_names, targets, name), None, config)
    best = max(rows, key=lambda k: np.mean(list(rows[k].values())))
    equal = equal_weights(config.member_names, targets, available)
    rows["equal weights"] = render_sdr(songs, equal, None, config)
    rows["tuned λ"] = render_sdr(songs, config.weights, None, config)
    if config.wiener is not None:
        rows["tuned λ + Wiener"] = render_sdr(songs, config.weights, config.wiener, config)
    frames = int(seconds * config.sample_rate) if seconds else None
    rows.update(baseline_rows(baselines, tracks, targets, frames))

    def mean(k):
        return float(np.mean(list(rows[k].values())))

    final = "tuned λ + Wiener" if "tuned λ + Wiener" in rows else "tuned λ"
    goals = {"best single member": best, "over best member (dB)": mean(final) - mean(best),
             "goal over best member (dB)": GOAL_OVER_BEST}
    if final == "tuned λ + Wiener":
        goals["Wiener gain (dB)"] = mean(final) - mean("tuned λ")
        goals["goal Wiener gain (dB)"] = GOAL_WIENER
    return {"songs": [s.name for s in songs], "rows": rows, "goals": goals, "seconds": seconds}


def bar_chart(rows: dict, targets, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(rows)
    x = np.arange(len(targets) + 1)
    width = 0.8 / max(1, len(labels))
    # one distinct colour per row (tab20's dark shades, then its light ones): no colour repeats up to 20
    palette = plt.get_cmap("tab20")
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    fig, ax = plt.subplots(figsize=(4 + 1.6 * len(x), 4))
    for i, label in enumerate(labels):
        values = [rows[label][t] for t in targets]
        ax.bar(x + i * width, values + [np.mean(values)], width, label=label, color=palette(order[i % 20]))
    ax.set_xticks(x + width * (len(labels) - 1) / 2, list(targets) + ["mean"])
    ax.set_ylabel("global SDR (dB)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, not over them
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(result: dict, targets, command: str) -> str:
    g = result["goals"]
    lines = [f"# Ensemble on {len(result['songs'])} test songs\n", f"`{command}`\n",
             sdr_table(result["rows"], targets), "",
             f"Best single member: {g['best single member']}. Ensemble over it: "
             f"{g['over best member (dB)']:+.2f} dB (goal ≥ {GOAL_OVER_BEST} dB: "
             f"{'met' if g['over best member (dB)'] >= GOAL_OVER_BEST else 'not met'})."]
    if "Wiener gain (dB)" in g:
        met = "met" if g["Wiener gain (dB)"] >= GOAL_WIENER else "not met"
        lines.append(f"Wiener filter: {g['Wiener gain (dB)']:+.2f} dB (goal ≥ {GOAL_WIENER} dB: {met}).")
    return "\n".join(lines) + "\n\n![SDR per target](figures.png)\n"


def main(argv=None) -> int:
    from tracks import open_tracks

    p = argparse.ArgumentParser(prog="python -m blend.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--cache-dir", default="cache/blend")
    p.add_argument("--seconds", type=float, default=None, help="score the central S seconds of each song")
    p.add_argument("--max-songs", type=int, default=None)
    p.add_argument("--baselines", default="oracle-irm,scaled",
                   help="registered predictors to add ('' for none)")
    p.add_argument("-o", "--out", default="runs/blend-eval")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    config = load_config(args.config)
    tracks = open_tracks(args.data_dir, args.split, targets=config.targets)[: args.max_songs]
    if not tracks:
        raise SystemExit(f"{args.data_dir}: no songs in split '{args.split}'")
    baselines = [b for b in args.baselines.split(",") if b.strip()]
    result = evaluate(tracks, config, MemberCache(args.cache_dir), args.seconds, baselines, not args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m blend.evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
    bar_chart(result["rows"], config.targets, out / "figures.png")
    write_text(out / "figures.md", markdown(result, config.targets, command))
    write_text(out / "figures.json", json.dumps(result, indent=2))
    print(sdr_table(result["rows"], config.targets, bold_best=False))
    print(json.dumps(result["goals"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
