"""Training examples for the members: random chunks of a corpus through an ``augment`` pipeline.

:class:`TrainingChunks` draws example ``i`` of epoch ``e`` from ``(seed, e, i)`` only, so a resumed
run sees the same data as an uninterrupted one. Each example is
``augment.Pipeline.sample(tracks, index, frames, generator)``: the pipeline's loading-time
augmentation (an independent offset per source, sources from other songs; Uhlich et al. 2017), then
its per-example transforms. The batch transforms (e.g. ``remix``) run in the training loop. With an
empty pipeline an example is a plain random chunk of one song.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def load_pipeline(section: dict | str | None, targets, sample_rate: int):
    """An ``augment.Pipeline`` from a config's ``augmentations`` section (``None``: no augmentation).

    Args:
        section: the section dict, a YAML path or preset name, or None.
        targets: the member's targets (the pipeline's source order).
        sample_rate: Hz.
    """
    import augment

    if section is None:
        from augment.pipeline import Pipeline

        return Pipeline(targets=tuple(targets), sample_rate=sample_rate)
    if isinstance(section, dict):
        section = {"targets": list(targets), "sample_rate": sample_rate, **section}
    pipeline = augment.load_config(section)
    if tuple(pipeline.targets) != tuple(targets):
        raise ValueError(
            f"augmentation targets {list(pipeline.targets)} differ from the member's {list(targets)}"
        )
    return pipeline


class TrainingChunks(Dataset):
    """Random augmented chunks.

    Args:
        tracks: ``tracks.Track`` objects (``length``, ``load(start, frames)``).
        frames: samples per example.
        samples_per_epoch: examples per epoch.
        seed: base seed (add the DDP rank for distinct data per process).
        pipeline: an ``augment.Pipeline``.

    Items: ``(mixture (nb_channels, frames), stems (nb_sources, nb_channels, frames))`` float32.
    """

    def __init__(self, tracks, frames: int, samples_per_epoch: int, seed: int, pipeline):
        if not tracks:
            raise ValueError("no training songs")
        self.tracks, self.frames = list(tracks), int(frames)
        self.samples_per_epoch, self.seed, self.pipeline = int(samples_per_epoch), int(seed), pipeline
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int):
        state = np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(2, dtype=np.uint32)
        generator = torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
        track = int(torch.randint(len(self.tracks), (1,), generator=generator))
        stems = self.pipeline.sample(self.tracks, track, self.frames, generator)
        stems = stems[..., : self.frames].float()
        if stems.shape[-1] < self.frames:
            stems = torch.nn.functional.pad(stems, (0, self.frames - stems.shape[-1]))
        return stems.sum(0), stems
