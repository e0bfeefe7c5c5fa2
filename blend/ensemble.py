"""Running an ensemble on a song with bounded memory: members chunk by chunk, blend, Wiener filter.

The song is walked in chunks of about ``runtime.chunk_seconds``. Each member separates the chunk
plus ``runtime.context_seconds`` of real audio on each side (cropped afterwards), so no member
output is ever held for the whole song. With a frame-domain stage (Wiener filter or per-band λ) a
chunk is a whole number of Wiener windows: every window sees exactly the frames it would see in a
whole-song run, and its inverse STFT is overlap-added straight into the output buffer
(:mod:`blend.stft`). Memory: the mixture, the output stems, and one chunk of member outputs.

Shapes: mixture ``(nb_channels, nb_timesteps)``; result ``(nb_targets, nb_channels, nb_timesteps)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from tqdm import tqdm

from blend import members as members_mod
from blend.config import EnsembleConfig
from blend.render import Renderer, fold_residual
from blend.stft import FrameGrid, OverlapAdd, process_blocks, reflect_indices
from blend.weights import blend_time, make_weights
from core.errors import StemBlendError

#: ``sink(start, block)``: consecutive final output blocks ``(nb_targets, nb_channels, n)`` of a song
Sink = Callable[[int, np.ndarray], None]


class Ensemble:
    """The members of a config, ready to separate songs.

    Args:
        config: the ensemble config.
        members: already loaded members in the config's order (default: load them).
        wiener: apply the config's Wiener filter (False: blend only).
        enhancer: apply the config's per-target enhancers, if any.
        segment, overlap: override every member's chunking of ``separate``.
        progress: tqdm bar over chunks.
    """

    def __init__(
        self, config: EnsembleConfig, members: Sequence | None = None, wiener: bool = True,
        enhancer: bool = True, segment: float | None = None, overlap: float | None = None,
        progress: bool = False,
    ):
        self.config = config
        self.members = list(members) if members is not None else [members_mod.load(s) for s in config.members]
        if len(self.members) != len(config.members):
            raise StemBlendError(f"got {len(self.members)} members for the config's {len(config.members)}")
        for spec, member in zip(config.members, self.members):
            if int(member.sample_rate) != config.sample_rate:
                raise StemBlendError(f"member '{spec.name}' runs at {member.sample_rate} Hz, "
                                     f"the ensemble at {config.sample_rate} Hz")
        available = np.stack([members_mod.availability(m, config.targets) for m in self.members])
        w = config.weights
        self.weights = make_weights(w.values, w.members, w.targets, w.edges_hz, available, config.sample_rate)
        self.renderer = Renderer(self.weights, config.wiener if wiener else None, config.stft,
                                 config.sample_rate)
        self.enhancers = _load_enhancers(config) if enhancer and config.enhancer else {}
        self.segment, self.overlap, self.progress = segment, overlap, progress
        #: seconds spent, accumulated over songs: members vs. blend + Wiener + enhancers
        self.timings = {"members": 0.0, "blend": 0.0}

    @property
    def targets(self) -> tuple[str, ...]:
        return self.config.targets

    def _run_members(self, chunk: np.ndarray) -> list[np.ndarray]:
        start = time.perf_counter()
        outs = []
        for spec, member in zip(self.config.members, self.members):
            segment = spec.segment if self.segment is None else self.segment
            overlap = spec.overlap if self.overlap is None else self.overlap
            outs.append(members_mod.run(member, chunk, self.targets, segment, overlap))
        self.timings["members"] += time.perf_counter() - start
        return outs

    def separate(self, mixture: np.ndarray, sink: Sink | None = None) -> np.ndarray | None:
        """Separate one song.

        Args:
            mixture: ``(nb_channels, nb_timesteps)`` float32 at the config's sample rate.
            sink: stream the result instead of returning it: ``sink(start, block)`` receives
                consecutive ``(nb_targets, nb_channels, n)`` float32 blocks from sample 0 to the end,
                each as soon as it is final, and no output buffer for the whole song is held
                (with enhancers, which need whole stems, one block covering the whole song).

        Returns:
            ``(nb_targets, nb_channels, nb_timesteps)`` float32 (the Wiener residual, if any, is added
            to ``residual_to`` or dropped); None with a ``sink``.
        """
        mixture = np.ascontiguousarray(mixture, dtype=np.float32)
        length = mixture.shape[-1]
        n_fft = self.config.stft.n_fft
        if self.renderer.frame_domain and length <= n_fft:  # too short for the frame grid
            padded = np.pad(mixture, [(0, 0), (0, n_fft + 1 - length)])
            return _deliver(np.ascontiguousarray(self.separate(padded)[..., :length]), sink)
        if sink is not None and not self.enhancers:
            self._walk(mixture, None, lambda start, block: self._emit(sink, start, block))
            return None
        out = np.zeros((self.renderer.nb_outputs,) + mixture.shape, np.float32)
        self._walk(mixture, out, None)
        start = time.perf_counter()
        out = fold_residual(out, self.targets, self.config.residual_to)
        for target, enhance in self.enhancers.items():
            s = self.targets.index(target)
            out[s] = enhance(out[s], mixture)
        self.timings["blend"] += time.perf_counter() - start
        return _deliver(out, sink)

    def _walk(self, mixture: np.ndarray, out: np.ndarray | None, emit) -> None:
        """Fill ``out`` (or stream blocks to ``emit``) chunk by chunk."""
        if self.renderer.frame_domain:
            self._frames(mixture, out, emit)
        else:
            self._time(mixture, out, emit)

    def _emit(self, sink: Sink, start: int, block: np.ndarray) -> None:
        """A final block of the outputs (residual included) -> the sink, as targets."""
        block = fold_residual(np.array(block, dtype=np.float32), self.targets, self.config.residual_to)
        sink(start, block)

    def _context(self) -> int:
        """Samples of real audio around each chunk: the config's, or more if a member needs it."""
        own = max([int(getattr(m, "context", 0) or 0) for m in self.members] + [0])
        return max(int(round(self.config.runtime.context_seconds * self.config.sample_rate)), own)

    def _time(self, mixture: np.ndarray, out: np.ndarray | None, emit) -> None:
        length, ctx = mixture.shape[-1], self._context()
        step = int(self.config.runtime.chunk_seconds * self.config.sample_rate) or length
        for a in tqdm(range(0, length, step), desc="ensemble", unit="chunk", disable=not self.progress):
            b = min(length, a + step)
            a0, b0 = max(0, a - ctx), min(length, b + ctx)
            estimates = self._run_members(mixture[:, a0:b0])
            start = time.perf_counter()
            block = out[..., a:b] if out is not None else None
            block = blend_time([e[..., a - a0:b - a0] for e in estimates], self.weights, out=block)
            self.timings["blend"] += time.perf_counter() - start
            if emit is not None:
                emit(a, block)

    def _frames(self, mixture: np.ndarray, out: np.ndarray | None, emit) -> None:
        cfg, r = self.config, self.renderer
        length, ctx = mixture.shape[-1], self._context()
        grid = FrameGrid(length, cfg.stft.n_fft, cfg.stft.n_hop)
        ola = OverlapAdd(out, grid, r.window, shape=(r.nb_outputs, mixture.shape[0]), emit=emit)
        windows = list(grid.blocks(r.win_len))
        # chunks are whole numbers of filter windows: every window sees what a whole-song run sees
        chunk_frames = cfg.runtime.chunk_seconds * cfg.sample_rate / cfg.stft.n_hop
        win = r.win_len or grid.nb_frames
        per_chunk = max(1, int(round(chunk_frames / win))) if chunk_frames else len(windows)
        groups = [windows[i:i + per_chunk] for i in range(0, len(windows), per_chunk)]
        for group in tqdm(groups, desc="ensemble", unit="chunk", disable=not self.progress):
            idx = reflect_indices(*grid.sample_range(group[0][0], group[-1][1]), length)
            a0, b0 = max(0, int(idx.min()) - ctx), min(length, int(idx.max()) + 1 + ctx)
            estimates = self._run_members(mixture[:, a0:b0])
            start = time.perf_counter()
            process_blocks(estimates + [mixture[:, a0:b0]], ola, lambda blocks, *_: r.block(blocks), group,
                           offset=a0)
            self.timings["blend"] += time.perf_counter() - start
        ola.close()


def _deliver(out: np.ndarray, sink: Sink | None) -> np.ndarray | None:
    """Return the whole result, or hand it to the sink as one block."""
    if sink is None:
        return out
    sink(0, out)
    return None


def _load_enhancers(config: EnsembleConfig) -> dict:
    """Per-target enhancers ``fn(estimate (C, T), mixture (C, T)) -> (C, T)`` from the ``enhancer``
    package (``enhancer.load(spec: dict, base_dir) -> callable``)."""
    try:
        import enhancer
    except ImportError as exc:
        raise StemBlendError(f"{config.path or 'ensemble config'}: 'enhancer' is configured for "
                             f"{sorted(config.enhancer)} but the enhancer package is not available ({exc}); "
                             "remove the section or pass enhancer=False") from None
    base = config.path.parent if config.path else None
    return {t: enhancer.load(spec, base) for t, spec in config.enhancer.items() if spec}
