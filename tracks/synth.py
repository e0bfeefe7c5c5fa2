"""Render a dataset of multitrack songs in the MUSDB18-HQ layout.

    python -m tracks.synth OUT_DIR --train N --test M --seconds S --seed K [--valid V]
        [--profile default|basic|ood] [--targets NAME=ROLE:PROGRAMS ...] [--int16 | --train-int16]

writes ``OUT_DIR/{train,test}/<song>/{mixture,<target>...}.wav``, ``OUT_DIR/manifest.json`` (each
song's parameters, per-stem RMS, the validation list, the soundfonts, effect families and seed
ranges of every split) and ``OUT_DIR/setup.yaml`` (a musdb ``setup_file`` naming the validation
songs, so ``musdb.DB(root=OUT_DIR, is_wav=True, subsets="train", split="valid",
setup_file="setup.yaml")`` works). Validation songs are the last V training songs.

The mixture is the exact sum of the stem files as float32: stems are rounded to a grid fine enough
for every partial sum to be exact (2**-21 for float32 files, 2**-15 for int16 files).
Song i of a split depends only on (seed, profile, split, i); the same arguments give byte-identical
files.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.audio import write_audio
from core.files import write_json
from tracks.profiles import PROFILES, get_profile, parse_targets, seed_range, song_seed
from tracks.song import active_rms, db, render_song

#: file subtype -> rounding grid of the stems (bits after the binary point)
GRID_BITS = {"float32": 21, "int16": 15}


def song_name(split: str, seed: int) -> str:
    """Folder name of a song: the split and its composition seed."""
    return f"{split}_{seed:07d}"


def _write_setup(out_dir: Path, targets: list[str], valid: list[str]) -> Path:
    import yaml

    setup = {
        "sample_rate": 44100.0,
        "sources": {t: f"{t}.wav" for t in targets},
        "mixture": "mixture.wav",
        "stem_ids": {"mixture": 0, **{t: i + 1 for i, t in enumerate(targets)}},
        "targets": {t: {t: 1} for t in targets},
        "validation_tracks": list(valid),
    }
    path = out_dir / "setup.yaml"
    path.write_text(yaml.safe_dump(setup, sort_keys=False))
    return path


def render_split(
    out_dir: Path,
    split: str,
    count: int,
    seconds: float,
    seed: int,
    profile,
    targets: dict,
    subtype: str,
    progress: bool = True,
) -> list[dict]:
    """Render ``count`` songs of one split into ``out_dir/split``; returns their manifest entries."""
    entries = []
    bits = GRID_BITS[subtype]
    for i in tqdm(range(count), desc=f"{split} ({profile.name})", unit="song", disable=not progress):
        s = song_seed(seed, profile, split, i)
        name = song_name(split, s)
        stems, info = render_song(s, seconds, profile, targets, bits=bits)
        folder = out_dir / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for target, audio in zip(targets, stems):
            write_audio(folder / f"{target}.wav", audio, 44100, subtype)
            info["stems"][target]["rms_db"] = round(db(active_rms(audio, [], 44100)), 3)
        write_audio(folder / "mixture.wav", stems.sum(0, dtype=np.float32), 44100, subtype)
        info.update(name=name, split=split, index=i, seconds=seconds, subtype=subtype)
        entries.append(info)
    return entries


def render_dataset(
    out_dir,
    train: int = 40,
    test: int = 8,
    seconds: float = 30.0,
    seed: int = 0,
    valid: int | None = None,
    profile: str = "default",
    targets: dict | list | None = None,
    train_subtype: str = "float32",
    test_subtype: str = "float32",
    progress: bool = True,
) -> dict:
    """Render a dataset (see the module docstring).

    Args:
        out_dir: output folder (created).
        train, test: number of songs per split.
        seconds: song length.
        seed: dataset seed.
        valid: how many training songs form the validation split (default ``max(1, train // 10)``
            when ``train > 1``, else 0).
        profile: a name of :data:`tracks.profiles.PROFILES`.
        targets: ``{name: (role, programs)}`` or CLI specs ``["piano=chords:0", ...]``.
        train_subtype, test_subtype: ``"float32"`` or ``"int16"`` (both keep the sum exact).

    Returns:
        The manifest dict (also written to ``out_dir/manifest.json``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prof = get_profile(profile)
    targets = targets if isinstance(targets, dict) else parse_targets(targets)
    for st in (train_subtype, test_subtype):
        if st not in GRID_BITS:
            raise ValueError(f"unknown subtype '{st}' (use {', '.join(GRID_BITS)})")
    if valid is None:
        valid = max(1, train // 10) if train > 1 else 0
    if valid > train:
        raise ValueError(f"--valid {valid} is more than --train {train}")
    start = time.perf_counter()
    songs = render_split(out_dir, "train", train, seconds, seed, prof, targets, train_subtype, progress)
    songs += render_split(out_dir, "test", test, seconds, seed, prof, targets, test_subtype, progress)
    elapsed = time.perf_counter() - start
    train_names = [s["name"] for s in songs if s["split"] == "train"]
    valid_names = train_names[len(train_names) - valid :] if valid else []
    splits = {}
    for split, names in (
        ("train", [n for n in train_names if n not in valid_names]),
        ("valid", valid_names),
        ("test", [s["name"] for s in songs if s["split"] == "test"]),
    ):
        chosen = [s for s in songs if s["name"] in set(names)]
        base = "train" if split == "valid" else split
        splits[split] = dict(
            songs=names,
            folder=base,
            profile=prof.name,
            seeds=[s["seed"] for s in chosen],
            seed_range=list(seed_range(seed, prof, base)),
            soundfonts=sorted({s["soundfont"] for s in chosen}),
            soundfont_pool=list(prof.soundfonts),
            effect_families=sorted({s["effects"] for s in chosen}),
            effect_pool=list(prof.effects),
            voices=sorted(
                {s["stems"][t]["source"].get("voice", "") for s in chosen for t in s["stems"]} - {""}
            ),
            voice_pool=list(prof.voices),
        )
    manifest = dict(
        generator="tracks.synth",
        version=1,
        seed=seed,
        seconds=seconds,
        sample_rate=44100,
        profile=prof.name,
        targets={k: [v[0], list(v[1])] for k, v in targets.items()},
        validation=valid_names,
        splits=splits,
        songs=songs,
        setup_file="setup.yaml",
    )
    _write_setup(out_dir, list(targets), valid_names)
    write_json(out_dir / "manifest.json", manifest)  # no timings in the file: it stays reproducible
    return dict(manifest, render_seconds=round(elapsed, 2))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tracks.synth", description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", help="output folder")
    p.add_argument("--train", type=int, default=40, help="training songs (default 40)")
    p.add_argument("--test", type=int, default=8, help="test songs (default 8)")
    p.add_argument(
        "--valid", type=int, default=None, help="training songs held out as validation (default train // 10)"
    )
    p.add_argument("--seconds", type=float, default=30.0, help="song length (default 30)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument(
        "--profile",
        choices=list(PROFILES),
        default="default",
        help="soundfonts/effects/seed range: default (in-distribution), ood (held out), basic "
        "(one soundfont, no effects)",
    )
    p.add_argument("--ood", action="store_const", const="ood", dest="profile", help="same as --profile ood")
    p.add_argument(
        "--targets",
        nargs="+",
        default=None,
        metavar="NAME=ROLE:PROGRAMS",
        help="other target sets, e.g. piano=chords:0 violin=melody:40 (roles: drums, bass, chords, melody)",
    )
    p.add_argument("--int16", action="store_true", help="write every split as 16-bit WAV")
    p.add_argument(
        "--train-int16", action="store_true", help="16-bit WAV for train only (test stays float32)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    train_st = "int16" if (args.int16 or args.train_int16) else "float32"
    test_st = "int16" if args.int16 else "float32"
    try:
        manifest = render_dataset(
            args.out_dir,
            train=args.train,
            test=args.test,
            seconds=args.seconds,
            seed=args.seed,
            valid=args.valid,
            profile=args.profile,
            targets=args.targets,
            train_subtype=train_st,
            test_subtype=test_st,
            progress=not args.quiet,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"tracks.synth: error: {exc}", file=sys.stderr)
        return 2
    audio_s = args.seconds * (args.train + args.test)
    speed = audio_s / max(manifest["render_seconds"], 1e-9)
    print(
        f"wrote {args.train + args.test} songs ({audio_s:.0f} s of audio) to {args.out_dir} in "
        f"{manifest['render_seconds']:.1f} s ({speed:.1f}x real time)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
