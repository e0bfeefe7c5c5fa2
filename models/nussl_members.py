"""The ``nussl`` member: training-free classical separation through nussl.

How the four targets are formed (they always add up to the mixture, so the blend can weight them):

1. ``vocals``: the REPET-SIM foreground (Rafii & Pardo 2012), the non-repeating part of the mixture.
2. The background (mixture minus vocals) is split by HPSS (Fitzgerald 2010, median filtering):
   ``drums`` is the percussive part.
3. The harmonic part is split at ``bass_cutoff`` Hz with an STFT brick-wall mask:
   ``bass`` is below it, ``other`` is the rest.

It has no weights and no training; ``trainable`` is False. nussl is imported through
``core.compat.import_nussl`` (it needs SciPy's window functions restored).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from core.compat import import_nussl
from core.constants import SAMPLE_RATE, TARGETS
from models.base import Member
from models.registry import register
from models.spectral import istft, stft


@register("nussl")
class NusslMember(Member):
    """REPET-SIM + HPSS + low-pass split.

    Args:
        targets: must be the four MDX targets (any order).
        sample_rate, nb_channels: see :class:`models.base.Member`.
        bass_cutoff: crossover (Hz) between ``bass`` and ``other`` in the harmonic part.
        hpss_kernel: median-filter length of HPSS (nussl's ``kernel_size``).
        repet_max_frames: REPET-SIM's ``max_repeating_frames``.
        repet_min_distance: REPET-SIM's ``min_distance_between_frames`` (seconds).
    """

    trainable = False
    default_segment = 30.0
    default_overlap = 0.05

    def __init__(
        self,
        targets=TARGETS,
        sample_rate: int = SAMPLE_RATE,
        nb_channels: int = 2,
        bass_cutoff: float = 150.0,
        hpss_kernel: int = 31,
        repet_max_frames: int = 100,
        repet_min_distance: float = 1.0,
    ):
        super().__init__(targets, sample_rate, nb_channels)
        if sorted(self.targets) != sorted(TARGETS):
            raise ValueError(f"the nussl member estimates exactly {TARGETS}, got {self.targets}")
        self.bass_cutoff, self.hpss_kernel = float(bass_cutoff), int(hpss_kernel)
        self.repet_max_frames, self.repet_min_distance = int(repet_max_frames), float(repet_min_distance)
        self.context = sample_rate // 2
        self._nussl = None

    def forward(self, mix: Tensor) -> Tensor:
        """``(B, C, T)`` -> ``(B, S, C, T)``, one example at a time in numpy."""
        outs = [self._separate_one(example.detach().cpu().numpy()) for example in mix]
        return torch.from_numpy(np.stack(outs)).to(mix.dtype)

    def _separate_one(self, audio: np.ndarray) -> np.ndarray:
        """``(C, T)`` -> ``(S, C, T)`` float32 in ``self.targets`` order."""
        nussl = self._nussl or import_nussl()
        self._nussl = nussl
        primitive = nussl.separation.primitive
        signal = nussl.AudioSignal(audio_data_array=audio, sample_rate=self.sample_rate)
        background, _ = primitive.RepetSim(
            signal,
            max_repeating_frames=self.repet_max_frames,
            min_distance_between_frames=self.repet_min_distance,
        )()
        background = _fit(background.audio_data, audio.shape[-1])
        vocals = audio - background
        back_signal = nussl.AudioSignal(audio_data_array=background, sample_rate=self.sample_rate)
        harmonic, _ = primitive.HPSS(back_signal, kernel_size=self.hpss_kernel)()
        harmonic = _fit(harmonic.audio_data, audio.shape[-1])
        drums = background - harmonic
        bass = self._low_pass(harmonic)
        stems = {"bass": bass, "drums": drums, "other": harmonic - bass, "vocals": vocals}
        return np.stack([stems[t] for t in self.targets]).astype(np.float32)

    def _low_pass(self, audio: np.ndarray, n_fft: int = 4096, n_hop: int = 1024) -> np.ndarray:
        """Brick-wall STFT low-pass at ``bass_cutoff``: ``(C, T)`` -> ``(C, T)``."""
        window = torch.hann_window(n_fft, dtype=torch.float64)
        spec = stft(torch.from_numpy(audio.astype(np.float64)), n_fft, n_hop, window)
        cutoff = int(round(self.bass_cutoff * n_fft / self.sample_rate)) + 1
        spec[..., cutoff:, :] = 0
        return istft(spec, n_fft, n_hop, window, audio.shape[-1]).numpy()


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    """nussl may return a few samples more or less; crop or pad ``(C, T)`` to ``length``."""
    audio = audio[..., :length]
    return np.pad(audio, ((0, 0), (0, length - audio.shape[-1])))
