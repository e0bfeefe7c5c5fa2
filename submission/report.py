"""Text tables and the PNG chart of a ``test.py`` run.

Every function takes summaries in the ``results.json`` layout (:func:`submission.scoring.summarize`):
``{"songs": {song: {instrument: sdr}}, "instruments": {instrument: mean}, "mean": overall}``.
"""

from __future__ import annotations

import math
from pathlib import Path

from core.constants import TARGETS


def _fmt(value) -> str:
    return "     -" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:6.2f}"


def _row(name: str, values: list, width: int) -> str:
    return f"{name[:width]:<{width}} " + " ".join(f"{_fmt(v):>7}" for v in values)


def _header(first: str, width: int, columns=(*TARGETS, "mean")) -> list[str]:
    line = f"{first:<{width}} " + " ".join(f"{c:>7}" for c in columns)
    return [line, "-" * len(line)]


def song_table(summary: dict, title: str = "", summary_row: str = "mean") -> str:
    """Song x instrument table (dB) with the song means and the instrument summary (``summary_row``)."""
    songs = summary["songs"]
    width = max([12, *(len(s) for s in songs)])
    lines = [title] if title else []
    lines += _header("song", width)
    for song, scores in songs.items():
        values = [scores.get(t) for t in TARGETS]
        lines.append(_row(song, values + [sum(values) / len(values)], width))
    lines.append("-" * len(lines[-1]))
    lines.append(_row(summary_row, [summary["instruments"][t] for t in TARGETS] + [summary["mean"]], width))
    return "\n".join(lines)


def comparison_table(rows: dict[str, dict], title: str = "") -> str:
    """One row per predictor (or dataset): the instrument means and the overall mean."""
    width = max([12, *(len(n) for n in rows)])
    lines = [title] if title else []
    lines += _header("", width)
    for name, summary in rows.items():
        lines.append(_row(name, [summary["instruments"][t] for t in TARGETS] + [summary["mean"]], width))
    return "\n".join(lines)


def gap_table(datasets: dict[str, dict], gaps: dict[str, dict], reference: str) -> str:
    """Scores per dataset, then the gap ``reference - dataset`` per instrument."""
    rows = dict(datasets)
    rows.update({f"gap {reference} - {label}": g for label, g in gaps.items()})
    return comparison_table(rows, title="in-distribution vs out-of-distribution (grader SDR, dB)")


def plot(path: str | Path, rows: dict[str, dict], datasets: dict[str, dict] | None = None,
         title: str = "") -> Path:
    """Bar chart of the instrument means per predictor (and per dataset when there are several)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = [("predictor and baselines", rows)]
    if datasets and len(datasets) > 1:
        panels.append(("per dataset", datasets))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.2), squeeze=False)
    columns = [*TARGETS, "mean"]
    x = np.arange(len(columns))
    for ax, (name, group) in zip(axes[0], panels):
        width = 0.8 / max(1, len(group))
        for i, (label, summary) in enumerate(group.items()):
            values = [summary["instruments"][t] for t in TARGETS] + [summary["mean"]]
            values = [np.nan if v is None else v for v in values]
            ax.bar(x + (i - (len(group) - 1) / 2) * width, values, width, label=label)
        ax.set_xticks(x, columns)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_ylabel("grader SDR (dB)")
        ax.set_title(name)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
