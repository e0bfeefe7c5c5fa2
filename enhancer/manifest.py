"""Ship trained enhancer files into ``enhancer/weights/`` and record them in its manifest.

The manifest has the members' format (``models/weights/manifest.json``, see
:mod:`models.manifest`)::

    {"format": "stemblend-weights/1",
     "weights": {"base.pth": {"kind": "enhancer-base", "sha256": "...", "size": 1234567,
                              "training_command": "python -m enhancer.train ...", "wall_time_s": ...,
                              "steps": ..., "best_step": ..., "parameters": ...,
                              "valid_sdr_without": {...}, "valid_sdr_with": {...}},
                 "vocals.pth": {"kind": "enhancer-adapter", "base": "base.pth", ...,
                                "valid_sdr_base": {...}}}}

``python -m enhancer.manifest RUN/base.pth base`` copies the file byte for byte (an adapter records
the fingerprint of its base's weights, so the base must not be re-encoded) and writes its entry;
:func:`enhancer.checkpoint.load_base` / ``load_adapter`` then check the sha256 when loading.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from core.errors import CheckpointError
from enhancer.checkpoint import ADAPTER_FORMAT, BASE_FORMAT, read_metadata
from models.checkpoint import safe_load, sha256_file
from models.manifest import read_manifest, write_manifest

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def ship(path: str | Path, name: str, weights_dir: str | Path = WEIGHTS_DIR,
         info: dict | None = None) -> dict:
    """Copy an enhancer file to ``weights_dir/NAME.pth`` and record it in ``weights_dir/manifest.json``.

    Args:
        path: a run's ``base.pth`` or ``<adapter>.pth``.
        name: file stem in the weights folder (``base``, or the target of an adapter).
        weights_dir: destination folder.
        info: extra fields for the entry (e.g. test-split figures).

    Returns:
        The manifest entry written.
    """
    path, weights_dir = Path(path), Path(weights_dir)
    meta = read_metadata(path)
    metrics = meta["metrics"]
    dest = weights_dir / f"{name}.pth"
    weights_dir.mkdir(parents=True, exist_ok=True)
    if path.resolve() != dest.resolve():
        tmp = dest.with_suffix(".pth.tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(dest)
    entry = {
        "kind": "enhancer-base" if meta["format"] == BASE_FORMAT else "enhancer-adapter",
        "sha256": sha256_file(dest),
        "size": dest.stat().st_size,
        "training_command": metrics.get("command"),
        "wall_time_s": metrics.get("run_wall_time_s", metrics.get("wall_time_s")),
        "steps": metrics.get("run_steps"),
        "best_step": metrics.get("step"),
        "parameters": metrics.get("trainable_parameters"),
        "valid_sdr_without": metrics.get("valid_sdr_without"),
        "valid_sdr_with": metrics.get("valid_sdr_with"),
    }
    if meta["format"] == ADAPTER_FORMAT:
        package = safe_load(dest)
        entry["base_fingerprint"] = package.get("base_fingerprint")
        entry["valid_sdr_base"] = metrics.get("valid_sdr_base")
        entry["base_parameters"] = metrics.get("base_parameters")
    entry.update(info or {})
    manifest_path = weights_dir / "manifest.json"
    data = read_manifest(manifest_path)
    data["weights"][dest.name] = entry
    write_manifest(data, manifest_path)
    return entry


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enhancer.manifest",
                                     description="Ship a trained enhancer base or adapter into the kit")
    parser.add_argument("file", help="a run's base.pth or <adapter>.pth")
    parser.add_argument("name", help="file stem in the weights folder: base, or the adapter's target")
    parser.add_argument("--weights-dir", default=str(WEIGHTS_DIR))
    parser.add_argument("--info", default="{}", help="extra JSON fields for the entry")
    args = parser.parse_args(argv)
    try:
        entry = ship(args.file, args.name, args.weights_dir, json.loads(args.info))
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
