"""Tables of training runs: best validation and out-of-distribution SDR per run, and the corpus study.

    python -m models.study runs/umx runs/fnn runs/fnn-noaug        # one row per run
    python -m models.study --corpus-study runs/study -o runs/study/ood_vs_size.png
    python -m models.study --ablation runs/fnn runs/fnn-noaug          # augmentation ablation

``--corpus-study`` reads runs named ``<diversity>-<songs>`` (e.g. ``diverse-40``, ``basic-300``) and
prints the out-of-distribution SDR per target against the number of training songs, one block per
diversity setting, plus a PNG of the OOD mean against corpus size.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from core.constants import TARGETS
from core.errors import CheckpointError
from models.checkpoint import safe_load


def run_summary(run_dir: str | Path) -> dict:
    """Best metrics of a run folder (its ``best.pth``), plus the number of training songs."""
    run_dir = Path(run_dir)
    package = safe_load(run_dir / "best.pth")
    metrics = dict(package.get("metrics", {}))
    metrics["train_songs"] = package.get("training_args", {}).get("train_songs")
    metrics["member"] = package["member"]
    return metrics


def _cells(sdr: dict | None) -> str:
    if not sdr:
        return " | ".join(["-"] * (len(TARGETS) + 1))
    return " | ".join(f"{sdr[k]:.2f}" for k in list(TARGETS) + ["mean"])


def runs_table(run_dirs) -> str:
    """Markdown: run, member, songs, epochs, minutes, validation and OOD SDR per target."""
    head = ["run", "member", "songs", "best epoch", "min to best"]
    head += [f"valid {t}" for t in list(TARGETS) + ["mean"]] + [f"OOD {t}" for t in list(TARGETS) + ["mean"]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 5 + "---:|" * (2 * len(TARGETS) + 2)]
    for run in run_dirs:
        try:
            m = run_summary(run)
        except CheckpointError as exc:
            lines.append(f"| {Path(run).name} | not trained ({exc}) |")
            continue
        minutes = (m.get("wall_time_s") or 0) / 60
        lines.append(
            f"| {Path(run).name} | {m['member']} | {m['train_songs']} | {m.get('epochs')} | {minutes:.1f} | "
            f"{_cells(m.get('valid_sdr'))} | {_cells(m.get('ood_sdr'))} |"
        )
    return "\n".join(lines)


def corpus_study(root: str | Path, plot: str | Path | None = None) -> str:
    """OOD SDR against corpus size and diversity from runs ``<root>/<diversity>-<songs>``."""
    rows: dict[str, list] = {}
    for run in sorted(Path(root).iterdir()):
        found = re.fullmatch(r"(.+)-(\d+)", run.name)
        if found and (run / "best.pth").is_file():
            rows.setdefault(found.group(1), []).append((int(found.group(2)), run_summary(run)))
    lines = []
    for diversity, entries in sorted(rows.items()):
        lines.append(
            f"\n{diversity}:\n| songs | " + " | ".join(f"OOD {t}" for t in TARGETS) + " | OOD mean | "
            "valid mean |\n|---:|" + "---:|" * (len(TARGETS) + 2)
        )
        for songs, m in sorted(entries, key=lambda e: e[0]):
            valid = (m.get("valid_sdr") or {}).get("mean", float("nan"))
            lines.append(f"| {songs} | {_cells(m.get('ood_sdr'))} | {valid:.2f} |")
    if plot and rows:
        _plot(rows, Path(plot))
    return "\n".join(lines)


def _plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for diversity, entries in sorted(rows.items()):
        entries = sorted(entries, key=lambda e: e[0])
        xs = [songs for songs, m in entries if m.get("ood_sdr")]
        ys = [m["ood_sdr"]["mean"] for _, m in entries if m.get("ood_sdr")]
        ax.plot(xs, ys, marker="o", label=f"diversity: {diversity}")
    ax.set_xlabel("training songs")
    ax.set_ylabel("out-of-distribution MDX SDR, mean (dB)")
    ax.set_xscale("log")
    ax.legend()
    ax.set_title("OOD SDR against corpus size")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def history(run_dir: str | Path) -> list[dict]:
    """Per-epoch entries of a run (``history.json``: epoch, loss, valid_sdr, ood_sdr, seconds)."""
    path = Path(run_dir) / "history.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: no training history (run not started?)")
    return json.loads(path.read_text())


def ablation_table(run_a: str | Path, run_b: str | Path) -> str:
    """Markdown: two runs compared epoch by epoch (same number of gradient steps) up to the shorter
    run's last epoch, plus each run's best epoch in that range. Wall time is not compared: runs
    sharing a machine get different CPU shares."""
    a, b = history(run_a), history(run_b)
    n = min(len(a), len(b))
    names = Path(run_a).name, Path(run_b).name
    lines = [f"| epoch | {names[0]} valid | {names[1]} valid | {names[0]} OOD | {names[1]} OOD |",
             "|---:|---:|---:|---:|---:|"]

    def mean(entry, key):
        return (entry.get(key) or {}).get("mean", float("nan"))

    for k in range(n):
        lines.append(f"| {k + 1} | {mean(a[k], 'valid_sdr'):.2f} | {mean(b[k], 'valid_sdr'):.2f} | "
                     f"{mean(a[k], 'ood_sdr'):.2f} | {mean(b[k], 'ood_sdr'):.2f} |")
    best = [max(h[:n], key=lambda e: mean(e, "valid_sdr")) for h in (a, b)]
    lines.append(f"| best of 1-{n} | {mean(best[0], 'valid_sdr'):.2f} | {mean(best[1], 'valid_sdr'):.2f} | "
                 f"{mean(best[0], 'ood_sdr'):.2f} | {mean(best[1], 'ood_sdr'):.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Summarise training runs.")
    parser.add_argument("runs", nargs="*", help="run folders (with best.pth)")
    parser.add_argument("--corpus-study", help="folder of <diversity>-<songs> runs")
    parser.add_argument("-o", "--plot", help="PNG of the corpus study")
    parser.add_argument("--json", help="write the run summaries as JSON here")
    parser.add_argument("--ablation", nargs=2, metavar=("RUN_A", "RUN_B"),
                        help="compare two runs epoch by epoch (e.g. runs/fnn runs/fnn-noaug)")
    args = parser.parse_args(argv)
    if args.ablation:
        print(ablation_table(*args.ablation))
    if args.runs:
        print(runs_table(args.runs))
    if args.corpus_study:
        print(corpus_study(args.corpus_study, args.plot))
    if args.json:
        done = [r for r in args.runs if (Path(r) / "best.pth").is_file()]
        Path(args.json).write_text(json.dumps({str(r): run_summary(r) for r in done}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
