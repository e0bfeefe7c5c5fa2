"""The multichannel Wiener EM of ``openunmix.filtering.expectation_maximization``, on native complex
tensors in our layout.

Same algorithm, same numbers (tested against openunmix to float rounding): per iteration, the power
spectral densities ``v_j = mean_c |y_j|²``, the spatial covariances
``R_j(f) = Σ_t y_j y_jᴴ / (eps + Σ_t v_j)``, the mixture model
``C_xx = √eps·I + Σ_j v_j R_j`` and the new estimates ``y_j = v_j R_j C_xx⁻¹ x``.

What differs is only how it is computed. openunmix stores complex numbers as real/imaginary pairs,
builds a 2×2 gain matrix per source with a Python loop over 8 index triples, and needs the
``(nb_frames, nb_bins, nb_channels, 2, nb_sources)`` layout (two transposed copies per window). Here
``C_xx`` is Hermitian, so its inverse is closed form, and ``C_xx⁻¹ x`` is computed once per
time-frequency bin and shared by every source (``y_j = v_j R_j (C_xx⁻¹ x)``): about 10× less time
for 4 stereo sources (``benchmarks/bench_wiener.py``). Mono and stereo only, as openunmix.

Shapes: estimates ``y`` ``(nb_sources, nb_channels, nb_bins, nb_frames)`` complex; mixture ``x``
``(nb_channels, nb_bins, nb_frames)`` complex.
"""

from __future__ import annotations

import math

import torch


def em(
    y: torch.Tensor, x: torch.Tensor, iterations: int, eps: float = 1e-10, scale: float = 1.0
) -> torch.Tensor:
    """``iterations`` EM steps from the initial estimates ``y`` (shapes in the module docstring).

    ``scale``: the same result as openunmix's EM on ``y / scale`` and ``x / scale``, scaled back
    (``openunmix.filtering.wiener`` divides by a tenth of the mixture's peak); the division is
    folded into the regularisation instead of a pass over the data.

    Returns:
        ``y``'s shape and dtype: the filtered estimates (``y`` itself unchanged for 0 iterations).
    """
    _check(y.shape, x)
    for _ in range(iterations):
        y = _step(power(y), _cross(y), x, eps, scale)
    return y


def em_from_gains(
    gain: torch.Tensor, carrier: torch.Tensor, x: torch.Tensor, iterations: int, eps: float = 1e-10,
    scale: float = 1.0,
) -> torch.Tensor:
    """:func:`em` from ``y = gain · carrier`` without building ``y``: the first step needs only
    ``|y|² = gain² |carrier|²`` and, for stereo,
    ``Σ_t y0 conj(y1) = Σ_t gain0 gain1 carrier0 conj(carrier1)``.

    ``openunmix.filtering.wiener``'s two starts are of that form: the estimates' magnitudes with the
    mixture's phase (``gain = |estimate|``, ``carrier = x / |x|``, 1 where ``x`` is 0) and soft masks
    (``gain = |estimate| / Σ |estimates|``, ``carrier = x``).

    Args:
        gain: ``(nb_sources, nb_channels, nb_bins, nb_frames)`` real.
        carrier: ``(nb_channels, nb_bins, nb_frames)`` complex.
        x, iterations, eps, scale: as :func:`em` (``iterations >= 1``).
    """
    _check(gain.shape, x)
    if iterations < 1:
        raise ValueError("em_from_gains needs at least one iteration")
    squared = gain.square().mul_(power(carrier)[None])              # |y|²
    cross = None
    if x.shape[0] == 2:
        phase = carrier[0] * carrier[1].conj()                      # (F, T) complex
        cross = torch.einsum("jft,ft->jf", (gain[:, 0] * gain[:, 1]).to(phase.dtype), phase)
    y = _step(squared, cross, x, eps, scale)
    return em(y, x, iterations - 1, eps, scale)


def _check(shape: torch.Size, x: torch.Tensor) -> None:
    if len(shape) != 4 or x.shape != shape[1:]:
        raise ValueError(f"expected y (nb_sources, nb_channels, nb_bins, nb_frames) and x of its last three "
                         f"dimensions, got {tuple(shape)} and {tuple(x.shape)}")
    if x.shape[0] not in (1, 2):
        raise ValueError(f"the Wiener EM handles 1 or 2 channels, got {x.shape[0]}")


def _cross(y: torch.Tensor) -> torch.Tensor | None:
    """``Σ_t y0 conj(y1)``: ``(J, F)`` complex for stereo, None for mono."""
    return torch.linalg.vecdot(y[:, 1], y[:, 0]) if y.shape[1] == 2 else None


def _step(power: torch.Tensor, cross: torch.Tensor | None, x: torch.Tensor, eps: float,
          scale: float) -> torch.Tensor:
    """One EM step from the current estimates' ``|y|²`` ``(J, C, F, T)`` and ``Σ_t y0 conj(y1)``.

    EM on ``(y, x) / s`` equals EM on ``(y, x)`` with ``eps·s²`` in the weights and ``√eps·s²`` on
    ``C_xx``'s diagonal (``s = scale``).
    """
    s2 = float(scale) ** 2
    eps, reg = eps * s2, math.sqrt(eps) * s2
    v = power.mean(dim=1)                                           # (J, F, T)
    weight = eps + v.sum(-1)                                        # (J, F)
    if cross is None:                                               # mono: R_j is a number per bin
        vr = v * (power[:, 0].sum(-1) / weight)[..., None]          # v_j R_j
        return ((vr / (reg + vr.sum(0)))[:, None] * x[None]).to(x.dtype)
    nb_sources, _, nb_bins, nb_frames = power.shape
    r00 = power[:, 0].sum(-1) / weight                              # R_j: Hermitian, real diagonal
    r11 = power[:, 1].sum(-1) / weight
    r01 = cross / weight                                            # (J, F) complex
    # C_xx = √eps·I + Σ_j v_j R_j, its four real numbers per bin in one pass over v: (4, F, T)
    c00, c11, c01r, c01i = torch.einsum("jft,kjf->kft", v, torch.stack([r00, r11, r01.real, r01.imag]))
    c00, c11, c01 = c00 + reg, c11 + reg, torch.complex(c01r, c01i)
    det = c00 * c11 - (c01r.square() + c01i.square())
    z = torch.stack([(c11 * x[0] - c01 * x[1]) / det,               # z = C_xx⁻¹ x: (F, 2, T)
                     (c00 * x[1] - c01.conj() * x[0]) / det], dim=1)
    # R_j z for every source and channel at once: (F, J·C, 2) @ (F, 2, T)
    r = torch.stack([torch.stack([r00.to(r01.dtype), r01], -1),
                     torch.stack([r01.conj(), r11.to(r01.dtype)], -1)], dim=1)  # (J, C, F, 2)
    rz = torch.bmm(r.permute(2, 0, 1, 3).reshape(nb_bins, -1, 2), z)  # (F, J·C, T)
    rz = torch.view_as_real(rz).view(nb_bins, nb_sources, 2, nb_frames, 2).permute(1, 2, 0, 3, 4)
    out = torch.empty(power.shape + (2,), dtype=v.dtype)
    torch.mul(rz, v[:, None, ..., None], out=out)                   # y_j = v_j R_j z: (J, C, F, T)
    return torch.view_as_complex(out)


def power(y: torch.Tensor) -> torch.Tensor:
    """``|y|²`` of a complex tensor, real (one fused pass over the real and imaginary parts)."""
    yr = torch.view_as_real(y)
    return torch.addcmul(yr[..., 0].square(), yr[..., 1], yr[..., 1])
