"""Scoring members on songs with the MDX grader's global SDR, and the README table of members.

    python -m models.evaluation --data-dir data/corpus --split test [--ood-dir data/ood] \
        [--members umx fnn ...] [--max-songs N] [--json out.json]

prints, per member and for ``mixture/4`` and the oracle ratio mask (``oracle-irm``), the mean MDX
SDR per target over the songs of the split (and of the out-of-distribution folder), each member
loaded from its shipped weights with the manifest's sha256 check.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from tqdm import tqdm

from core.constants import TARGETS
from core.metrics import global_sdr


def score(references: np.ndarray, estimates: np.ndarray, targets) -> dict:
    """``{target: SDR}`` for ``(S, C, T)`` references and estimates in ``targets`` order."""
    return {t: global_sdr(references[j], estimates[j]) for j, t in enumerate(targets)}


def mean_scores(per_song: list[dict], targets) -> dict:
    """Mean over songs per target, plus ``mean`` (the MDX score: mean over targets)."""
    out = {t: float(np.mean([s[t] for s in per_song])) for t in targets}
    out["mean"] = float(np.mean([out[t] for t in targets]))
    return out


def evaluate_member(member, tracks, segment=None, progress: bool = False, desc: str = "songs") -> dict:
    """Mean MDX SDR per target of ``member`` over ``tracks``.

    Args:
        member: a :class:`models.base.Member` (put in eval mode for the call).
        tracks: ``tracks.Track`` objects.
        segment: chunk length passed to ``member.separate``.

    Returns:
        ``{target: SDR, ..., "mean": SDR}`` over the member's targets present in the songs.
    """
    per_song = []
    for track in tqdm(tracks, desc=desc, unit="song", disable=not progress, leave=False):
        mix, stems = track.load()
        estimates = member.separate(mix, segment=segment)
        per_song.append(score(stems, estimates, member.targets))
    return mean_scores(per_song, member.targets)


def evaluate_predictor(name: str, tracks, progress: bool = False) -> dict:
    """Mean SDR per target of a ``submission`` predictor (e.g. ``scaled``, ``oracle-irm``)."""
    from submission.registry import create

    predictor = create(name)
    predictor.prediction_setup()
    per_song = []
    for track in tqdm(tracks, desc=name, unit="song", disable=not progress, leave=False):
        mix, stems = track.load()
        predictor.reference_dir = track.path
        estimates = predictor.separate(mix)
        per_song.append(score(stems, np.stack([estimates[t] for t in TARGETS]), TARGETS))
    return mean_scores(per_song, TARGETS)


def format_table(rows: dict, targets=TARGETS) -> str:
    """Markdown table: one row per name, SDR per target and the mean."""
    head = "| | " + " | ".join(targets) + " | mean |\n|---|" + "---:|" * (len(targets) + 1)
    lines = [head]
    for name, scores in rows.items():
        cells = " | ".join(f"{scores.get(t, float('nan')):.2f}" for t in list(targets) + ["mean"])
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from models import load_member
    from models.manifest import WEIGHTS_DIR, read_manifest
    from tracks import open_tracks

    parser = argparse.ArgumentParser(description="MDX SDR of the shipped members on a split.")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--ood-dir", help="out-of-distribution folder (its --ood-split)")
    parser.add_argument("--ood-split", default="test")
    parser.add_argument("--members", nargs="*", help="default: every member in the manifest, and nussl")
    parser.add_argument("--weights-dir", default=str(WEIGHTS_DIR))
    parser.add_argument("--max-songs", type=int)
    parser.add_argument("--json", help="also write the tables as JSON here")
    args = parser.parse_args(argv)

    manifest = read_manifest(f"{args.weights_dir}/manifest.json")
    members = args.members or [e["member"] for e in manifest["weights"].values()] + ["nussl"]
    results = {}
    sets = [("in-distribution", args.data_dir, args.split)]
    if args.ood_dir:
        sets.append(("out-of-distribution", args.ood_dir, args.ood_split))
    for label, root, split in sets:
        tracks = open_tracks(root, split)[: args.max_songs]
        rows = {}
        for name in ["scaled", "oracle-irm"]:
            rows[{"scaled": "mixture/4"}.get(name, name)] = evaluate_predictor(name, tracks, progress=True)
        for name in members:
            start = time.perf_counter()
            member = _load(name, args.weights_dir, load_member)
            rows[name] = evaluate_member(member, tracks, progress=True, desc=name)
            rows[name]["seconds"] = time.perf_counter() - start
        results[label] = rows
        print(f"\n{label}: {root} ({split}, {len(tracks)} songs)\n{format_table(rows)}")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(results, stream, indent=2)
    return 0


def _load(name: str, weights_dir: str, load_member):
    from models import get

    cls = get(name)
    if not cls.trainable:
        return cls()
    return load_member(f"{weights_dir}/{name}.pth")


if __name__ == "__main__":
    raise SystemExit(main())
