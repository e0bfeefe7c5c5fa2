"""Loading-time augmentation: independent chunk offsets per source and sources from other songs.

Uhlich et al. 2017 draw the chunk of every source at its own random offset ("random chunking") and
take sources from different songs (open-unmix: ``random_chunks=True``, ``--random-track-mix``).
Both need the whole track, not a fixed chunk, so they live here, for a dataset to call:

    >>> offsets = chunk_offsets(track.length, frames, nb_sources=4, generator=g, independent=True)
    >>> stems = load_chunk(tracks, index, frames, g, independent_offsets=1.0, mix_songs=0.5)

``load_chunk`` works with any objects that have ``length`` (frames) and ``load(start, frames) ->
(mixture (C, T), stems (S, C, T))``, i.e. ``tracks.Track`` and ``augment.cache.CachedTrack``. A track
that also has ``load_stem(source, start, frames) -> (C, T)`` is read one stem at a time when the
sources of an example come from different offsets or songs (one file read per source instead of
one full read per source).
``Pipeline.load_chunk`` calls it with the config's ``chunking:`` values. No DSP: only indexing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def chunk_offsets(track_length: int, frames: int, nb_sources: int, generator: torch.Generator,
                  independent: bool = True) -> list[int]:
    """Start frames of one chunk per source.

    Args:
        track_length: frames in the track.
        frames: chunk length.
        nb_sources: how many offsets.
        generator: the random source.
        independent: one offset per source (Uhlich's random chunking) or one shared offset.

    Returns:
        ``nb_sources`` ints in ``[0, max(0, track_length - frames)]``.
    """
    high = max(0, int(track_length) - int(frames))
    count = nb_sources if independent else 1
    starts = torch.randint(0, high + 1, (count,), generator=generator).tolist()
    return starts if independent else starts * nb_sources


def _fit(x: np.ndarray, length: int) -> np.ndarray:
    if x.shape[-1] >= length:
        return x[..., :length]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])


def load_chunk(tracks: Sequence, index: int, frames: int, generator: torch.Generator,
               independent_offsets: float = 0.0, mix_songs: float = 0.0,
               nb_sources: int | None = None) -> torch.Tensor:
    """One training example ``(nb_sources, nb_channels, frames)`` float32 tensor.

    Args:
        tracks: track objects (``length``, ``load(start, frames)``), all with the same targets.
        index: the track the example is built around.
        frames: chunk length; shorter tracks are zero-padded.
        generator: the random source.
        independent_offsets: probability that the example draws one offset per source.
        mix_songs: probability, per source, of taking that source from a random track of ``tracks``
            (possibly the same one) instead of ``tracks[index]``.
        nb_sources: sources per track (default: read from ``tracks[index]``).
    """
    independent = bool(torch.rand(1, generator=generator)[0] < independent_offsets)
    if nb_sources is None:
        nb_sources = tracks[index].load(0, 1)[1].shape[0]
    owners = [index] * nb_sources
    if mix_songs > 0:
        swap = (torch.rand(nb_sources, generator=generator) < mix_songs).tolist()
        others = torch.randint(0, len(tracks), (nb_sources,), generator=generator).tolist()
        owners = [o if s else index for s, o in zip(swap, others)]
    # Shared offsets are per owning track; independent ones per source.
    offsets: list[int] = []
    shared: dict[int, int] = {}
    for owner in owners:
        length = tracks[owner].length
        if independent:
            offsets.append(chunk_offsets(length, frames, 1, generator)[0])
        else:
            if owner not in shared:
                shared[owner] = chunk_offsets(length, frames, 1, generator)[0]
            offsets.append(shared[owner])
    # One read per distinct (track, offset); single stems when the track can and the chunk is split.
    split = len(set(zip(owners, offsets))) > 1
    reads: dict[tuple[int, int], np.ndarray] = {}
    out = []
    for source, (owner, start) in enumerate(zip(owners, offsets)):
        key = (owner, start)
        if split and hasattr(tracks[owner], "load_stem"):
            stem = tracks[owner].load_stem(source, start, frames)
            out.append(_fit(np.asarray(stem, dtype=np.float32), frames))
            continue
        if key not in reads:
            _, stems = tracks[owner].load(start, frames)
            if stems.shape[0] != nb_sources:
                raise ValueError(f"track {getattr(tracks[owner], 'name', owner)}: {stems.shape[0]} sources, "
                                 f"expected {nb_sources}")
            reads[key] = _fit(np.asarray(stems, dtype=np.float32), frames)
        out.append(reads[key][source])
    return torch.from_numpy(np.stack(out))
