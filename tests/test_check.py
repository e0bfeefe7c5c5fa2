"""``python -m submission check`` on small submissions this file writes: each failure mode is caught.

Every test builds a tiny 2021-layout repository (a ``predict.py``, a minimal
``evaluator/music_demixing.py`` with the grader's environment variables and SIGALRM limits, an
``aicrowd.json``, a fake weight file with its manifest) and 1-1.5 s songs written with numpy, so the
checks run in about a second each, independent of the ensemble's speed. The last test runs the
real kit's ``predict.py`` on one generated 1 s song.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from submission.__main__ import main
from submission.checks_run import judge_time
from submission.checks_static import check_aicrowd_json, check_weights, is_lfs_pointer

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("bass", "drums", "other", "vocals")

EVALUATOR = '''
import os
import signal
from contextlib import contextmanager


class TimeoutException(Exception):
    pass


@contextmanager
def time_limit(seconds):
    def handler(signum, frame):
        raise TimeoutException("Prediction timed out!")

    signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)


class MusicDemixingPredictor:
    def __init__(self):
        self.test_data_path = os.getenv("TEST_DATASET_PATH", os.getcwd() + "/data/test/")
        self.results_data_path = os.getenv("RESULTS_DATASET_PATH", os.getcwd() + "/data/results/")
        self.inference_setup_timeout = int(os.getenv("INFERENCE_SETUP_TIMEOUT_SECONDS", "900"))
        self.inference_per_music_timeout = int(os.getenv("INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "240"))

    def run(self):
        with time_limit(self.inference_setup_timeout):
            self.prediction_setup()
        for song in sorted(os.listdir(self.test_data_path)):
            out = os.path.join(self.results_data_path, song)
            os.makedirs(out, exist_ok=True)
            paths = {n + "_file_path": os.path.join(out, n + ".wav")
                     for n in ("bass", "drums", "other", "vocals")}
            with time_limit(self.inference_per_music_timeout):
                mixture = os.path.join(self.test_data_path, song, "mixture.wav")
                self.prediction(mixture_file_path=mixture, **paths)
'''

PREDICT = '''
import time

import numpy as np
import soundfile as sf

from evaluator.music_demixing import MusicDemixingPredictor
{preamble}

def stem(name, mix):
    return {expression}


class Tiny(MusicDemixingPredictor):
    def prediction_setup(self):
        with open("models/weights/tiny.pth", "rb") as stream:
            self.weights = stream.read()

    def prediction(self, mixture_file_path, bass_file_path, drums_file_path, other_file_path,
                   vocals_file_path):
        mix, rate = sf.read(mixture_file_path, dtype="float32", always_2d=True)
        time.sleep({sleep})
        paths = {{"bass": bass_file_path, "drums": drums_file_path, "other": other_file_path,
                 "vocals": vocals_file_path}}
        for name, path in paths.items():
            sf.write(path, stem(name, mix), rate, subtype="FLOAT")


submission = Tiny()
submission.run()
'''

AICROWD = {"challenge_id": "music-demixing-challenge-ismir-2021",
           "grader_id": "evaluations-api-music-demixing", "authors": ["tester"],
           "description": "tiny test submission", "external_dataset_used": False, "gpu": False}


def write_predict(repo: Path, expression: str = "mix / 4", sleep: float = 0.0, preamble: str = "") -> None:
    (repo / "predict.py").write_text(PREDICT.format(expression=expression, sleep=sleep, preamble=preamble))


def write_weights(repo: Path, content: bytes) -> Path:
    weights = repo / "models" / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    (weights / "tiny.pth").write_bytes(content)
    manifest = {"format": "stemblend-weights/1", "weights": {"tiny.pth": {
        "member": "tiny", "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}}}
    (weights / "manifest.json").write_text(json.dumps(manifest))
    return weights / "tiny.pth"


def write_songs(root: Path, durations=(1.0, 1.5), rate: int = 44100) -> Path:
    rng = np.random.default_rng(0)
    for i, seconds in enumerate(durations):
        folder = root / f"song{i}"
        folder.mkdir(parents=True)
        stems = (0.1 * rng.standard_normal((4, int(seconds * rate), 2))).astype(np.float32)
        for name, stem in zip(TARGETS, stems):
            sf.write(folder / f"{name}.wav", stem, rate, subtype="FLOAT")
        sf.write(folder / "mixture.wav", stems.sum(axis=0), rate, subtype="FLOAT")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A good tiny submission."""
    repo = tmp_path / "repo"
    (repo / "evaluator").mkdir(parents=True)
    (repo / "evaluator" / "__init__.py").write_text("")
    (repo / "evaluator" / "music_demixing.py").write_text(EVALUATOR)
    (repo / "aicrowd.json").write_text(json.dumps(AICROWD, indent=2))
    write_weights(repo, np.random.default_rng(1).bytes(2048))
    write_predict(repo)
    return repo


