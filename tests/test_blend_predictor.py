"""The `ensemble` predictor through the grader emulation, with tiny real members (random weights)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import models
from blend.predictor import EnsemblePredictor
from core.constants import TARGETS
from submission import registry

ENV = ("TEST_DATASET_PATH", "RESULTS_DATASET_PATH", "INFERENCE_SETUP_TIMEOUT_SECONDS",
       "INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "PARTIAL_RUN_MUSIC_NAMES")


def write_song(folder: Path, seconds: float, rate: int, channels: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    stems = 0.1 * rng.standard_normal((4, int(seconds * rate), channels)).astype(np.float32)
    for target, stem in zip(TARGETS, stems):
        sf.write(folder / f"{target}.wav", stem, rate, subtype="FLOAT")
    sf.write(folder / "mixture.wav", stems.sum(0), rate, subtype="FLOAT")


@pytest.fixture(scope="module")
def ensemble_config(tmp_path_factory) -> Path:
    """A two-member ensemble config (a tiny fnn and a tiny umx checkpoint, random weights)."""
    root = tmp_path_factory.mktemp("ensemble")
    torch.manual_seed(0)
    models.save_member(models.get("fnn")(hidden_size=8), root / "weights" / "fnn.pth")
    models.save_member(models.get("umx")(hidden_size=8), root / "weights" / "umx.pth")
    config = {"members": [{"name": "fnn", "checkpoint": "weights/fnn.pth"},
                          {"name": "umx", "checkpoint": "weights/umx.pth"}],
              "weights": {"fnn": [0.7, 0.5, 0.5, 0.2], "umx": [0.3, 0.5, 0.5, 0.8]},
              "wiener": {"iterations": 1, "residual": True, "win_len": 64},
              "runtime": {"chunk_seconds": 1.0, "context_seconds": 0.25}}
    path = root / "configs" / "ensemble.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(config).replace("weights/", "../weights/"))
    return path


@pytest.fixture
def grader_env(tmp_path, monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TEST_DATASET_PATH", str(tmp_path / "test") + "/")
    monkeypatch.setenv("RESULTS_DATASET_PATH", str(tmp_path / "results") + "/")
    write_song(tmp_path / "test" / "stereo", 2.5, 44100, 2, 1)
    write_song(tmp_path / "test" / "mono-22k", 1.0, 22050, 1, 2)
    return tmp_path


def test_ensemble_is_registered():
    assert "ensemble" in registry.names()
    assert isinstance(registry.create("ensemble"), EnsemblePredictor)


@pytest.mark.parametrize("options", [{}, {"wiener": False}])
def test_ensemble_through_the_grader_emulation_writes_every_stem(grader_env, ensemble_config, options):
    predictor = registry.create("ensemble", config=str(ensemble_config), **options)
    predictor.run()  # the grader's MusicDemixingPredictor.run: setup, then prediction() per song
    for song in ("stereo", "mono-22k"):
        mixture = sf.info(str(grader_env / "test" / song / "mixture.wav"))
        for target in TARGETS:
            info = sf.info(str(grader_env / "results" / song / f"{target}.wav"))
            assert (info.frames, info.channels, info.samplerate) == (
                mixture.frames, mixture.channels, mixture.samplerate)
            data, _ = sf.read(str(grader_env / "results" / song / f"{target}.wav"))
            assert np.all(np.isfinite(data)) and np.abs(data).max() > 0
    assert predictor.ensemble.renderer.wiener is (None if options else predictor.ensemble.config.wiener)


def test_switches_and_overrides(ensemble_config):
    mixture = 0.1 * np.random.default_rng(0).standard_normal((2, 44100)).astype(np.float32)
    outputs = {}
    for label, options in {"wiener": {}, "off": {"wiener": False}, "no_wiener": {"no_wiener": True},
                           "niter0": {"niter": 0, "softmask": True}}.items():
        predictor = EnsemblePredictor(config=str(ensemble_config), **options)
        outputs[label] = predictor.separate_audio(mixture, 44100)
        assert set(outputs[label]) == set(TARGETS)
        if label == "niter0":
            wiener = predictor.ensemble.config.wiener
            assert wiener.iterations == 0 and wiener.softmask
    np.testing.assert_array_equal(outputs["off"]["vocals"], outputs["no_wiener"]["vocals"])
    assert not np.allclose(outputs["off"]["vocals"], outputs["wiener"]["vocals"])
    with pytest.warns(UserWarning, match="shifts"):
        EnsemblePredictor(config=str(ensemble_config), shifts=2)


def test_missing_checkpoint_is_named(tmp_path):
    path = tmp_path / "ensemble.yaml"
    path.write_text(yaml.safe_dump({"members": [{"name": "umx", "checkpoint": "nowhere/umx.pth"}]}))
    predictor = EnsemblePredictor(config=str(path))
    with pytest.raises(Exception, match=r"nowhere/umx\.pth: checkpoint does not exist"):
        predictor.prediction_setup()


def test_fingerprint_follows_weights_and_switches(ensemble_config, tmp_path):
    def fingerprint(config, **options):
        predictor = EnsemblePredictor(config=str(config), **options)
        predictor.prediction_setup()
        return predictor.fingerprint()

    base = fingerprint(ensemble_config)
    assert base == fingerprint(ensemble_config) and len(base) == 64
    assert fingerprint(ensemble_config, wiener=False) != base
    assert fingerprint(ensemble_config, niter=0) != base
    # a retrained member (same path, other weights) changes it too
    moved = tmp_path / "configs"
    shutil.copytree(ensemble_config.parent.parent, tmp_path, dirs_exist_ok=True)
    assert fingerprint(moved / "ensemble.yaml") == base  # same files elsewhere: same fingerprint
    torch.manual_seed(1)
    models.save_member(models.get("fnn")(hidden_size=8), tmp_path / "weights" / "fnn.pth")
    assert fingerprint(moved / "ensemble.yaml") != base


def test_prediction_streams_the_same_stems_and_leaves_nothing_on_error(ensemble_config, tmp_path,
                                                                        monkeypatch):
    write_song(tmp_path / "song", 3.0, 44100, 2, 4)
    mixture = str(tmp_path / "song" / "mixture.wav")
    predictor = EnsemblePredictor(config=str(ensemble_config))
    expected = predictor.separate_file(mixture)[0]
    blocks = []
    original = predictor.ensemble.separate

    def spy(mix, sink=None):  # the grader path streams: several blocks, never one whole stem
        return original(mix, sink=lambda start, block: (blocks.append(block.shape[-1]), sink(start, block)))

    monkeypatch.setattr(predictor.ensemble, "separate", spy)
    paths = [tmp_path / "out" / f"{t}.wav" for t in TARGETS]
    predictor.prediction(mixture, *paths)
    assert len(blocks) >= 2 and max(blocks) < 2 * 44100
    for target, path in zip(TARGETS, paths):
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        np.testing.assert_array_equal(data.T, expected[target])

    def broken(mix, sink=None):  # fails half-way through the song
        calls = []

        def failing(start, block):
            calls.append(start)
            if len(calls) == 2:
                raise RuntimeError("member crashed")
            sink(start, block)
        return original(mix, sink=failing)

    monkeypatch.setattr(predictor.ensemble, "separate", broken)
    with pytest.raises(RuntimeError, match="member crashed"):
        predictor.prediction(mixture, *[tmp_path / "out2" / f"{t}.wav" for t in TARGETS])
    assert list((tmp_path / "out2").iterdir()) == []  # no stem, no temporary file
