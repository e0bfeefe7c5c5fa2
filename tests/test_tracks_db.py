"""The loading API: our folders, MUSDB18-HQ layout, stem files, bad input, the real clips."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.constants import TARGETS
from core.errors import SongError
from tracks import open_tracks

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
RATE = 44100


def _song(folder: Path, frames: int = 4410, rate: int = RATE, seed: int = 0, subtype: str = "FLOAT") -> Path:
    """A song folder with random float stems and their exact sum as the mixture."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    stems = [(0.1 * rng.standard_normal((frames, 2))).astype(np.float32) for _ in TARGETS]
    for name, audio in zip(TARGETS, stems):
        sf.write(str(folder / f"{name}.wav"), audio, rate, subtype=subtype)
    sf.write(str(folder / "mixture.wav"), np.sum(stems, axis=0, dtype=np.float32), rate, subtype=subtype)
    return folder


@pytest.fixture()
def hq(tmp_path) -> Path:
    """A MUSDB18-HQ-style folder (no manifest); one training song carries a musdb validation name."""
    root = tmp_path / "hq"
    _song(root / "train" / "A Song", seed=1)
    _song(root / "train" / "Actions - One Minute Smile", seed=2)  # in musdb's validation list
    _song(root / "test" / "Test Song", seed=3)
    return root


def test_hq_layout_splits_and_float_reading(hq):
    train, valid, test = (open_tracks(hq, s) for s in ("train", "valid", "test"))
    assert [t.name for t in train] == ["A Song"]
    assert [t.name for t in valid] == ["Actions - One Minute Smile"]
    assert [t.name for t in test] == ["Test Song"]
    track = train[0]
    assert (track.rate, track.length, track.targets) == (RATE, 4410, TARGETS)
    mixture, stems = track.load()
    assert mixture.shape == (2, 4410) and stems.shape == (4, 2, 4410) and stems.dtype == np.float32
    ref = sf.read(str(hq / "train" / "A Song" / "vocals.wav"), dtype="float32")[0].T
    assert np.array_equal(stems[3], ref)  # float WAV not quantised
    assert np.array_equal(mixture, stems.sum(0))
    part_mix, part = track.load(start=100, frames=50)
    assert part.shape == (4, 2, 50) and np.array_equal(part, stems[..., 100:150])
    with pytest.raises(ValueError, match="A Song"):
        track.load(start=4400, frames=50)


def test_generated_folder_splits(tmp_path):
    from tracks.synth import render_dataset

    render_dataset(tmp_path, train=3, test=1, seconds=1.0, seed=2, valid=1, progress=False)
    names = {s: [t.name for t in open_tracks(tmp_path, s)] for s in ("train", "valid", "test")}
    assert names == {
        "train": ["train_2000000", "train_2000001"],
        "valid": ["train_2000002"],
        "test": ["test_2040000"],
    }
    track = open_tracks(tmp_path, "valid")[0]
    assert track.info["seed"] == 2000002 and track.length == 44100
    mixture, stems = track.load()
    assert np.array_equal(mixture, stems.sum(0, dtype=np.float32))


def test_missing_stem(hq):
    (hq / "train" / "A Song" / "drums.wav").unlink()
    with pytest.raises(SongError, match=r"song 'A Song': missing stem file\(s\) drums.wav"):
        open_tracks(hq, "train")
    with pytest.warns(UserWarning, match="A Song.*drums.wav"):
        assert open_tracks(hq, "train", on_error="skip") == []


def test_stems_of_different_lengths(hq):
    _song(hq / "train" / "Long", frames=4410)
    sf.write(str(hq / "train" / "Long" / "bass.wav"), np.zeros((4000, 2), np.float32), RATE, subtype="FLOAT")
    with pytest.raises(SongError, match=r"song 'Long': stems have different lengths.*bass.wav: 4000"):
        open_tracks(hq, "train")
    with pytest.warns(UserWarning, match="Long"):
        assert [t.name for t in open_tracks(hq, "train", on_error="skip")] == ["A Song"]


def test_stems_of_different_rates(hq):
    song = hq / "train" / "A Song"
    sf.write(str(song / "other.wav"), np.zeros((4410, 2), np.float32), 22050, subtype="FLOAT")
    with pytest.raises(
        SongError, match=r"song 'A Song': stems have different sample rates.*other.wav: 22050"
    ):
        open_tracks(hq, "train")