@pytest.fixture
def songs(tmp_path: Path) -> Path:
    return write_songs(tmp_path / "data")


def run_check(repo: Path, data: Path, *extra: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check", "--repo", str(repo), "--data-dir", str(data), "--json", "-q", *extra])
    return code, json.loads(out.getvalue())


def by_status(report: dict, status: str) -> dict[str, str]:
    return {c["name"]: c["message"] + " | fix: " + c["fix"]
            for c in report["checks"] if c["status"] == status}


def test_good_submission_passes(repo, songs, capsys):
    code, report = run_check(repo, songs)
    assert code == 0, by_status(report, "fail")
    assert report["ok"] and report["failures"] == 0 and report["warnings"] == 0
    assert [s["song"] for s in report["songs"]] == ["song0", "song1"]
    for song in report["songs"]:
        assert song["status"] == "ok" and song["limit"] == 240.0 and 0 < song["seconds"] < 30
        assert song["margin"] > 0.8
        assert set(song["outputs"]) == set(TARGETS)
        assert all(o["channels"] == 2 and o["nonfinite"] == 0 for o in song["outputs"].values())
    names = {c["name"] for c in report["checks"]}
    assert {"aicrowd.json", "weights models/weights/tiny.pth", "import", "setup", "run", "network"} <= names
    # the human-readable table
    assert main(["check", "--repo", str(repo), "--data-dir", str(songs), "-q"]) == 0
    table = capsys.readouterr().out
    assert "PASSED: 0 failure(s)" in table and "margin" in table and "song1" in table


def test_lfs_pointer_instead_of_weights(repo, songs):
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 2048\n"
    (repo / "models" / "weights" / "tiny.pth").write_bytes(pointer)
    assert is_lfs_pointer(repo / "models" / "weights" / "tiny.pth")
    code, report = run_check(repo, songs)
    assert code == 1
    failure = by_status(report, "fail")["weights models/weights/tiny.pth"]
    assert "git-lfs pointer" in failure and "git lfs pull" in failure


def test_weights_sha256_mismatch(repo, songs):
    path = repo / "models" / "weights" / "tiny.pth"
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(data))
    code, report = run_check(repo, songs)
    assert code == 1
    failure = by_status(report, "fail")["weights models/weights/tiny.pth"]
    assert "sha256" in failure and "does not match" in failure and "manifest" in failure
    # a truncated file is caught by its size first
    path.write_bytes(bytes(data[:100]))
    checks = {c.name: c for c in check_weights(repo)}
    assert "100 bytes" in checks["weights models/weights/tiny.pth"].message


def test_missing_weight_file_and_bad_manifest(repo):
    (repo / "models" / "weights" / "tiny.pth").unlink()
    (repo / "enhancer").mkdir()
    (repo / "enhancer" / "manifest.json").write_text("{not json")
    checks = {c.name: c for c in check_weights(repo)}
    assert checks["weights models/weights/tiny.pth"].status == "fail"
    assert "does not exist" in checks["weights models/weights/tiny.pth"].message
    assert checks["manifest enhancer/manifest.json"].status == "fail"
    assert "not valid JSON" in checks["manifest enhancer/manifest.json"].message


