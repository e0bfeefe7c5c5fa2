"""The datasets ``test.py`` scores: the demo test set, extra ``--data-dir`` folders, out-of-distribution sets.

A dataset is a folder of song folders (``<song>/{mixture,bass,drums,other,vocals}.wav``, the grader's
layout) or anything :func:`tracks.open_tracks` reads (MUSDB18 stem files, e.g. the real clips in
``../shared/real``); the latter are written once as song folders under ``data/datasets/<label>/``
(mixture rebuilt as the sum of the stems) so that the grader emulation can run on them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio import write_audio
from core.constants import TARGETS

#: the demo test set ``python test.py`` renders on a fresh machine
DEMO = {"train": 0, "test": 4, "seconds": 20, "seed": 0}


@dataclass(frozen=True)
class Dataset:
    label: str
    path: Path
    #: printed under the out-of-distribution table
    note: str = ""


def derive_label(path: str | Path) -> str:
    """A short name for a dataset folder: ``data/test`` -> ``test``, ``data/ood/test`` -> ``ood-test``."""
    parts = [p for p in Path(path).parts if p not in ("", ".", "..", "/")]
    if parts and parts[0] == "data" and len(parts) > 1:
        parts = parts[1:]
    label = "-".join(parts[-2:]) if len(parts) >= 2 and parts[-1] in ("test", "valid", "train") else (
        parts[-1] if parts else "data")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


def parse_data_dir(spec: str) -> Dataset:
    """``DIR`` or ``LABEL=DIR`` (as given to ``--data-dir``)."""
    label, sep, path = spec.partition("=")
    if sep and label and "/" not in label:
        return Dataset(label, Path(path))
    return Dataset(derive_label(spec), Path(spec))


def has_song_folders(path: str | Path) -> bool:
    """Whether ``path`` holds at least one ``<song>/mixture.wav``."""
    path = Path(path)
    return path.is_dir() and any((p / "mixture.wav").is_file() for p in path.iterdir() if p.is_dir())


def ensure_demo_test_set(data_root: str | Path, progress: bool = True) -> Path:
    """Render the demo test set (4 songs x 20 s, seed 0) into ``data_root/test`` when it is empty."""
    data_root = Path(data_root)
    test_dir = data_root / "test"
    if has_song_folders(test_dir):
        return test_dir
    from tracks.synth import render_dataset

    print(f"[test.py] no test songs in {test_dir}: rendering the demo set "
          f"({DEMO['test']} songs x {DEMO['seconds']} s, seed {DEMO['seed']}) with tracks.synth", flush=True)
    render_dataset(data_root, **DEMO, progress=progress)
    if not has_song_folders(test_dir):
        raise FileNotFoundError(f"{test_dir}: the generator wrote no song folders")
    return test_dir


def ood_datasets(repo_root: str | Path) -> list[Dataset]:
    """The out-of-distribution sets that exist: ``data/ood/test`` (a held-out soundfont, effect chain
    and seed range) and ``../shared/real`` (two real clips: a sanity check, not a benchmark)."""
    repo_root = Path(repo_root)
    candidates = [
        Dataset("ood", repo_root / "data" / "ood" / "test",
                "ood: generated with a soundfont, effect chain and seed range never used for training"),
        Dataset("real", repo_root.parent / "shared" / "real",
                "real: two short MUSDB sample clips, a sanity check on real music, not a benchmark"),
    ]
    return [d for d in candidates if d.path.is_dir() and any(d.path.iterdir())]


def prepare(dataset: Dataset, cache_root: str | Path, progress: bool = True) -> Path:
    """A folder of song folders for ``dataset``: itself, or its tracks written under ``cache_root/label``.

    Raises:
        FileNotFoundError: the folder does not exist or holds no songs.
    """
    path = dataset.path
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: dataset folder does not exist")
    if has_song_folders(path):
        return path
    from tracks import open_tracks

    tracks = open_tracks(path, split="test")
    if not tracks:
        raise FileNotFoundError(f"{path}: no songs found (song folders or stem files)")
    out_root = Path(cache_root) / dataset.label
    for track in tracks:
        materialize(track, out_root / track.name, progress)
    return out_root


def materialize(track, out_dir: Path, progress: bool = True) -> Path:
    """Write one track as ``out_dir/{mixture,<targets>}.wav`` (float32; mixture = sum of the stems)."""
    marker = out_dir / ".source.json"
    source = {"path": str(track.path), "rate": int(track.rate), "length": int(track.length)}
    if marker.is_file() and json.loads(marker.read_text()) == source:
        return out_dir
    if progress:
        print(f"[test.py] writing {track.name} as a song folder in {out_dir.parent}")
    _, stems = track.load()  # stems (S, C, T)
    stems = np.asarray(stems, dtype=np.float32)
    for target, stem in zip(TARGETS, stems):
        write_audio(out_dir / f"{target}.wav", stem, track.rate, subtype="FLOAT")
    write_audio(out_dir / "mixture.wav", stems.sum(axis=0), track.rate, subtype="FLOAT")
    marker.write_text(json.dumps(source))
    return out_dir
