"""Expensive transforms: pitch shift, tempo change and formant shift with Rubber Band.

Which library does what:

* Pitch shift and tempo change: ``pedalboard.time_stretch`` (Spotify's binding of the Rubber Band
  library), with ``preserve_formants=True`` by default, i.e. a pitch shift that keeps the
  spectral envelope (Cohen-Hadria et al. 2019). ``high_quality=True`` by default: measured on a
  440 Hz tone, ``high_quality=False`` misses a -100 cent shift by about 25 cents.
* Formant shift (pedalboard exposes Rubber Band's formant *preservation* but not a formant *scale*):
  ``julius.resample_frac`` resamples by the ratio ``a/b`` (the best fraction with ``b <= 1000`` of
  ``2 ** (cents / 1200)``, at most 0.75 cent off over -300..300 cents), which moves pitch and
  formants up together when played at the original rate; then ``pedalboard.time_stretch``
  restores the duration and shifts the pitch back by exactly ``1200 * log2(a/b)`` cents *with*
  formant preservation. Net effect: the formants (spectral envelope) move by ``cents`` (within
  0.75 cent), the fundamental and the duration stay.

Units: ``cents`` (100 per semitone); ``factor`` is a tempo (speed) factor, ``> 1`` is faster and
shorter, as Rubber Band's ``stretch_factor``: a factor ``f`` turns ``T`` frames into ``round(T / f)``.

Lengths: pitch and formant shifts keep the length. A tempo change crops every output to
``floor(T / max(1, f_max))`` frames, where ``f_max`` is the largest factor the config can draw, so
that every example of a batch has the same length whatever the draw (as ``demucs.repitch`` does).
Use ``Pipeline.input_length`` to know how many frames to load. With ``crop: false`` (used when
rendering whole songs into the cache) the stretched length ``round(T / f)`` is kept.

The selected sources of one example go through one Rubber Band call as ``nb_sources * nb_channels``
channels, so they share one time map (``same: true``, the default). With ``same: false`` each source
draws its own values and is processed alone.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from augment.base import Transform, Values, register

#: largest resampling denominator of the formant shift (julius cost grows with it; 0.35 s per 6 s stereo)
_MAX_DENOMINATOR = 1000
#: input frames processed beyond the strict need when a tempo change only needs part of the input.
_MARGIN = 8192


def _fit(x: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis of ``x`` to ``length``."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])


def stretch(audio: np.ndarray, rate: int, factor: float = 1.0, cents: float = 0.0,
            preserve_formants: bool = True, high_quality: bool = True,
            transient_mode: str = "crisp") -> np.ndarray:
    """Rubber Band through ``pedalboard.time_stretch``.

    Args:
        audio: ``(nb_channels, nb_timesteps)`` float32; any channel count.
        factor: tempo factor (> 1 faster); output ``round(nb_timesteps / factor)`` frames.
        cents: pitch shift.

    Returns:
        ``(nb_channels, round(nb_timesteps / factor))`` float32.
    """
    import pedalboard

    return pedalboard.time_stretch(
        np.ascontiguousarray(audio, dtype=np.float32), float(rate), stretch_factor=float(factor),
        pitch_shift_in_semitones=float(cents) / 100.0, high_quality=high_quality,
        transient_mode=transient_mode, preserve_formants=preserve_formants,
    )


def formant_shift(audio: np.ndarray, rate: int, cents: float, high_quality: bool = True) -> np.ndarray:
    """Move the spectral envelope by ``cents`` and keep pitch and length (julius + Rubber Band).

    Args:
        audio: ``(nb_channels, nb_timesteps)`` float32.

    Returns:
        ``(nb_channels, nb_timesteps)`` float32.
    """
    import julius

    ratio = Fraction(2.0 ** (cents / 1200.0)).limit_denominator(_MAX_DENOMINATOR)
    a, b = ratio.numerator, ratio.denominator
    if a == b:
        return audio.copy()
    length = audio.shape[-1]
    # Fewer samples played at the same rate: pitch and formants both up by a/b.
    squeezed = julius.resample_frac(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), a, b)
    squeezed = squeezed.numpy()
    exact_cents = 1200.0 * math.log2(a / b)
    out = stretch(squeezed, rate, factor=squeezed.shape[-1] / length, cents=-exact_cents,
                  preserve_formants=True, high_quality=high_quality)
    return _fit(out, length)


class RubberBandTransform(Transform):
    """Shared loop: draw values per example (or per source), call :meth:`process` on numpy audio."""

    expensive = True
    default_same = True
    #: parameter name -> identity value
    params: dict[str, float] = {}

    def __init__(self, high_quality: bool = True, **kwargs):
        values = {k: kwargs.pop(k) for k in list(kwargs) if k in self.params}
        super().__init__(**kwargs)
        self.high_quality = bool(high_quality)
        self.values = {k: Values.parse(values.get(k, ident), f"{self.name}.{k}")
                       for k, ident in self.params.items()}

    def process(self, audio: np.ndarray, length: int, **values) -> np.ndarray:
        """``(n, T)`` float32 numpy -> ``(n, length)``."""
        raise NotImplementedError

    def is_identity(self, **values) -> bool:
        return all(values[k] == ident for k, ident in self.params.items())

    def apply(self, wav, generator):
        b, s, c, t = wav.shape
        length = self.output_length(t)
        groups = 1 if self.same else s
        draws = {k: v.draw(b * groups, generator).reshape(b, groups) for k, v in self.values.items()}
        audio = wav.detach().cpu().numpy()
        out = np.empty((b, s, c, length), dtype=np.float32)
        for i in range(b):
            for g in range(groups):
                values = {k: float(d[i, g]) for k, d in draws.items()}
                part = audio[i] if self.same else audio[i, g : g + 1]
                n_src = part.shape[0]
                flat = part.reshape(n_src * c, t)
                if self.is_identity(**values):
                    result = flat[:, :length]
                else:
                    result = self.process(flat, length, **values)
                out[i, slice(None) if self.same else slice(g, g + 1)] = result.reshape(n_src, c, length)
        return torch.from_numpy(out).to(wav.device)

    def extra_repr(self):
        parts = []
        for k, v in self.values.items():
            parts.append(f"{k}=U{list(v.support())}" if v.is_uniform else f"{k}={list(v.choices)}")
        return ", ".join(parts)


@register("repitch")
class Repitch(RubberBandTransform):
    """Pitch shift and tempo change in one Rubber Band pass (like ``demucs.repitch``).

    Args:
        cents: pitch shift, ``{choices: [...]}``, ``{uniform: [lo, hi]}`` or a number (default 0).
        factor: tempo factor, same forms (default 1).
        preserve_formants: keep the spectral envelope while shifting pitch (default true).
        crop: crop to ``floor(T / max(1, f_max))`` frames (default true); false keeps ``round(T / f)``.
        high_quality: Rubber Band's high-quality mode (default true).
    """

    params = {"cents": 0.0, "factor": 1.0}

    def __init__(self, preserve_formants: bool = True, crop: bool = True,
                 transient_mode: str = "crisp", **kwargs):
        super().__init__(**kwargs)
        self.preserve_formants = bool(preserve_formants)
        self.transient_mode = transient_mode
        low, high = self.values["factor"].support() if "factor" in self.values else (1.0, 1.0)
        if low <= 0:
            raise ValueError(f"{self.name}: tempo factors must be > 0, got {low}")
        self.max_factor = max(1.0, high)
        self.changes_length = (low, high) != (1.0, 1.0)
        self.crop = bool(crop) or not self.changes_length
        if not self.crop and (not self.same or self.sources != self.targets):
            raise ValueError(f"{self.name}: crop: false needs same: true and all sources "
                             "(one length per song)")

    def output_length(self, length):
        if self.p == 0.0 or not self.crop:
            return length
        return int(math.floor(length / self.max_factor))

    def __call__(self, wav, generator):
        if self.crop:
            return super().__call__(wav, generator)
        # Uncropped (whole songs for the cache): the length follows the draw, one example at a time.
        if wav.dim() != 4 or wav.shape[0] != 1:
            raise ValueError(f"{self.name}: crop: false takes one example (1, S, C, T), "
                             f"got {tuple(wav.shape)}")
        if self.p == 0.0 or not bool(torch.rand(1, generator=generator)[0] < self.p):
            return wav
        s, c, t = wav.shape[1:]
        values = {"cents": 0.0, "factor": 1.0}
        values.update({k: float(v.draw(1, generator)[0]) for k, v in self.values.items()})
        if values["cents"] == 0.0 and values["factor"] == 1.0:
            return wav.clone()
        out = stretch(wav[0].detach().cpu().numpy().reshape(s * c, t), self.sample_rate, values["factor"],
                      values["cents"], self.preserve_formants, self.high_quality, self.transient_mode)
        return torch.from_numpy(out.reshape(1, s, c, -1)).to(wav.device)

    def process(self, audio, length, cents=0.0, factor=1.0):
        # Only the frames that land in the cropped output need stretching (plus a margin).
        need = min(audio.shape[-1], int(math.ceil(length * factor)) + _MARGIN)
        out = stretch(audio[:, :need], self.sample_rate, factor, cents, self.preserve_formants,
                      self.high_quality, self.transient_mode)
        return _fit(out, length)


@register("pitch_shift")
class PitchShift(Repitch):
    """Pitch shift by ``cents`` keeping the length and (by default) the formants; see :class:`Repitch`."""

    params = {"cents": 0.0}


@register("time_stretch")
class TimeStretch(Repitch):
    """Tempo change by ``factor`` (> 1 faster) keeping the pitch; see :class:`Repitch` for lengths."""

    params = {"factor": 1.0}


@register("formant_shift")
class FormantShift(RubberBandTransform):
    """Move the formants by ``cents`` keeping pitch and length (julius + Rubber Band, see module doc).

    Args:
        cents: ``{choices: [...]}``, ``{uniform: [lo, hi]}`` or a number (Cohen-Hadria et al. 2019:
            choices -150, -100, 0, 100, 150 on the vocals).
    """

    params = {"cents": 0.0}

    def process(self, audio, length, cents):
        return _fit(formant_shift(audio, self.sample_rate, cents, self.high_quality), length)
