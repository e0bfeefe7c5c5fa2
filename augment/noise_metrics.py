"""How well a noise stem hides its input, and the best any split into N bounded stems can do.

Per stem, against the input ``x``:

* ``corr``: Pearson correlation over all samples and channels (the linear leak).
* ``mi_bits``: mutual information per sample in bits, from a 2-D histogram on equal-count
  (quantile) bins with the Miller-Madow bias correction; catches non-linear per-sample leaks (a
  stem that equals ``x`` shifted on some samples, a noise level that follows ``|x|``).
* ``specsim``: Pearson correlation between the log-power STFTs of stem and input (the audible
  leak: the input's time-frequency pattern showing through the noise). 0 for independent noise.
* ``flatness``: spectral flatness (geometric over arithmetic mean) of the stem's Welch PSD, without
  the DC bin: about 1 for white noise, near 0 for tones.

All of them read 0 (not NaN) when a signal is constant, so silence needs no special case; the two
spectral figures also read 0 for signals shorter than :data:`MIN_FRAMES`.

The bound (see docs/noise_stems.md): with ``sum_k s_k = x`` and ``|s_k| <= 1``,
``sum_k E[s_k x] = E[x^2]`` and ``sum_k E[s_k^2] <= E[V(x)]`` where ``V(x) = N - 1 + d(x)^2`` is the
largest ``|s|^2`` on the feasible set (``d(x)`` the distance from ``x`` to the nearest integer of the
parity of N - 1). Cauchy-Schwarz then gives
``max_k corr_k >= rms(x) / sqrt(N * E[V(x)])`` (about ``rms(x) / N`` for quiet inputs).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

#: Equal-count bins per axis of the mutual-information histogram.
MI_BINS = 32
#: At most this many (evenly spaced) samples enter the histogram.
MI_MAX_SAMPLES = 1 << 20
#: STFT size of the spectral similarity (hop = half) and Welch segment of the flatness.
SIM_FFT = 1024
FLATNESS_FFT = 2048
#: Shortest signal the spectral figures are computed on.
MIN_FRAMES = 64


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two same-shape arrays over all elements; 0 if either is constant."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / den) if den > 0 else 0.0


def _subsample(values: np.ndarray, max_samples: int) -> np.ndarray:
    """At most ``max_samples`` evenly spaced elements of the flattened array, as float64."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size > max_samples:
        values = values[np.linspace(0, values.size - 1, max_samples).astype(np.int64)]
    return values