def test_missing_aicrowd_key_and_wrong_type(repo, songs):
    data = dict(AICROWD)
    del data["grader_id"]
    data["gpu"] = "false"  # a string, not a bool
    data["external_dataset_used"] = 0  # an int, not a bool
    (repo / "aicrowd.json").write_text(json.dumps(data))
    code, report = run_check(repo, songs)
    assert code == 1
    failure = by_status(report, "fail")["aicrowd.json"]
    assert "missing key 'grader_id'" in failure
    assert "'gpu' is a str" in failure and "expected bool" in failure
    assert "'external_dataset_used' is a int" in failure
    assert "true or false, no quotes" in failure
    # the rest of the run still passed
    assert by_status(report, "ok").keys() >= {"import", "setup", "song song0", "outputs song1", "run"}


def test_aicrowd_json_layouts_and_syntax(tmp_path):
    (tmp_path / "aicrowd.json").write_text(json.dumps(dict(AICROWD, grader_id="other")))
    [check] = check_aicrowd_json(tmp_path)
    assert check.status == "fail" and "evaluations-api-music-demixing" in check.fix
    sdx = {k: v for k, v in AICROWD.items() if k != "grader_id"} | {"labelnoise": False, "bleeding": True}
    (tmp_path / "aicrowd.json").write_text(json.dumps(sdx))
    assert [c.status for c in check_aicrowd_json(tmp_path, "sdx23")] == ["ok"]
    assert "missing key 'grader_id'" in check_aicrowd_json(tmp_path, "mdx21")[0].message
    (tmp_path / "aicrowd.json").write_text('{"challenge_id": "x",}')
    assert "not valid JSON" in check_aicrowd_json(tmp_path)[0].message
    (tmp_path / "aicrowd.json").unlink()
    assert "does not exist" in check_aicrowd_json(tmp_path)[0].message


def test_predictor_writing_wrong_shape(repo, songs):
    write_predict(repo, expression="mix[: len(mix) // 2] / 4 if name == 'vocals' else mix[:, :1] / 4")
    code, report = run_check(repo, songs)
    assert code == 1
    failure = by_status(report, "fail")["outputs song0"]
    assert "vocals.wav has (frames, channels) (22050, 2), the mixture (44100, 2)" in failure
    assert "bass.wav has (frames, channels) (44100, 1)" in failure
    assert "mixture's length, channel count and sample rate" in failure


def test_nan_outputs_fail_and_clipping_is_reported(repo, songs):
    write_predict(repo, expression="np.full_like(mix, np.nan) if name == 'drums' else "
                                   "(mix * 0 + 1.5 if name == 'bass' else mix / 4)")
    code, report = run_check(repo, songs)
    assert code == 1
    assert "drums.wav has 88200 NaN/Inf samples" in by_status(report, "fail")["outputs song0"]
    warning = by_status(report, "warn")["outputs song0"]
    assert "clipped" in warning and "bass 88200" in warning
    assert report["songs"][0]["outputs"]["bass"]["clipped"] == 88200


def test_predictor_exceeding_the_per_song_limit(repo, tmp_path):
    data = write_songs(tmp_path / "one", durations=(1.0,))
    write_predict(repo, sleep=4.0)
    code, report = run_check(repo, data, "--time-limit", "1")
    assert code == 1
    [song] = report["songs"]
    assert song["status"] == "fail" and song["limit"] == 1.0
    failure = by_status(report, "fail")["song song0"]
    assert "exceeded the per-song limit of 1 s" in failure and "TimeoutException" in failure
    assert song["seconds"] < 3.5  # the grader's alarm stopped it
    assert "run" in by_status(report, "fail")


