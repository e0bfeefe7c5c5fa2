"""Batch transforms: new mixtures from the sources of different songs.

Which library does what:

* ``remix`` -> ``demucs.augment.Remix``: within groups of ``group_size`` examples, each source is
  permuted independently across the examples, so every new mixture takes its bass, drums, ... from
  (usually) different songs. Défossez et al. 2021 ("shuffling sources within a batch"); the same
  idea as Uhlich et al. 2017's mixing of sources from different songs (see also
  :func:`augment.chunking.load_chunk` for doing it at loading time, as open-unmix's
  ``--random-track-mix``).

``p`` is the probability that a batch is remixed (demucs' ``proba``). A batch whose size is not a
multiple of ``group_size`` is remixed in full groups plus one smaller group for the rest.
"""

from __future__ import annotations

import torch
from demucs.augment import Remix as DemucsRemix

from augment.base import Transform, demucs_rng, register


@register("remix")
class Remix(Transform):
    """Shuffle each selected source across the examples of a group (``demucs`` Remix).

    Args:
        group_size: examples per shuffling group (demucs default 4); 0 or null: the whole batch.
    """

    def __init__(self, group_size: int | None = 4, **kwargs):
        super().__init__(**kwargs)
        if group_size is not None and group_size < 0:
            raise ValueError(f"remix: group_size={group_size} is negative")
        self.group_size = group_size or 0

    def __call__(self, wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``(nb_samples, nb_sources, C, T) -> (nb_samples, nb_sources, C, T)``."""
        if wav.dim() != 4:
            raise ValueError(f"remix: expected (nb_samples, nb_sources, C, T), got shape {tuple(wav.shape)}")
        if self.p == 0.0 or not bool(torch.rand(1, generator=generator)[0] < self.p):
            return wav
        batch = wav.shape[0]
        group = min(self.group_size or batch, batch)
        out = wav.clone()
        selected = wav[:, self.indices]
        parts = []
        full = batch - batch % group
        with demucs_rng(generator, wav.device):
            if full:
                parts.append(DemucsRemix(proba=1.0, group_size=group).train()(selected[:full]))
            if full < batch:
                rest = batch - full
                parts.append(DemucsRemix(proba=1.0, group_size=rest).train()(selected[full:]))
        out[:, self.indices] = torch.cat(parts)
        return out

    def extra_repr(self):
        return f"group_size={self.group_size}"
