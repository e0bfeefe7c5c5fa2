"""Torch datasets of random training chunks.

* :class:`ChunkDataset`: random chunks from a fixed list of tracks (a corpus on disk).
* :class:`PooledDataset`: random chunks from a pool of songs held in memory and partly refreshed
  every epoch: new songs rendered on the fly by the generator (``source="synth"``), or drawn from a
  list of tracks larger than memory. Epoch ``e`` of seed ``s`` always holds the same songs, and
  consecutive epochs differ.

Items are ``(mixture (nb_channels, nb_timesteps), stems (nb_sources, nb_channels, nb_timesteps))``
float tensors. ``transform(stems) -> stems`` (or ``transform(stems, generator)``, e.g.
``augment.Pipeline.example``) runs per item; the mixture is the sum of the returned stems. A
transform with an ``input_length(frames)`` method (``augment.ExampleTransform``, whose time stretch
changes the length) gets that many frames loaded, and its output is cropped to the chunk. Item
``i`` of epoch ``e`` depends only on ``(seed, e, i)``: call :meth:`set_epoch` once per epoch.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from torch.utils.data import Dataset

from tracks.db import Track


def _arity(fn) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params
    )


class _Chunks(Dataset):
    """Shared item logic: pick a song and an offset from ``(seed, epoch, index)``, transform, sum."""

    def __init__(self, seconds: float, samples_per_epoch: int, seed: int, transform=None, rate: int = 44100):
        if seconds <= 0 or samples_per_epoch <= 0:
            raise ValueError("seconds and samples_per_epoch must be positive")
        self.seconds, self.samples_per_epoch, self.seed = seconds, int(samples_per_epoch), int(seed)
        self.transform, self.rate, self.epoch = transform, rate, 0
        self._pass_generator = transform is not None and _arity(transform) >= 2

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (items, and for a pool its songs, depend on it)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def _finish(self, stems: np.ndarray, rng: np.random.Generator):
        stems = torch.from_numpy(np.ascontiguousarray(stems, dtype=np.float32))
        if self.transform is not None:
            if self._pass_generator:
                gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
                stems = self.transform(stems, gen)
            else:
                stems = self.transform(stems)
        return stems.sum(0), stems

    @staticmethod
    def _crop(length: int, frames: int, rng) -> tuple[int, int]:
        if length <= frames:
            return 0, length
        return int(rng.integers(0, length - frames + 1)), frames


class ChunkDataset(_Chunks):
    """Random chunks of ``seconds`` from ``tracks`` (songs drawn in proportion to their length).

    Args:
        tracks: from :func:`tracks.open_tracks`.
        seconds: chunk length; shorter songs are zero-padded.
        samples_per_epoch: items per epoch.
        seed: base seed.
        transform: ``stems (S, C, T) -> stems`` or ``(stems, torch.Generator) -> stems``.
    """

    def __init__(
        self, tracks: list[Track], seconds: float, samples_per_epoch: int, seed: int = 0, transform=None
    ):
        if not tracks:
            raise ValueError("ChunkDataset needs at least one track")
        rates = {t.rate for t in tracks}
        if len(rates) > 1:
            raise ValueError(f"tracks have different sample rates {sorted(rates)}; resample first")
        super().__init__(seconds, samples_per_epoch, seed, transform, rate=rates.pop())
        self.tracks = list(tracks)
        lengths = np.array([t.length for t in self.tracks], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def __getitem__(self, index: int):
        rng = self._rng(index)
        track = self.tracks[int(rng.choice(len(self.tracks), p=self.weights))]
        frames = int(round(self.seconds * self.rate))
        # a length-changing transform (time stretch) says how much input it needs for ``frames`` out
        sizing = getattr(self.transform, "input_length", None)
        wanted = int(sizing(frames)) if sizing is not None else frames
        start, n = self._crop(track.length, wanted, rng)
        _, stems = track.load(start, n)
        if n < wanted:
            stems = np.pad(stems, [(0, 0), (0, 0), (0, wanted - n)])
        mixture, stems = self._finish(stems, rng)
        if stems.shape[-1] != frames:  # crop or pad what the transform returned to exactly ``frames``
            stems = stems[..., :frames]
            stems = torch.nn.functional.pad(stems, (0, frames - stems.shape[-1]))
            mixture = stems.sum(0)
        return mixture, stems


class PooledDataset(_Chunks):
    """Random chunks from a pool of songs in memory, partly refreshed every epoch.

    Epoch ``e`` holds songs ``[e * k, e * k + pool_size)`` of an endless sequence (``k =
    ceil(refresh * pool_size)``): rendered songs ``i`` of the generator's training split
    (``source="synth"``), or a seeded permutation of ``source`` tracks, cycled.

    Args:
        source: ``"synth"`` or a list of tracks.
        pool_size: songs in memory.
        seconds: chunk length.
        samples_per_epoch: items per epoch.
        seed: base seed (the dataset seed of the rendered songs, too).
        refresh: share of the pool replaced per epoch (0 < refresh <= 1).
        transform: as for :class:`ChunkDataset`.
        profile, song_seconds, targets: generator options for ``source="synth"``.
    """

    def __init__(
        self,
        source,
        pool_size: int,
        seconds: float,
        samples_per_epoch: int,
        seed: int = 0,
        refresh: float = 0.25,
        transform=None,
        profile: str = "default",
        song_seconds: float = 30.0,
        targets: dict | None = None,
    ):
        super().__init__(seconds, samples_per_epoch, seed, transform)
        if pool_size < 1 or not 0 < refresh <= 1:
            raise ValueError("pool_size must be >= 1 and 0 < refresh <= 1")
        self.source, self.pool_size = source, int(pool_size)
        self.step = int(np.ceil(refresh * pool_size))
        self.profile, self.song_seconds, self.targets = profile, song_seconds, targets
        if source != "synth":
            if not source:
                raise ValueError("PooledDataset needs at least one track")
            self.order = np.random.default_rng([self.seed, 7]).permutation(len(source))
        self._songs: dict[int, np.ndarray] = {}

    def pool_indices(self, epoch: int | None = None) -> list[int]:
        """Song indices (in the endless sequence) held in the pool at ``epoch``."""
        epoch = self.epoch if epoch is None else epoch
        return list(range(epoch * self.step, epoch * self.step + self.pool_size))

    def song_names(self, epoch: int | None = None) -> list[str]:
        """Names of the pool's songs at ``epoch``."""
        if self.source == "synth":
            from tracks.profiles import get_profile, song_seed
            from tracks.synth import song_name

            prof = get_profile(self.profile)
            return [
                song_name("train", song_seed(self.seed, prof, "train", i)) for i in self.pool_indices(epoch)
            ]
        return [self.source[self.order[i % len(self.order)]].name for i in self.pool_indices(epoch)]

    def _song(self, i: int) -> np.ndarray:
        if i not in self._songs:
            if self.source == "synth":
                from tracks.profiles import get_profile, song_seed
                from tracks.song import render_song

                prof = get_profile(self.profile)
                stems, _ = render_song(
                    song_seed(self.seed, prof, "train", i), self.song_seconds, prof, self.targets
                )
            else:
                _, stems = self.source[self.order[i % len(self.order)]].load()
            self._songs[i] = stems
        return self._songs[i]

    def __getitem__(self, index: int):
        keep = set(self.pool_indices())
        for i in [i for i in self._songs if i not in keep]:
            del self._songs[i]  # drop songs that left the pool
        rng = self._rng(index)
        song = self._song(self.pool_indices()[int(rng.integers(self.pool_size))])
        frames = int(round(self.seconds * self.rate))
        start, n = self._crop(song.shape[-1], frames, rng)
        stems = song[..., start : start + n]
        if n < frames:
            stems = np.pad(stems, [(0, 0), (0, 0), (0, frames - n)])
        return self._finish(stems, rng)
