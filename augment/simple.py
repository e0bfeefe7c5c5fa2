"""Cheap transforms on stems ``(nb_samples, nb_sources, nb_channels, nb_timesteps)``.

Which library does what:

* ``channel_swap`` -> ``demucs.augment.FlipChannels`` (left/right swap, a fair coin per source):
  Uhlich et al. 2017, Défossez et al. 2021.
* ``gain`` -> ``demucs.augment.Scale`` (a gain uniform in [min, max] per source, 0.25..1.25 in the
  papers): Uhlich et al. 2017, Défossez et al. 2021.
* ``sign_flip`` -> ``demucs.augment.FlipSign`` (polarity inversion, a fair coin per source):
  Nachmani & Wolf 2019, Défossez et al. 2021.
* ``shift`` -> ``demucs.augment.Shift`` (a random offset of up to ``seconds``; the output is
  ``seconds`` shorter, as in demucs).
* ``time_reverse`` -> ``torch.flip`` along time: Nachmani & Wolf 2019.

The demucs modules draw from torch's global RNG; :func:`augment.base.demucs_rng` seeds them from
the transform's generator. They are built in training mode (their augmenting mode).
"""

from __future__ import annotations

import torch
from demucs.augment import FlipChannels, FlipSign, Scale, Shift

from augment.base import Transform, demucs_rng, register


@register("channel_swap")
class ChannelSwap(Transform):
    """Swap left and right of each selected source with probability 1/2 (``demucs`` FlipChannels).

    ``same: true`` swaps all selected sources together. Mono input passes unchanged.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.module = FlipChannels().train()

    def apply(self, wav, generator):
        with demucs_rng(generator, wav.device):
            return self.shared(wav, self.module)


@register("sign_flip")
class SignFlip(Transform):
    """Multiply each selected source by -1 with probability 1/2 (``demucs`` FlipSign)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.module = FlipSign().train()

    def apply(self, wav, generator):
        with demucs_rng(generator, wav.device):
            return self.shared(wav, self.module)


@register("gain")
class Gain(Transform):
    """Scale each selected source by a gain uniform in ``[min, max]`` (``demucs`` Scale).

    Args:
        min: lowest gain (linear), default 0.25.
        max: highest gain (linear), default 1.25.
    """

    def __init__(self, min: float = 0.25, max: float = 1.25, **kwargs):  # noqa: A002 - demucs names
        super().__init__(**kwargs)
        if not 0 <= min <= max:
            raise ValueError(f"gain: need 0 <= min <= max, got min={min}, max={max}")
        self.min, self.max = float(min), float(max)
        self.module = Scale(proba=1.0, min=self.min, max=self.max).train()

    def apply(self, wav, generator):
        with demucs_rng(generator, wav.device):
            # Scale multiplies in place: give it a copy.
            return self.shared(wav.clone(), self.module)

    def extra_repr(self):
        return f"min={self.min}, max={self.max}"


@register("time_reverse")
class TimeReverse(Transform):
    """Play the selected sources backwards (``torch.flip``); ``same: true`` (default) reverses them
    together, ``same: false`` flips a fair coin per source."""

    default_same = True

    def apply(self, wav, generator):
        if self.same:
            return torch.flip(wav, dims=[-1])
        coin = torch.rand(wav.shape[:2], generator=generator) < 0.5
        coin = coin.to(wav.device)[:, :, None, None]
        return torch.where(coin, torch.flip(wav, dims=[-1]), wav)


@register("shift")
class TimeShift(Transform):
    """Crop a random window of ``T - shift`` frames (``demucs`` Shift), ``shift = seconds * rate``.

    Independent offsets per source unless ``same: true``. Output length: ``T - shift`` whatever the
    draw (examples the gate skips keep their first ``T - shift`` frames, like demucs in eval mode).

    Args:
        seconds: largest offset in seconds (default 1.0).
    """

    def __init__(self, seconds: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if seconds < 0:
            raise ValueError(f"shift: seconds={seconds} is negative")
        self.seconds = float(seconds)
        self.frames = int(round(self.seconds * self.sample_rate))
        self.module = Shift(shift=self.frames, same=self.same).train()

    def output_length(self, length):
        if self.p == 0.0:
            return length
        if length <= self.frames:
            raise ValueError(f"shift: input of {length} frames is not longer than the shift ({self.frames})")
        return length - self.frames

    def apply(self, wav, generator):
        with demucs_rng(generator, wav.device):
            return self.module(wav)

    def extra_repr(self):
        return f"seconds={self.seconds}"
