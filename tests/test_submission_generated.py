"""The submission on generated songs (tracks/): baselines by hand, the oracle bound, test.py end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_submission_helpers import hand_sdr, one_torch_thread, write_song  # noqa: F401

from core.constants import TARGETS
from predict import DEFAULT_PREDICTOR
from submission import registry, scoring
from submission.datasets import DEMO
from submission.runner import Settings, run_songs

ROOT = Path(__file__).resolve().parents[1]
ENV = ("TEST_DATASET_PATH", "RESULTS_DATASET_PATH", "INFERENCE_SETUP_TIMEOUT_SECONDS",
       "INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "PARTIAL_RUN_MUSIC_NAMES")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """Two generated test songs of 6 s (rendered once for this module)."""
    from tracks.synth import render_dataset

    root = tmp_path_factory.mktemp("generated")
    render_dataset(root, train=0, test=2, seconds=6, seed=3, progress=False)
    return root / "test"


def load_test_py():
    spec = importlib.util.spec_from_file_location("stemblend_test_py", ROOT / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_grader_env(monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("name, factor", [("copy", 1.0), ("scaled", 0.25)])
def test_baselines_score_as_computed_by_hand_on_a_generated_song(generated, tmp_path, name, factor):
    song = sorted(p.name for p in generated.iterdir())[0]
    settings = Settings(generated, tmp_path / "results", partial=[song])
    assert [r.status for r in run_songs(registry.create(name), settings, progress=False).songs] == ["ok"]
    scores = scoring.score_song(generated / song, tmp_path / "results" / song)
    mixture, _ = sf.read(generated / song / "mixture.wav", dtype="float32")
    for target in TARGETS:
        stem, _ = sf.read(generated / song / f"{target}.wav", dtype="float32")
        assert scores[target] == pytest.approx(hand_sdr(stem, factor * mixture), abs=1e-3)


@pytest.mark.usefixtures("one_torch_thread")
def test_oracle_irm_averages_at_least_8_db_on_generated_songs(generated):
    songs = sorted(p.name for p in generated.iterdir())
    summary, errors = scoring.score_in_memory(registry.create("oracle-irm"), generated, songs, progress=False)
    assert not errors
    assert summary["mean"] >= 8.0, summary["instruments"]


@pytest.mark.usefixtures("no_grader_env", "one_torch_thread")
def test_test_py_scores_several_datasets_and_reports_the_gap(generated, tmp_path, capsys):
    ood = tmp_path / "ood"
    write_song(ood / "numpy_song", seconds=2.0)
    results = tmp_path / "results"
    argv = ["-n", "scaled", "--data-dir", f"test={generated}", "--data-dir", f"numpy={ood}",
            "--results-dir", str(results), "-q", "--no-baselines"]
    code = load_test_py().main(argv)
    assert code == 0
    out = capsys.readouterr().out
    assert "in-distribution vs out-of-distribution" in out and "gap test - numpy" in out
    data = json.loads((results / "results.json").read_text())
    assert set(data["songs"]) == {p.name for p in generated.iterdir()}
    assert set(data["instruments"]) == set(TARGETS)
    song_means = [np.mean([s[t] for t in TARGETS]) for s in data["songs"].values()]
    assert data["mean"] == pytest.approx(np.mean(song_means))
    other = json.loads((tmp_path / "results-numpy" / "results.json").read_text())
    gap = data["ood"]["numpy"]["gap"]
    for t in TARGETS:
        assert gap["instruments"][t] == pytest.approx(data["instruments"][t] - other["instruments"][t])
    assert (results / "results.png").stat().st_size > 10_000


@pytest.mark.usefixtures("no_grader_env")
def test_test_py_renders_the_demo_set_when_there_is_none(tmp_path, monkeypatch, capsys):
    test_py = load_test_py()
    monkeypatch.setattr(test_py, "ROOT", tmp_path)
    monkeypatch.setitem(DEMO, "test", 1)
    monkeypatch.setitem(DEMO, "seconds", 3)
    assert test_py.main(["-q", "--no-baselines"]) == 0
    songs = [p for p in (tmp_path / "data" / "test").iterdir() if p.is_dir()]
    assert len(songs) == 1 and (songs[0] / "mixture.wav").is_file()
    data = json.loads((tmp_path / "data" / "results" / "results.json").read_text())
    assert list(data["songs"]) == [songs[0].name] and data["predictor"] == DEFAULT_PREDICTOR
    assert "rendering the demo set" in capsys.readouterr().out
