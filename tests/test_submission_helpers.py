"""Helpers shared by the submission, evaluator and CLI tests: tiny songs written with numpy.

(No tests here; the file name keeps it inside the submission tests' namespace.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.constants import TARGETS


def song_stems(seconds: float = 1.0, rate: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Four band-limited stems ``(nb_sources, nb_channels, nb_timesteps)`` float32 (sums stay < 1)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 55.0 * (1 + seed % 3)
    bass = 0.3 * np.sin(2 * np.pi * f0 * t)
    noise = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")
    drums = 0.3 * noise * (np.sin(2 * np.pi * 2 * t) > 0.8)
    other = 0.15 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 0.7 * t)
    vibrato = 300 + 40 * np.sin(2 * np.pi * 5 * t)
    vocals = 0.15 * np.sin(2 * np.pi * vibrato * t) * (np.sin(2 * np.pi * t) > 0)
    stems = np.stack([bass, drums, other, vocals])[:, None, :]
    gains = np.linspace(1.0, 0.7, channels)[None, :, None]
    return (stems * gains).astype(np.float32)


def write_song(folder: Path, seconds: float = 1.0, rate: int = 44100, channels: int = 2, seed: int = 0,
               subtype: str = "FLOAT") -> np.ndarray:
    """Write ``folder/{mixture,bass,drums,other,vocals}.wav`` (mixture = sum); returns the stems."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stems = song_stems(seconds, rate, channels, seed)
    for target, stem in zip(TARGETS, stems):
        sf.write(folder / f"{target}.wav", stem.T, rate, subtype=subtype)
    sf.write(folder / "mixture.wav", stems.sum(0).T, rate, subtype=subtype)
    return stems


def hand_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """The grader's formula written out, float64."""
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    num = np.sum(reference ** 2) + 1e-7
    den = np.sum((reference - estimate) ** 2) + 1e-7
    return float(10 * np.log10(num / den))


@pytest.fixture
def one_torch_thread():
    """Torch on one thread: on a busy 2-core machine its spinning threads cost 10-30x."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
