"""The manifest of shipped weights, ``models/weights/manifest.json``, and shipping a trained run.

Layout::

    {"format": "stemblend-weights/1",
     "weights": {"umx.pth": {"member": "umx", "sha256": "...", "size": 1234567, "dtype": "float16",
                             "targets": [...], "training_command": "python train.py ...",
                             "wall_time_s": 612.0, "epochs": 14, "best_epoch": 11,
                             "valid_sdr": {"bass": ..., "mean": ...}, "ood_sdr": {...}}}}

``python -m models.manifest RUN_DIR/best.pth NAME`` ships a trained checkpoint: it re-saves it in
float16 as ``models/weights/NAME.pth`` and records it in the manifest.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.errors import CheckpointError
from core.files import write_json

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
FORMAT = "stemblend-weights/1"


def read_manifest(path: str | Path = MANIFEST) -> dict:
    """The manifest as a dict (an empty one when the file does not exist).

    Raises:
        CheckpointError: unreadable or malformed JSON.
    """
    path = Path(path)
    if not path.is_file():
        return {"format": FORMAT, "weights": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: manifest is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
        raise CheckpointError(f"{path}: manifest has no 'weights' table")
    return data


def write_manifest(data: dict, path: str | Path = MANIFEST) -> Path:
    """Write the manifest atomically (sorted keys, indented)."""
    return write_json(path, data, indent=2)


def expected_sha256(checkpoint: Path, manifest=None) -> str | None:
    """The sha256 a manifest records for ``checkpoint`` (see :func:`models.load_member`).

    Args:
        checkpoint: the checkpoint file.
        manifest: path or dict; ``None``: ``manifest.json`` beside the checkpoint if it exists;
            ``False``: no manifest.

    Raises:
        CheckpointError: a manifest is in use but does not list the file.
    """
    if manifest is False:
        return None
    where = "manifest"
    if manifest is None:
        sibling = checkpoint.parent / "manifest.json"
        if not sibling.is_file():
            return None
        manifest, where = sibling, str(sibling)
    elif isinstance(manifest, str | Path):
        where = str(manifest)
    data = manifest if isinstance(manifest, dict) else read_manifest(manifest)
    entry = data.get("weights", {}).get(checkpoint.name)
    if entry is None or "sha256" not in entry:
        raise CheckpointError(f"{checkpoint}: not listed (with a sha256) in {where}")
    return entry["sha256"]


def ship(
    checkpoint: str | Path,
    name: str,
    info: dict | None = None,
    weights_dir: str | Path = WEIGHTS_DIR,
    half: bool = True,
) -> dict:
    """Re-save a trained checkpoint into the weights folder and record it in its manifest.

    Args:
        checkpoint: a run's ``best.pth``.
        name: file stem in the weights folder (usually the member name).
        info: extra manifest fields (``training_command``, ``wall_time_s``, ...); by default the
            ones the training run stored in the checkpoint.
        weights_dir: destination folder holding ``manifest.json``.
        half: store float16 weights.

    Returns:
        The manifest entry written.
    """
    from models.checkpoint import load_member, save_member, sha256_file

    member = load_member(checkpoint, manifest=False)
    meta = member.checkpoint
    weights_dir = Path(weights_dir)
    out = save_member(member, weights_dir / f"{name}.pth", meta["training_args"], meta["metrics"], half=half)
    metrics = dict(meta["metrics"])
    last = Path(checkpoint).parent / "last.pth"
    if last.is_file():  # the whole run, not just up to the best epoch
        from models.checkpoint import safe_load

        state = safe_load(last)
        metrics.update(wall_time_s=round(state.get("wall_time_s", 0.0), 1), epochs=state.get("epoch"))
    entry = {
        "member": member.name,
        "sha256": sha256_file(out),
        "size": out.stat().st_size,
        "dtype": "float16" if half else "float32",
        "targets": list(member.targets),
        "training_command": metrics.get("command"),
        "wall_time_s": metrics.get("wall_time_s"),
        "epochs": metrics.get("epochs"),
        "best_epoch": metrics.get("epoch"),
        "valid_sdr": metrics.get("valid_sdr"),
        "ood_sdr": metrics.get("ood_sdr"),
    }
    entry.update(info or {})
    manifest_path = weights_dir / "manifest.json"
    data = read_manifest(manifest_path)
    data["weights"][out.name] = entry
    write_manifest(data, manifest_path)
    return entry


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Ship a trained checkpoint into models/weights/.")
    parser.add_argument("checkpoint", help="a run's best.pth")
    parser.add_argument("name", help="file stem in the weights folder, e.g. umx")
    parser.add_argument("--weights-dir", default=str(WEIGHTS_DIR))
    parser.add_argument("--float32", action="store_true", help="keep float32 weights")
    args = parser.parse_args(argv)
    entry = ship(args.checkpoint, args.name, weights_dir=args.weights_dir, half=not args.float32)
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