def _quantile_codes(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin index ``(nb_samples,)`` of each value on equal-count bins (ties share a bin); the edges
    come from at most 65536 evenly spaced values."""
    ranked = np.sort(_subsample(values, 1 << 16))
    edges = np.unique(ranked[(np.arange(1, bins) * ranked.size) // bins])
    return np.searchsorted(edges, values, side="right")


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _codes(values: np.ndarray) -> np.ndarray:
    """Histogram codes of the samples :func:`mutual_information` uses by default."""
    return _quantile_codes(_subsample(values, MI_MAX_SAMPLES), MI_BINS)


def _mi_from_codes(ca: np.ndarray, cb: np.ndarray) -> float:
    """Miller-Madow corrected plug-in mutual information (bits) of two code arrays."""
    na, nb = int(ca.max()) + 1, int(cb.max()) + 1
    joint = np.bincount(ca * nb + cb, minlength=na * nb).reshape(na, nb)
    plug_in = _entropy_bits(joint.sum(1)) + _entropy_bits(joint.sum(0)) - _entropy_bits(joint.ravel())
    ka, kb = np.count_nonzero(joint.sum(1)), np.count_nonzero(joint.sum(0))
    bias = (ka - 1) * (kb - 1) / (2.0 * ca.size * np.log(2.0))
    return max(plug_in - bias, 0.0)


def mutual_information(
    a: np.ndarray, b: np.ndarray, bins: int = MI_BINS, max_samples: int = MI_MAX_SAMPLES
) -> float:
    """Per-sample mutual information in bits between two same-shape arrays (histogram estimate).

    Args:
        a, b: any same shape; flattened, then at most ``max_samples`` evenly spaced samples used.
        bins: equal-count bins per variable.

    Returns:
        ``I(a; b)`` in bits per sample, Miller-Madow corrected, clipped at 0.
    """
    a, b = _subsample(a, max_samples), _subsample(b, max_samples)
    return _mi_from_codes(_quantile_codes(a, bins), _quantile_codes(b, bins))


def gaussian_mi_bits(corr: float) -> float:
    """Mutual information in bits of a Gaussian pair with correlation ``corr``: ``-log2(1-r^2)/2``."""
    return float(-0.5 * np.log2(max(1.0 - corr**2, 1e-300)))


def _log_power(audio: np.ndarray, n_fft: int) -> np.ndarray:
    """Log10 power STFT ``(nb_channels, nb_bins - 2, nb_frames)`` of ``(nb_channels, nb_timesteps)``.

    Only whole frames (no zero-padded edge frames) and no DC or Nyquist bin: their statistics
    differ from the other bins for any signal, which would correlate unrelated spectrograms.
    """
    audio = np.asarray(audio, dtype=np.float32)  # complex64 spectrogram: half the memory
    n_fft = min(n_fft, audio.shape[-1])
    _, _, spec = signal.stft(audio, nperseg=n_fft, noverlap=n_fft // 2, boundary=None, padded=False,
                             axis=-1)
    return np.log10(np.abs(spec[..., 1:-1, :]) ** 2 + 1e-12)


def spectral_similarity(stem: np.ndarray, audio: np.ndarray, n_fft: int = SIM_FFT) -> float:
    """Correlation of the log-power spectrograms of ``stem`` and ``audio`` (both ``(C, T)``)."""
    if np.shape(audio)[-1] < MIN_FRAMES:
        return 0.0
    return correlation(_log_power(stem, n_fft), _log_power(audio, n_fft))


def spectral_flatness(audio: np.ndarray, n_fft: int = FLATNESS_FFT) -> float:
    """Flatness in [0, 1] of the channel-averaged Welch PSD of ``(C, T)`` audio, DC bin excluded."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape[-1] < MIN_FRAMES:
        return 0.0
    n_fft = min(n_fft, audio.shape[-1])
    _, psd = signal.welch(audio, nperseg=n_fft, axis=-1)
    psd = psd.reshape(-1, psd.shape[-1]).astype(np.float64).mean(axis=0)[1:]
    mean = psd.mean()
    if mean <= 0:
        return 0.0
    return float(np.exp(np.mean(np.log(np.maximum(psd, mean * 1e-30)))) / mean)


def correlation_lower_bound(audio: np.ndarray, nb_stems: int) -> float:
    """Smallest achievable largest correlation of N stems in ``[-1, 1]`` summing to ``audio``.

    ``rms(x) / sqrt(N * mean(N - 1 + d(x)^2))``, ``d(x) = x - j``, ``j`` the nearest integer of the
    parity of N - 1 (stated for the uncentred correlation; audio is zero-mean to within rounding).

    Args:
        audio: ``(nb_channels, nb_timesteps)``.
    """
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    power = float(np.mean(x**2))
    if power == 0:
        return 0.0
    parity = (nb_stems - 1) % 2
    j = np.clip(2 * np.round((x - parity) / 2) + parity, -(nb_stems - 1), nb_stems - 1)
    vmax = nb_stems - 1 + np.mean((x - j) ** 2)
    return float(np.sqrt(power / (nb_stems * vmax)))


def excerpt(arrays: np.ndarray, max_frames: int, pieces: int = 8) -> np.ndarray:
    """``pieces`` evenly spaced windows of the last axis, ``max_frames`` in all (all if shorter)."""
    length = arrays.shape[-1]
    if length <= max_frames:
        return arrays
    pieces = max(1, min(pieces, max_frames // 4096))  # pieces of at least 4096 frames when possible
    width = max(1, max_frames // pieces)
    starts = np.linspace(0, length - width, pieces).astype(np.int64)
    return np.concatenate([arrays[..., s : s + width] for s in starts], axis=-1)


def stem_report(audio: np.ndarray, stems: np.ndarray, max_frames: int | None = None) -> list[dict]:
    """Per-stem figures against the input.

    Args:
        audio: ``(nb_channels, nb_timesteps)`` input.
        stems: ``(nb_stems, nb_channels, nb_timesteps)``.
        max_frames: analyse at most this many frames (evenly spaced excerpts); ``None`` for all.

    Returns:
        One dict per stem: ``stem`` (1-based), ``peak``, ``rms_dbfs``, ``corr``, ``mi_bits``,
        ``specsim``, ``flatness``.
    """
    if max_frames is not None:
        audio, stems = excerpt(audio, max_frames), excerpt(stems, max_frames)
    short = audio.shape[-1] < MIN_FRAMES
    audio_spec = None if short else _log_power(audio, SIM_FFT)
    audio_codes = _codes(audio)
    rows = []
    for k, stem in enumerate(stems, start=1):
        power = float(np.mean(np.square(stem, dtype=np.float64)))
        rows.append({
            "stem": k,
            "peak": float(np.max(np.abs(stem))),
            "rms_dbfs": float(10 * np.log10(power)) if power > 0 else -np.inf,
            "corr": correlation(stem, audio),
            "mi_bits": _mi_from_codes(_codes(stem), audio_codes),
            "specsim": 0.0 if short else correlation(_log_power(stem, SIM_FFT), audio_spec),
            "flatness": spectral_flatness(stem),
        })
    return rows
