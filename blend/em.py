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
time-frequency bin and shared by every source (``y_j = v_j R_j (C_xx⁻¹ x)``), and the work runs on
the frames-major memory ``torch.stft`` leaves (:func:`_frames_major`): several times less time for
4 stereo sources (``benchmarks/bench_wiener.py``). Mono and stereo only, as openunmix. Inputs in any
memory layout give the same result.

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
    y, xt = _frames_major(y), _frames_major(x)
    for _ in range(iterations):
        y = _step(power(y), _cross(y), xt, eps, scale)
    return _frames_major(y)


def em_from_gains(
    gain: torch.Tensor, carrier: torch.Tensor, x: torch.Tensor, iterations: int, eps: float = 1e-10,
    scale: float = 1.0,
) -> torch.Tensor:
    """:func:`em` from ``y = gain · carrier`` without building ``y``: the first step needs only
    ``|y|² = gain² |carrier|²`` and, for stereo,
    ``Σ_t y0 conj(y1) = Σ_t gain0 gain1 carrier0 conj(carrier1)``.

    ``openunmix.filtering.wiener``'s two starts are of that form: the estimates' magnitudes with the
    mixture's phase (``gain = |estimate|``, ``carrier = x / |x|``, 1 where ``x`` is 0) and soft masks
    (``gain = |estimate|``, ``carrier = x / Σ |estimates|``: the division on the mixture, which is
    ``nb_sources`` times smaller).

    Args:
        gain: ``(nb_sources, nb_channels, nb_bins, nb_frames)`` real.
        carrier: ``(nb_channels, nb_bins, nb_frames)`` complex.
        x, iterations, eps, scale: as :func:`em` (``iterations >= 1``).
    """
    _check(gain.shape, x)
    if iterations < 1:
        raise ValueError("em_from_gains needs at least one iteration")
    gain, carrier, xt = _frames_major(gain), _frames_major(carrier), _frames_major(x)
    squared = gain.square().mul_(power(carrier)[None])              # |y|²: (J, C, T, F)
    cross = None
    if xt.shape[0] == 2:
        # Σ_t g0 g1 carrier0 conj(carrier1): a product and a sum over the outer frame axis, (J, F)
        cross = rmul(gain[:, 0] * gain[:, 1], (carrier[0] * carrier[1].conj())[None]).sum(1)
    y = _step(squared, cross, xt, eps, scale)
    return em(_frames_major(y), x, iterations - 1, eps, scale)


def _frames_major(t: torch.Tensor) -> torch.Tensor:
    """Swap the last two axes, ``(..., nb_bins, nb_frames) <-> (..., nb_frames, nb_bins)`` (a view).

    The EM works on ``(..., nb_frames, nb_bins)``: ``torch.stft`` (:func:`blend.stft.analyze`) stores
    its result frames-major, so that view is contiguous, every elementwise pass runs over contiguous
    memory, the sums over frames are outer reductions, and the result is laid out as the inverse FFT
    of :func:`blend.stft.synthesize` reads it.
    """
    return t.transpose(-1, -2)


def _check(shape: torch.Size, x: torch.Tensor) -> None:
    if len(shape) != 4 or x.shape != shape[1:]:
        raise ValueError(f"expected y (nb_sources, nb_channels, nb_bins, nb_frames) and x of its last three "
                         f"dimensions, got {tuple(shape)} and {tuple(x.shape)}")
    if x.shape[0] not in (1, 2):
        raise ValueError(f"the Wiener EM handles 1 or 2 channels, got {x.shape[0]}")


def _cross(y: torch.Tensor) -> torch.Tensor | None:
    """``Σ_t y0 conj(y1)`` of frames-major ``y`` ``(J, C, T, F)``: ``(J, F)`` complex for stereo, None
    for mono."""
    return torch.linalg.vecdot(y[:, 1], y[:, 0], dim=-2) if y.shape[1] == 2 else None


def _step(power: torch.Tensor, cross: torch.Tensor | None, x: torch.Tensor, eps: float,
          scale: float) -> torch.Tensor:
    """One EM step from the current estimates' ``|y|²`` ``(J, C, T, F)`` and ``Σ_t y0 conj(y1)``
    ``(J, F)``, all frames-major (:func:`_frames_major`); returns the new ``y`` ``(J, C, T, F)``.

    EM on ``(y, x) / s`` equals EM on ``(y, x)`` with ``eps·s²`` in the weights and ``√eps·s²`` on
    ``C_xx``'s diagonal (``s = scale``).
    """
    s2 = float(scale) ** 2
    eps, reg = eps * s2, math.sqrt(eps) * s2
    v = power.mean(dim=1)                                           # (J, T, F)
    weight = eps + v.sum(1)                                         # (J, F)
    if cross is None:                                               # mono: R_j is a number per bin
        vr = v * (power[:, 0].sum(1) / weight)[:, None]             # v_j R_j
        return rmul((vr / (reg + vr.sum(0)))[:, None].to(x.real.dtype), x[None])
    r00 = power[:, 0].sum(1) / weight                               # R_j: Hermitian, real diagonal
    r11 = power[:, 1].sum(1) / weight
    r01 = cross / weight                                            # (J, F) complex
    # C_xx = √eps·I + Σ_j v_j R_j: its four real numbers per bin, (4, T, F), one pass per source
    r = torch.stack([r00, r11, r01.real, r01.imag], 1)[:, :, None]  # (J, 4, 1, F)
    c = v[0, None] * r[0]
    for j in range(1, v.shape[0]):
        c.addcmul_(v[j, None], r[j])
    c00, c11, c01r, c01i = c
    c00, c11, c01 = c00 + reg, c11 + reg, torch.complex(c01r, c01i)
    inv_det = 1.0 / (c00 * c11 - (c01r.square() + c01i.square()))
    z0 = rmul(inv_det, rmul(c11, x[0]) - c01 * x[1])               # z = C_xx⁻¹ x: (T, F) each
    z1 = rmul(inv_det, rmul(c00, x[1]) - c01.conj() * x[0])
    # y_j = v_j R_j z: channel 0 = v (r00 z0 + r01 z1), channel 1 = v (conj(r01) z0 + r11 z1); every
    # big product complex x complex with the bins contiguous in both (vectorised; a real x complex
    # product would broadcast over the real/imaginary pair instead)
    vc = v.to(x.dtype)                                              # (J, T, F) complex
    vz0, vz1 = vc * z0, vc * z1
    r = torch.stack([r00.to(x.dtype), r01, r01.conj(), r11.to(x.dtype)], 1)[:, :, None]  # (J, 4, 1, F)
    out = torch.empty(power.shape, dtype=x.dtype)
    torch.mul(vz0, r[:, 0], out=out[:, 0]).addcmul_(vz1, r[:, 1])
    torch.mul(vz0, r[:, 2], out=out[:, 1]).addcmul_(vz1, r[:, 3])
    return out


def rmul(r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``r · z`` for real ``r`` and complex ``z`` (broadcast) on the real view, without the complex
    copy of ``r`` torch would make. Used where ``r`` is as large as ``z`` or ``z`` is small; a big
    product with ``r`` broadcast over the bins vectorises better as complex × complex (:func:`_step`)."""
    return torch.view_as_complex(torch.view_as_real(z) * r.unsqueeze(-1))


def power(y: torch.Tensor) -> torch.Tensor:
    """``|y|²`` of a complex tensor, real (one fused pass over the real and imaginary parts)."""
    yr = torch.view_as_real(y)
    return torch.addcmul(yr[..., 0].square(), yr[..., 1], yr[..., 1])
