"""augment/: configs, gates, ranges, seeding, lengths, batch remix, chunking, cache (no Rubber Band DSP).

The DSP checks (pitch of a tone, onsets of a click track, formants of a vowel) are in
tests/test_augment_dsp.py.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import augment
from augment import rubberband
from augment.base import REGISTRY, Values
from augment.cache import open_cache, render_cache
from augment.config import AugmentConfigError
from augment.pipeline import Pipeline

TARGETS = ("bass", "drums", "other", "vocals")
RATE = 44100


def stems_like(n=4, c=2, t=2000, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, c, t)).astype(np.float32))


def one(name, **params):
    """A pipeline with a single example transform."""
    return augment.load_config({"example": [{"name": name, **params}]})


class FakeTrack:
    """A ``tracks.Track`` stand-in over in-memory stems ``(S, C, T)``."""

    def __init__(self, name, stems, rate=RATE):
        self.name, self.path, self.rate = name, name, rate
        self.stems = np.asarray(stems, dtype=np.float32)
        self.length = self.stems.shape[-1]

    def load(self, start=0, frames=None):
        stop = None if frames is None else start + frames
        stems = self.stems[..., start:stop]
        return stems.sum(axis=0), stems


class FakeStemTrack(FakeTrack):
    """Also reads single stems, as ``augment.cache.CachedTrack`` does."""

    def load_stem(self, source, start=0, frames=None):
        return self.load(start, frames)[1][source]


@pytest.fixture
def stub_stretch(monkeypatch):
    """Replace Rubber Band by a recorder returning the right length (for draw statistics)."""
    calls = []

    def fake(audio, rate, factor=1.0, cents=0.0, *args, **kwargs):
        calls.append((factor, cents))
        return audio[:, : int(round(audio.shape[-1] / factor))] * 0.5

    monkeypatch.setattr(rubberband, "stretch", fake)
    return calls


# -- configs -------------------------------------------------------------------------------------------
def test_presets_load_and_run():
    papers = {"default", "uhlich2017", "nachmani2019", "cohen_hadria2019", "defossez2021"}
    assert papers <= set(augment.presets())
    for name in augment.presets():
        pipeline = augment.load_config(name)
        assert pipeline.targets == TARGETS
        assert pipeline.example_transforms or pipeline.batch_transforms or pipeline.independent_offsets


def test_config_errors_name_the_file(tmp_path):
    path = tmp_path / "aug.yaml"
    path.write_text("augmentations:\n  example:\n    - {name: wobble, p: 1}\n")
    with pytest.raises(AugmentConfigError, match=r"aug\.yaml: example\[0\]: unknown transform 'wobble'"):
        augment.load_config(path)
    bad = [
        ({"example": [{"name": "gain", "p": 1.5}]}, "outside"),
        ({"example": [{"name": "gain", "sources": ["voice"]}]}, "unknown sources"),
        ({"example": [{"name": "remix"}]}, "batch"),
        ({"example": [{"name": "gain", "wobble": 1}]}, "wobble"),
        ({"example": [{"name": "pitch_shift", "cents": [1, 2]}]}, "choices"),
        ({"examples": []}, "unknown keys"),
    ]
    for config, message in bad:
        with pytest.raises(AugmentConfigError, match=message):
            augment.load_config(config)
    with pytest.raises(AugmentConfigError, match="no such config"):
        augment.load_config(tmp_path / "missing.yaml")


def test_other_target_lists():
    pipeline = augment.load_config({"targets": ["vocals", "accompaniment"],
                                    "example": [{"name": "gain", "sources": ["vocals"], "min": 2, "max": 2}]})
    stems = stems_like(n=2)
    out = pipeline.example(stems, 0)
    assert torch.allclose(out[0], 2 * stems[0]) and torch.equal(out[1], stems[1])
    with pytest.raises(ValueError, match="4 sources"):
        pipeline.example(stems_like(n=4), 0)


# -- mixture, identity, seeding, lengths ---------------------------------------------------------------
def test_mixture_is_the_sum_of_the_augmented_stems():
    pipeline = augment.load_config("nachmani2019")
    stems = stems_like()
    out = pipeline.example(stems, 1)
    assert not torch.equal(out, stems)
    mixture = Pipeline.mixture(out)
    assert torch.allclose(mixture, out[0] + out[1] + out[2] + out[3])
    batch = pipeline.batch(torch.stack([stems, out]), 2)
    assert torch.allclose(augment.mixture_of(batch), batch.sum(dim=1))


def test_probability_zero_is_the_identity():
    stems = stems_like(t=3000)
    for name in REGISTRY:
        params = {"seconds": 0.01} if name == "shift" else {}
        if name in ("pitch_shift", "formant_shift"):
            params = {"cents": 300}
        if name in ("time_stretch", "repitch"):
            params = {"factor": 1.25}
        pipeline = augment.load_config({"example" if name != "remix" else "batch": [{"name": name, "p": 0,
                                                                                       **params}]})
        assert torch.equal(pipeline.example(stems, 0), stems), name
        assert torch.equal(pipeline.batch(stems[None], 0), stems[None]), name
        assert pipeline.output_length(3000) == 3000, name


def test_same_seed_same_output_and_global_rng_untouched(stub_stretch):
    pipeline = augment.load_config("defossez2021")
    stems = stems_like(t=4000)
    state = torch.get_rng_state()
    first = [pipeline.example(stems, seed) for seed in range(6)]
    again = [pipeline.example(stems, torch.Generator().manual_seed(seed)) for seed in range(6)]
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[1])
    batch = torch.stack(first[:4])
    assert torch.equal(pipeline.batch(batch, 7), pipeline.batch(batch, 7))
    assert not torch.equal(pipeline.batch(batch, 7), pipeline.batch(batch, 8))
    # A numpy generator works too and is deterministic.
    assert torch.equal(pipeline.example(stems, np.random.default_rng(3)),
                       pipeline.example(stems, np.random.default_rng(3)))


def test_lengths_kept_or_changed_as_documented(stub_stretch):
    t = 8000
    stems = stems_like(t=t)
    for name in ("channel_swap", "gain", "sign_flip", "time_reverse", "pitch_shift", "formant_shift"):
        assert one(name).example(stems, 0).shape == stems.shape, name
    shift = one("shift", seconds=0.02)
    assert shift.example(stems, 0).shape[-1] == t - round(0.02 * RATE) == shift.output_length(t)
    tempo = one("time_stretch", factor={"uniform": [0.8, 1.25]})
    for seed in range(5):
        assert tempo.example(stems, seed).shape[-1] == t * 4 // 5 == tempo.output_length(t)
    slow = one("time_stretch", factor={"choices": [0.5, 0.9]})
    assert slow.example(stems, 0).shape[-1] == t
    both = augment.load_config({"example": [{"name": "shift", "seconds": 0.01},
                                            {"name": "repitch", "factor": {"uniform": [0.9, 1.1]}}]})
    need = both.input_length(5000)
    assert both.output_length(need) >= 5000 > both.output_length(need - 1)
    transform = both.as_transform(seed=0, length=5000)
    assert transform(stems_like(t=need)).shape[-1] == 5000
    with pytest.raises(ValueError, match="input_length"):
        transform(stems_like(t=need - 1))


# -- ranges and probabilities --------------------------------------------------------------------------
def test_gain_range_and_probability():
    ones = torch.ones(200, 4, 2, 8)
    pipeline = augment.load_config({"batch": [{"name": "gain", "min": 0.25, "max": 1.25}]})
    out = pipeline.batch(ones, 0)[..., 0, 0]  # (200, 4) per-source gains
    assert out.min() >= 0.25 and out.max() <= 1.25
    assert out.min() < 0.3 and out.max() > 1.2 and abs(out.mean().item() - 0.75) < 0.03
    assert out.std(dim=1).min() > 0  # one draw per source
    same = augment.load_config({"batch": [{"name": "gain", "same": True}]}).batch(ones, 0)[..., 0, 0]
    assert torch.allclose(same, same[:, :1].expand_as(same))
    gated = augment.load_config({"batch": [{"name": "gain", "p": 0.3}]}).batch(ones, 1)
    changed = (gated != 1).flatten(1).any(dim=1).float().mean().item()
    assert abs(changed - 0.3) < 0.1


def test_flips_and_reversal_rates():
    x = torch.arange(1, 9, dtype=torch.float32).repeat(400, 4, 2, 1)
    x[:, :, 1] *= 10  # right channel differs from the left
    swap = augment.load_config({"batch": [{"name": "channel_swap"}]}).batch(x, 0)
    swapped = swap[:, :, 0, 0] == 10
    assert abs(swapped.float().mean().item() - 0.5) < 0.05
    sign = augment.load_config({"batch": [{"name": "sign_flip", "p": 0.5}]}).batch(x, 0)
    assert abs((sign[:, :, 0, 0] < 0).float().mean().item() - 0.25) < 0.04
    vocals = augment.load_config({"batch": [{"name": "sign_flip", "sources": ["vocals"]}]}).batch(x, 0)
    assert torch.equal(vocals[:, :3], x[:, :3]) and (vocals[:, 3, 0, 0] < 0).any()
    rev = augment.load_config({"batch": [{"name": "time_reverse", "p": 0.5}]}).batch(x, 0)
    reversed_ = rev[:, :, 0, 0] == 8
    assert torch.equal(reversed_, reversed_[:, :1].expand_as(reversed_))  # same: all sources together
    assert abs(reversed_[:, 0].float().mean().item() - 0.5) < 0.1


def test_values_and_rubberband_draws(stub_stretch):
    g = torch.Generator().manual_seed(0)
    choices = Values.parse({"choices": [-300, 0, 300]}, "cents").draw(3000, g)
    counts = [(choices == v).float().mean().item() for v in (-300, 0, 300)]
    assert all(abs(c - 1 / 3) < 0.04 for c in counts)
    uniform = Values.parse({"uniform": [0.88, 1.12]}, "factor").draw(3000, g)
    assert 0.88 <= uniform.min() < 0.89 and 1.11 < uniform.max() <= 1.12
    pipeline = augment.load_config({"batch": [{"name": "repitch", "p": 0.2,
                                               "cents": {"choices": [-200, -100, 100, 200]},
                                               "factor": {"uniform": [0.88, 1.12]}}]})
    pipeline.batch(stems_like(t=500)[None].repeat(300, 1, 1, 1), 0)
    assert abs(len(stub_stretch) / 300 - 0.2) < 0.07  # one call per gated example (same: true)
    factors, cents = zip(*stub_stretch)
    assert min(factors) >= 0.88 and max(factors) <= 1.12 and set(cents) <= {-200, -100, 100, 200}


# -- batch remix and loading-time chunking -------------------------------------------------------------
def test_remix_shuffles_sources_across_songs():
    batch = torch.arange(8, dtype=torch.float32)[:, None, None, None].repeat(1, 4, 2, 16)  # value = song
    pipeline = augment.load_config({"batch": [{"name": "remix", "group_size": 4}]})
    moved = []
    for seed in range(50):
        out = pipeline.batch(batch, seed)
        songs = out[:, :, 0, 0]
        for s in range(4):  # each source is a permutation within its group of 4
            assert sorted(songs[:4, s].tolist()) == [0, 1, 2, 3]
            assert sorted(songs[4:, s].tolist()) == [4, 5, 6, 7]
        moved.append((songs != torch.arange(8)[:, None]).float().mean().item())
    assert abs(np.mean(moved) - 0.75) < 0.05
    odd = augment.load_config({"batch": [{"name": "remix", "group_size": 4}]}).batch(batch[:6], 0)
    assert sorted(odd[4:, 0, 0, 0].tolist()) == [4, 5]


@pytest.mark.parametrize("track_class", [FakeTrack, FakeStemTrack])
def test_chunk_offsets_and_mixing_songs(track_class):
    g = torch.Generator().manual_seed(0)
    offsets = augment.chunk_offsets(1000, 100, 4, g, independent=True)
    assert len(offsets) == 4 and all(0 <= o <= 900 for o in offsets) and len(set(offsets)) > 1
    assert len(set(augment.chunk_offsets(1000, 100, 4, g, independent=False))) == 1
    assert augment.chunk_offsets(50, 100, 2, g) == [0, 0]
    # Sample k of source s of song n holds n * 100000 + s * 10000 + k: song, source, offset read off.
    content = np.arange(4)[:, None, None] * 10000 + np.arange(3000.0)[None, None, :]
    tracks = [track_class(f"song{n}", np.repeat(n * 100000 + content, 2, axis=1)) for n in range(5)]
    pipeline = augment.load_config({"chunking": {"independent_offsets": 1.0, "mix_songs": 0.5}})
    owners, starts = [], []
    for seed in range(100):
        stems = pipeline.load_chunk(tracks, 2, 500, seed)
        assert stems.shape == (4, 2, 500)
        first = stems[:, 0, 0].numpy()
        owners += list(first // 100000)
        assert np.array_equal((first // 10000) % 10, np.arange(4))  # each source from its own stem
        starts.append(first % 10000)
        assert np.all(np.diff(stems[:, 0].numpy(), axis=-1) == 1)  # contiguous chunks
    assert abs(np.mean(np.array(owners) != 2) - 0.5 * 4 / 5) < 0.07
    assert np.mean([len(set(s)) > 1 for s in starts]) > 0.9
    aligned = augment.load_config({}).load_chunk(tracks, 1, 500, 0)[:, 0, 0].numpy()
    assert len(set(aligned % 10000)) == 1 and aligned[0] // 100000 == 1
    short = augment.load_config({}).load_chunk([FakeTrack("short", np.ones((4, 2, 100)))], 0, 300, 0)
    assert short.shape == (4, 2, 300) and short[..., 100:].abs().sum() == 0
    example = augment.load_config("uhlich2017").sample(tracks, 0, 400, 0)
    assert example.shape == (4, 2, 400)
    tempo = augment.load_config({"chunking": {"independent_offsets": 1.0},
                                 "example": [{"name": "shift", "seconds": 0.005}]}).as_transform(seed=1)
    example = tempo.sample(tracks, 3, 400, torch.Generator().manual_seed(0))
    assert example.shape == (4, 2, 400) and len(set((example[:, 0, 0] % 10000).tolist())) > 1


# -- worker path and cache ------------------------------------------------------------------------------
class _Stems(torch.utils.data.Dataset):
    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return self.transform(torch.ones(4, 2, 32))


def test_example_transform_in_dataloader_workers():
    transform = augment.load_config({"example": [{"name": "gain"}]}).as_transform(seed=5)
    assert isinstance(pickle.loads(pickle.dumps(transform)), type(transform))

    def run():
        torch.manual_seed(0)
        loader = torch.utils.data.DataLoader(_Stems(transform), batch_size=1, num_workers=2,
                                             multiprocessing_context="fork")
        return torch.cat([b[:, :, 0, 0] for b in loader])

    first, second = run(), run()
    assert torch.equal(first, second)  # reproducible under torch.manual_seed
    assert len(set(first.flatten().tolist())) == first.numel()  # workers draw differently
    local = [transform(torch.ones(4, 2, 8)) for _ in range(2)]
    assert not torch.equal(local[0], local[1])  # the main-process generator advances


def test_with_the_tracks_chunk_dataset():
    from tracks import ChunkDataset

    tracks = [FakeTrack(f"song{n}", np.random.default_rng(n).standard_normal((4, 2, 3000))) for n in range(2)]
    pipeline = augment.load_config("nachmani2019")
    for transform in (pipeline.example, pipeline.as_transform(seed=0)):
        dataset = ChunkDataset(tracks, seconds=1000 / RATE, samples_per_epoch=4, seed=0, transform=transform)
        mixture, stems = dataset[0]
        assert stems.shape == (4, 2, 1000) and torch.allclose(mixture, stems.sum(0))
    first, again = (ChunkDataset(tracks, 1000 / RATE, 4, 0, pipeline.example)[1][1] for _ in range(2))
    assert torch.equal(first, again)  # the dataset's per-item generator drives the draws


def test_cache_renders_variants_and_reads_them_back(tmp_path, stub_stretch):
    rng = np.random.default_rng(0)
    tracks = [FakeTrack(f"song{n}", rng.standard_normal((4, 2, 1000)).astype(np.float32)) for n in range(2)]
    pipeline = augment.load_config({"example": [
        {"name": "time_stretch", "p": 0.5, "factor": 1.25}, {"name": "gain"}]})
    manifest = render_cache(tracks, tmp_path, pipeline, variants=6, seed=0, progress=False)
    records = manifest["records"]
    assert len(records) == 12 and 0 < sum(r["original"] for r in records) < 12
    cached = open_cache(tmp_path, tracks)
    for record, track in zip(records, cached):
        mixture, stems = track.load(100, 300)
        assert stems.shape == (4, 2, 300) and np.allclose(mixture, stems.sum(axis=0), atol=1e-6)
        assert track.length == (1000 if record["original"] else 800)
        if not record["original"]:  # the stub halves; gain is not cached (it runs online)
            source = tracks[int(record["song"][-1])]
            assert np.allclose(track.load(0, 800)[1], source.stems[..., :800] * 0.5, atol=1e-6)
    again = render_cache(tracks, tmp_path / "again", pipeline, variants=6, seed=0, progress=False)
    assert [r["original"] for r in again["records"]] == [r["original"] for r in records]
    assert [t.name for t in pipeline.cheap().example_transforms] == ["gain"]
    with pytest.raises(ValueError, match="no expensive"):
        render_cache(tracks, tmp_path / "none", augment.load_config("uhlich2017"), progress=False)


def test_package_import_is_light():
    code = "import augment, sys; assert 'torch' not in sys.modules and 'pedalboard' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(__file__).resolve().parents[1]))
