"""λ: the members × targets blending weights, optionally one table per frequency band.

As in demucs' bag of models, every target is a weighted average of the members' estimates of it;
the weights of a target are normalised to sum to one. With ``edges_hz`` the weights differ per
frequency band and are applied in the STFT domain (Uhlich et al. 2017 blend per target; per-band
tables extend that).

Shapes: ``values`` is ``(nb_bands, nb_members, nb_targets)``; member estimates are
``(nb_targets, nb_channels, nb_timesteps)`` per member; STFTs ``(..., nb_bins, nb_frames)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import StemBlendError


class WeightsError(StemBlendError, ValueError):
    """The blending weights are malformed; the message names the member/target/band at fault."""


@dataclass(frozen=True)
class BlendWeights:
    """Validated, per-target normalised blending weights.

    Attributes:
        members: member names, one per row.
        targets: target names, one per column.
        values: ``(nb_bands, nb_members, nb_targets)`` float64, each ``values[b, :, s]`` sums to one.
        edges_hz: ``(nb_bands - 1,)`` increasing band edges in Hz (empty: one full band).
    """

    members: tuple[str, ...]
    targets: tuple[str, ...]
    values: np.ndarray
    edges_hz: tuple[float, ...] = ()

    @property
    def nb_bands(self) -> int:
        return self.values.shape[0]

    def table(self, band: int = 0) -> np.ndarray:
        """``(nb_members, nb_targets)`` weights of one band."""
        return self.values[band]

    def used(self, member: int, target: int) -> bool:
        """Whether any band gives this member a non-zero weight for this target."""
        return bool(np.any(self.values[:, member, target] > 0))

    def to_dict(self) -> dict:
        """Plain structure for YAML: ``{weights: {member: [..per target..]}, bands: ...}``."""
        def table(v):
            return {m: [round(float(x), 12) for x in v[i]] for i, m in enumerate(self.members)}

        if not self.edges_hz:
            return {"weights": table(self.values[0])}
        return {"bands": {"edges_hz": [float(e) for e in self.edges_hz],
                          "weights": [table(v) for v in self.values]}}


def make_weights(
    values,
    members: Sequence[str],
    targets: Sequence[str],
    edges_hz: Sequence[float] = (),
    available: np.ndarray | None = None,
    sample_rate: float = 44100.0,
    normalize: bool = True,
) -> BlendWeights:
    """Validate and normalise weights.

    Args:
        values: ``(nb_members, nb_targets)`` or ``(nb_bands, nb_members, nb_targets)``.
        members, targets: names of the rows and columns.
        edges_hz: ``nb_bands - 1`` strictly increasing band edges in ``(0, sample_rate / 2)``.
        available: optional ``(nb_members, nb_targets)`` bool: which member estimates which target;
            a non-zero weight on a target a member does not produce is an error.
        normalize: divide each target's weights by their sum.

    Raises:
        WeightsError: wrong shape, non-finite, negative, zero sum for a target, unavailable target,
            bad band edges.
    """
    members, targets, edges = tuple(members), tuple(targets), tuple(float(e) for e in edges_hz)
    try:
        v = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"weights are not a numeric table ({exc})") from exc
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3:
        raise WeightsError("weights must be (members, targets) or (bands, members, targets), "
                           f"got shape {v.shape}")
    if v.shape[1:] != (len(members), len(targets)):
        raise WeightsError(
            f"weights have shape {v.shape[1:]} (members x targets) but there are {len(members)} members "
            f"{list(members)} and {len(targets)} targets {list(targets)}"
        )
    if v.shape[0] != len(edges) + 1:
        raise WeightsError(f"{len(edges)} band edges need {len(edges) + 1} weight tables, got {v.shape[0]}")
    _check_edges(edges, sample_rate)
    for b, m, s in zip(*np.nonzero(~np.isfinite(v))):
        raise WeightsError(f"weight of member '{members[m]}' for target '{targets[s]}'{_band(b, edges)} "
                           f"is not finite ({v[b, m, s]})")
    for b, m, s in zip(*np.nonzero(v < 0)):
        raise WeightsError(f"weight of member '{members[m]}' for target '{targets[s]}'{_band(b, edges)} "
                           f"is negative ({v[b, m, s]})")
    if available is not None:
        available = np.asarray(available, dtype=bool)
        for b, m, s in zip(*np.nonzero((v > 0) & ~available[None])):
            raise WeightsError(f"member '{members[m]}' does not estimate target '{targets[s]}' "
                               f"but has weight {v[b, m, s]}{_band(b, edges)}")
    sums = v.sum(axis=1)
    for b, s in zip(*np.nonzero(sums <= 0)):
        raise WeightsError(f"weights for target '{targets[s]}'{_band(b, edges)} sum to zero: "
                           "at least one member needs a positive weight")
    if normalize:
        v = v / sums[:, None, :]
    v.setflags(write=False)
    return BlendWeights(members, targets, v, edges)


def _band(b: int, edges: tuple[float, ...]) -> str:
    if not edges:
        return ""
    lo = 0.0 if b == 0 else edges[b - 1]
    hi = "Nyquist" if b == len(edges) else f"{edges[b]:g} Hz"
    return f" in band {b} ({lo:g} Hz - {hi})"


def _check_edges(edges: tuple[float, ...], sample_rate: float) -> None:
    if not all(np.isfinite(edges)):
        raise WeightsError(f"band edges must be finite, got {list(edges)}")
    if any(e <= 0 or e >= sample_rate / 2 for e in edges):
        raise WeightsError(f"band edges must lie in (0, {sample_rate / 2:g}) Hz, got {list(edges)}")
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise WeightsError(f"band edges must be strictly increasing, got {list(edges)}")


def equal_weights(members, targets, available=None) -> BlendWeights:
    """Every member that estimates a target gets the same share of it."""
    avail = np.ones((len(members), len(targets)), bool) if available is None else np.asarray(available, bool)
    return make_weights(avail.astype(float), members, targets, available=avail)


def one_hot(members, targets, member: str) -> BlendWeights:
    """All weight on one member (that member alone)."""
    v = np.zeros((len(members), len(targets)))
    v[list(members).index(member)] = 1.0
    return make_weights(v, members, targets)


def band_of_bins(edges_hz: Sequence[float], n_fft: int, sample_rate: float) -> np.ndarray:
    """Band index of every STFT bin: ``(n_fft // 2 + 1,)`` int (a bin on an edge goes to the upper band)."""
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    return np.searchsorted(np.asarray(edges_hz, dtype=np.float64), freqs, side="right")


def blend_time(
    estimates: Sequence[np.ndarray], weights: BlendWeights, out: np.ndarray | None = None
) -> np.ndarray:
    """Full-band blend in the time domain.

    Args:
        estimates: one ``(nb_targets, nb_channels, nb_timesteps)`` array per member.
        weights: single-band weights.
        out: optional ``(nb_targets, nb_channels, nb_timesteps)`` float32 buffer.

    Returns:
        ``(nb_targets, nb_channels, nb_timesteps)`` float32.
    """
    if weights.nb_bands != 1:
        raise WeightsError("per-band weights must be applied in the STFT domain (blend_stft)")
    _check_members(estimates, weights)
    shape = estimates[0].shape
    out = np.zeros(shape, np.float32) if out is None else out
    out[...] = 0
    w = weights.table()
    for m, est in enumerate(estimates):
        for s in range(len(weights.targets)):
            if w[m, s] > 0:
                out[s] += np.float32(w[m, s]) * est[s]
    return out


def blend_stft(
    specs: Sequence[torch.Tensor], weights: BlendWeights, bands: np.ndarray | None
) -> torch.Tensor:
    """Blend member STFTs, per band when the weights have bands.

    Args:
        specs: one complex ``(nb_targets, nb_channels, nb_bins, nb_frames)`` tensor per member.
        weights: the weights.
        bands: ``(nb_bins,)`` band index per bin (:func:`band_of_bins`); ignored for one band.

    Returns:
        ``(nb_targets, nb_channels, nb_bins, nb_frames)`` complex.
    """
    _check_members(specs, weights)
    out = torch.zeros_like(specs[0])
    if weights.nb_bands == 1:
        per_bin = torch.as_tensor(weights.table(), dtype=torch.float32)[:, :, None]
        per_bin = per_bin.expand(-1, -1, specs[0].shape[-2])
    else:
        # (nb_members, nb_targets, nb_bins)
        per_bin = torch.as_tensor(weights.values[bands], dtype=torch.float32).permute(1, 2, 0)
    for m, spec in enumerate(specs):
        for s in range(len(weights.targets)):
            if weights.used(m, s):
                out[s] += spec[s] * per_bin[m, s][None, :, None]
    return out


def _check_members(estimates, weights: BlendWeights) -> None:
    if len(estimates) != len(weights.members):
        raise WeightsError(f"got estimates of {len(estimates)} members, the weights name "
                           f"{len(weights.members)}: {list(weights.members)}")
    for m, est in enumerate(estimates):
        if est.shape[0] != len(weights.targets):
            raise WeightsError(f"member '{weights.members[m]}' gave {est.shape[0]} targets, "
                               f"expected {len(weights.targets)} {list(weights.targets)}")
