"""The song generator: layout, exact sums, determinism, silences, soundfonts, effects, OOD split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.constants import TARGETS
from tracks import effects, vocals
from tracks.profiles import PROFILES, Profile, get_profile, parse_targets
from tracks.render import FluidRenderer
from tracks.song import render_song
from tracks.soundfonts import available
from tracks.synth import main, render_dataset

SECONDS = 6.0


def _read(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == 44100
    return data


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "set"
    render_dataset(out, train=3, test=1, seconds=SECONDS, seed=3, valid=1, progress=False)
    return out


def _songs(root: Path):
    return sorted(p for split in ("train", "test") for p in (root / split).iterdir())


def test_layout_shapes_and_manifest(small):
    manifest = json.loads((small / "manifest.json").read_text())
    assert len(manifest["songs"]) == 4
    assert manifest["splits"]["valid"]["songs"] == manifest["validation"] == ["train_3000002"]
    assert set(manifest["splits"]["train"]["songs"]).isdisjoint(manifest["validation"])
    for song in _songs(small):
        shapes = {name: _read(song / f"{name}.wav").shape for name in ("mixture", *TARGETS)}
        assert set(shapes.values()) == {(int(SECONDS * 44100), 2)}, (song, shapes)
    for entry in manifest["songs"]:
        assert set(entry["stems"]) == set(TARGETS)
        for stem in entry["stems"].values():
            assert -60 < stem["rms_db"] < -10


def test_mixture_is_exact_sum_and_peaks_below_one(small):
    for song in _songs(small):
        stems = [_read(song / f"{t}.wav") for t in TARGETS]
        mixture = _read(song / "mixture.wav")
        assert np.array_equal(mixture, np.sum(np.stack(stems), axis=0, dtype=np.float32)), song.name
        assert np.array_equal(mixture, ((stems[0] + stems[1]) + stems[2]) + stems[3]), song.name
        assert np.abs(mixture).max() <= 1.0 and max(np.abs(s).max() for s in stems) <= 1.0


def test_int16_files_keep_exact_sum(tmp_path):
    render_dataset(
        tmp_path, train=1, test=0, seconds=2, seed=4, valid=0, train_subtype="int16", progress=False
    )
    song = tmp_path / "train" / "train_4000000"
    assert sf.info(str(song / "bass.wav")).subtype == "PCM_16"
    stems = np.stack([_read(song / f"{t}.wav") for t in TARGETS])
    assert np.array_equal(_read(song / "mixture.wav"), stems.sum(0, dtype=np.float32))


def test_deterministic_bytes_and_song_depends_only_on_seed_and_index(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    render_dataset(a, train=2, test=1, seconds=2, seed=7, progress=False)
    render_dataset(b, train=2, test=1, seconds=2, seed=7, progress=False)
    render_dataset(c, train=1, test=2, seconds=2, seed=7, progress=False)  # other counts, same songs
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 3 * 5 + 2
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    for rel in ("train/train_7000000/mixture.wav", "test/test_7040000/vocals.wav"):
        assert (a / rel).read_bytes() == (c / rel).read_bytes(), rel


def test_different_seeds_give_different_songs(tmp_path):
    one, _ = render_song(11, 2.0, get_profile("default"))
    two, info = render_song(12, 2.0, get_profile("default"))
    assert one.shape == two.shape == (4, 2, 88200)
    for k, target in enumerate(TARGETS):
        assert not np.array_equal(one[k], two[k]), target
    assert info["seed"] == 12


def test_silent_sections_are_silent(small):
    manifest = json.loads((small / "manifest.json").read_text())
    checked = 0
    for entry in manifest["songs"]:
        folder = small / entry["split"] / entry["name"]
        for target, intervals in entry["silences"].items():
            audio = _read(folder / f"{target}.wav")
            for start, end in intervals:
                part = audio[int(round(start * 44100)) : int(round(end * 44100))]
                assert part.size and not part.any(), (entry["name"], target, start, end)
                checked += 1
            assert np.abs(audio).max() > 0, (entry["name"], target)
    assert checked >= 2  # vocal-free intros at least


def test_musdb_reads_the_folder_and_the_validation_split(small):
    musdb = pytest.importorskip("musdb")
    db = musdb.DB(root=str(small), is_wav=True)
    assert len(db.tracks) == 4
    valid = musdb.DB(root=str(small), is_wav=True, subsets="train", split="valid", setup_file="setup.yaml")
    train = musdb.DB(root=str(small), is_wav=True, subsets="train", split="train", setup_file="setup.yaml")
    assert [t.name for t in valid.tracks] == ["train_3000002"]
    assert len(train.tracks) == 2
    track = valid.tracks[0]
    assert track.audio.shape == (int(SECONDS * 44100), 2) and set(track.targets) >= set(TARGETS)


@pytest.mark.parametrize("name", available())
def test_each_soundfont_renders(name):
    import pretty_midi

    renderer = FluidRenderer(name)
    inst = pretty_midi.Instrument(program=33)
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    for k in range(4):
        inst.notes.append(pretty_midi.Note(100, 40 + k, 0.1 * k, 0.1 * k + 0.2))
        drums.notes.append(pretty_midi.Note(100, 36 + 2 * k, 0.1 * k, 0.1 * k + 0.05))
    audio = renderer.render([inst, drums], 22050)
    assert audio.shape == (2, 22050) and audio.dtype == np.float32
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-3
    assert np.array_equal(audio, renderer.render([inst, drums], 22050))  # no state between renders


@pytest.mark.parametrize("family", list(effects.FAMILIES))
def test_each_effect_chain_renders_and_keeps_the_sum_exact(family):
    rng = np.random.default_rng(0)
    noise = (0.05 * rng.standard_normal((2, 44100))).astype(np.float32)
    for role in ("bass", "drums", "other", "vocals"):
        chain = effects.draw_chain(family, np.random.default_rng(1), role)
        out = effects.apply_chain(noise, chain, 44100)
        assert out.shape == noise.shape and np.isfinite(out).all()
        assert json.loads(json.dumps(chain)) == chain
    profile = Profile(
        f"only-{family}", soundfonts=tuple(available()[:1]), effects=(family,), sung_share=0.0, bus=(1.0, 1.0)
    )
    stems, info = render_song(5, 2.0, profile)
    assert info["effects"] == family
    mixture = stems.sum(0, dtype=np.float32)
    assert np.array_equal(mixture, ((stems[0] + stems[1]) + stems[2]) + stems[3])
    assert np.abs(mixture).max() <= 1.0


def test_bus_gain_is_applied_per_stem_linearly():
    rng = np.random.default_rng(0)
    stems = (0.3 * rng.standard_normal((4, 2, 8000))).astype(np.float32)
    gain = effects.bus_gain(
        stems.sum(0), 44100, dict(threshold_db=-20, ratio=4, attack_ms=5, release_ms=50), -1.0
    )
    assert gain.shape == (8000,) and (gain <= 1).all() and gain.min() < 0.9
    assert np.abs((stems * gain).sum(0)).max() <= 10 ** (-1 / 20) + 1e-4


@pytest.mark.skipif("musescore" not in available(), reason="musescore soundfont not installed")
def test_ood_split_shares_no_soundfont_effect_voice_or_seed_with_training(tmp_path):
    ind = render_dataset(tmp_path / "ind", train=2, test=1, seconds=1.5, seed=0, progress=False)
    ood = render_dataset(
        tmp_path / "ood", train=0, test=1, seconds=1.5, seed=0, profile="ood", progress=False
    )
    train, test = ind["splits"]["train"], ood["splits"]["test"]
    for key in ("soundfonts", "soundfont_pool", "effect_families", "effect_pool", "voice_pool"):
        assert set(train[key]).isdisjoint(test[key]), key
    assert set(train["seeds"]).isdisjoint(test["seeds"])
    (lo1, hi1), (lo2, hi2) = train["seed_range"], test["seed_range"]
    assert hi1 <= lo2 or hi2 <= lo1
    for split in ("train", "test"):  # the whole in-distribution profile, any seed block < 900000
        lo, hi = ind["splits"][split]["seed_range"]
        assert hi <= lo2 or hi2 <= lo


def test_profiles_hold_out_the_ood_soundfont_and_effects():
    held = PROFILES["ood"]
    for name in ("default", "basic"):
        prof = PROFILES[name]
        assert set(prof.soundfonts).isdisjoint(held.soundfonts)
        assert set(prof.effects).isdisjoint(held.effects)
        assert set(prof.voices).isdisjoint(held.voices) or not prof.sung_share


def test_other_target_set_renders(tmp_path):
    targets = ["piano=chords:0,1", "violin=melody:40"]
    assert parse_targets(targets) == {"piano": ("chords", (0, 1)), "violin": ("melody", (40,))}
    manifest = render_dataset(tmp_path, train=1, test=0, seconds=2, seed=1, targets=targets, progress=False)
    song = tmp_path / "train" / manifest["songs"][0]["name"]
    assert sorted(p.name for p in song.iterdir()) == ["mixture.wav", "piano.wav", "violin.wav"]
    piano, violin = _read(song / "piano.wav"), _read(song / "violin.wav")
    assert np.array_equal(_read(song / "mixture.wav"), piano + violin)
    assert np.abs(piano).max() > 0 and np.abs(violin).max() > 0
    with pytest.raises(ValueError, match="role"):
        parse_targets(["piano=banjo:0"])


@pytest.mark.skipif(not vocals.available(), reason="espeak-ng not installed")
def test_sung_vocals_follow_the_melody():
    notes = [(0.1, 0.6, 60, 100, 0), (0.7, 1.2, 64, 100, 1), (1.3, 1.9, 67, 100, 2)]
    expr = dict(vibrato_hz=5.0, vibrato_semitones=0.0, portamento_s=0.0)
    audio = vocals.sing(notes, 2 * 44100, 44100, "en-us", "f2", np.random.default_rng(0), expr)
    assert audio.shape == (2, 88200) and np.isfinite(audio).all()
    for start, end, pitch, _, _ in notes:
        seg = audio[0, int((start + 0.15) * 44100) : int((end - 0.1) * 44100)]
        period, _ = vocals.pitch_of(seg, 44100)
        sung = 69 + 12 * np.log2(44100 / period / 440)
        assert abs((sung - pitch + 6) % 12 - 6) < 0.5, (pitch, sung)  # right note, any octave


def test_cli_renders_and_reports_bad_arguments(tmp_path, capsys):
    assert main([str(tmp_path / "cli"), "--train", "1", "--test", "0", "--seconds", "1", "-q"]) == 0
    assert "1 songs" in capsys.readouterr().out
    assert main([str(tmp_path / "bad"), "--train", "1", "--valid", "3", "--seconds", "1", "-q"]) == 2
    assert "--valid 3" in capsys.readouterr().err