def test_time_limit_factor_and_margin_warning(repo, tmp_path):
    data = write_songs(tmp_path / "one", durations=(2.0,))
    # 2 s song x 1.57 = 3.14 s limit; the alarm is at ceil(3.14) = 4 s, so the song finishes
    write_predict(repo, sleep=3.3)
    code, report = run_check(repo, data, "--time-limit-factor", "1.57")
    assert code == 1
    assert report["songs"][0]["limit"] == pytest.approx(3.14)
    assert report["songs"][0]["status"] == "fail" and report["songs"][0]["seconds"] >= 3.3
    # "over the limit" (or, on a very busy machine, stopped by the alarm at 4 s)
    assert "limit" in by_status(report, "fail")["song song0"]
    # within 20% of the limit (4.3 s of 5 s: 14% margin, 0.7 s of slack for a busy machine): a warning
    write_predict(repo, sleep=4.3)
    code, report = run_check(repo, data, "--time-limit", "5")
    assert code == 0, by_status(report, "fail")
    assert "randomly fails near the limit" in by_status(report, "warn")["song song0"]


def test_judge_time_thresholds():
    assert judge_time("s", 10, 100, "V").status == "ok"
    assert judge_time("s", 85, 100, "V").status == "warn"
    assert judge_time("s", 101, 100, "V").status == "fail"


def test_network_download_at_import_fails_offline(repo, songs):
    preamble = 'import urllib.request\nurllib.request.urlopen("http://example.com/weights.pth", timeout=5)\n'
    write_predict(repo, preamble=preamble)
    code, report = run_check(repo, songs)
    assert code == 1
    failures = by_status(report, "fail")
    assert "not created without network" in failures["import"]
    assert "example.com" in by_status(report, "warn")["network access"]
    assert "predict.py:" in by_status(report, "warn")["network access"]


def test_missing_predict_py_and_data(repo, tmp_path):
    (repo / "predict.py").unlink()
    code, report = run_check(repo, write_songs(tmp_path / "d", durations=(1.0,)))
    assert code == 1 and "missing" in by_status(report, "fail")["entry point"]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, report = run_check(repo, empty)
    assert "no test songs" in by_status(report, "fail")["data"]


def test_sdx23_layout_runs_user_config(tmp_path):
    repo = tmp_path / "sdx"
    (repo / "my_submission").mkdir(parents=True)
    (repo / "my_submission" / "user_config.py").write_text(
        "class Tiny:\n"
        "    instruments = ['bass', 'drums', 'other', 'vocals']\n\n"
        "    def separate_music_file(self, mixed_sound_array, sample_rate):\n"
        "        return ({i: mixed_sound_array / 4 for i in self.instruments},\n"
        "                {i: sample_rate for i in self.instruments})\n\n\n"
        "MySeparationModel = Tiny\n")
    sdx = {k: v for k, v in AICROWD.items() if k != "grader_id"} | {"labelnoise": False, "bleeding": False}
    (repo / "aicrowd.json").write_text(json.dumps(sdx))
    data = write_songs(tmp_path / "data", durations=(1.0,), rate=22050)
    code, report = run_check(repo, data, "--format", "sdx23")
    assert code == 0, by_status(report, "fail")
    assert report["time_limit_factor"] == 1.57
    assert report["songs"][0]["limit"] == pytest.approx(1.57)
    assert report["songs"][0]["outputs"]["vocals"]["rate"] == 22050


def test_real_kit_on_one_short_song(tmp_path):
    """The kit's own predict.py (its default predictor) on one generated 1 s song (a few seconds)."""
    data = write_songs(tmp_path / "data", durations=(1.0,))
    code, report = run_check(ROOT, data)
    ok = by_status(report, "ok")
    assert {"import", "setup", "song song0", "outputs song0", "run"} <= ok.keys(), by_status(report, "fail")
    # everything but the repository's static files (aicrowd.json, weights) comes from the run itself
    static = {c["name"] for c in report["checks"] if c["name"].startswith(("aicrowd", "weights", "manifest"))}
    assert set(by_status(report, "fail")) <= static
    assert code == (0 if not by_status(report, "fail") else 1)
