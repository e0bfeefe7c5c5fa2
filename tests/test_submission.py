"""The submission package: scorer, baselines, the 2023 adapter, the registry, the local grader emulation.

Songs are tiny numpy-made folders (see test_submission_helpers); generated songs are in
test_submission_generated.py.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_submission_helpers import hand_sdr, one_torch_thread, song_stems, write_song  # noqa: F401

from core.constants import TARGETS
from submission import registry, scoring
from submission.base import SeparatorPredictor
from submission.baselines import CopyPredictor, ScaledMixturePredictor
from submission.runner import Settings, list_songs, run_songs, song_dir


def settings_for(tmp_path: Path, **kw) -> Settings:
    return Settings(tmp_path / "test", tmp_path / "results", **kw)


# -- scoring ------------------------------------------------------------------------------------
def test_global_sdr_against_hand_computed_values(tmp_path):
    ref_dir, est_dir = tmp_path / "ref", tmp_path / "est"
    ref_dir.mkdir()
    est_dir.mkdir()
    # (nb_timesteps, nb_channels) = (2, 2): sum(ref^2) = 1 + 4 + 9 + 16 = 30
    ref = np.array([[1, 2], [3, 4]], dtype=np.float32) / 8
    cases = {
        "bass": (ref, np.array([[1, 2], [3, 3]], dtype=np.float32) / 8),  # error^2 = 1/64
        "drums": (ref, np.zeros_like(ref)),  # error = ref: 0 dB
        "other": (ref, ref / 2),  # error = ref/2: 10 log10 4
        "vocals": (np.zeros_like(ref), np.zeros_like(ref)),  # silence, 1e-7 / 1e-7: 0 dB
    }
    for target, (r, e) in cases.items():
        sf.write(ref_dir / f"{target}.wav", r, 44100, subtype="FLOAT")
        sf.write(est_dir / f"{target}.wav", e, 44100, subtype="FLOAT")
    scores = scoring.score_song(ref_dir, est_dir)
    assert scores["bass"] == pytest.approx(10 * math.log10((30 / 64 + 1e-7) / (1 / 64 + 1e-7)), abs=1e-4)
    assert scores["bass"] == pytest.approx(14.7712, abs=1e-3)
    assert scores["drums"] == pytest.approx(0.0, abs=1e-6)
    assert scores["other"] == pytest.approx(6.0206, abs=1e-4)
    assert scores["vocals"] == pytest.approx(0.0, abs=1e-9)
    summary = scoring.summarize({"a": scores, "b": {t: 1.0 for t in TARGETS}})
    song_a = (14.7712 + 0 + 6.0206 + 0) / 4
    assert summary["mean"] == pytest.approx((song_a + 1.0) / 2, abs=1e-3)
    assert summary["instruments"]["other"] == pytest.approx((6.0206 + 1) / 2, abs=1e-4)
    assert set(summary) >= {"songs", "instruments", "mean"}


def test_scoring_refuses_shape_mismatch(tmp_path):
    write_song(tmp_path / "ref" / "s", seconds=0.1)
    write_song(tmp_path / "est" / "s", seconds=0.2)
    with pytest.raises(ValueError, match="shape"):
        scoring.score_song(tmp_path / "ref" / "s", tmp_path / "est" / "s")


def test_museval_median_over_frames_then_songs(tmp_path):
    # museval solves a (sources x channels x 512)^2 system: mono and two targets keep this test fast
    targets = ("bass", "vocals")
    stems = write_song(tmp_path / "ref" / "s", seconds=2.0, channels=1)
    est = tmp_path / "est" / "s"
    est.mkdir(parents=True)
    noise = np.random.default_rng(1).standard_normal(stems.shape[1:]).astype(np.float32) * 0.01
    for target, stem in zip(TARGETS, stems):
        sf.write(est / f"{target}.wav", (stem + noise).T, 44100, subtype="FLOAT")
    bss = scoring.museval_song(tmp_path / "ref" / "s", est, targets=targets)
    assert set(bss) == set(targets) and all(np.isfinite(v) and v > 5 for v in bss.values())
    songs = {"s": bss, "t": {t: 0.0 for t in targets}, "u": {t: 100.0 for t in targets}}
    summary = scoring.summarize(songs, targets=targets, reduce="median")
    assert summary["instruments"]["bass"] == pytest.approx(bss["bass"])  # median of (0, x, 100)
    assert summary["mean"] == pytest.approx((bss["bass"] + bss["vocals"]) / 2)


# -- baselines ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["copy", "scaled"])
def test_baselines_score_as_computed_by_hand(tmp_path, name):
    stems = write_song(tmp_path / "test" / "song", seconds=1.0)
    mixture = stems.sum(0)
    report = run_songs(registry.create(name), settings_for(tmp_path), progress=False)
    assert [s.status for s in report.songs] == ["ok"]
    scores = scoring.score_song(tmp_path / "test" / "song", tmp_path / "results" / "song")
    factor = 1.0 if name == "copy" else 0.25
    for target, stem in zip(TARGETS, stems):
        assert scores[target] == pytest.approx(hand_sdr(stem, factor * mixture), abs=1e-3)


def test_copy_and_scaled_write_the_mixture_and_a_quarter(tmp_path):
    stems = song_stems(0.2)
    mixture = stems.sum(0)
    out = CopyPredictor().separate_audio(mixture, 44100)
    assert all(np.array_equal(out[t], mixture) for t in TARGETS)
    out = ScaledMixturePredictor().separate_audio(mixture, 44100)
    assert all(np.allclose(out[t], mixture / 4) for t in TARGETS)


# -- the 2023 adapter -----------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.usefixtures("one_torch_thread")
def test_separate_music_file_shapes_and_rates(rate, channels):
    audio = song_stems(0.5, rate=rate, channels=channels).sum(0).T  # (n_samples, n_channels)
    predictor = ScaledMixturePredictor()
    arrays, rates = predictor.separate_music_file(audio, rate)
    assert list(arrays) == list(predictor.instruments) == list(TARGETS)
    assert rates == {t: rate for t in TARGETS}
    for est in arrays.values():
        assert est.shape == audio.shape
        assert hand_sdr(audio / 4, est) > 30
    arrays, _ = predictor.separate_music_file(audio[:, 0], rate)  # 1-D mono stays 1-D
    assert arrays["vocals"].shape == (audio.shape[0],)


def test_separate_music_file_rejects_bad_arrays():
    predictor = ScaledMixturePredictor()
    with pytest.raises(ValueError, match="NaN or Inf"):
        predictor.separate_music_file(np.full((100, 2), np.nan), 44100)
    with pytest.raises(ValueError, match="shape"):
        predictor.separate_music_file(np.zeros((0, 2)), 44100)


def test_prediction_setup_runs_once_whoever_calls_it():
    class Counting(ScaledMixturePredictor):
        calls = 0

        def prediction_setup(self):
            type(self).calls += 1

    predictor = Counting()
    predictor.prediction_setup()
    predictor.separate_music_file(np.zeros((100, 2), np.float32), 44100)
    predictor.prediction_setup()
    assert Counting.calls == 1


def test_separate_validates_the_predictor_output():
    class Broken(SeparatorPredictor):
        def separate(self, mixture):
            return {"bass": mixture, "drums": mixture, "other": mixture * np.nan, "vocals": mixture}

    with pytest.raises(ValueError, match="other estimate contains NaN"):
        Broken().separate_audio(np.zeros((2, 100), np.float32), 44100)

    class Missing(SeparatorPredictor):
        def separate(self, mixture):
            return {"bass": mixture}

    with pytest.raises(ValueError, match="no estimate for"):
        Missing().separate_audio(np.zeros((2, 100), np.float32), 44100)


# -- registry -----------------------------------------------------------------------------------
def test_registry_names_and_create():
    assert {"copy", "scaled", "oracle-irm", "oracle-wiener"} <= set(registry.names())
    predictor = registry.create("scaled", subtype="PCM_16", wiener=False)
    assert isinstance(predictor, ScaledMixturePredictor)
    assert predictor.name == "scaled" and predictor.subtype == "PCM_16"
    with pytest.raises(registry.UnknownPredictorError, match="unknown predictor 'nope'.*copy"):
        registry.create("nope")


def test_registry_refuses_a_name_taken_by_another_module():
    def factory(options):
        return None

    factory.__module__ = "somebody.else"
    with pytest.raises(ValueError, match="already registered"):
        registry.register("copy")(factory)


def test_registry_loads_plugins_lazily_and_survives_a_broken_one(tmp_path, monkeypatch):
    (tmp_path / "sb_fake_plugin.py").write_text(
        "from submission.registry import register\n"
        "from submission.baselines import CopyPredictor\n"
        "@register('fake-member', help='a plug-in predictor')\n"
        "def _f(options):\n    return CopyPredictor(**options)\n")
    (tmp_path / "sb_broken_plugin.py").write_text("raise RuntimeError('weights missing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "PLUGIN_MODULES", ("sb_broken_plugin", "sb_fake_plugin", "sb_absent"))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_LOADED", set(registry._LOADED))
    monkeypatch.setattr(registry, "PLUGIN_ERRORS", {})
    assert "fake-member" in registry.names()
    assert "weights missing" in registry.PLUGIN_ERRORS["sb_broken_plugin"]
    assert "sb_absent" not in registry.PLUGIN_ERRORS
    assert registry.create("fake-member").name == "fake-member"


# -- the grader emulation: settings ---------------------------------------------------------------
def test_runner_settings_honour_each_environment_variable(tmp_path, monkeypatch):
    for var in ("TEST_DATASET_PATH", "RESULTS_DATASET_PATH", "INFERENCE_SETUP_TIMEOUT_SECONDS",
                "INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "PARTIAL_RUN_MUSIC_NAMES"):
        monkeypatch.delenv(var, raising=False)
    default = Settings.from_env(cwd=tmp_path)
    assert default.test_dir == tmp_path / "data" / "test"
    assert default.results_dir == tmp_path / "data" / "results"
    assert (default.setup_timeout, default.song_timeout, default.partial) == (900, 240, None)
    monkeypatch.setenv("TEST_DATASET_PATH", str(tmp_path / "in"))
    monkeypatch.setenv("RESULTS_DATASET_PATH", str(tmp_path / "out"))
    monkeypatch.setenv("INFERENCE_SETUP_TIMEOUT_SECONDS", "12")
    monkeypatch.setenv("INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "7")
    monkeypatch.setenv("PARTIAL_RUN_MUSIC_NAMES", "b, c")
    s = Settings.from_env(cwd=tmp_path)
    assert (s.test_dir, s.results_dir) == (tmp_path / "in", tmp_path / "out")
    assert (s.setup_timeout, s.song_timeout, s.partial) == (12, 7, ["b", "c"])
    for name in "abc":
        write_song(tmp_path / "in" / name, seconds=0.05)
    report = run_songs(CopyPredictor(), s, progress=False)
    assert [r.name for r in report.songs] == ["b", "c"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b", "c"]


class Sleepy(CopyPredictor):
    """Sleeps past any short limit on songs whose name starts with 'slow'."""

    def prediction(self, mixture_file_path, *args, **kwargs):
        if Path(mixture_file_path).parent.name.startswith("slow"):
            time.sleep(30)
        return super().prediction(mixture_file_path, *args, **kwargs)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_song_past_the_time_limit_is_stopped_and_the_next_still_runs(tmp_path, jobs):
    for name in ("a_ok", "slow_b", "c_ok"):
        write_song(tmp_path / "test" / name, seconds=0.05)
    start = time.perf_counter()
    report = run_songs(Sleepy(), settings_for(tmp_path, song_timeout=1), jobs=jobs, progress=False)
    assert time.perf_counter() - start < 15
    status = {r.name: r for r in report.songs}
    assert status["a_ok"].ok and status["c_ok"].ok
    assert status["slow_b"].status == "failed"
    assert "song 'slow_b'" in status["slow_b"].error and "time limit" in status["slow_b"].error
    assert (tmp_path / "results" / "c_ok" / "vocals.wav").is_file()


def test_setup_past_its_time_limit_fails_every_song(tmp_path):
    class SlowSetup(CopyPredictor):
        def prediction_setup(self):
            time.sleep(30)

    write_song(tmp_path / "test" / "a", seconds=0.05)
    report = run_songs(SlowSetup(), settings_for(tmp_path, setup_timeout=0.5), progress=False)
    assert "prediction_setup" in report.setup_error and "time limit" in report.setup_error
    assert [r.status for r in report.songs] == ["failed"]


# -- the grader emulation: bad input ------------------------------------------------------------
BAD_SONGS = ["good", "missing_mixture", "unreadable", "corrupt", "empty", "zero_length", "nan", "inf",
             "mono", "rate48k"]


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    """One run over a test set holding every bad-input case beside a good song."""
    root = tmp_path_factory.mktemp("bad")
    test = root / "test"
    for name in BAD_SONGS:
        write_song(test / name, seconds=0.3)
    (test / "missing_mixture" / "mixture.wav").unlink()
    (test / "unreadable" / "mixture.wav").write_bytes(b"this is not a wav file " * 20)
    raw = (test / "corrupt" / "mixture.wav").read_bytes()
    (test / "corrupt" / "mixture.wav").write_bytes(raw[:30])  # header cut before the data chunk
    (test / "empty" / "mixture.wav").write_bytes(b"")
    sf.write(test / "zero_length" / "mixture.wav", np.zeros((0, 2), np.float32), 44100)
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        data, rate = sf.read(test / name / "mixture.wav", dtype="float32")
        data[100, 1] = value
        sf.write(test / name / "mixture.wav", data, rate, subtype="FLOAT")
    write_song(test / "mono", seconds=0.3, channels=1)
    write_song(test / "rate48k", seconds=0.3, rate=48000)
    settings = Settings(test, root / "results")
    report = run_songs(ScaledMixturePredictor(), settings, progress=False)
    return settings, {r.name: r for r in report.songs}


def test_one_failing_song_does_not_stop_the_others(bad_run):
    _, results = bad_run
    assert set(results) == set(BAD_SONGS)
    assert {n for n, r in results.items() if r.ok} == {"good", "mono", "rate48k"}


@pytest.mark.parametrize("song, problem", [
    ("missing_mixture", "missing mixture.wav"),
    ("unreadable", "cannot be read as audio"),
    ("corrupt", "cannot be read as audio"),
    ("empty", "cannot be read as audio"),
    ("zero_length", "zero length"),
    ("nan", "NaN or Inf"),
    ("inf", "NaN or Inf"),
])
def test_bad_input_is_reported_naming_song_and_file(bad_run, song, problem):
    settings, results = bad_run
    error = results[song].error
    assert results[song].status == "failed"
    assert f"song '{song}'" in error and problem in error
    assert str(settings.test_dir / song / "mixture.wav") in error


@pytest.mark.parametrize("song, channels, rate", [("mono", 1, 44100), ("rate48k", 2, 48000)])
def test_mono_and_other_rates_are_written_back_as_given(bad_run, song, channels, rate):
    settings, _ = bad_run
    mixture, mix_rate = sf.read(settings.test_dir / song / "mixture.wav", dtype="float32", always_2d=True)
    assert mix_rate == rate
    for target in TARGETS:
        path = settings.results_dir / song / f"{target}.wav"
        est, est_rate = sf.read(path, dtype="float32", always_2d=True)
        assert est_rate == rate and est.shape == mixture.shape == (int(0.3 * rate), channels)
        assert hand_sdr(mixture / 4, est) > 30  # 48 kHz goes through 44.1 kHz and back


def test_song_names_leaving_the_results_folder_are_refused(tmp_path):
    write_song(tmp_path / "test" / "fine", seconds=0.05)
    write_song(tmp_path / "elsewhere", seconds=0.05)
    before = (tmp_path / "elsewhere" / "vocals.wav").stat().st_mtime_ns
    outside = tmp_path / "outside"
    outside.mkdir()
    write_song(tmp_path / "test" / "linked", seconds=0.05)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "linked").symlink_to(outside, target_is_directory=True)
    songs = ["../elsewhere", "linked", "fine", ".."]
    report = run_songs(CopyPredictor(), settings_for(tmp_path), songs=songs, progress=False)
    status = {r.name: r for r in report.songs}
    assert status["fine"].ok
    for name in ("../elsewhere", "linked", ".."):
        assert status[name].status == "failed" and f"song '{name}'" in status[name].error
    assert not list(outside.iterdir())
    assert (tmp_path / "elsewhere" / "vocals.wav").stat().st_mtime_ns == before
    assert not (tmp_path / "elsewhere" / ".stemblend.json").exists()
    with pytest.raises(ValueError, match="leave"):
        song_dir(tmp_path, "a/../../b")


def test_writes_are_atomic_even_when_stopped_mid_write(tmp_path, monkeypatch):
    import core.audio

    real_write = sf.SoundFile.write

    def slow_write(self, data):
        real_write(self, data[: len(data) // 2])  # half a file on disk...
        time.sleep(30)  # ...when the time limit strikes

    write_song(tmp_path / "test" / "song", seconds=0.2)
    monkeypatch.setattr(core.audio.sf.SoundFile, "write", slow_write)
    report = run_songs(CopyPredictor(), settings_for(tmp_path, song_timeout=0.5), progress=False)
    assert report.songs[0].status == "failed" and "time limit" in report.songs[0].error
    assert [p.name for p in (tmp_path / "results" / "song").iterdir()] == []


def test_rerun_skips_complete_songs_unless_forced(tmp_path):
    for name in ("a", "b"):
        write_song(tmp_path / "test" / name, seconds=0.05)
    settings = settings_for(tmp_path)
    assert [r.status for r in run_songs(CopyPredictor(), settings, progress=False).songs] == ["ok", "ok"]
    stem = tmp_path / "results" / "a" / "bass.wav"
    before = stem.stat().st_mtime_ns
    (tmp_path / "results" / "b" / "drums.wav").unlink()  # b is incomplete now
    report = run_songs(CopyPredictor(), settings, progress=False)
    assert [r.status for r in report.songs] == ["skipped", "ok"]
    assert stem.stat().st_mtime_ns == before
    assert [r.status for r in run_songs(CopyPredictor(), settings, force=True, progress=False).songs] == \
        ["ok", "ok"]
    # another predictor (or other options) never reuses these outputs
    report = run_songs(registry.create("scaled"), settings, progress=False)
    assert [r.status for r in report.songs] == ["ok", "ok"]
    marker = json.loads((tmp_path / "results" / "a" / ".stemblend.json").read_text())
    assert marker["predictor"] == "scaled"
    retrained = registry.create("scaled")
    retrained.fingerprint = lambda: "sha256 of new weights"  # e.g. a member retrained
    assert [r.status for r in run_songs(retrained, settings, progress=False).songs] == ["ok", "ok"]
    assert [r.status for r in run_songs(retrained, settings, progress=False).songs] == ["skipped", "skipped"]


def test_parallel_songs_match_sequential_songs(tmp_path):
    for i in range(3):
        write_song(tmp_path / "test" / f"s{i}", seconds=0.1, seed=i)
    report = run_songs(registry.create("scaled"), settings_for(tmp_path), jobs=2, progress=False)
    assert [r.name for r in report.songs] == ["s0", "s1", "s2"] and all(r.ok for r in report.songs)
    for i in range(3):
        mix, _ = sf.read(tmp_path / "test" / f"s{i}" / "mixture.wav", dtype="float32")
        est, _ = sf.read(tmp_path / "results" / f"s{i}" / "other.wav", dtype="float32")
        np.testing.assert_allclose(est, mix / 4, atol=1e-7)


def test_list_songs_sorted_and_partial(tmp_path):
    for name in ("b", "a", ".hidden"):
        (tmp_path / name).mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert list_songs(tmp_path) == ["a", "b"]
    assert list_songs(tmp_path, ["b", "ghost"]) == ["b", "ghost"]
    with pytest.raises(FileNotFoundError):
        list_songs(tmp_path / "nope")


# -- the oracles on numpy songs (generated songs: test_submission_generated.py) --------------------
@pytest.mark.usefixtures("one_torch_thread")
def test_oracles_separate_a_numpy_song(tmp_path):
    stems = write_song(tmp_path / "song", seconds=1.0)
    for name in ("oracle-irm", "oracle-wiener"):
        estimates, rate = registry.create(name).separate_file(tmp_path / "song" / "mixture.wav")
        assert rate == 44100
        sdrs = [hand_sdr(stems[j], estimates[t]) for j, t in enumerate(TARGETS)]
        assert np.mean(sdrs) > 10, (name, sdrs)


def test_oracles_need_the_reference_stems():
    with pytest.raises(ValueError, match="reference stems"):
        registry.create("oracle-irm").separate_music_file(np.zeros((4096, 2), np.float32), 44100)


def test_no_write_outside_the_declared_layout(tmp_path):
    write_song(tmp_path / "test" / "song", seconds=0.05)
    run_songs(CopyPredictor(), settings_for(tmp_path), progress=False)
    files = sorted(os.listdir(tmp_path / "results" / "song"))
    assert files == [".stemblend.json", "bass.wav", "drums.wav", "other.wav", "vocals.wav"]


# -- validation report: baselines beside the predictor, cached -------------------------------------
@pytest.mark.usefixtures("one_torch_thread")
def test_baselines_beside_the_report_are_computed_once(tmp_path, monkeypatch, capsys):
    from submission.datasets import Dataset
    from submission.validate import validate

    stems = write_song(tmp_path / "test" / "a", seconds=0.5)
    calls = []
    real = scoring.score_in_memory

    def counting(predictor, test_dir, songs, progress=True):
        calls.append(predictor.name)
        return real(predictor, test_dir, songs, progress)

    monkeypatch.setattr(scoring, "score_in_memory", counting)

    def run():
        return validate("copy", {}, [Dataset("t", tmp_path / "test")], settings_for(tmp_path),
                        cache_root=tmp_path / "cache", baselines=("scaled", "oracle-irm"), progress=False)

    results = run()[0].results
    assert calls == ["scaled", "oracle-irm"]
    assert set(results["baselines"]) == {"scaled", "oracle-irm"}
    mixture = stems.sum(0)
    for j, target in enumerate(TARGETS):
        expected = hand_sdr(stems[j], mixture / 4)
        assert results["baselines"]["scaled"]["instruments"][target] == pytest.approx(expected, abs=1e-3)
        assert results["instruments"][target] == pytest.approx(hand_sdr(stems[j], mixture), abs=1e-3)
    assert results["baselines"]["oracle-irm"]["mean"] > results["baselines"]["scaled"]["mean"] + 5
    assert "scaled (mixture/4)" in capsys.readouterr().out
    assert run()[0].results["skipped"] == ["a"] and calls == ["scaled", "oracle-irm"]  # all reused
    assert (tmp_path / "results" / "results.png").is_file()


def test_aicrowd_json_has_the_2021_keys_and_gpu():
    data = json.loads((Path(__file__).resolve().parents[1] / "aicrowd.json").read_text())
    assert data["challenge_id"] and data["grader_id"] == "evaluations-api-music-demixing"
    assert isinstance(data["authors"], list) and data["authors"]
    assert isinstance(data["description"], str)
    assert isinstance(data["external_dataset_used"], bool) and isinstance(data["gpu"], bool)
