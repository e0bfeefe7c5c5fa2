"""In-distribution against out-of-distribution: the gap per target for every row of the figures.

    python -m blend.gap runs/figures/eval-test runs/figures/eval-ood [runs/figures/eval-real] \
        [--labels test,ood,real] [-o docs/images/id_vs_ood.png] [--markdown gap.md]

Reads the ``figures.json`` that :mod:`blend.evaluate` wrote for each set (the first is the
in-distribution reference) and prints, for every row present in all sets (each member alone, the
blends, the oracle ratio mask, mixture / 4), the mean SDR per set and the gap (reference minus
set) per target. The PNG shows the mean SDR of each row in each set, side by side.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from core.files import write_text


def load_sets(folders, labels) -> dict[str, dict]:
    """``{label: figures.json content}`` in the given order."""
    sets = {}
    for label, folder in zip(labels, folders):
        path = Path(folder) / "figures.json"
        if not path.is_file():
            raise SystemExit(f"{path}: no figures.json (run python -m blend.evaluate -o {folder} first)")
        sets[label] = json.loads(path.read_text())
    return sets


def common_rows(sets: dict) -> list[str]:
    """Rows present in every set, in the reference's order."""
    first, *rest = sets.values()
    return [r for r in first["rows"] if all(r in s["rows"] for s in rest)]


def gap_table(sets: dict, targets) -> str:
    """Markdown: per row, mean SDR per set, then the gap per target for each other set."""
    labels = list(sets)
    ref = labels[0]
    head = [f"{lab} mean" for lab in labels]
    for lab in labels[1:]:
        head += [f"gap {t} ({ref}−{lab})" for t in targets]
    lines = ["| row | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for row in common_rows(sets):
        cells = [f"{np.mean([sets[lab]['rows'][row][t] for t in targets]):.2f}" for lab in labels]
        for lab in labels[1:]:
            cells += [f"{sets[ref]['rows'][row][t] - sets[lab]['rows'][row][t]:+.2f}" for t in targets]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(sets: dict, targets, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = common_rows(sets)
    x = np.arange(len(rows))
    width = 0.8 / len(sets)
    fig, ax = plt.subplots(figsize=(3 + 0.9 * len(rows), 4))
    for i, (label, data) in enumerate(sets.items()):
        means = [np.mean([data["rows"][r][t] for t in targets]) for r in rows]
        ax.bar(x + i * width, means, width, label=f"{label} ({len(data['songs'])} songs)")
    ax.set_xticks(x + width * (len(sets) - 1) / 2, rows, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean global SDR (dB)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=8)
    ax.set_title("in-distribution vs out-of-distribution")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m blend.gap", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="blend.evaluate output folders; the first is the reference")
    p.add_argument("--labels", default=None, help="comma-separated names (default: folder names)")
    p.add_argument("--targets", default="bass,drums,other,vocals")
    p.add_argument("-o", "--plot", default=None, help="PNG of the mean SDR per row and set")
    p.add_argument("--markdown", default=None, help="also write the table here")
    args = p.parse_args(argv)
    if len(args.folders) < 2:
        p.error("give the reference folder and at least one other")
    labels = args.labels.split(",") if args.labels else [Path(f).name for f in args.folders]
    if len(labels) != len(args.folders):
        p.error(f"--labels has {len(labels)} names for {len(args.folders)} folders")
    sets = load_sets(args.folders, labels)
    targets = args.targets.split(",")
    table = gap_table(sets, targets)
    print(table)
    if args.markdown:
        write_text(args.markdown, table + "\n")
    if args.plot:
        print(f"wrote {plot(sets, targets, Path(args.plot))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
