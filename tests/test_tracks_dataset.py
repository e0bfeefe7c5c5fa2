"""Training datasets: random chunks, the transform hook, the pooled loader across epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from core.constants import TARGETS
from tracks import ChunkDataset, PooledDataset, open_tracks


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for k in range(6):
        folder = root / "train" / f"song{k}"
        folder.mkdir(parents=True)
        frames = 8820 + 441 * k
        stems = [(0.1 * rng.standard_normal((frames, 2))).astype(np.float32) for _ in TARGETS]
        for name, audio in zip(TARGETS, stems):
            sf.write(str(folder / f"{name}.wav"), audio, 44100, subtype="FLOAT")
        sf.write(str(folder / "mixture.wav"), np.sum(stems, 0, dtype=np.float32), 44100, subtype="FLOAT")
    return root


def test_chunks_shapes_sum_and_determinism(corpus):
    tracks = open_tracks(corpus, "train")
    ds = ChunkDataset(tracks, seconds=0.1, samples_per_epoch=5, seed=3)
    assert len(ds) == 5
    mixture, stems = ds[0]
    assert mixture.shape == (2, 4410) and stems.shape == (4, 2, 4410) and stems.dtype == torch.float32
    assert torch.equal(mixture, stems.sum(0))
    again = ChunkDataset(tracks, seconds=0.1, samples_per_epoch=5, seed=3)
    assert all(torch.equal(ds[i][1], again[i][1]) for i in range(5))
    first = [ds[i][1] for i in range(5)]
    ds.set_epoch(1)
    assert not all(torch.equal(a, ds[i][1]) for i, a in enumerate(first))


def test_short_songs_are_padded(corpus):
    ds = ChunkDataset(open_tracks(corpus, "train")[:1], seconds=0.5, samples_per_epoch=1, seed=0)
    _, stems = ds[0]
    assert stems.shape[-1] == 22050 and not stems[..., 8820:].any()


def test_transform_hook_runs_before_the_mixture_is_formed(corpus):
    tracks = open_tracks(corpus, "train")
    plain = ChunkDataset(tracks, 0.1, 2, seed=1)
    halved = ChunkDataset(tracks, 0.1, 2, seed=1, transform=lambda s: s[[3, 2, 1, 0]] * 0.5)
    mix, stems = halved[0]
    _, ref = plain[0]
    assert torch.equal(stems, ref[[3, 2, 1, 0]] * 0.5) and torch.equal(mix, stems.sum(0))
    seen = []

    def with_generator(stems, generator):
        seen.append(torch.rand(1, generator=generator).item())
        return stems

    ds = ChunkDataset(tracks, 0.1, 2, seed=1, transform=with_generator)
    ds[0], ds[0]
    assert seen[0] == seen[1]


class Stretch:
    """A length-changing transform (keeps every second sample: twice the tempo)."""

    def input_length(self, frames: int) -> int:
        return 2 * frames

    def __call__(self, stems):
        return stems[..., ::2]


def test_length_changing_transform_gets_the_input_it_asks_for(corpus):
    tracks = open_tracks(corpus, "train")
    ds = ChunkDataset(tracks, 0.1, 3, seed=2, transform=Stretch())
    for i in range(3):
        mix, stems = ds[i]
        assert stems.shape == (4, 2, 4410) and torch.equal(mix, stems.sum(0))
        assert stems[..., -100:].abs().sum() > 0  # filled from 8820 loaded frames, not zero-padded


def test_pooled_loader_over_tracks_changes_songs_across_epochs(corpus):
    tracks = open_tracks(corpus, "train")
    pool = PooledDataset(tracks, pool_size=2, seconds=0.05, samples_per_epoch=4, seed=5, refresh=1.0)
    same = PooledDataset(tracks, pool_size=2, seconds=0.05, samples_per_epoch=4, seed=5, refresh=1.0)
    names = [pool.song_names(e) for e in range(3)]
    assert names[0] != names[1] != names[2] and names[0] == same.song_names(0)
    for epoch in (0, 1):
        pool.set_epoch(epoch)
        same.set_epoch(epoch)
        assert all(torch.equal(pool[i][1], same[i][1]) for i in range(4))
    other = PooledDataset(tracks, pool_size=2, seconds=0.05, samples_per_epoch=4, seed=6, refresh=1.0)
    assert [other.song_names(e) for e in range(3)] != names


def test_pooled_loader_renders_new_songs_on_the_fly():
    kw = dict(pool_size=2, seconds=0.25, samples_per_epoch=3, seed=9, refresh=0.5, song_seconds=1.0)
    pool, same = PooledDataset("synth", **kw), PooledDataset("synth", **kw)
    assert pool.song_names(0) == ["train_9000000", "train_9000001"]
    assert pool.song_names(1) == ["train_9000001", "train_9000002"]
    items = [pool[i] for i in range(3)]
    mix, stems = items[0]
    assert stems.shape == (4, 2, 11025) and torch.equal(mix, stems.sum(0))
    assert all(torch.equal(a[1], same[i][1]) for i, a in enumerate(items))
    pool.set_epoch(1)
    for i in range(3):
        pool[i]
    assert 0 not in pool._songs and set(pool._songs) <= {1, 2}  # song 0 left the pool; songs render lazily


def test_bad_arguments(corpus):
    with pytest.raises(ValueError, match="at least one track"):
        ChunkDataset([], 1.0, 1)
    with pytest.raises(ValueError, match="refresh"):
        PooledDataset(open_tracks(corpus, "train"), pool_size=2, seconds=0.1, samples_per_epoch=1, refresh=0)
