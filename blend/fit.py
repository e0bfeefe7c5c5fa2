"""Fitting λ on validation songs: closed form (non-negative least squares, sum to one) and grid search.

Closed form: for each target (and band) minimise the song-weighted squared error
``sum_songs w_song * ||ref - sum_m λ_m est_m||^2`` subject to ``λ >= 0``, ``sum λ = 1``. The error is a
quadratic form in λ, so each song only contributes a Gram matrix ``G = E^T E`` (members × members),
a vector ``b = E^T ref`` and ``ref^T ref`` (:func:`song_stats`); the constrained problem is solved by
``scipy.optimize.nnls`` on an augmented system (a heavily weighted sum-to-one row). With
``w_song = 1 / ||ref||^2`` (default) the objective is the mean of the songs' error-to-signal ratios,
a smooth stand-in for the mean MDX SDR.

Grid search (Uhlich et al. 2017): every λ on a simplex grid, blended and scored with the grader's
SDR on each song; the best mean SDR per target wins.

Per band, the statistics are taken in the STFT domain (Parseval: one-sided bins counted twice).

Shapes: estimates ``(nb_targets, nb_channels, nb_timesteps)`` per member; references the same.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch

from blend.render import StftSettings
from blend.stft import FrameGrid, analyze, hann, take
from blend.weights import BlendWeights, band_of_bins, make_weights
from core.constants import SDR_EPS
from core.metrics import global_sdr

_CHUNK = 1 << 20  # samples per float64 chunk of the time-domain statistics


@dataclass
class SongStats:
    """Least-squares statistics of one song.

    Attributes:
        gram: ``(nb_bands, nb_targets, nb_members, nb_members)`` ``E^T E``.
        cross: ``(nb_bands, nb_targets, nb_members)`` ``E^T ref``.
        energy: ``(nb_bands, nb_targets)`` ``ref^T ref``.
        full_energy: ``(nb_targets,)`` the references' time-domain energy (song weighting).
    """

    gram: np.ndarray
    cross: np.ndarray
    energy: np.ndarray
    full_energy: np.ndarray


def song_stats(
    estimates: Sequence[np.ndarray], reference: np.ndarray, edges_hz: Sequence[float] = (),
    stft: StftSettings = StftSettings(), sample_rate: float = 44100.0,
) -> SongStats:
    """Gram statistics of one song, full band (time domain) or per band (STFT domain).

    Args:
        estimates: one ``(nb_targets, nb_channels, nb_timesteps)`` array per member.
        reference: ``(nb_targets, nb_channels, nb_timesteps)`` true stems.
        edges_hz: band edges; empty for one full band.
    """
    nb_m, nb_s = len(estimates), reference.shape[0]
    full = np.zeros(nb_s)
    length = reference.shape[-1]
    for a in range(0, length, _CHUNK):
        r = reference[..., a:a + _CHUNK].astype(np.float64).reshape(nb_s, -1)
        full += np.einsum("sn,sn->s", r, r)
    if not edges_hz:
        gram, cross = np.zeros((1, nb_s, nb_m, nb_m)), np.zeros((1, nb_s, nb_m))
        for a in range(0, length, _CHUNK):
            r = reference[..., a:a + _CHUNK].astype(np.float64).reshape(nb_s, -1)
            e = np.stack([x[..., a:a + _CHUNK].astype(np.float64).reshape(nb_s, -1) for x in estimates], 1)
            gram[0] += np.einsum("smn,skn->smk", e, e)
            cross[0] += np.einsum("smn,sn->sm", e, r)
        return SongStats(gram, cross, full[None].copy(), full)
    return _band_stats(estimates, reference, edges_hz, stft, sample_rate, full)


def _band_stats(estimates, reference, edges_hz, stft: StftSettings, sample_rate, full) -> SongStats:
    nb_m, nb_s, nb_b = len(estimates), reference.shape[0], len(edges_hz) + 1
    length = reference.shape[-1]
    if length <= stft.n_fft:
        pad = [(0, 0), (0, 0), (0, stft.n_fft + 1 - length)]
        estimates, reference = [np.pad(e, pad) for e in estimates], np.pad(reference, pad)
        length = stft.n_fft + 1
    grid, window = FrameGrid(length, stft.n_fft, stft.n_hop), hann(stft.n_fft, torch.float64)
    bands = band_of_bins(edges_hz, stft.n_fft, sample_rate)
    onesided = np.full(grid.nb_bins, 2.0)
    onesided[[0, -1]] = 1.0
    # (nb_bands, nb_bins) weights selecting each band's bins, one-sided bins counted twice
    select = torch.as_tensor((bands[None] == np.arange(nb_b)[:, None]) * onesided[None])
    gram, cross = np.zeros((nb_b, nb_s, nb_m, nb_m)), np.zeros((nb_b, nb_s, nb_m))
    energy = np.zeros((nb_b, nb_s))
    for k0, k1 in grid.blocks(300):
        s0, s1 = grid.sample_range(k0, k1)

        def spec(x, s0=s0, s1=s1):
            return analyze(take(x, s0, s1, length).astype(np.float64), stft.n_fft, stft.n_hop, window)

        r = spec(reference).reshape(nb_s, -1, grid.nb_bins, k1 - k0)  # (S, C, F, N)
        e = torch.stack([spec(est) for est in estimates], 1).reshape(nb_s, nb_m, -1, grid.nb_bins, k1 - k0)
        g = torch.einsum("smcfn,skcfn->smkf", e.conj(), e).real  # (S, M, M, F)
        c = torch.einsum("smcfn,scfn->smf", e.conj(), r).real
        p = (r.abs() ** 2).sum(dim=(1, 3))  # (S, F)
        gram += torch.einsum("smkf,bf->bsmk", g, select).numpy()
        cross += torch.einsum("smf,bf->bsm", c, select).numpy()
        energy += torch.einsum("sf,bf->bs", p, select).numpy()
    return SongStats(gram, cross, energy, full)


def nnls_simplex(gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """``argmin λ^T G λ - 2 b^T λ`` subject to ``λ >= 0``, ``sum λ = 1``.

    Solved with ``scipy.optimize.nnls`` on ``[A; ρ 1^T] λ ≈ [y; ρ]`` where ``A^T A = G`` and
    ``A^T y = b`` (Cholesky with a tiny ridge), ρ large; then renormalised to sum exactly to one.

    Args:
        gram: ``(nb_members, nb_members)`` positive semi-definite.
        cross: ``(nb_members,)``.

    Returns:
        ``(nb_members,)`` non-negative weights summing to one.
    """
    m = gram.shape[0]
    if m == 1:
        return np.ones(1)
    scale = max(np.trace(gram) / m, 1e-30)
    g = gram / scale + 1e-9 * np.eye(m)
    a = np.linalg.cholesky(g).T  # upper: a.T @ a == g
    y = np.linalg.solve(a.T, cross / scale)
    rho = 1e4 * (1.0 + np.abs(a).max())
    lam, _ = scipy.optimize.nnls(np.vstack([a, rho * np.ones((1, m))]), np.concatenate([y, [rho]]))
    if lam.sum() <= 0:
        return np.full(m, 1.0 / m)
    return lam / lam.sum()


def fit_weights(
    stats: Sequence[SongStats], members: Sequence[str], targets: Sequence[str],
    edges_hz: Sequence[float] = (), available: np.ndarray | None = None, song_weighting: str = "energy",
) -> BlendWeights:
    """Closed-form λ per target (and band) from the songs' statistics.

    Args:
        stats: one :class:`SongStats` per song (all with ``len(edges_hz) + 1`` bands).
        available: ``(nb_members, nb_targets)`` bool; members without a target get weight 0 for it.
        song_weighting: ``"energy"`` (each song weighted by 1 / its reference energy: mean relative
            error) or ``"none"`` (plain sum of squared errors over songs).
    """
    if song_weighting not in ("energy", "none"):
        raise ValueError(f"song_weighting must be 'energy' or 'none', got {song_weighting!r}")
    nb_b, nb_s, nb_m = stats[0].gram.shape[:3]
    avail = np.ones((nb_m, nb_s), bool) if available is None else np.asarray(available, bool)
    values = np.zeros((nb_b, nb_m, nb_s))
    for b, s in itertools.product(range(nb_b), range(nb_s)):
        idx = np.flatnonzero(avail[:, s])
        gram, cross = np.zeros((len(idx), len(idx))), np.zeros(len(idx))
        for st in stats:
            w = 1.0 / (st.full_energy[s] + SDR_EPS) if song_weighting == "energy" else 1.0
            gram += w * st.gram[b, s][np.ix_(idx, idx)]
            cross += w * st.cross[b, s][idx]
        values[b, idx, s] = nnls_simplex(gram, cross)
    return make_weights(values, members, targets, edges_hz, available=avail)


def sdr_from_stats(st: SongStats, table: np.ndarray) -> np.ndarray:
    """The grader's SDR per target of a full-band blend, from the statistics alone.

    Args:
        st: full-band statistics of one song.
        table: ``(nb_members, nb_targets)`` weights (any, not necessarily normalised).

    Returns:
        ``(nb_targets,)`` SDR in dB.
    """
    lam = np.asarray(table, np.float64).T  # (S, M)
    return np.array([_blend_sdr(lam[s], st.gram[0][s], st.cross[0][s], st.energy[0][s])
                     for s in range(lam.shape[0])])


def _blend_sdr(lam: np.ndarray, gram: np.ndarray, cross: np.ndarray, energy: float) -> np.ndarray:
    """Grader SDR of blends of one target: ``10 log10(|r|² / |r − Σ λ_m e_m|²)``, expanded into the
    statistics (``|r|² − 2 λ·(Eᵀr) + λᵀ(EᵀE)λ``).

    Args:
        lam: ``(..., nb_members)`` weights, one blend per leading index.
        gram: ``(nb_members, nb_members)``; cross: ``(nb_members,)``; energy: ``|r|²``.

    Returns:
        ``(...)`` SDR in dB.
    """
    err = energy - 2 * lam @ cross + np.einsum("...m,mk,...k->...", lam, gram, lam)
    return 10 * np.log10((energy + SDR_EPS) / (np.maximum(err, 0.0) + SDR_EPS))


def simplex_grid(nb_members: int, step: float) -> np.ndarray:
    """Simplex points with coordinates multiple of ``step``: ``(nb_points, nb_members)``."""
    n = int(round(1.0 / step))
    if n <= 0 or abs(n * step - 1.0) > 1e-9:
        raise ValueError(f"grid step must divide 1 (e.g. 0.1, 0.05), got {step}")
    points = [c for c in itertools.product(range(n + 1), repeat=nb_members - 1) if sum(c) <= n]
    return np.array([list(c) + [n - sum(c)] for c in points], np.float64) / n


def grid_search(
    songs: Sequence[tuple[Sequence[np.ndarray], np.ndarray]], members: Sequence[str], targets: Sequence[str],
    step: float = 0.1, available: np.ndarray | None = None,
) -> tuple[BlendWeights, np.ndarray]:
    """Uhlich et al.'s grid search: blend every grid λ, score with the grader's SDR, keep the best.

    Args:
        songs: ``(estimates, reference)`` per song, estimates one ``(S, C, T)`` array per member.
        step: grid spacing on the simplex.

    Returns:
        ``(weights, sdr)``: the best full-band weights and ``(nb_targets,)`` their mean SDR over songs.
    """
    nb_m, nb_s = len(members), len(targets)
    avail = np.ones((nb_m, nb_s), bool) if available is None else np.asarray(available, bool)
    values, best_sdr = np.zeros((nb_m, nb_s)), np.full(nb_s, -np.inf)
    for s in range(nb_s):
        idx = np.flatnonzero(avail[:, s])
        for lam in simplex_grid(len(idx), step):
            sdr = []
            for estimates, reference in songs:
                est = sum(np.float32(w) * estimates[m][s] for w, m in zip(lam, idx) if w > 0)
                sdr.append(global_sdr(reference[s], est))
            if np.mean(sdr) > best_sdr[s]:
                best_sdr[s], values[:, s] = np.mean(sdr), 0.0
                values[idx, s] = lam
    return make_weights(values, members, targets, available=avail), best_sdr


def grid_search_stats(
    stats: Sequence[SongStats], members: Sequence[str], targets: Sequence[str], step: float = 0.1,
    available: np.ndarray | None = None,
) -> tuple[BlendWeights, np.ndarray]:
    """:func:`grid_search` computed from the songs' statistics: the same grid and the same grader
    SDR (an exact quadratic form in λ), without blending any audio, so a 7-member grid (8008 points
    per target at step 0.1) takes milliseconds. Same returns as :func:`grid_search`."""
    nb_m, nb_s = len(members), len(targets)
    avail = np.ones((nb_m, nb_s), bool) if available is None else np.asarray(available, bool)
    values, best_sdr = np.zeros((nb_m, nb_s)), np.full(nb_s, -np.inf)
    for s in range(nb_s):
        idx = np.flatnonzero(avail[:, s])
        grid = simplex_grid(len(idx), step)  # (P, M_s)
        sdr = np.mean([_blend_sdr(grid, st.gram[0][s][np.ix_(idx, idx)], st.cross[0][s][idx], st.energy[0][s])
                       for st in stats], axis=0)
        best = int(np.argmax(sdr))
        best_sdr[s] = sdr[best]
        values[idx, s] = grid[best]
    return make_weights(values, members, targets, available=avail), best_sdr
