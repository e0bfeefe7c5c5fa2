"""augment.noise_stems: exact sums, no clipping, hiding, determinism, errors, silence, the CLI."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from augment import noise_metrics, noise_stems, noise_strategies
from core.audio import read_audio, write_audio

ROOT = Path(__file__).resolve().parents[1]
RATE = 8000


def music_like(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """``(2, T)`` tones plus decaying noise bursts, peak 1.0, RMS about -14 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    tones = sum(np.sin(2 * np.pi * f * t + p) for f, p in ((110, 0.0), (220, 1.0), (330, 2.0)))
    bursts = rng.standard_normal(t.size) * np.exp(-20 * (t % 0.25))
    mix = np.stack([tones + 2 * bursts, 0.8 * tones + 2.5 * bursts])
    return (mix / np.abs(mix).max()).astype(np.float32)


def square(frames: int = 4000) -> np.ndarray:
    """``(1, T)`` square wave at exactly +-1.0."""
    return np.where((np.arange(frames) // 20) % 2 == 0, 1.0, -1.0).astype(np.float32)[None]


def clipped_noise(frames: int = 4000) -> np.ndarray:
    """``(2, T)`` Gaussian noise at 3x full scale clipped to +-1.0."""
    return np.clip(3 * np.random.default_rng(2).standard_normal((2, frames)), -1, 1).astype(np.float32)


def sums_in_every_order(stems: np.ndarray) -> list[np.ndarray]:
    """The float32 sums a reader may compute: np.sum, left to right, right to left, shuffled, float64."""
    forward = stems[0].copy()
    for stem in stems[1:]:
        forward = forward + stem
    backward = stems[-1].copy()
    for stem in stems[-2::-1]:
        backward = backward + stem
    order = np.random.default_rng(0).permutation(len(stems))
    return [np.sum(stems, axis=0, dtype=np.float32), forward, backward,
            np.sum(stems[order], axis=0, dtype=np.float32),
            np.sum(stems.astype(np.float64), axis=0).astype(np.float32)]


# --- exact sum ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 8])
def test_sum_is_exact_in_any_order_for_any_float32_input(n):
    x = np.random.default_rng(n).uniform(-1, 1, (2, 3000)).astype(np.float32)
    x[0, :3] = [1.0, -1.0, 1e-9]  # full scale and a value far below the grid
    stems = noise_stems.split(x, n, seed=1, block=1100)  # three blocks
    q = noise_stems.grid_exponent(n, 1.0)
    target = noise_stems.quantize(x, q).astype(np.float32)
    for total in sums_in_every_order(stems):
        assert total.dtype == np.float32
        assert np.array_equal(total, target)
    assert np.max(np.abs(target.astype(np.float64) - x)) <= 2.0 ** -(q + 1)
    assert stems.dtype == np.float32 and stems.shape == (n, 2, 3000)


@pytest.mark.parametrize(("n", "bits"), [(2, 16), (3, 16), (8, 16), (3, 24), (4, 24)])
def test_pcm_input_comes_back_bit_exactly(n, bits):
    scale = 2.0 ** (bits - 1)
    x = (np.round(music_like(0.5) * (scale - 1)) / scale).astype(np.float32)
    stems = noise_stems.split(x, n, seed=3)
    for total in sums_in_every_order(stems):
        assert np.array_equal(total, x)


def test_grid_exponent_keeps_partial_sums_exact():
    assert [noise_stems.grid_exponent(n) for n in (2, 3, 4, 5, 8, 9, 16, 1024)] == [24, 23, 23, 22, 22, 21,
                                                                                     21, 15]
    assert noise_stems.grid_exponent(2, 1.5) == 23  # above full scale the total itself needs room


# --- no clipping -------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", noise_strategies.names())
@pytest.mark.parametrize("make", [square, clipped_noise])
def test_no_stem_clips_on_full_scale_input(strategy, make):
    x = make()
    for n in (2, 3, 8):
        stems = noise_stems.split(x, n, seed=0, strategy=strategy)
        assert np.max(np.abs(stems)) <= 1.0
        target = noise_stems.quantize(x, noise_stems.grid_exponent(n)).astype(np.float32)
        assert np.array_equal(np.sum(stems, axis=0, dtype=np.float32), target)


def test_input_above_full_scale_is_split_within_bounds_when_possible():
    x = 1.7 * clipped_noise(1000)
    stems = noise_stems.split(x, 2, seed=0)
    assert np.max(np.abs(stems)) <= 1.0
    assert np.max(np.abs(np.sum(stems, axis=0, dtype=np.float32) - x)) <= 2.0**-24


# --- hiding ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 8])
def test_correlation_is_within_twice_the_lower_bound(n):
    """Any split has max corr >= the bound; the default must stay within 2x it.

    Justification of 2x: every symmetric split keeps the mean x/N in each stem, so for a quiet
    input corr ~= rms(x) / (N * stem_sd). The bound is reached only with stems at +-1 (sd 1, the
    ``vertex`` law, which reveals x); a smooth law close to uniform on [-1, 1] has sd ~ 1/sqrt(3),
    i.e. corr ~= 1.73x the bound. 2x leaves room for that and nothing more. One stem's estimate
    has a sampling sd of about 1/sqrt(samples) (the noise is white), allowed 4x for the max.
    """
    x = music_like(2.0)
    slack = 4 / np.sqrt(x.size)
    bound = noise_metrics.correlation_lower_bound(x, n)
    corr = [noise_metrics.correlation(s, x) for s in noise_stems.split(x, n, seed=4)]
    assert np.mean(corr) >= bound - slack
    assert np.mean(corr) <= 2 * bound
    assert max(corr) <= 2 * bound + slack


def test_vertex_law_attains_the_bound_so_it_is_tight():
    x = music_like()
    for n in (2, 3):
        corr = [noise_metrics.correlation(s, x) for s in noise_stems.split(x, n, seed=5, strategy="vertex")]
        assert max(corr) == pytest.approx(noise_metrics.correlation_lower_bound(x, n), abs=0.01)


def test_default_hides_better_than_headroom_scaled_gaussian():
    x = music_like()
    default = noise_metrics.stem_report(x, noise_stems.split(x, 3, seed=6))
    gauss = noise_metrics.stem_report(x, noise_stems.split(x, 3, seed=6, strategy="gauss"))
    for key in ("corr", "mi_bits"):
        assert max(r[key] for r in default) < min(r[key] for r in gauss)
    assert min(r["flatness"] for r in default) > 0.9


def test_metrics_tell_signal_from_noise():
    x = music_like()
    noise = np.random.default_rng(9).uniform(-1, 1, x.shape)
    sine = np.sin(2 * np.pi * 440 * np.arange(x.shape[-1]) / RATE)[None]
    assert noise_metrics.correlation(x, x) == pytest.approx(1.0)
    assert noise_metrics.spectral_similarity(x, x) == pytest.approx(1.0)
    assert abs(noise_metrics.spectral_similarity(noise, x)) < 0.05
    assert noise_metrics.mutual_information(x, x) == pytest.approx(np.log2(noise_metrics.MI_BINS), abs=0.05)
    assert noise_metrics.mutual_information(noise, x) < 0.01
    assert noise_metrics.spectral_flatness(noise) > 0.9
    assert noise_metrics.spectral_flatness(sine) < 0.05


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_same_stems_other_seed_other_stems():
    x = music_like(0.25)
    a = noise_stems.split(x, 3, seed=11)
    assert np.array_equal(a, noise_stems.split(x, 3, seed=11))
    assert not np.array_equal(a, noise_stems.split(x, 3, seed=12))


# --- files, errors, silence --------------------------------------------------------------------


def test_cli_writes_float32_stems_that_sum_to_the_input(tmp_path):
    src = write_audio(tmp_path / "in.wav", music_like(0.5), RATE, subtype="PCM_16")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "augment.noise_stems", str(src), str(out), "3", "--seed", "5"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    x, _ = read_audio(src)
    stems = []
    for k in (1, 2, 3):
        info = sf.info(str(out / f"noise_{k}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (RATE, 2, "FLOAT")
        stems.append(read_audio(out / f"noise_{k}.wav")[0])
    assert np.array_equal(np.sum(stems, axis=0, dtype=np.float32), x)
    assert "bit-exact" in proc.stdout
    for k in (1, 2, 3):
        assert f"noise_{k}.wav" in proc.stdout
    for column in ("corr", "MI bits", "flatness", "lower bound"):
        assert column in proc.stdout


def test_mono_input_gives_mono_stems_and_same_seed_same_files(tmp_path):
    src = write_audio(tmp_path / "mono.wav", music_like(0.25)[:1], RATE, subtype="FLOAT")
    for run in ("a", "b"):
        assert noise_stems.main([str(src), str(tmp_path / run), "2", "--seed", "1"]) == 0
    for k in (1, 2):
        a, rate = read_audio(tmp_path / "a" / f"noise_{k}.wav")
        assert a.shape[0] == 1 and rate == RATE
        assert np.array_equal(a, read_audio(tmp_path / "b" / f"noise_{k}.wav")[0])


@pytest.mark.parametrize("n", ["1", "0", "-3", "two"])
def test_n_below_two_is_refused(tmp_path, capsys, n):
    src = write_audio(tmp_path / "in.wav", music_like(0.1), RATE)
    with pytest.raises(SystemExit) as exit_info:
        noise_stems.main([str(src), str(tmp_path / "out"), n])
    assert exit_info.value.code != 0
    assert "N must be" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="N must be"):
        noise_stems.split(music_like(0.1), 1)


def test_unreadable_input_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    for path in (bad, tmp_path / "missing.wav"):
        assert noise_stems.main([str(path), str(tmp_path / "out"), "2"]) == 1
        err = capsys.readouterr().err
        assert str(path) in err and ("cannot be read" in err or "does not exist" in err)


def test_unwritable_output_dir_is_named(tmp_path, capsys):
    src = write_audio(tmp_path / "in.wav", music_like(0.1), RATE)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        assert noise_stems.main([str(src), str(out), "2"]) == 1
        err = capsys.readouterr().err
        assert str(out) in err and "output directory" in err


def test_input_too_loud_for_n_is_refused(tmp_path, capsys):
    src = write_audio(tmp_path / "loud.wav", 2.5 * square(400), RATE, subtype="FLOAT")
    assert noise_stems.main([str(src), str(tmp_path / "out"), "2"]) == 1
    assert "peaks at 2.5" in capsys.readouterr().err


def test_silence_gives_noise_stems_summing_to_silence(tmp_path, capsys):
    src = write_audio(tmp_path / "silence.wav", np.zeros((2, 2000), np.float32), RATE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any divide-by-zero / invalid-value warning fails the test
        for strategy in noise_strategies.names():
            stems = noise_stems.split(np.zeros((2, 500), np.float32), 3, seed=0, strategy=strategy)
            assert np.array_equal(np.sum(stems, axis=0, dtype=np.float32), np.zeros((2, 500), np.float32))
        assert noise_stems.main([str(src), str(tmp_path / "out"), "3", "--seed", "2"]) == 0
    stems = np.stack([read_audio(tmp_path / "out" / f"noise_{k}.wav")[0] for k in (1, 2, 3)])
    assert np.array_equal(np.sum(stems, axis=0, dtype=np.float32), np.zeros((2, 2000), np.float32))
    assert np.std(stems) > 0.3  # noise, not silence
    report = noise_metrics.stem_report(np.zeros((2, 2000), np.float32), stems)
    assert all(r["corr"] == 0.0 and r["mi_bits"] == 0.0 for r in report)
    assert "bit-exact" in capsys.readouterr().out


def test_tiny_input_and_bad_analysis_window(tmp_path, capsys):
    src = write_audio(tmp_path / "tiny.wav", music_like(0.01)[:, :5], RATE, subtype="PCM_16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert noise_stems.main([str(src), str(tmp_path / "out"), "4", "--seed", "0"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        noise_stems.main([str(src), str(tmp_path / "out"), "2", "--analysis-seconds", "0"])
    assert "positive number of seconds" in capsys.readouterr().err
