"""Our copy of the 2021 grader's ``evaluator/music_demixing.py``, and predict.py against a swapped copy."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_submission_helpers import write_song

from evaluator.music_demixing import EvaluationError, MusicDemixingPredictor, TimeoutException
from submission.baselines import CopyPredictor, ScaledMixturePredictor

ROOT = Path(__file__).resolve().parents[1]
ENV = ("TEST_DATASET_PATH", "RESULTS_DATASET_PATH", "INFERENCE_SETUP_TIMEOUT_SECONDS",
       "INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "PARTIAL_RUN_MUSIC_NAMES")


@pytest.fixture
def grader_env(tmp_path, monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TEST_DATASET_PATH", str(tmp_path / "test") + "/")
    monkeypatch.setenv("RESULTS_DATASET_PATH", str(tmp_path / "results") + "/")
    return tmp_path


class Recording(MusicDemixingPredictor):
    """Records how the evaluator calls it; copies the mixture like the starter kit's CopyPredictor."""

    def __init__(self, sleep_on=None):
        super().__init__()
        self.calls, self.setups, self.sleep_on = [], 0, sleep_on

    def prediction_setup(self):
        self.setups += 1

    def prediction(self, **kwargs):  # keyword arguments only, as the grader calls it
        song = Path(kwargs["mixture_file_path"]).parent.name
        self.calls.append((song, kwargs, all(Path(kwargs[f"{t}_file_path"]).parent.is_dir()
                                             for t in ("bass", "drums", "other", "vocals"))))
        if song == self.sleep_on:
            time.sleep(30)
        data, rate = sf.read(kwargs["mixture_file_path"])
        for t in ("bass", "drums", "other", "vocals"):
            sf.write(kwargs[f"{t}_file_path"], data, rate)