def test_unreadable_file(hq):
    (hq / "train" / "A Song" / "vocals.wav").write_bytes(b"this is not audio at all")
    with pytest.raises(SongError, match=r"song 'A Song': .*vocals.wav: cannot be read as audio"):
        open_tracks(hq, "train")
    with pytest.warns(UserWarning, match="vocals.wav"):
        assert open_tracks(hq, "train", on_error="skip") == []


def test_non_finite_samples_name_song_and_file(hq):
    song = hq / "train" / "A Song"
    bad = np.zeros((4410, 2), np.float32)
    bad[10, 0] = np.nan
    sf.write(str(song / "bass.wav"), bad, RATE, subtype="FLOAT")
    track = open_tracks(hq, "train")[0]
    with pytest.raises(SongError, match=r"song 'A Song': .*bass.wav: contains 1 NaN"):
        track.load()


def test_bad_arguments(hq, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_tracks(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split"):
        open_tracks(hq, "validation")
    with pytest.raises(ValueError, match="on_error"):
        open_tracks(hq, on_error="ignore")


def test_flat_folder_and_mixture_rebuilt_from_stems(tmp_path):
    song = _song(tmp_path / "flat" / "Only", seed=5)
    (song / "mixture.wav").unlink()
    for split in ("train", "test"):
        (track,) = open_tracks(tmp_path / "flat", split)
    mixture, stems = track.load()
    assert np.array_equal(mixture, stems.sum(0, dtype=np.float32))


def _stem_folder(tmp_path: Path, source: Path) -> Path:
    root = tmp_path / "stems"
    (root / "test").mkdir(parents=True)
    shutil.copy(source, root / "test" / source.name)
    return root


def test_stempeg_example_clip_loads_as_four_targets_and_a_mixture(tmp_path):
    stempeg = pytest.importorskip("stempeg")
    root = _stem_folder(tmp_path, Path(stempeg.example_stem_path()))
    (track,) = open_tracks(root, "test")
    assert track.name == "The Easton Ellises - Falcon 69" and track.rate == RATE
    mixture, stems = track.load()
    assert stems.shape == (4, 2, track.length) and mixture.shape == (2, track.length)
    assert all(np.abs(s).max() > 0 for s in stems)
    # its supplied mixture is a separate master: "auto" rebuilds it as the sum, "file" keeps stream 0
    assert np.array_equal(mixture, stems.sum(0, dtype=np.float32))
    (raw,) = open_tracks(root, "test", mixture="file")
    file_mix, _ = raw.load(0, RATE)
    assert not np.allclose(file_mix, stems[..., :RATE].sum(0), atol=1e-3)
    chunk_mix, chunk = track.load(start=RATE, frames=RATE // 2)
    assert chunk.shape == (4, 2, RATE // 2)
    assert np.allclose(chunk, stems[..., RATE : RATE + RATE // 2], atol=1e-3)


def test_bad_stem_file(tmp_path):
    root = tmp_path / "stems" / "test"
    root.mkdir(parents=True)
    (root / "Broken.stem.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(SongError, match=r"song 'Broken': .*Broken.stem.mp4"):
        open_tracks(root.parent, "test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert open_tracks(root.parent, "test", on_error="skip") == []
    assert any("Broken" in str(w.message) for w in caught)


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real (real MUSDB clips) not present")
def test_real_musdb_clips():
    tracks = open_tracks(REAL, "test")
    assert len(tracks) == 2
    for track in tracks:
        mixture, stems = track.load()
        assert stems.shape[0] == 4 and mixture.shape == stems.shape[1:]
        assert track.length > 5 * RATE
        assert all(np.abs(s).max() > 0 for s in stems)
        residual = mixture - stems.sum(0)
        snr = 10 * np.log10(np.sum(mixture**2) / max(np.sum(residual**2), 1e-12))
        assert snr > 20, (track.name, snr)  # the mixture is (close to) the sum of the stems
    easton = next(t for t in tracks if t.name.startswith("The Easton Ellises"))
    mixture, stems = easton.load()
    assert np.array_equal(mixture, stems.sum(0, dtype=np.float32))
