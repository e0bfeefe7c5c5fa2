"""Reports of tuning and evaluation runs: Markdown tables, JSON, and the λ heatmap PNG.

:func:`sdr_table` is shared by the tuning report (:mod:`blend.tune`) and the test-split figures
(:mod:`blend.evaluate`): rows are blends, columns the targets and their mean, values in dB of the
MDX 2021 grader's global SDR averaged over songs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from blend.fit import sdr_from_stats
from core.files import write_text


def sdr_table(rows: dict, targets: Sequence[str], bold_best: bool = True) -> str:
    """Markdown table ``| blend | bass | ... | mean |`` from ``{label: {target: dB}}``."""
    labels = list(rows)
    values = np.array([[rows[k].get(t, np.nan) for t in targets] for k in labels], np.float64)
    values = np.concatenate([values, np.nanmean(values, axis=1, keepdims=True)], axis=1)
    best = np.nanmax(values, axis=0) if len(labels) else []
    lines = [
        "| blend | " + " | ".join(list(targets) + ["mean"]) + " |",
        "|---|" + "---:|" * (len(targets) + 1),
    ]
    for label, row in zip(labels, values):
        cells = [f"**{v:.2f}**" if bold_best and np.isclose(v, b) else f"{v:.2f}" for v, b in zip(row, best)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def weights_table(weights: dict, targets: Sequence[str]) -> str:
    """Markdown table of a ``BlendWeights.to_dict()`` (first band only when there are bands)."""
    if "weights" in weights:
        table, note = weights["weights"], ""
    else:
        table = weights["bands"]["weights"][0]
        note = f"\n\n(band 1 of {len(weights['bands']['weights'])}; edges {weights['bands']['edges_hz']} Hz)"
    lines = ["| member | " + " | ".join(targets) + " |", "|---|" + "---:|" * len(targets)]
    lines += [f"| {m} | " + " | ".join(f"{w:.3f}" for w in row) + " |" for m, row in table.items()]
    return "\n".join(lines) + note


def heatmap(
    result, pair: Sequence[str] | None, path: Path, extent: float = 1.25, steps: int = 26
) -> Path | None:
    """PNG of mean SDR over ``(λ_A, λ_B)`` for two members (others at 0), one panel per target.

    The dashed line is ``λ_A + λ_B = 1`` (the constraint of the fits); the star the best point.
    Returns None with fewer than two members.
    """
    names = list(result.config.member_names)
    if len(names) < 2:
        return None
    pair = list(pair or names[:2])
    for name in pair:
        if name not in names:
            raise ValueError(f"--pair: unknown member '{name}'; members are {names}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ia, ib = names.index(pair[0]), names.index(pair[1])
    grid = np.linspace(0.0, extent, steps)
    targets = result.config.targets
    sdr = np.zeros((len(targets), steps, steps))
    for i, la in enumerate(grid):
        for j, lb in enumerate(grid):
            table = np.zeros((len(names), len(targets)))
            table[ia], table[ib] = la, lb
            sdr[:, j, i] = np.mean([sdr_from_stats(st, table) for st in result.stats], axis=0)
    fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 3.2), squeeze=False)
    for s, (ax, target) in enumerate(zip(axes[0], targets)):
        im = ax.imshow(sdr[s], origin="lower", extent=(0, extent, 0, extent), aspect="equal", cmap="viridis")
        ax.plot([0, 1], [1, 0], "w--", lw=1)
        j, i = np.unravel_index(np.argmax(sdr[s]), sdr[s].shape)
        ax.plot(grid[i], grid[j], "r*", ms=10)
        ax.set_title(f"{target} (max {sdr[s].max():.2f} dB)", fontsize=9)
        ax.set_xlabel(f"λ {pair[0]}")
        ax.set_ylabel(f"λ {pair[1]}")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle("Mean SDR (dB) over λ for two members; dashed: λ sum to one")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def to_json(result) -> dict:
    return {
        "songs": result.songs,
        "rows": result.rows,
        "chosen": result.chosen,
        "weights": result.weights,
        "timings": result.timings,
        "trials": result.trials,
        "study": result.study,
        "wiener_trial": result.wiener_trial,
        "config": result.config.to_dict(),
    }


def markdown(result, heatmap_name: str | None) -> str:
    targets = result.config.targets
    out = [
        f"# Ensemble tuning report\n\n{len(result.songs)} validation songs: {', '.join(result.songs)}.",
        "Mean global SDR (dB, MDX 2021 grader) over the songs.\n",
        sdr_table(result.rows, targets),
    ]
    out += [
        "\n## λ fits: closed form vs. grid search\n",
        "| method | mean SDR (dB) | seconds |",
        "|---|---:|---:|",
    ]
    for label, t in result.timings.items():
        sdr = np.mean(list(result.rows[label].values()))
        extra = f" (statistics {t['statistics_seconds']:.2f} s)" if "statistics_seconds" in t else ""
        extra += f" (step {t['step']}, {t.get('how', 'brute force')})" if "step" in t else ""
        out.append(f"| {label}{extra} | {sdr:.3f} | {t['seconds']:.2f} |")
    out += [f"\nChosen: **{result.chosen}**\n", weights_table(result.weights[result.chosen], targets)]
    if result.trials:
        out += [
            f"\n## Wiener settings (Optuna study `{result.study}`, {len(result.trials)} trials)\n",
            "| trial | iterations | softmask | residual | STFT | mean SDR | seconds | worker |",
            "|---:|---:|---|---|---:|---:|---:|---|",
        ]
        for t in sorted(result.trials, key=lambda t: -t["value"]):
            p = t["params"]
            out.append(
                f"| {t['number']} | {p.get('iterations')} | {p.get('softmask')} | "
                f"{p.get('residual')} | {p.get('n_fft', result.config.stft.n_fft)} | {t['value']:.3f} | "
                f"{t.get('seconds', 0):.1f} | "
                f"{t.get('worker', '')} |"
            )
        if result.wiener_trial:
            out.append(f"\nKept: trial {result.wiener_trial['number']}, the fewest EM iterations among the "
                       f"trials within {result.wiener_trial['tolerance']} dB of the best.")
    if heatmap_name:
        out.append(f"\n## λ for two members\n\n![SDR over λ]({heatmap_name})")
    config = yaml.safe_dump(result.config.to_dict(), sort_keys=False, default_flow_style=None, width=100)
    out += ["\n## Chosen config\n", "```yaml", config.rstrip(), "```"]
    return "\n".join(out) + "\n"


def write(result, songs, out_dir: Path, pair: Sequence[str] | None = None) -> list[Path]:
    """Write ``report.md``, ``report.json`` and ``heatmap.png`` into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    png = heatmap(result, pair, out_dir / "heatmap.png")
    paths = [
        write_text(out_dir / "report.md", markdown(result, png.name if png else None)),
        write_text(out_dir / "report.json", json.dumps(to_json(result), indent=2, default=str)),
    ]
    return paths + ([png] if png else [])


def summary(result) -> str:
    """The SDR table for the terminal."""
    return sdr_table(result.rows, result.config.targets, bold_best=False)
