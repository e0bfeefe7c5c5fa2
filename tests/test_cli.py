"""``python predict.py FILE... -o DIR`` and ``python test.py``: flags, outputs, exit codes, and the docs."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_submission_helpers import song_stems, write_song

from core.constants import TARGETS
from submission import cli, registry

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "submission.md"


def load_test_py():
    spec = importlib.util.spec_from_file_location("stemblend_test_py", ROOT / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def track(tmp_path) -> Path:
    """A loud stereo file (peak above 1, as float WAV) named like a user's song."""
    path = tmp_path / "my song.wav"
    sf.write(path, (song_stems(0.3).sum(0) * 3).T, 44100, subtype="FLOAT")
    return path


def stems_in(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.wav"))


def test_default_writes_16_bit_stems_per_track_with_rescale(track, tmp_path):
    assert cli.main([str(track), "-o", str(tmp_path / "out"), "-n", "copy"]) == 0
    folder = tmp_path / "out" / "my song"
    assert stems_in(folder) == sorted(TARGETS)
    info = sf.info(folder / "vocals.wav")
    got = (info.subtype, info.samplerate, info.channels, info.frames)
    assert got == ("PCM_16", 44100, 2, int(0.3 * 44100))
    est, _ = sf.read(folder / "vocals.wav")
    mix, _ = sf.read(track)
    peak = np.abs(mix).max()
    assert peak > 1 and np.abs(est).max() <= 1 / 1.01 + 1e-4  # rescaled, not clipped
    np.testing.assert_allclose(est, mix / (1.01 * peak), atol=1e-4)


@pytest.mark.parametrize("flag, subtype", [("--float32", "FLOAT"), ("--int24", "PCM_24")])
def test_depth_flags(track, tmp_path, flag, subtype):
    assert cli.main([str(track), "-o", str(tmp_path), "-n", "scaled", flag]) == 0
    assert sf.info(tmp_path / "my song" / "bass.wav").subtype == subtype


@pytest.mark.parametrize("mode", ["clamp", "none"])
def test_clip_modes(track, tmp_path, mode):
    assert cli.main([str(track), "-o", str(tmp_path), "-n", "copy", "--float32", "--clip-mode", mode]) == 0
    est, _ = sf.read(tmp_path / "my song" / "drums.wav")
    mix, _ = sf.read(track)
    expected = np.clip(mix, -0.99, 0.99) if mode == "clamp" else mix
    np.testing.assert_allclose(est, expected, atol=1e-6)


def test_two_stems(track, tmp_path):
    assert cli.main([str(track), "-o", str(tmp_path), "-n", "scaled", "--two-stems", "vocals",
                     "--float32", "--clip-mode", "none"]) == 0
    folder = tmp_path / "my song"
    assert stems_in(folder) == ["no_vocals", "vocals"]
    vocals, _ = sf.read(folder / "vocals.wav")
    rest, _ = sf.read(folder / "no_vocals.wav")
    mix, _ = sf.read(track)
    np.testing.assert_allclose(rest, 3 * mix / 4, atol=1e-5)
    np.testing.assert_allclose(vocals + rest, mix, atol=1e-5)


def test_jobs_and_track_names(tmp_path):
    write_song(tmp_path / "songs" / "alpha", seconds=0.2)
    write_song(tmp_path / "songs" / "beta", seconds=0.2, channels=1, rate=22050)
    files = [tmp_path / "songs" / name / "mixture.wav" for name in ("alpha", "beta")]
    assert cli.main([*map(str, files), "-o", str(tmp_path / "out"), "-j", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["alpha", "beta"]
    info = sf.info(tmp_path / "out" / "beta" / "other.wav")
    assert (info.channels, info.samplerate, info.frames) == (1, 22050, int(0.2 * 22050))


def test_oracle_through_the_cli_reads_the_stems_beside_a_mixture(tmp_path):
    write_song(tmp_path / "song", seconds=0.5)
    assert cli.main([str(tmp_path / "song" / "mixture.wav"), "-o", str(tmp_path / "out"), "-n", "oracle-irm",
                     "--float32", "--clip-mode", "none"]) == 0
    assert stems_in(tmp_path / "out" / "song") == sorted(TARGETS)


def test_predictor_options_come_from_the_flags(track, tmp_path, monkeypatch):
    seen = []

    def factory(options):
        seen.append(options)
        return registry._REGISTRY["scaled"].factory(options)

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("options-probe")(factory)
    argv = [str(track), "-o", str(tmp_path), "-n", "options-probe", "--shifts", "3", "--overlap", "0.5",
            "--segment", "7.5"]
    assert cli.main(argv) == 0
    assert seen == [{"shifts": 3, "overlap": 0.5, "segment": 7.5}]


def test_errors_unknown_predictor_bad_file_and_name_clash(track, tmp_path, capsys):
    assert cli.main([str(track), "-o", str(tmp_path), "-n", "nope"]) == 2
    assert "unknown predictor 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"garbage" * 50)
    assert cli.main([str(bad), str(track), "-o", str(tmp_path / "out")]) == 1  # the good file is still done
    assert stems_in(tmp_path / "out" / "my song") == sorted(TARGETS)
    assert str(bad) in capsys.readouterr().err
    other = tmp_path / "x" / "my song.wav"
    other.parent.mkdir()
    other.write_bytes(track.read_bytes())
    assert cli.main([str(track), str(other), "-o", str(tmp_path)]) == 2


def test_ffmpeg_decodes_what_soundfile_cannot(tmp_path):
    if not shutil_which("ffmpeg"):
        pytest.skip("ffmpeg is not installed")
    wav = tmp_path / "clip.wav"
    sf.write(wav, song_stems(0.5).sum(0).T, 44100)
    m4a = tmp_path / "clip.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(wav), "-c:a", "aac", str(m4a)],
                   check=True)
    audio, rate = cli.load_any(m4a)
    assert rate == 44100 and audio.shape[0] == 2 and abs(audio.shape[1] - 22050) < 3000


def shutil_which(name):
    import shutil

    return shutil.which(name)


def test_predict_py_separates_files(track, tmp_path):
    proc = subprocess.run([sys.executable, "predict.py", str(track), "-o", str(tmp_path / "sep")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert stems_in(tmp_path / "sep" / "my song") == sorted(TARGETS)


# -- test.py ----------------------------------------------------------------------------------------
def test_list_predictors_prints_one_name_per_line():
    proc = subprocess.run([sys.executable, "test.py", "--list-predictors"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = proc.stdout.split()
    assert {"copy", "scaled", "oracle-irm", "oracle-wiener"} <= set(names)
    assert proc.stdout.strip().splitlines() == names


def test_test_py_exits_non_zero_when_a_song_fails(tmp_path, monkeypatch, capsys):
    for var in ("PARTIAL_RUN_MUSIC_NAMES", "INFERENCE_PER_MUSIC_TIMEOUT_SECONDS"):
        monkeypatch.delenv(var, raising=False)
    write_song(tmp_path / "test" / "good", seconds=0.2)
    write_song(tmp_path / "test" / "bad", seconds=0.2)
    (tmp_path / "test" / "bad" / "mixture.wav").write_bytes(b"")
    code = load_test_py().main(["--data-dir", str(tmp_path / "test"), "--results-dir", str(tmp_path / "r"),
                                "-n", "copy", "-q", "--no-baselines", "--no-wiener", "--option", "niter=2"])
    assert code == 1
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert list(data["songs"]) == ["good"] and "bad" in data["failed"]
    assert data["options"] == {"niter": "2", "wiener": "False"}
    out = capsys.readouterr().out
    assert "FAILED [" in out and "song 'bad'" in out and "bad/mixture.wav" in out


# -- docs/submission.md describes the same flags as the parsers ----------------------------------
def documented_flags(section: str) -> set[str]:
    """Flags in the Markdown table that follows the heading containing ``section``."""
    text = DOC.read_text()
    start = text.index(section)
    table = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            table.append(line.split("|")[1])
    return {flag for cell in table for flag in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", cell)}


def parser_flags(parser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")}


def test_docs_describe_the_predict_py_flags():
    assert documented_flags("### `python predict.py FILE") == parser_flags(cli.build_parser())


def test_docs_describe_the_test_py_flags():
    assert documented_flags("### `python test.py`") == parser_flags(load_test_py().build_parser())