def test_defaults_follow_the_grader(tmp_path, monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    p = MusicDemixingPredictor()
    assert p.test_data_path == str(tmp_path) + "/data/test/"
    assert p.results_data_path == str(tmp_path) + "/data/results/"
    assert (p.inference_setup_timeout, p.inference_per_music_timeout, p.partial_run) == (900, 240, None)


def test_each_environment_variable_is_honoured(grader_env, monkeypatch):
    monkeypatch.setenv("INFERENCE_SETUP_TIMEOUT_SECONDS", "33")
    monkeypatch.setenv("INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "44")
    monkeypatch.setenv("PARTIAL_RUN_MUSIC_NAMES", "b,c")
    for name in "abc":
        write_song(grader_env / "test" / name, seconds=0.05)
    predictor = Recording()
    assert (predictor.inference_setup_timeout, predictor.inference_per_music_timeout) == (33, 44)
    predictor.run()
    assert predictor.setups == 1
    assert [c[0] for c in predictor.calls] == ["b", "c"]  # PARTIAL_RUN_MUSIC_NAMES
    song, kwargs, folders_existed = predictor.calls[0]
    assert set(kwargs) == {"mixture_file_path", "bass_file_path", "drums_file_path", "other_file_path",
                           "vocals_file_path"}  # keyword arguments, no music_name
    assert folders_existed  # <results>/<song>/ is created before the call
    assert kwargs["mixture_file_path"] == str(grader_env / "test" / "b" / "mixture.wav")  # TEST_DATASET_PATH
    assert kwargs["vocals_file_path"] == str(grader_env / "results" / "b" / "vocals.wav")  # RESULTS_...
    assert sorted(os.listdir(grader_env / "results")) == ["b", "c"]


def test_setup_time_limit(grader_env, monkeypatch):
    monkeypatch.setenv("INFERENCE_SETUP_TIMEOUT_SECONDS", "1")
    write_song(grader_env / "test" / "a", seconds=0.05)

    class SlowSetup(Recording):
        def prediction_setup(self):
            time.sleep(30)

    start = time.perf_counter()
    with pytest.raises(TimeoutException):
        SlowSetup().run()
    assert time.perf_counter() - start < 10


def test_missing_prediction_setup_is_skipped(grader_env):
    write_song(grader_env / "test" / "a", seconds=0.05)

    class NoSetup(Recording):
        prediction_setup = MusicDemixingPredictor.prediction_setup

    predictor = NoSetup()
    predictor.run()
    assert [c[0] for c in predictor.calls] == ["a"]


def test_per_song_time_limit_stops_the_song_and_the_next_still_runs(grader_env, monkeypatch):
    monkeypatch.setenv("INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "1")
    for name in ("a", "b_slow", "c"):
        write_song(grader_env / "test" / name, seconds=0.05)
    predictor = Recording(sleep_on="b_slow")
    start = time.perf_counter()
    with pytest.raises(EvaluationError, match="b_slow: TimeoutException"):
        predictor.run()
    assert time.perf_counter() - start < 10
    assert [c[0] for c in predictor.calls] == ["a", "b_slow", "c"]
    assert (grader_env / "results" / "c" / "vocals.wav").is_file()


def test_missing_outputs_fail_verification(grader_env):
    write_song(grader_env / "test" / "a", seconds=0.05)

    class Lazy(Recording):
        def prediction(self, **kwargs):
            pass

    with pytest.raises(EvaluationError, match="verification failed"):
        Lazy().run()


def test_run_does_not_raise_when_grading(grader_env, monkeypatch):
    write_song(grader_env / "test" / "a", seconds=0.05)
    (grader_env / "test" / "a" / "mixture.wav").unlink()
    monkeypatch.setenv("AICROWD_IS_GRADING", "true")
    ScaledMixturePredictor().run()  # reported, not raised
    monkeypatch.delenv("AICROWD_IS_GRADING")
    with pytest.raises(EvaluationError, match="mixture.wav: file does not exist"):
        ScaledMixturePredictor().run()


def test_the_kit_predictor_through_our_evaluator_and_its_scoring(grader_env):
    stems = write_song(grader_env / "test" / "a", seconds=0.2)
    predictor = CopyPredictor()
    predictor.run()
    scores = predictor.scoring()["a"]
    mixture = stems.sum(0)
    for j, target in enumerate(("bass", "drums", "other", "vocals")):
        expected = 10 * np.log10((np.sum(stems[j] ** 2) + 1e-7) / (np.sum((stems[j] - mixture) ** 2) + 1e-7))
        assert scores[f"sdr_{target}"] == pytest.approx(expected, abs=1e-3)


# -- the grader swaps evaluator/music_demixing.py for its own copy ---------------------------------
GRADER_LIKE = '''
import os, signal
from os import listdir
from os.path import isfile, join

class MusicDemixingPredictor:
    def __init__(self):
        self.test_data_path = os.getenv("TEST_DATASET_PATH", os.getcwd() + "/data/test/")
        self.results_data_path = os.getenv("RESULTS_DATASET_PATH", os.getcwd() + "/data/results/")
        self.inference_setup_timeout = int(os.getenv("INFERENCE_SETUP_TIMEOUT_SECONDS", "900"))
        self.inference_per_music_timeout = int(os.getenv("INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "240"))

    def _out(self, song, name):
        os.makedirs(join(self.results_data_path, song), exist_ok=True)
        return join(self.results_data_path, song, name + ".wav")

    def evaluation(self):
        print("GRADER-LIKE EVALUATOR")
        try:
            self.prediction_setup()
        except NotImplementedError:
            pass
        for song in listdir(self.test_data_path):
            if isfile(join(self.test_data_path, song)):
                continue
            signal.alarm(self.inference_per_music_timeout)
            self.prediction(mixture_file_path=join(self.test_data_path, song, "mixture.wav"),
                            bass_file_path=self._out(song, "bass"),
                            drums_file_path=self._out(song, "drums"),
                            other_file_path=self._out(song, "other"),
                            vocals_file_path=self._out(song, "vocals"))
            signal.alarm(0)
            for name in ("bass", "drums", "other", "vocals"):
                assert os.path.isfile(self._out(song, name)), "verification failed"

    def run(self):
        self.evaluation()

    def prediction_setup(self):
        raise NotImplementedError

    def prediction(self, mixture_file_path, bass_file_path, drums_file_path, other_file_path,
                   vocals_file_path):
        raise NotImplementedError
'''


def test_predict_py_works_with_the_graders_copy_of_the_evaluator(tmp_path):
    kit = tmp_path / "kit"
    kit.mkdir()
    for package in ("core", "submission", "blend", "models", "enhancer", "augment", "tracks"):
        (kit / package).symlink_to(ROOT / package, target_is_directory=True)
    (kit / "predict.py").write_text((ROOT / "predict.py").read_text())  # the default: the ensemble
    (kit / "evaluator").mkdir()
    (kit / "evaluator" / "__init__.py").write_text("")
    (kit / "evaluator" / "music_demixing.py").write_text(GRADER_LIKE)
    stems = write_song(kit / "data" / "test" / "song", seconds=0.2)
    env = {k: v for k, v in os.environ.items() if k not in ENV and k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "predict.py"], cwd=kit, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "GRADER-LIKE EVALUATOR" in proc.stdout
    for target in ("bass", "drums", "other", "vocals"):
        est, rate = sf.read(kit / "data" / "results" / "song" / f"{target}.wav", dtype="float32")
        assert rate == 44100 and est.shape == (stems.shape[2], stems.shape[1])


def test_the_kit_imports_nothing_but_the_base_class_from_the_evaluator():
    files = [ROOT / "predict.py", *sorted((ROOT / "submission").glob("*.py"))]
    for extra in ("blend", "models"):
        files += sorted((ROOT / extra).glob("*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("evaluator"):
                assert node.module == "evaluator.music_demixing", path
                assert [a.name for a in node.names] == ["MusicDemixingPredictor"], path
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("evaluator") for a in node.names), path
