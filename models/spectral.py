"""Spectrogram-domain members: STFT helpers and a base class for magnitude-mask networks.

A :class:`SpectralMember` computes the mixture STFT, asks its network for one non-negative
magnitude estimate per target and reuses the mixture phase (Open-Unmix with ``niter=0``); the
blend's Wiener filter refines later. Subclasses implement :meth:`SpectralMember.estimate`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from core.constants import SAMPLE_RATE, TARGETS
from models.base import Member


def bandwidth_to_bin(bandwidth: float | None, n_fft: int, sample_rate: int) -> int:
    """Number of STFT bins up to ``bandwidth`` Hz (all ``n_fft // 2 + 1`` bins when None)."""
    nb_bins = n_fft // 2 + 1
    if not bandwidth:
        return nb_bins
    return min(nb_bins, int(round(bandwidth * n_fft / sample_rate)) + 1)


def stft(audio: Tensor, n_fft: int, n_hop: int, window: Tensor) -> Tensor:
    """Complex STFT.

    Args:
        audio: ``(..., nb_timesteps)``.

    Returns:
        ``(..., nb_bins, nb_frames)`` complex.
    """
    shape = audio.shape
    spec = torch.stft(
        audio.reshape(-1, shape[-1]), n_fft, n_hop, window=window, center=True, return_complex=True
    )
    return spec.reshape(shape[:-1] + spec.shape[-2:])


def istft(spec: Tensor, n_fft: int, n_hop: int, window: Tensor, length: int) -> Tensor:
    """Inverse of :func:`stft`: ``(..., nb_bins, nb_frames)`` complex to ``(..., length)``."""
    shape = spec.shape
    audio = torch.istft(
        spec.reshape((-1,) + shape[-2:]), n_fft, n_hop, window=window, center=True, length=length
    )
    return audio.reshape(shape[:-2] + (length,))


class SpectralMember(Member):
    """Magnitude-mask member on an STFT with mixture phase.

    Args:
        targets, sample_rate, nb_channels: see :class:`models.base.Member`.
        n_fft: STFT size.
        n_hop: STFT hop.
        bandwidth: highest frequency (Hz) the network sees; ``None``: all bins.
        context_frames: STFT frames of context each side for exact chunking.
    """

    default_segment = 20.0
    default_overlap = 0.05

    def __init__(
        self,
        targets=TARGETS,
        sample_rate: int = SAMPLE_RATE,
        nb_channels: int = 2,
        n_fft: int = 2048,
        n_hop: int = 512,
        bandwidth: float | None = 11000.0,
        context_frames: int = 8,
    ):
        super().__init__(targets, sample_rate, nb_channels)
        self.n_fft, self.n_hop = int(n_fft), int(n_hop)
        self.nb_bins = n_fft // 2 + 1
        self.max_bin = bandwidth_to_bin(bandwidth, n_fft, sample_rate)
        self.alignment = self.n_hop
        self.context = (context_frames + 2) * self.n_hop + self.n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # per-bin input normalisation, fitted by prepare() and trained with the rest
        self.input_mean = nn.Parameter(torch.zeros(self.max_bin))
        self.input_scale = nn.Parameter(torch.ones(self.max_bin))

    def features(self, magnitude: Tensor) -> Tensor:
        """Normalised log-magnitude input ``(B, C, max_bin, N)`` from ``(B, C, F, N)``."""
        x = torch.log1p(magnitude[..., : self.max_bin, :])
        return (x - self.input_mean[:, None]) * self.input_scale[:, None]

    def estimate(self, magnitude: Tensor) -> Tensor:
        """Non-negative magnitude estimates.

        Args:
            magnitude: mixture ``(nb_samples, nb_channels, nb_bins, nb_frames)``.

        Returns:
            ``(nb_samples, nb_targets, nb_channels, nb_bins, nb_frames)``.
        """
        raise NotImplementedError

    def spectrogram(self, audio: Tensor) -> Tensor:
        """Complex STFT ``(..., nb_bins, nb_frames)`` of ``(..., nb_timesteps)`` audio."""
        return stft(audio, self.n_fft, self.n_hop, self.window)

    def forward(self, mix: Tensor) -> Tensor:
        """``(B, C, T)`` -> ``(B, S, C, T)``: magnitude estimates with the mixture phase."""
        spec = self.spectrogram(mix)
        magnitude = spec.abs()
        estimates = self.estimate(magnitude)
        phase = spec / magnitude.clamp_min(1e-8)
        return istft(estimates * phase[:, None], self.n_fft, self.n_hop, self.window, mix.shape[-1])

    def loss(self, mix: Tensor, stems: Tensor) -> Tensor:
        """Mean squared error between estimated and reference magnitudes (Open-Unmix's loss)."""
        estimates = self.estimate(self.spectrogram(mix).abs())
        return torch.nn.functional.mse_loss(estimates, self.spectrogram(stems).abs())

    @torch.no_grad()
    def prepare(self, batches) -> None:
        """Set the input normalisation to the mean and 1/std of the log-magnitude per bin."""
        frames = [torch.log1p(self.spectrogram(mix).abs()[..., : self.max_bin, :]) for mix, _ in batches]
        if not frames:
            return
        x = torch.cat([f.transpose(-1, -2).reshape(-1, self.max_bin) for f in frames])
        self.input_mean.copy_(x.mean(0))
        self.input_scale.copy_(1.0 / x.std(0).clamp_min(1e-3))


def masks_from_logits(logits: Tensor, kind: str = "softmax") -> Tensor:
    """Masks ``(B, S, C, F, N)`` in ``[0, 1]`` from network outputs of the same shape.

    ``kind``: ``softmax`` (masks sum to one over targets), ``sigmoid`` (independent), or ``ratio``
    (Spleeter: sigmoid masks, then each target's squared mask over the sum of squared masks).
    """
    if kind == "softmax":
        return torch.softmax(logits, dim=1)
    masks = torch.sigmoid(logits)
    if kind == "sigmoid":
        return masks
    if kind == "ratio":
        power = masks.square() + 1e-10 / masks.shape[1]
        return power / power.sum(dim=1, keepdim=True)
    raise ValueError(f"unknown mask kind '{kind}' (softmax, sigmoid or ratio)")


def extend_bins(masks: Tensor, nb_bins: int, top: int = 16) -> Tensor:
    """Extend masks ``(..., max_bin, N)`` to ``(..., nb_bins, N)`` with the mean of the ``top``
    highest bins (Spleeter's ``average`` mask extension)."""
    missing = nb_bins - masks.shape[-2]
    if missing <= 0:
        return masks
    fill = masks[..., -top:, :].mean(dim=-2, keepdim=True)
    return torch.cat([masks, fill.expand(*masks.shape[:-2], missing, masks.shape[-1])], dim=-2)
