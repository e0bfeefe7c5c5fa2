"""From member estimates to the ensemble's targets: blend (per band) then Wiener-filter.

:class:`Renderer` holds the blending weights, the Wiener settings and the STFT size, and does the
frame-domain work of one window (:meth:`Renderer.block`); :meth:`Renderer.render` applies it to
whole songs already in memory (tuning, tests), and :class:`blend.ensemble.Ensemble` applies it chunk
by chunk while the members run.

Shapes: member estimates ``(nb_targets, nb_channels, nb_timesteps)``, one per member; mixture
``(nb_channels, nb_timesteps)``; result ``(nb_targets [+1 residual], nb_channels, nb_timesteps)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from blend.stft import analyze, hann, process_song
from blend.weights import BlendWeights, band_of_bins, blend_stft, blend_time
from blend.wiener import WienerSettings, filter_frames


@dataclass(frozen=True)
class StftSettings:
    """STFT of the frame-domain stages (umx's defaults)."""

    n_fft: int = 4096
    n_hop: int = 1024


class Renderer:
    """Blend + post-filter.

    Args:
        weights: the blending weights (members × targets, optionally per band).
        wiener: Wiener settings, or ``None`` for no post-filter.
        stft: STFT size.
        sample_rate: rate of the audio (for the band edges).
    """

    def __init__(
        self, weights: BlendWeights, wiener: WienerSettings | None = None,
        stft: StftSettings = StftSettings(), sample_rate: float = 44100.0,
    ):
        self.weights, self.wiener, self.stft = weights, wiener, stft
        self.window = hann(stft.n_fft)
        self.bands = band_of_bins(weights.edges_hz, stft.n_fft, sample_rate) if weights.nb_bands > 1 else None

    @property
    def frame_domain(self) -> bool:
        """Whether rendering needs the STFT (Wiener filter or per-band weights)."""
        return self.wiener is not None or self.weights.nb_bands > 1

    @property
    def win_len(self) -> int | None:
        return self.wiener.win_len if self.wiener is not None else 300

    @property
    def nb_outputs(self) -> int:
        return len(self.weights.targets) + int(self.wiener is not None and self.wiener.residual)

    def block(self, blocks: Sequence[np.ndarray]) -> torch.Tensor:
        """Frame-domain work of one window.

        Args:
            blocks: one ``(nb_targets, nb_channels, n)`` block per member, then the mixture block
                ``(nb_channels, n)``, all covering the window's frames.

        Returns:
            ``(nb_outputs, nb_channels, nb_bins, nb_frames)`` complex.
        """
        *members, mixture = blocks
        n_fft, n_hop = self.stft.n_fft, self.stft.n_hop
        if self.bands is not None:
            specs = [analyze(m, n_fft, n_hop, self.window) for m in members]
            spec = blend_stft(specs, self.weights, self.bands)
        else:
            spec = analyze(blend_time(members, self.weights), n_fft, n_hop, self.window)
        if self.wiener is None:
            return spec
        return filter_frames(spec, analyze(mixture, n_fft, n_hop, self.window), self.wiener)

    def render(
        self, estimates: Sequence[np.ndarray], mixture: np.ndarray, progress: bool = False
    ) -> np.ndarray:
        """Blend and filter a whole song (memory: inputs + output + one window).

        Args:
            estimates: one ``(nb_targets, nb_channels, nb_timesteps)`` array per member (not modified).
            mixture: ``(nb_channels, nb_timesteps)``.

        Returns:
            ``(nb_outputs, nb_channels, nb_timesteps)`` float32.
        """
        if not self.frame_domain:
            return blend_time(estimates, self.weights)
        shape = (self.nb_outputs,) + mixture.shape
        return process_song(list(estimates) + [mixture], shape, lambda b, k0, k1: self.block(b),
                            self.stft.n_fft, self.stft.n_hop, self.win_len, progress, "blend")


def fold_residual(out: np.ndarray, targets: Sequence[str], residual_to: str | None) -> np.ndarray:
    """Drop the Wiener residual source (last of ``out``), adding it to ``residual_to`` first.

    Args:
        out: ``(nb_targets [+1], nb_channels, nb_timesteps)``; modified in place.

    Returns:
        ``(nb_targets, nb_channels, nb_timesteps)`` (a view of ``out``).
    """
    if out.shape[0] == len(targets):
        return out
    if residual_to is not None:
        out[list(targets).index(residual_to)] += out[len(targets)]
    return out[:len(targets)]
