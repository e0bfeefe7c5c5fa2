"""Block-wise STFT analysis and overlap-add synthesis.

Frame-domain work on a song (blending per frequency band, the multichannel Wiener filter) runs on
windows of ``win_len`` STFT frames at a time, so the song's full STFT is never held in memory: a
block takes the samples its frames need, analyses them, is processed, and its inverse frames are
overlap-added straight into the output waveform buffer.

The frame grid is exactly ``torch.stft(center=True, pad_mode="reflect")`` with a periodic Hann
window, and :class:`OverlapAdd` divides by the same window envelope as ``torch.istft``; processing a
song block by block therefore gives the same result as one whole-song STFT/ISTFT (up to float
rounding) whenever the per-frame processing does not look across blocks.

Shapes: signals are ``(..., nb_timesteps)``; STFTs are complex ``(..., nb_bins, nb_frames)`` with
``nb_bins = n_fft // 2 + 1`` (torch's layout).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm


@dataclass(frozen=True)
class FrameGrid:
    """The STFT frame grid of a song of ``length`` samples (``center=True`` as in ``torch.stft``).

    Frame ``k`` covers original samples ``[k * n_hop - n_fft // 2, k * n_hop - n_fft // 2 + n_fft)``;
    samples outside ``[0, length)`` are reflections.
    """

    length: int
    n_fft: int = 4096
    n_hop: int = 1024

    def __post_init__(self):
        if self.n_fft % 2 or self.n_fft <= 0:
            raise ValueError(f"n_fft must be a positive even number, got {self.n_fft}")
        if not 0 < self.n_hop <= self.n_fft // 2:
            raise ValueError(f"n_hop must be in (0, n_fft/2], got {self.n_hop} for n_fft {self.n_fft}")
        if self.length <= self.n_fft // 2:
            raise ValueError(
                f"signal of {self.length} samples is too short for n_fft {self.n_fft} "
                f"(needs more than {self.n_fft // 2}); pad it first"
            )

    @property
    def pad(self) -> int:
        return self.n_fft // 2

    @property
    def nb_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def nb_frames(self) -> int:
        return 1 + self.length // self.n_hop

    def sample_range(self, k0: int, k1: int) -> tuple[int, int]:
        """Original-sample range ``[s0, s1)`` that frames ``[k0, k1)`` read (may leave ``[0, length)``)."""
        return k0 * self.n_hop - self.pad, (k1 - 1) * self.n_hop - self.pad + self.n_fft

    def final_sample(self, k: int) -> int:
        """Samples before this index are complete once frames ``[0, k)`` have been overlap-added."""
        if k >= self.nb_frames:
            return self.length
        return max(0, min(self.length, k * self.n_hop - self.pad))

    def blocks(
        self, win_len: int | None, k_start: int = 0, k_stop: int | None = None
    ) -> Iterator[tuple[int, int]]:
        """Frame windows ``(k0, k1)`` of ``win_len`` frames (``None``/0: one window).

        A last window shorter than half of ``win_len`` is merged into the one before it: a filter
        window of one or two frames gives singular spatial covariances (NaN in the EM).
        """
        k_stop = self.nb_frames if k_stop is None else k_stop
        step = win_len if win_len else max(1, k_stop - k_start)
        starts = list(range(k_start, k_stop, step))
        if len(starts) > 1 and k_stop - starts[-1] < max(1, step // 2):
            starts.pop()
        for i, k0 in enumerate(starts):
            yield k0, starts[i + 1] if i + 1 < len(starts) else k_stop


def reflect_indices(s0: int, s1: int, length: int) -> np.ndarray:
    """Sample indices ``s0 .. s1-1`` mapped into ``[0, length)`` by reflection (numpy ``reflect`` mode)."""
    idx = np.arange(s0, s1)
    period = 2 * (length - 1)
    idx = np.abs(idx) % period if period > 0 else np.zeros_like(idx)
    return np.where(idx >= length, period - idx, idx)


def take(x: np.ndarray, s0: int, s1: int, length: int, offset: int = 0) -> np.ndarray:
    """Samples ``[s0, s1)`` of a song of ``length`` samples, reflected outside ``[0, length)``.

    Args:
        x: ``(..., n)`` array holding song samples ``[offset, offset + n)``.
        s0, s1: wanted range in song coordinates.
        length: the song's length.
        offset: song index of ``x[..., 0]``.

    Returns:
        ``(..., s1 - s0)`` array (a view when no reflection is needed).
    """
    if s0 >= 0 and s1 <= length:
        a, b = s0 - offset, s1 - offset
        if a < 0 or b > x.shape[-1]:
            raise IndexError(f"samples [{s0}, {s1}) are outside the buffer "
                             f"[{offset}, {offset + x.shape[-1]})")
        return x[..., a:b]
    idx = reflect_indices(s0, s1, length) - offset
    if idx.min() < 0 or idx.max() >= x.shape[-1]:
        raise IndexError(f"samples [{s0}, {s1}) reflect outside the buffer "
                         f"[{offset}, {offset + x.shape[-1]})")
    return np.take(x, idx, axis=-1)


def hann(n_fft: int, dtype=torch.float32) -> torch.Tensor:
    """Periodic Hann window, as ``torch.hann_window`` (and open-unmix) use."""
    return torch.hann_window(n_fft, periodic=True, dtype=dtype)


def analyze(block: np.ndarray | torch.Tensor, n_fft: int, n_hop: int, window: torch.Tensor) -> torch.Tensor:
    """STFT of a block of samples already aligned on the frame grid (no padding).

    Args:
        block: ``(..., (nb_frames - 1) * n_hop + n_fft)`` real signal.

    Returns:
        ``(..., nb_bins, nb_frames)`` complex tensor.
    """
    x = torch.as_tensor(np.ascontiguousarray(block)) if isinstance(block, np.ndarray) else block
    shape = x.shape
    spec = torch.stft(
        x.reshape(-1, shape[-1]).to(window.dtype), n_fft=n_fft, hop_length=n_hop, window=window,
        center=False, onesided=True, return_complex=True,
    )
    return spec.reshape(shape[:-1] + spec.shape[-2:])


def synthesize(spec: torch.Tensor, n_fft: int, n_hop: int, window: torch.Tensor) -> torch.Tensor:
    """Windowed inverse frames overlap-added, *not* divided by the window envelope.

    Args:
        spec: ``(..., nb_bins, nb_frames)`` complex; fastest when stored frames-major (as
            ``torch.stft`` and :mod:`blend.em` leave it): the inverse FFT then reads contiguous frames.

    Returns:
        ``(..., (nb_frames - 1) * n_hop + n_fft)`` real tensor.
    """
    shape = spec.shape
    nb_frames = shape[-1]
    frames = torch.fft.irfft(spec.transpose(-1, -2).reshape(-1, nb_frames, shape[-2]), n=n_fft, dim=-1)
    frames.mul_(window.to(frames.dtype))                            # (B, nb_frames, n_fft)
    out_len = (nb_frames - 1) * n_hop + n_fft
    if n_fft % n_hop:
        out = F.fold(frames.transpose(1, 2), output_size=(1, out_len), kernel_size=(1, n_fft),
                     stride=(1, n_hop))
        return out.reshape(shape[:-2] + (out_len,))
    # hop divides n_fft: overlap-add as n_fft / n_hop shifted adds of whole hops (faster than fold)
    k = n_fft // n_hop
    out = frames.new_zeros(frames.shape[0], nb_frames + k - 1, n_hop)
    parts = frames.view(frames.shape[0], nb_frames, k, n_hop)
    for r in range(k):
        out[:, r:r + nb_frames] += parts[:, :, r]
    return out.reshape(shape[:-2] + (out_len,))


def envelope(grid: FrameGrid, s0: int, s1: int, window: torch.Tensor) -> np.ndarray:
    """Sum of squared windows over all frames of ``grid`` at original samples ``[s0, s1)``."""
    w2 = (window.double() ** 2).numpy()
    p = np.arange(s0, s1) + grid.pad
    inside = len(p) and p[0] >= grid.n_fft and p[-1] < (grid.nb_frames - 1) * grid.n_hop
    if inside and grid.n_fft % grid.n_hop == 0:
        # away from both ends every sample is under n_fft / n_hop frames: the envelope has period n_hop
        return w2.reshape(-1, grid.n_hop).sum(0)[p % grid.n_hop]
    env = np.zeros(len(p))
    for r in range(-(-grid.n_fft // grid.n_hop)):
        k = p // grid.n_hop - r
        off = p - k * grid.n_hop
        ok = (k >= 0) & (k < grid.nb_frames) & (off < grid.n_fft)
        env += np.where(ok, w2[np.minimum(off, grid.n_fft - 1)], 0.0)
    return env


class OverlapAdd:
    """Accumulates processed STFT blocks into a waveform and finalises completed samples.

    Two modes:

    * a whole-song buffer ``out`` (``(..., length)``, zeroed here) that holds the inverse STFT of
      every block added once :meth:`close` returns it;
    * streaming (``out=None``, ``shape`` and ``emit`` given): only the samples not final yet are held
      (at most one block plus ``n_fft``), and each run of final samples is handed to
      ``emit(start, samples)`` as ``(..., n)`` float32, in order, as soon as no later frame can
      touch it. ``samples`` is a view that is reused afterwards: consume or copy it in ``emit``.

    Args:
        out: ``(..., length)`` float buffer, or None to stream.
        grid: the song's frame grid.
        window: the analysis window (also used for synthesis).
        shape: ``(...)``, the leading dimensions of the output when streaming.
        emit: the streaming consumer.
    """

    def __init__(self, out: np.ndarray | None, grid: FrameGrid, window: torch.Tensor,
                 shape: tuple[int, ...] = (), emit: Callable[[int, np.ndarray], None] | None = None):
        if (out is None) == (emit is None):
            raise ValueError("give either an output buffer or an emit function")
        if out is not None and out.shape[-1] != grid.length:
            raise ValueError(f"output buffer has {out.shape[-1]} samples, the grid {grid.length}")
        self.grid, self.window, self.emit = grid, window, emit
        self.acc = out if out is not None else np.zeros(tuple(shape) + (0,), np.float32)
        self.acc[...] = 0
        self.base = 0  # song sample of self.acc[..., 0]
        self.done = 0  # samples [0, done) are final
        self.end = 0   # samples [done, end) hold partial sums
        self.next_frame = 0

    @property
    def out(self) -> np.ndarray | None:
        """The whole-song buffer (None when streaming)."""
        return self.acc if self.emit is None else None

    def add(self, spec: torch.Tensor, k0: int) -> None:
        """Overlap-add frames ``[k0, k0 + nb_frames)`` given as ``(..., nb_bins, nb_frames)`` complex."""
        k1 = k0 + spec.shape[-1]
        signal = synthesize(spec, self.grid.n_fft, self.grid.n_hop, self.window).numpy()
        s0, s1 = self.grid.sample_range(k0, k1)
        a, b = max(s0, self.done), min(s1, self.grid.length)
        if a < b:
            self._reserve(b)
            self.acc[..., a - self.base:b - self.base] += signal[..., a - s0:b - s0]
            self.end = max(self.end, b)
        self.next_frame = max(self.next_frame, k1)
        self._finalize(self.grid.final_sample(self.next_frame))

    def _reserve(self, b: int) -> None:
        """Streaming: make the accumulator reach song sample ``b``."""
        need = b - self.base - self.acc.shape[-1]
        if need > 0:
            pad = np.zeros(self.acc.shape[:-1] + (need,), self.acc.dtype)
            self.acc = np.concatenate([self.acc, pad], axis=-1)

    def _finalize(self, end: int) -> None:
        if end <= self.done:
            return
        env = envelope(self.grid, self.done, end, self.window)
        final = self.acc[..., self.done - self.base:end - self.base]
        final /= env.astype(self.acc.dtype)
        self.done = end
        if self.emit is not None:
            self.emit(end - final.shape[-1], final)
            # keep the partial sums after `end` at the front of the accumulator
            rest = max(0, self.end - end)
            self.acc[..., :rest] = self.acc[..., end - self.base:end - self.base + rest]
            self.acc[..., rest:] = 0
            self.base = end

    def close(self) -> np.ndarray | None:
        """Check every frame was added; return the whole-song buffer (None when streaming)."""
        if self.next_frame < self.grid.nb_frames:
            raise RuntimeError(f"only {self.next_frame} of {self.grid.nb_frames} frames were added")
        self._finalize(self.grid.length)
        return self.out


def stft(x: np.ndarray, n_fft: int = 4096, n_hop: int = 1024) -> torch.Tensor:
    """Whole-signal STFT ``(..., T) -> (..., nb_bins, nb_frames)`` on :class:`FrameGrid`'s grid."""
    t = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    shape = t.shape
    spec = torch.stft(
        t.reshape(-1, shape[-1]), n_fft=n_fft, hop_length=n_hop, window=hann(n_fft), center=True,
        pad_mode="reflect", onesided=True, return_complex=True,
    )
    return spec.reshape(shape[:-1] + spec.shape[-2:])


def istft(spec: torch.Tensor, length: int, n_fft: int = 4096, n_hop: int = 1024) -> np.ndarray:
    """Whole-signal inverse of :func:`stft`: ``(..., nb_bins, nb_frames) -> (..., length)`` float32."""
    shape = spec.shape
    x = torch.istft(
        spec.reshape(-1, shape[-2], shape[-1]), n_fft=n_fft, hop_length=n_hop,
        window=hann(n_fft, dtype=spec.real.dtype), center=True, length=length,
    )
    return x.reshape(shape[:-2] + (length,)).numpy().astype(np.float32)


#: ``fn(blocks, k0, k1) -> (..., nb_bins, k1 - k0)`` complex: the frame-domain work of one window,
#: given each input's samples for frames ``[k0, k1)`` (``(..., (k1 - k0 - 1) * n_hop + n_fft)``).
BlockFn = Callable[[list, int, int], torch.Tensor]


def process_blocks(
    inputs: Sequence[np.ndarray], ola: OverlapAdd, fn: BlockFn, windows: Sequence[tuple[int, int]],
    offset: int = 0, progress: bool = False, desc: str = "",
) -> None:
    """Run ``fn`` on each window of frames and overlap-add the results.

    Args:
        inputs: ``(..., n)`` arrays holding song samples ``[offset, offset + n)``; they must cover
            every sample the windows read (reflections included).
        ola: the song's accumulator (its grid gives the frames).
        fn: the per-window work.
        windows: ``(k0, k1)`` frame ranges, in order (:meth:`FrameGrid.blocks`).
    """
    grid = ola.grid
    for k0, k1 in tqdm(windows, desc=desc, unit="win", disable=not progress, leave=False):
        s0, s1 = grid.sample_range(k0, k1)
        ola.add(fn([take(x, s0, s1, grid.length, offset) for x in inputs], k0, k1), k0)


def process_song(
    inputs: Sequence[np.ndarray], out_shape: tuple[int, ...], fn: BlockFn, n_fft: int = 4096,
    n_hop: int = 1024, win_len: int | None = 300, progress: bool = False, desc: str = "",
) -> np.ndarray:
    """Window-by-window frame-domain processing of whole songs held in ``inputs``.

    Args:
        inputs: ``(..., nb_timesteps)`` arrays (numpy or memmap; never modified).
        out_shape: ``(..., nb_timesteps)`` shape of the result.

    Returns:
        float32 array of ``out_shape``: the inverse STFT of ``fn``'s frames.
    """
    length = out_shape[-1]
    if length <= n_fft:  # too short for the reflect-padded grid: zero-pad, process, crop
        padded = [np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n_fft + 1 - length)]) for x in inputs]
        res = process_song(padded, out_shape[:-1] + (n_fft + 1,), fn, n_fft, n_hop, win_len)
        return np.ascontiguousarray(res[..., :length])
    grid = FrameGrid(length, n_fft, n_hop)
    ola = OverlapAdd(np.zeros(out_shape, np.float32), grid, hann(n_fft))
    process_blocks(inputs, ola, fn, list(grid.blocks(win_len)), progress=progress, desc=desc)
    return ola.close()
