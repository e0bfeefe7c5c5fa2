"""Cache of the expensive augmentations: render random variants of whole songs once, reuse them.

Rubber Band (pitch, tempo, formant) costs far more than a training step's data needs, so instead of
running it per example, ``render_cache`` applies the pipeline's expensive transforms
(:meth:`Pipeline.expensive`, uncropped) to every whole song ``variants`` times with independent
draws, and writes the results in the song-folder layout (``OUT/<split>/<song>~<k>/<target>.wav``
plus ``mixture.wav``, the sum of the stems) with ``OUT/cache.json``. A draw where no expensive
transform fired (probability ``1 - p``) is not written: ``cache.json`` records it as the original.

Training then reads :func:`open_cache` tracks (``name``, ``length``, ``rate``, ``load(start, frames)
-> (mixture (C, T), stems (S, C, T))``, like ``tracks.Track``) in a chunk dataset and runs only
:meth:`Pipeline.cheap` online. Picking a cached variant uniformly reproduces the pipeline's
distribution over ``variants`` draws per song; more variants, closer (and more disk: one variant of
a 3-minute stereo song is about 250 MB as float32 WAV, 125 MB as ``--subtype int16``).

    python -m augment.cache ROOT OUT --config cohen_hadria2019 --variants 4 --split train -j 2

I/O: ``core.audio.read_audio`` / ``write_audio`` (atomic). DSP: the transforms' libraries.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from augment.pipeline import Pipeline
from core.audio import audio_info, read_audio, write_audio

CACHE_FILE = "cache.json"


def whole_song_pipeline(pipeline: Pipeline) -> Pipeline:
    """The expensive transforms of ``pipeline`` with tempo changes uncropped (whole songs)."""
    expensive = pipeline.expensive()
    transforms = []
    for transform in expensive.example_transforms:
        transform = copy.copy(transform)
        if getattr(transform, "changes_length", False):
            if not transform.same or transform.sources != transform.targets:
                raise ValueError(f"{transform.name}: a tempo change in the cache must act on all sources "
                                 "with one draw (same: true)")
            transform.crop = False
        transforms.append(transform)
    return Pipeline(transforms, [], pipeline.targets, pipeline.sample_rate)


def _variant_seed(seed: int, song: int, variant: int) -> int:
    state = np.random.SeedSequence([seed, song, variant]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def _render_one(task) -> dict:
    """Render variant ``k`` of one song (runs in a worker process with ``-j``)."""
    track, song_index, k, pipeline, out_dir, split, seed, subtype = task
    generator = torch.Generator().manual_seed(_variant_seed(seed, song_index, k))
    _, stems = track.load()
    stems = torch.from_numpy(np.ascontiguousarray(stems, dtype=np.float32))
    out = stems[None]
    for transform in pipeline.example_transforms:
        out = transform(out, generator)
    out = out[0]
    record = {"song": track.name, "variant": k}
    if out.shape == stems.shape and torch.equal(out, stems):
        record.update(original=True, length=int(stems.shape[-1]))
        return record
    folder = Path(out_dir) / split / f"{track.name}~{k}"
    audio = out.numpy()
    for target, stem in zip(pipeline.targets, audio):
        write_audio(folder / f"{target}.wav", stem, pipeline.sample_rate, subtype)
    write_audio(folder / "mixture.wav", audio.sum(axis=0), pipeline.sample_rate, subtype)
    record.update(original=False, folder=str(folder.relative_to(out_dir)), length=int(audio.shape[-1]))
    return record


def render_cache(tracks, out_dir, pipeline: Pipeline, variants: int = 4, seed: int = 0, split: str = "train",
                 jobs: int = 1, subtype: str = "float32", progress: bool = True) -> dict:
    """Render ``variants`` draws of the expensive transforms for every track; returns the manifest.

    Args:
        tracks: objects with ``name``, ``rate`` and ``load() -> (mixture, stems (S, C, T))``.
        out_dir: cache folder (created); ``cache.json`` is written last (atomically).
        pipeline: the full pipeline; only its expensive example transforms run here.
        variants: draws per song.
        seed: draws depend on (seed, song index, variant) only, not on ``jobs``.
        jobs: worker processes.
        subtype: ``float32``, ``int24`` or ``int16`` WAV.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    songs = whole_song_pipeline(pipeline)
    if not songs.example_transforms:
        raise ValueError("the pipeline has no expensive transform to cache (pitch_shift, time_stretch, "
                         "repitch, formant_shift)")
    for track in tracks:
        if int(track.rate) != pipeline.sample_rate:
            raise ValueError(f"track {track.name}: rate {track.rate} Hz, the pipeline runs at "
                             f"{pipeline.sample_rate} Hz")
    tasks = [(t, i, k, songs, str(out_dir), split, seed, subtype)
             for i, t in enumerate(tracks) for k in range(variants)]
    bar = tqdm(total=len(tasks), desc="augment cache", unit="variant", disable=not progress)
    records = []
    if jobs <= 1:
        for task in tasks:
            records.append(_render_one(task))
            bar.update()
    else:
        with ProcessPoolExecutor(jobs) as pool:
            for record in pool.map(_render_one, tasks):
                records.append(record)
                bar.update()
    bar.close()
    manifest = {"split": split, "seed": seed, "variants": variants, "sample_rate": pipeline.sample_rate,
                "targets": list(pipeline.targets), "pipeline": repr(songs), "records": records}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (CACHE_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(out_dir / CACHE_FILE)
    return manifest


class CachedTrack:
    """One cached variant of a song, read like ``tracks.Track``.

    ``load(start=0, frames=None) -> (mixture (C, T), stems (S, C, T))`` float32 numpy, the mixture
    being the sum of the stems. An "original" record reads from the original track object.
    """

    def __init__(self, name: str, targets, folder: Path | None = None, original=None):
        self.name = name
        self.targets = tuple(targets)
        self.folder = folder
        self.original = original
        if folder is not None:
            info = audio_info(folder / f"{self.targets[0]}.wav")
            self.rate, self.length = int(info.samplerate), int(info.frames)
            self.path = folder
        else:
            self.rate, self.length, self.path = int(original.rate), int(original.length), original.path

    def load(self, start: int = 0, frames: int | None = None):
        if self.original is not None:
            return self.original.load(start, frames)
        count = -1 if frames is None else frames
        stems = np.stack([read_audio(self.folder / f"{t}.wav", start, count)[0] for t in self.targets])
        return stems.sum(axis=0), stems

    def load_stem(self, source: int, start: int = 0, frames: int | None = None) -> np.ndarray:
        """One stem ``(C, T)`` (what :func:`augment.chunking.load_chunk` reads per source when it can)."""
        if self.original is not None:
            return self.original.load(start, frames)[1][source]
        count = -1 if frames is None else frames
        return read_audio(self.folder / f"{self.targets[source]}.wav", start, count)[0]

    def __repr__(self):
        return f"CachedTrack({self.name!r}, {'original' if self.original is not None else self.folder})"


def open_cache(out_dir, tracks=()) -> list[CachedTrack]:
    """The cached variants of ``out_dir`` (``variants`` per song), in manifest order.

    Args:
        out_dir: a folder written by :func:`render_cache`.
        tracks: the original track objects, needed for the variants recorded as original.
    """
    out_dir = Path(out_dir)
    path = out_dir / CACHE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no augmentation cache here (run python -m augment.cache)")
    manifest = json.loads(path.read_text())
    by_name = {t.name: t for t in tracks}
    out = []
    for record in manifest["records"]:
        name = f"{record['song']}~{record['variant']}"
        if record["original"]:
            if record["song"] not in by_name:
                raise ValueError(f"{path}: variant {name} is the original song; pass its track in 'tracks'")
            out.append(CachedTrack(name, manifest["targets"], original=by_name[record["song"]]))
        else:
            out.append(CachedTrack(name, manifest["targets"], folder=out_dir / record["folder"]))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m augment.cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="song folder root (generated, MUSDB18-HQ or MUSDB18)")
    parser.add_argument("out", help="cache folder")
    parser.add_argument("--config", default="default", help="YAML config or preset name (default: default)")
    parser.add_argument("--variants", type=int, default=4, help="draws per song (default 4)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-j", "--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--subtype", default="float32", choices=["float32", "int24", "int16"])
    args = parser.parse_args(argv)

    from augment.config import load_config
    from tracks import open_tracks

    pipeline = load_config(args.config)
    tracks = open_tracks(args.root, split=args.split, targets=pipeline.targets)
    manifest = render_cache(tracks, args.out, pipeline, args.variants, args.seed, args.split, args.jobs,
                            args.subtype)
    written = sum(not r["original"] for r in manifest["records"])
    print(f"{args.out}: {len(manifest['records'])} variants of {len(tracks)} songs, {written} rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
