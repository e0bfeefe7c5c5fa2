"""augment/ Rubber Band transforms measured on synthetic signals: tone pitch, click onsets, vowel formants.

Short signals (under a second) keep this file at a few seconds on 2 cores.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

import augment

RATE = 44100
TARGETS = ["vocals"]


def run(name, stems, seed=0, **params):
    """One transform with p=1 on a single-source example ``stems (1, C, T)``."""
    pipeline = augment.load_config({"targets": TARGETS, "example": [{"name": name, "p": 1.0, **params}]})
    return pipeline.example(torch.from_numpy(stems.astype(np.float32)), seed).numpy()


def peak_frequency(x, low=50.0, high=2000.0):
    """Frequency of the strongest spectral peak of ``x (T,)`` in [low, high], with parabolic refinement."""
    x = x * np.hanning(len(x))
    n = 16 * len(x)
    spectrum = np.abs(np.fft.rfft(x, n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    band = (freqs >= low) & (freqs <= high)
    i = np.flatnonzero(band)[np.argmax(spectrum[band])]
    a, b, c = np.log(spectrum[i - 1 : i + 2] + 1e-12)
    return (i + 0.5 * (a - c) / (a - 2 * b + c)) * RATE / n


def cents(f, ref):
    return 1200 * np.log2(f / ref)


def tone(freq=440.0, seconds=0.5):
    t = np.arange(int(seconds * RATE)) / RATE
    return np.tile(0.5 * np.sin(2 * np.pi * freq * t), (1, 2, 1))


@pytest.mark.parametrize("shift", [300, -200])
def test_pitch_shift_moves_a_pure_tone_by_the_requested_cents(shift):
    out = run("pitch_shift", tone(), cents=shift)
    assert out.shape == (1, 2, RATE // 2)
    middle = out[0, 0, RATE // 8 : 3 * RATE // 8]  # away from the edges
    assert abs(cents(peak_frequency(middle), 440.0) - shift) < 10
    # high_quality: false misses by ~25 cents on -100 (documented); the default is accurate.
    assert abs(cents(peak_frequency(run("repitch", tone(), cents=-100)[0, 0, RATE // 8 : 3 * RATE // 8]),
                     440.0) + 100) < 10


def onsets(x, min_gap=0.05):
    """Times (s) where the envelope of ``x (T,)`` rises through 30% of its peak."""
    env = np.abs(x)
    above = env > 0.3 * env.max()
    rises = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    keep = [rises[0]] + [r for p, r in zip(rises[:-1], rises[1:]) if r - p > min_gap * RATE]
    return np.array(keep) / RATE


@pytest.mark.parametrize("factor", [1.25, 0.8])
def test_tempo_change_moves_click_onsets(factor):
    period = 0.25
    clicks = np.zeros((1, 2, int(1.5 * RATE)))
    for k in range(6):
        start = int(k * period * RATE)
        clicks[..., start : start + 30] = 1.0
    out = run("time_stretch", clicks, factor={"choices": [factor]})
    assert out.shape[-1] == int(clicks.shape[-1] / max(1.0, factor))  # documented crop
    times = onsets(out[0, 0])
    assert len(times) >= 4
    assert np.allclose(np.diff(times), period / factor, atol=0.004)
    assert abs(times[0]) < 0.01  # the first click stays at the start


def vowel(f0=140.0, formants=((700, 80), (1220, 90), (2600, 120)), seconds=0.6):
    """A sawtooth at ``f0`` through formant resonators: ``(1, 2, T)``."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, int(8000 / f0)))
    for freq, bandwidth in formants:
        r = np.exp(-np.pi * bandwidth / RATE)
        x = scipy.signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * freq / RATE), r * r], x)
    return np.tile(0.5 * x / np.abs(x).max(), (1, 2, 1))


def envelope_centroid(x, f0):
    """Power-weighted mean frequency of the harmonics of ``x (T,)`` below 4 kHz (tracks the formants)."""
    x = x * np.hanning(len(x))
    n = 8 * len(x)
    spectrum = np.abs(np.fft.rfft(x, n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    harmonics = np.arange(1, int(4000 / f0)) * f0
    power = np.array([spectrum[np.argmin(abs(freqs - h))] ** 2 for h in harmonics])
    return float((power * harmonics).sum() / power.sum())


def test_formant_shift_keeps_the_fundamental_and_moves_the_formants():
    x = vowel()
    window = slice(RATE // 8, RATE // 8 + RATE // 3)
    before = envelope_centroid(x[0, 0, window], 140.0)
    for shift in (150, -150):
        out = run("formant_shift", x, cents=shift)
        assert out.shape == x.shape
        f0 = peak_frequency(out[0, 0, window], low=80, high=300)
        assert abs(cents(f0, 140.0)) < 10
        after = envelope_centroid(out[0, 0, window], f0)
        assert np.sign(after - before) == np.sign(shift) and abs(np.log2(after / before)) * 1200 > 40
    # A formant-preserving pitch shift moves f0 and keeps the envelope; without preservation both move.
    kept = run("pitch_shift", x, cents=300, preserve_formants=True)[0, 0, window]
    moved = run("pitch_shift", x, cents=300, preserve_formants=False)[0, 0, window]
    f0 = 140.0 * 2 ** 0.25
    assert abs(cents(peak_frequency(kept, low=80, high=300), 140.0) - 300) < 10
    kept_shift = cents(envelope_centroid(kept, f0), before)
    assert abs(cents(envelope_centroid(moved, f0), before)) > 2 * abs(kept_shift)
