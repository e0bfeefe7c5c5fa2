"""The MDX 2021 grader's global SDR, computed exactly as the grader does.

The grader reads every file with ``soundfile.read``, casts to float32 and computes, per instrument,
``10 * log10((sum(ref**2) + 1e-7) / (sum((ref - est)**2) + 1e-7))`` over all samples and channels.
A song's score is the mean over its instruments; the overall score the mean over songs.
"""

from __future__ import annotations

import numpy as np

from core.constants import SDR_EPS


def global_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Global SDR in dB of one estimate against its reference.

    Args:
        reference: any shape, e.g. ``(nb_timesteps, nb_channels)``.
        estimate: same shape as ``reference``.

    Returns:
        The grader's SDR in dB (float).

    Raises:
        ValueError: when the shapes differ (the grader fails on that too).
    """
    reference = np.asarray(reference, dtype=np.float32)
    estimate = np.asarray(estimate, dtype=np.float32)
    if reference.shape != estimate.shape:
        raise ValueError(f"shape mismatch: reference {reference.shape} vs estimate {estimate.shape}")
    num = np.sum(np.square(reference, dtype=np.float64)) + SDR_EPS
    den = np.sum(np.square(reference.astype(np.float64) - estimate.astype(np.float64))) + SDR_EPS
    return float(10.0 * np.log10(num / den))


def global_sdr_batch(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """Global SDR per source.

    Args:
        references: ``(nb_sources, ...)``.
        estimates: ``(nb_sources, ...)``, same shape.

    Returns:
        ``(nb_sources,)`` SDR in dB.
    """
    references = np.asarray(references)
    estimates = np.asarray(estimates)
    if references.shape != estimates.shape:
        raise ValueError(f"shape mismatch: references {references.shape} vs estimates {estimates.shape}")
    return np.array([global_sdr(r, e) for r, e in zip(references, estimates)])
