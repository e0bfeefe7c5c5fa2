"""STFT, inverse STFT and segment-wise spectrogram processing with overlap-add reconstruction.

The enhancer works on the complex STFT (``torch.stft``, periodic Hann window, ``center=True``,
reflect padding). A whole song's stereo spectrogram is too big to hold for long songs, so
:func:`process_segments` runs the network on blocks of ``segment`` frames, each extended by
``context`` frames of real neighbouring spectrogram on either side; it keeps only the block's own
frames, turns them back into windowed waveform frames and overlap-adds them into the output, which
is finally divided by the summed squared windows exactly as ``torch.istft`` does.

Because the enhancer never strides or pools over time, a frame's output depends only on
``receptive_frames`` neighbours; with ``context >= receptive_frames`` the segment-wise result is the
whole-signal result ``istft(net(stft(x)))`` up to float rounding, whatever the segment length, and
the phase of every frame is the one the network produced (no cross-fading of independently
processed chunks, hence no phase cancellation at segment borders).

Shapes: waveforms ``(nb_channels, nb_timesteps)``; spectrograms complex
``(nb_channels, nb_bins, nb_frames)`` with ``nb_bins = n_fft // 2 + 1``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm


def _window(n_fft: int, dtype=torch.float32) -> Tensor:
    return torch.hann_window(n_fft, periodic=True, dtype=dtype)


def stft(x: Tensor, n_fft: int, n_hop: int) -> Tensor:
    """Complex STFT of ``(..., T)`` real signals: ``(..., n_fft // 2 + 1, 1 + T // n_hop)``.

    Signals of at most ``n_fft // 2`` samples are zero-padded first (reflect padding needs more).
    """
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    spec = torch.stft(flat, n_fft, n_hop, window=_window(n_fft, x.dtype).to(x.device), center=True,
                      pad_mode="reflect", return_complex=True)
    return spec.reshape(shape[:-1] + spec.shape[-2:])


def istft(spec: Tensor, length: int, n_fft: int, n_hop: int) -> Tensor:
    """Inverse of :func:`stft`: ``(..., F, N)`` complex to ``(..., length)`` real (differentiable)."""
    shape = spec.shape
    flat = spec.reshape(-1, shape[-2], shape[-1])
    window = _window(n_fft, spec.real.dtype).to(spec.device)
    x = torch.istft(flat, n_fft, n_hop, window=window, center=True, length=length)
    return x.reshape(shape[:-2] + (length,))


def nb_frames(length: int, n_hop: int) -> int:
    """Frames of a ``center=True`` STFT of ``length`` samples."""
    return 1 + length // n_hop


def _reflected(x: Tensor, start: int, stop: int) -> Tensor:
    """Samples ``[start, stop)`` of ``x (..., T)`` with reflection outside ``[0, T)`` (``np.pad`` reflect)."""
    length = x.shape[-1]
    if start >= 0 and stop <= length:
        return x[..., start:stop]
    idx = torch.arange(start, stop)
    period = 2 * (length - 1)
    idx = idx.abs() % period
    idx = torch.where(idx >= length, period - idx, idx)
    return x[..., idx]


def _frames(x: Tensor, k0: int, k1: int, n_fft: int, n_hop: int, window: Tensor) -> Tensor:
    """STFT frames ``[k0, k1)`` of the ``center=True`` grid of ``x (C, T)``: ``(C, F, k1 - k0)``."""
    pad = n_fft // 2
    block = _reflected(x, k0 * n_hop - pad, (k1 - 1) * n_hop - pad + n_fft)
    return torch.stft(block, n_fft, n_hop, window=window, center=False, return_complex=True)


def process_segments(
    fn: Callable[[Tensor, Tensor], Tensor],
    estimate: Tensor,
    mixture: Tensor,
    n_fft: int,
    n_hop: int,
    segment: int = 256,
    context: int = 8,
    progress: bool = False,
) -> Tensor:
    """Run a spectrogram-to-spectrogram ``fn`` on a song block by block, with overlap-add synthesis.

    Args:
        fn: ``fn(estimate_spec, mixture_spec) -> spec``, all complex ``(C, F, n)``.
        estimate: ``(C, T)`` float waveform of the separated stem.
        mixture: ``(C, T)`` float waveform of the mixture.
        n_fft, n_hop: STFT grid (periodic Hann window, ``center=True``).
        segment: frames produced per block (``<= 0``: the whole song in one block).
        context: extra frames on each side of a block, cropped after ``fn``; exact results need
            ``context >= receptive field`` of ``fn`` in frames.
        progress: tqdm bar over blocks.

    Returns:
        ``(C, T)`` float waveform, equal to ``istft(fn(stft(estimate), stft(mixture)))``.
    """
    if estimate.shape != mixture.shape or estimate.dim() != 2:
        raise ValueError(f"expected two (C, T) signals of one shape, got {tuple(estimate.shape)} "
                         f"and {tuple(mixture.shape)}")
    channels, length = estimate.shape
    pad = n_fft // 2
    if length <= pad:  # too short for reflect padding: process a zero-padded copy
        padded = F.pad(torch.stack([estimate, mixture]), (0, pad + 1 - length))
        return process_segments(fn, padded[0], padded[1], n_fft, n_hop, segment, context)[:, :length]
    window = _window(n_fft, estimate.dtype)
    total = nb_frames(length, n_hop)
    segment = total if segment <= 0 else segment
    out = torch.zeros(channels, length + n_fft, dtype=estimate.dtype)
    envelope = torch.zeros(length + n_fft, dtype=estimate.dtype)
    blocks = range(0, total, segment)
    for k0 in tqdm(blocks, desc="enhancer", unit="segment", disable=not progress, leave=False):
        k1 = min(total, k0 + segment)
        a, b = max(0, k0 - context), min(total, k1 + context)
        spec = fn(_frames(estimate, a, b, n_fft, n_hop, window), _frames(mixture, a, b, n_fft, n_hop, window))
        spec = spec[..., k0 - a:k1 - a]
        _overlap_add(out, envelope, spec, k0, n_fft, n_hop, window)
    envelope = envelope[pad:pad + length]
    if bool((envelope < 1e-11).any()):
        raise ValueError(f"window envelope vanishes: n_hop {n_hop} is too large for n_fft {n_fft}")
    return out[:, pad:pad + length] / envelope


def _overlap_add(out: Tensor, envelope: Tensor, spec: Tensor, k0: int, n_fft: int, n_hop: int,
                 window: Tensor) -> None:
    """Add the windowed inverse frames of ``spec (C, F, n)`` (first frame ``k0``) into ``out (C, T')``.

    ``envelope (T',)`` accumulates the squared window at the same positions (padded coordinates).
    """
    frames = torch.fft.irfft(spec, n=n_fft, dim=-2) * window[:, None]  # (C, n_fft, n)
    n = frames.shape[-1]
    span = (n - 1) * n_hop + n_fft
    start = k0 * n_hop
    out[:, start:start + span] += F.fold(frames, (1, span), (1, n_fft), stride=(1, n_hop))[:, 0, 0]
    squared = (window ** 2)[None, :, None].expand(1, n_fft, n)
    envelope[start:start + span] += F.fold(squared, (1, span), (1, n_fft), stride=(1, n_hop))[0, 0, 0]


def as_tensor(audio) -> Tensor:
    """float32 tensor view of a numpy array or tensor."""
    if isinstance(audio, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return audio.float()
