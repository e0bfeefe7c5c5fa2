"""A configured chain of transforms: per-example (DataLoader worker), per-batch, and loading-time.

Shapes: one example ``stems (nb_sources, nb_channels, nb_timesteps)``; a batch ``(nb_samples,
nb_sources, nb_channels, nb_timesteps)``. Transforms act on stems only; the mixture is always
re-formed afterwards as their sum (:func:`mixture_of`), so it equals the sum of the augmented stems.

Where each part runs:

* ``Pipeline.example`` in a DataLoader worker (through :meth:`Pipeline.as_transform`, the callable
  ``tracks.ChunkDataset(transform=...)`` takes). The Rubber Band transforms belong here, or in the
  cache (:mod:`augment.cache`): render them once per song offline, train on the cached variants
  with :meth:`Pipeline.cheap` online.
* ``Pipeline.batch`` in the training loop on the collated batch (source shuffling across songs).
* ``Pipeline.load_chunk`` / :meth:`Pipeline.sample` in the dataset (independent offsets per source,
  sources from other songs), because they need the whole track.

Lengths: most transforms keep the length; ``shift`` removes its frames and a tempo change crops to
``floor(T / max(1, f_max))`` (see :mod:`augment.rubberband`). :meth:`Pipeline.output_length` gives
the length for an input length; :meth:`Pipeline.input_length` how many frames to load for a wanted
output length. ``as_transform(seed, length=frames)`` crops its output to exactly ``frames``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from augment.base import Transform, as_generator, mixture_of
from augment.chunking import load_chunk


class Pipeline:
    """Transforms applied in order.

    Args:
        example: per-example transforms (run on ``(1, S, C, T)``, one example at a time).
        batch: batch transforms (run on ``(B, S, C, T)``).
        targets: source names, in the order of the sources axis.
        sample_rate: Hz.
        independent_offsets: probability of one chunk offset per source (loading time).
        mix_songs: probability, per source, of taking it from another song (loading time).
    """

    def __init__(self, example: Sequence[Transform] = (), batch: Sequence[Transform] = (),
                 targets: Sequence[str] = ("bass", "drums", "other", "vocals"), sample_rate: int = 44100,
                 independent_offsets: float = 0.0, mix_songs: float = 0.0):
        self.example_transforms = list(example)
        self.batch_transforms = list(batch)
        self.targets = tuple(targets)
        self.sample_rate = int(sample_rate)
        for name, value in (("independent_offsets", independent_offsets), ("mix_songs", mix_songs)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"chunking.{name}={value} is outside [0, 1]")
        self.independent_offsets = float(independent_offsets)
        self.mix_songs = float(mix_songs)

    # -- running -------------------------------------------------------------------------------------
    def example(self, stems, generator) -> torch.Tensor:
        """Augment one example: ``stems (S, C, T)`` tensor or array -> ``(S, C, output_length(T))`` tensor.

        ``generator``: a ``torch.Generator``, an int seed, a ``numpy.random.Generator``, or ``None``
        (a seed drawn from torch's global RNG).
        """
        stems = self._tensor(stems, 3)
        generator = as_generator(generator)
        wav = stems[None]
        for transform in self.example_transforms:
            wav = transform(wav, generator)
        return wav[0]

    def batch(self, stems, generator) -> torch.Tensor:
        """Augment a batch: ``(B, S, C, T)`` -> ``(B, S, C, T')`` (``T' = T`` for ``remix``)."""
        stems = self._tensor(stems, 4)
        generator = as_generator(generator)
        for transform in self.batch_transforms:
            stems = transform(stems, generator)
        return stems

    @staticmethod
    def mixture(stems: torch.Tensor) -> torch.Tensor:
        """``(..., S, C, T) -> (..., C, T)``: the sum of the stems."""
        return mixture_of(stems)

    def load_chunk(self, tracks: Sequence, index: int, frames: int, generator=None) -> torch.Tensor:
        """Stems ``(S, C, frames)`` of ``tracks[index]`` with the config's ``chunking`` options."""
        return load_chunk(tracks, index, frames, as_generator(generator), self.independent_offsets,
                          self.mix_songs, nb_sources=len(self.targets))

    def sample(self, tracks: Sequence, index: int, frames: int, generator=None) -> torch.Tensor:
        """A finished example: load :meth:`input_length` frames, augment, crop to ``frames``."""
        generator = as_generator(generator)
        stems = self.load_chunk(tracks, index, self.input_length(frames), generator)
        return self.example(stems, generator)[..., :frames]

    def as_transform(self, seed: int = 0, length: int | None = None) -> ExampleTransform:
        """The per-example callable for ``tracks.ChunkDataset(transform=...)`` (:class:`ExampleTransform`)."""
        return ExampleTransform(self, seed, length)

    # -- lengths -------------------------------------------------------------------------------------
    def output_length(self, length: int) -> int:
        """Frames out of :meth:`example` for ``length`` frames in (the same for every draw)."""
        for transform in self.example_transforms:
            length = transform.output_length(length)
        return length

    def input_length(self, frames: int) -> int:
        """Fewest input frames whose :meth:`output_length` is at least ``frames`` (binary search)."""

        def enough(length):
            try:
                return self.output_length(length) >= frames
            except ValueError:  # e.g. not longer than a shift
                return False

        low, high = frames - 1, frames  # transforms never lengthen: output_length(frames - 1) < frames
        while not enough(high):
            low, high = high, high * 2
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if enough(mid) else (mid, high)
        return high

    # -- splitting for the cache ---------------------------------------------------------------------
    @property
    def has_expensive(self) -> bool:
        return any(t.expensive for t in self.example_transforms)

    def expensive(self) -> Pipeline:
        """The expensive (Rubber Band) example transforms only, in order, as a pipeline."""
        return self._with([t for t in self.example_transforms if t.expensive], [])

    def cheap(self) -> Pipeline:
        """Everything but the expensive example transforms (what runs online next to a cache)."""
        return self._with([t for t in self.example_transforms if not t.expensive], self.batch_transforms,
                          chunking=True)

    def _with(self, example, batch, chunking=False) -> Pipeline:
        return Pipeline(example, batch, self.targets, self.sample_rate,
                        self.independent_offsets if chunking else 0.0, self.mix_songs if chunking else 0.0)

    # -- helpers -------------------------------------------------------------------------------------
    def _tensor(self, stems, ndim: int) -> torch.Tensor:
        if isinstance(stems, np.ndarray):
            stems = torch.from_numpy(np.ascontiguousarray(stems, dtype=np.float32))
        if not isinstance(stems, torch.Tensor):
            raise TypeError(f"expected a tensor or array of stems, got {type(stems)}")
        if stems.dim() != ndim:
            shape = "(nb_sources, C, T)" if ndim == 3 else "(nb_samples, nb_sources, C, T)"
            raise ValueError(f"expected stems {shape}, got shape {tuple(stems.shape)}")
        if stems.shape[-3] != len(self.targets):
            raise ValueError(f"{stems.shape[-3]} sources but the targets are {list(self.targets)}")
        return stems

    def __repr__(self) -> str:
        lines = [f"Pipeline(targets={list(self.targets)}, sample_rate={self.sample_rate}, "
                 f"independent_offsets={self.independent_offsets}, mix_songs={self.mix_songs})"]
        lines += [f"  example: {t!r}" for t in self.example_transforms]
        lines += [f"  batch:   {t!r}" for t in self.batch_transforms]
        return "\n".join(lines)


class ExampleTransform:
    """Picklable ``transform(stems (S, C, T)) -> stems`` running :meth:`Pipeline.example`.

    The generator is made lazily in each process. In a DataLoader worker it is seeded from ``seed``
    and the worker's own seed (``torch.utils.data.get_worker_info().seed``, which the DataLoader
    draws anew every epoch from the main process RNG): examples differ across workers and epochs,
    and a run is reproducible once ``torch.manual_seed`` is set. In the main process it is seeded
    from ``seed`` alone.

    Args:
        pipeline: the pipeline.
        seed: base seed.
        length: crop every output to exactly this many frames (load :meth:`input_length` frames).
    """

    def __init__(self, pipeline: Pipeline, seed: int = 0, length: int | None = None):
        self.pipeline = pipeline
        self.seed = int(seed)
        self.length = length
        self._key = None
        self._generator = None

    def generator(self) -> torch.Generator:
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), None if info is None else (info.id, info.seed))
        if key != self._key:
            entropy = [self.seed] if info is None else [self.seed, info.seed % 2**63, info.id]
            state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
            self._generator = torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
            self._key = key
        return self._generator

    def input_length(self, frames: int) -> int:
        """Frames a dataset should load to get ``frames`` out (see :meth:`Pipeline.input_length`)."""
        return self.pipeline.input_length(frames)

    def output_length(self, frames: int) -> int:
        out = self.pipeline.output_length(frames)
        return min(out, self.length) if self.length else out

    def sample(self, tracks: Sequence, index: int, frames: int, generator=None) -> torch.Tensor:
        """Load and augment one example for a dataset: ``(S, C, frames)`` tensor.

        Loads :meth:`input_length` frames of ``tracks[index]`` with the config's ``chunking`` (one
        offset per source, sources from other songs), then applies this transform and crops to
        ``frames``. ``generator`` (e.g. the dataset's per-item generator) drives every draw.
        """
        generator = as_generator(generator)
        stems = self.pipeline.load_chunk(tracks, index, self.input_length(frames), generator)
        return self(stems, generator)[..., :frames]

    def __call__(self, stems, generator=None):
        """``stems (S, C, T)`` tensor or array -> augmented, same type; ``generator`` overrides the
        transform's own (e.g. a dataset's per-item generator, for item-level determinism)."""
        as_numpy = isinstance(stems, np.ndarray)
        out = self.pipeline.example(stems, self.generator() if generator is None else generator)
        if self.length is not None:
            if out.shape[-1] < self.length:
                raise ValueError(
                    f"augmentation output has {out.shape[-1]} frames, fewer than length={self.length}; "
                    f"load transform.input_length({self.length}) = {self.input_length(self.length)} frames")
            out = out[..., : self.length]
        return out.numpy() if as_numpy else out

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_key"] = None
        state["_generator"] = None
        return state

    def __repr__(self) -> str:
        return f"ExampleTransform(seed={self.seed}, length={self.length}, pipeline=\n{self.pipeline!r})"
