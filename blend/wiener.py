"""The multichannel Wiener post-filter, through ``openunmix.filtering.wiener``, window by window.

The blended target estimates give magnitude spectrograms; the filter re-separates the mixture STFT
with them (Uhlich et al. 2017, Nugraha et al. 2016): ``iterations`` EM steps (0: the estimates'
magnitudes with the mixture phase, or soft masks with ``softmask``), optionally an extra
``residual`` source (mixture minus the targets). ``win_len`` has the meaning of umx's
``--wiener-win-len``: the filter runs independently on windows of that many STFT frames (time-local
spatial models) — here each window is also analysed and synthesised on its own (:mod:`blend.stft`),
so memory stays constant however long the song is.

Shapes: estimates ``(nb_targets, nb_channels, nb_timesteps)``, mixture
``(nb_channels, nb_timesteps)``, STFTs complex ``(..., nb_bins, nb_frames)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from blend.em import em, em_from_gains, power, rmul
from blend.stft import FrameGrid, analyze, hann, istft, process_song, stft
from core.errors import StemBlendError


class WienerError(StemBlendError, ValueError):
    """Invalid Wiener settings or inputs."""


#: how the EM is computed (same algorithm, same result to float rounding)
ENGINES = ("native", "openunmix")


@dataclass(frozen=True)
class WienerSettings:
    """Settings of the post-filter (names as in ``openunmix.filtering.wiener`` and umx's CLI).

    Attributes:
        iterations: EM iterations (umx ``--niter``); 0 keeps the initial estimates.
        softmask: initial estimates by ratio masks instead of magnitudes with the mixture phase.
        residual: add a source ``mixture - sum(targets)`` before EM (umx ``--residual``).
        win_len: frames per independent filter window (umx ``--wiener-win-len``); 0/None: whole song.
        eps: regularisation of ``wiener``.
        float64: run the filter in double precision (openunmix's advice; slower).
        engine: ``"native"`` (:mod:`blend.em`: openunmix's EM on native complex tensors, equal to
            float rounding and several times faster) or ``"openunmix"``
            (``openunmix.filtering.expectation_maximization`` itself).
    """

    iterations: int = 1
    softmask: bool = False
    residual: bool = False
    win_len: int | None = 300
    eps: float = 1e-10
    float64: bool = False
    engine: str = "native"

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise WienerError(f"wiener engine must be one of {list(ENGINES)}, got {self.engine!r}")
        if not isinstance(self.iterations, int) or self.iterations < 0:
            raise WienerError(f"wiener iterations must be an integer >= 0, got {self.iterations!r}")
        if self.win_len is not None and (not isinstance(self.win_len, int) or self.win_len < 0):
            raise WienerError(f"wiener win_len must be a number of frames >= 0 or null, got {self.win_len!r}")
        if not self.eps > 0:
            raise WienerError(f"wiener eps must be > 0, got {self.eps!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> WienerSettings:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            known = sorted(cls.__dataclass_fields__)
            raise WienerError(f"unknown wiener settings {sorted(unknown)}; known: {known}")
        return cls(**d)


def filter_frames(spec: torch.Tensor, mix_spec: torch.Tensor, settings: WienerSettings) -> torch.Tensor:
    """Wiener-filter one window of frames.

    Args:
        spec: ``(nb_targets, nb_channels, nb_bins, nb_frames)`` complex target estimates (only their
            magnitudes are used).
        mix_spec: ``(nb_channels, nb_bins, nb_frames)`` complex mixture STFT.

    Returns:
        ``(nb_targets [+1 residual], nb_channels, nb_bins, nb_frames)`` complex (complex64).
    """
    nb_sources = spec.shape[0] + int(settings.residual)
    if settings.iterations > 0 and nb_sources < 2:
        raise WienerError("EM needs at least two sources: estimate two targets or set residual: true")
    if settings.iterations == 0:
        return initial_estimates(spec, mix_spec, settings).to(torch.complex64)
    peak = float(power(mix_spec).max())
    if peak == 0:  # digital silence: every source is silent
        return torch.zeros((nb_sources,) + tuple(mix_spec.shape), dtype=torch.complex64)
    scale = max(1.0, math.sqrt(peak) / 10.0)  # openunmix.filtering.wiener's: a tenth of the peak, >= 1
    run = through_openunmix if settings.engine == "openunmix" else native
    y = run(spec, mix_spec, settings, scale)
    if not _finite(y) and not settings.float64:
        y = run(spec, mix_spec, replace(settings, float64=True), scale)
    if not _finite(y):  # singular covariances: keep the initial estimates
        warnings.warn("Wiener EM gave NaN on a window; using its initial estimates there", stacklevel=2)
        y = initial_estimates(spec, mix_spec, settings)
    return y.to(torch.complex64)


def _finite(y: torch.Tensor) -> bool:
    """No NaN/Inf anywhere (one reduction: they propagate into the sum)."""
    return bool(torch.isfinite(torch.view_as_real(y).sum()))


def native(
    spec: torch.Tensor, mix_spec: torch.Tensor, settings: WienerSettings, scale: float
) -> torch.Tensor:
    """The same computation as :func:`through_openunmix` by :mod:`blend.em` (shapes as
    :func:`filter_frames`; equality with openunmix is tested). Without residual the initial
    estimates are never built (:func:`blend.em.em_from_gains`). ``scale``: see :func:`through_openunmix`."""
    complex_dtype = torch.complex128 if settings.float64 else torch.complex64
    mix = mix_spec.to(complex_dtype)
    if settings.residual:
        y = initial_estimates(spec, mix_spec, settings)
        return em(y, mix, settings.iterations, settings.eps, scale)
    gain, carrier = _start(magnitude(spec.to(complex_dtype)), mix, settings)
    return em_from_gains(gain, carrier, mix, settings.iterations, settings.eps, scale)


def _start(mags: torch.Tensor, mix: torch.Tensor,
           settings: WienerSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """The initial estimates as ``gain (J, C, F, T) real × carrier (C, F, T) complex``: soft masks
    times the mixture (``|estimate| × mixture / Σ |estimates|``), or magnitudes times the mixture's
    phase (angle 0 where the mixture is 0)."""
    if settings.softmask:  # mags / Σ mags · mix, the division on the mixture (J times smaller)
        return mags, rmul((settings.eps + mags.sum(0)).reciprocal(), mix)
    return mags, torch.where(mix == 0, torch.ones((), dtype=mix.dtype), torch.sgn(mix))


def through_openunmix(spec: torch.Tensor, mix_spec: torch.Tensor, settings: WienerSettings,
                      scale: float) -> torch.Tensor:
    """``openunmix.filtering.wiener`` on our layout (shapes as :func:`filter_frames`).

    Its body, step by step: the initial estimates (:func:`initial_estimates`), the scaling by
    ``scale`` (``wiener``'s: a tenth of the mixture's peak magnitude, at least 1),
    ``openunmix.filtering.expectation_maximization``, and the scaling back. ``wiener`` itself is not
    called because its ``atan2`` writes 1 into the real part of the mixture STFT wherever it is
    exactly 0 (openunmix 1.x/5.0), which puts energy into digitally silent bins after EM.
    """
    from openunmix.filtering import expectation_maximization

    real = torch.float64 if settings.float64 else torch.float32
    y = torch.view_as_real(initial_estimates(spec, mix_spec, settings).to(real.to_complex()))
    y = y.permute(3, 2, 1, 4, 0).contiguous()  # (nb_frames, nb_bins, nb_channels, 2, nb_sources)
    x = torch.view_as_real(mix_spec.to(real.to_complex()).permute(2, 1, 0)).contiguous()
    y = expectation_maximization(y / scale, x / scale, settings.iterations, eps=settings.eps)[0] * scale
    # (nb_frames, nb_bins, nb_channels, 2, nb_sources) -> (nb_sources, nb_channels, nb_bins, nb_frames)
    y = y.permute(4, 2, 1, 0, 3).to(torch.float32).contiguous()
    return torch.view_as_complex(y)


def initial_estimates(spec: torch.Tensor, mix_spec: torch.Tensor, settings: WienerSettings) -> torch.Tensor:
    """What ``openunmix.filtering.wiener`` returns with ``iterations=0``, computed on complex tensors
    in place (no real/imaginary stacking, no transposes): magnitudes with the mixture phase, or soft
    masks, plus the residual. Shapes as :func:`filter_frames`; equality is tested."""
    complex_dtype = torch.complex128 if settings.float64 else torch.complex64
    spec, mix = spec.to(complex_dtype), mix_spec.to(complex_dtype)
    gain, carrier = _start(magnitude(spec), mix, settings)
    y = rmul(gain, carrier[None])
    if settings.residual:
        y = torch.cat([y, (mix - y.sum(0))[None]])
    return y


def magnitude(z: torch.Tensor) -> torch.Tensor:
    """``|z|`` of a complex tensor (``Tensor.abs`` is slower)."""
    return power(z).sqrt_()


def filter_song(
    estimates: np.ndarray,
    mixture: np.ndarray,
    settings: WienerSettings = WienerSettings(),
    n_fft: int = 4096,
    n_hop: int = 1024,
    progress: bool = False,
) -> np.ndarray:
    """Wiener-filter a whole song window by window (constant memory).

    Args:
        estimates: ``(nb_targets, nb_channels, nb_timesteps)`` blended estimates (array or memmap;
            not modified).
        mixture: ``(nb_channels, nb_timesteps)`` (not modified).
        settings: the filter settings.
        progress: show a tqdm bar over windows.

    Returns:
        ``(nb_targets [+1 residual], nb_channels, nb_timesteps)`` float32; the residual, if any, last.
    """
    _check_inputs(estimates, mixture)
    window = hann(n_fft)

    def block(blocks, k0, k1):
        est, mix = blocks
        return filter_frames(analyze(est, n_fft, n_hop, window), analyze(mix, n_fft, n_hop, window), settings)

    shape = (estimates.shape[0] + int(settings.residual),) + mixture.shape
    return process_song([estimates, mixture], shape, block, n_fft, n_hop, settings.win_len, progress,
                        "wiener")


def filter_song_whole(
    estimates: np.ndarray, mixture: np.ndarray, settings: WienerSettings = WienerSettings(),
    n_fft: int = 4096, n_hop: int = 1024,
) -> np.ndarray:
    """Reference implementation as ``openunmix.model.Separator`` does it: the whole song's STFT at
    once, the filter on ``win_len``-frame windows of it, one inverse STFT. Memory grows with the song;
    use :func:`filter_song`. Same shapes as :func:`filter_song`."""
    _check_inputs(estimates, mixture)
    length = mixture.shape[-1]
    spec, mix_spec = stft(estimates, n_fft, n_hop), stft(mixture, n_fft, n_hop)
    nb_frames = mix_spec.shape[-1]
    win = settings.win_len or nb_frames
    grid = FrameGrid(max(length, n_fft + 1), n_fft, n_hop)  # the same windows as filter_song
    parts = [filter_frames(spec[..., k0:k1], mix_spec[..., k0:k1], settings)
             for k0, k1 in grid.blocks(win, 0, nb_frames)]
    return istft(torch.cat(parts, dim=-1), length, n_fft, n_hop)


def _check_inputs(estimates, mixture) -> None:
    if mixture.ndim != 2:
        raise WienerError(f"mixture must be (nb_channels, nb_timesteps), got shape {mixture.shape}")
    if estimates.ndim != 3 or estimates.shape[1:] != mixture.shape:
        raise WienerError(f"estimates must be (nb_targets, {mixture.shape[0]}, {mixture.shape[1]}) to match "
                          f"the mixture, got shape {estimates.shape}")
