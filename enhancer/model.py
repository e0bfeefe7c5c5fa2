"""The base enhancer: a small complex-spectrogram U-Net that cleans one separated stem.

It sees the complex STFT of a separated stem *and* of the mixture (real and imaginary parts, so
magnitude and phase), and predicts two complex masks per channel and time-frequency bin::

    Y = E * (1 + m_e) + X * m_x

``E`` the estimate's STFT, ``X`` the mixture's, ``m_e`` and ``m_x`` bounded complex masks
(``tanh`` on real and imaginary parts). ``m_e`` rescales and rotates what the separator kept;
``m_x`` brings back what it lost (smeared transients, masked partials) or subtracts bleed, both with
the mixture's own phase. The last layer is zero-initialised (the "zero convolution" of ControlNet),
so an untrained enhancer is exactly the identity ``Y = E``.

Layout: a band-split input convolution (``band`` bins per band, stride ``band`` in frequency), a
U-Net that halves the number of bands twice with 3x3 convolutions, a bottleneck with a ``Linear``
that mixes all bands of a frame (harmonics far apart in frequency) between two 3x3 convolutions,
and a decoder back to the band grid; a per-bin 1x1 head then reads the band features together
with that bin's own input features. Time is never strided and no layer pools over time (no batch
or group norm), so the output at a frame depends on ``receptive_frames`` frames on either side
only: this is what makes segment-wise processing exact (``enhancer.spectral``).

Shapes: complex spectrograms ``(nb_samples, nb_channels, nb_bins, nb_frames)``; features
``(nb_samples, nb_features, nb_bins, nb_frames)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class EnhancerConfig:
    """Hyper-parameters of :class:`PhaseEnhancer` (stored in every checkpoint).

    Attributes:
        n_fft, n_hop: STFT size and hop (periodic Hann window, ``center=True``).
        nb_channels: audio channels (2: stereo; the channels are processed jointly).
        band: frequency bins per band of the input convolution.
        widths: channels at the band grid, after the first and after the second halving.
        power: compression exponent of the complex input features (``z |z|^(power-1)``).
        sample_rate: Hz (for the frequency-position feature and the loss weights).
    """

    n_fft: int = 2048
    n_hop: int = 512
    nb_channels: int = 2
    band: int = 8
    widths: tuple[int, int, int] = (32, 64, 96)
    power: float = 0.5
    sample_rate: int = 44100

    @property
    def nb_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def nb_bands(self) -> int:
        return -(-self.nb_bins // self.band)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["widths"] = list(self.widths)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> EnhancerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown enhancer config keys {unknown} (known: {sorted(known)})")
        data = dict(data)
        if "widths" in data:
            data["widths"] = tuple(int(w) for w in data["widths"])
        return cls(**data)


def _halved(n: int) -> int:
    """Length after a kernel-3, stride-2, padding-1 convolution."""
    return (n - 1) // 2 + 1


class PhaseEnhancer(nn.Module):
    """Complex-mask enhancer of one separated stem (see the module docstring).

    Args:
        config: hyper-parameters; keyword arguments override its fields.
    """

    #: input features per audio channel: estimate and mixture, compressed real/imag/magnitude
    FEATURES_PER_CHANNEL = 6
    #: output values per audio channel: real/imag of m_e and m_x
    OUTPUTS_PER_CHANNEL = 4

    def __init__(self, config: EnhancerConfig | None = None, **overrides):
        super().__init__()
        config = config or EnhancerConfig()
        if overrides:
            config = EnhancerConfig.from_dict({**config.to_dict(), **overrides})
        self.config = config
        c = config.nb_channels
        w0, w1, w2 = config.widths
        nb_in = self.FEATURES_PER_CHANNEL * c + 1  # + frequency position
        nb_bands = config.nb_bands
        self.bands_1, self.bands_2 = _halved(nb_bands), _halved(_halved(nb_bands))
        self.split = nn.Conv2d(nb_in, w0, (config.band, 3), stride=(config.band, 1), padding=(0, 1))
        self.down1 = nn.Conv2d(w0, w1, 3, stride=(2, 1), padding=1)
        self.down2 = nn.Conv2d(w1, w2, 3, stride=(2, 1), padding=1)
        self.mid1 = nn.Conv2d(w2, w2, 3, padding=1)
        self.freq_mix = nn.Linear(self.bands_2, self.bands_2)
        self.mid2 = nn.Conv2d(w2, w2, 3, padding=1)
        self.up2 = nn.Conv2d(w2, w1, 1)
        self.dec1 = nn.Conv2d(w1, w1, 3, padding=1)
        self.up1 = nn.Conv2d(w1, w0, 1)
        self.dec0 = nn.Conv2d(w0, w0, 3, padding=1)
        self.out = nn.Conv2d(w0, self.OUTPUTS_PER_CHANNEL * c * config.band, 1)
        nn.init.zeros_(self.out.weight)  # zero convolution: the untrained enhancer is the identity
        nn.init.zeros_(self.out.bias)
        window = torch.hann_window(config.n_fft, periodic=True)
        #: STFT magnitude of a unit-RMS white signal, so that features are about unit scale
        self.register_buffer("stft_gain", window.pow(2).sum().sqrt(), persistent=False)
        freqs = torch.linspace(0.0, 1.0, config.nb_bins)
        self.register_buffer("freq_position", freqs.sqrt()[:, None], persistent=False)

    @property
    def receptive_frames(self) -> int:
        """Frames on either side of a frame that can change its output (3-tap time convolutions)."""
        return sum(1 for m in self.modules() if isinstance(m, nn.Conv2d) and m.kernel_size[1] == 3)

    def features(self, estimate: Tensor, mixture: Tensor, scale: Tensor) -> Tensor:
        """Network input from the two spectrograms.

        Args:
            estimate, mixture: complex ``(B, C, F, N)``.
            scale: ``(B,)`` waveform RMS of the song's mixture (a song-level constant).

        Returns:
            ``(B, 6 C + 1, F, N)`` float.
        """
        norm = (scale.to(estimate.real.dtype) * self.stft_gain + 1e-8)[:, None, None, None]
        parts = []
        for spec in (estimate, mixture):
            z = spec / norm
            mag = z.abs()
            gain = (mag + 1e-6).pow(self.config.power - 1.0)
            parts += [z.real * gain, z.imag * gain, mag.pow(self.config.power)]
        batch, _, bins, frames = estimate.shape
        position = self.freq_position.expand(bins, frames)[None, None].expand(batch, 1, bins, frames)
        return torch.cat(parts + [position], dim=1)

    def masks(self, feats: Tensor) -> Tensor:
        """Bounded mask values ``(B, 4 C, F, N)`` in ``(-1, 1)`` from the features ``(B, 6 C + 1, F, N)``."""
        bins = feats.shape[2]
        pad = self.config.nb_bands * self.config.band - bins
        x0 = F.relu(self.split(F.pad(feats, (0, 0, 0, pad))))
        x1 = F.relu(self.down1(x0))
        x2 = F.relu(self.down2(x1))
        h = F.relu(self.mid1(x2))
        h = h + F.relu(self.freq_mix(h.transpose(2, 3)).transpose(2, 3))
        h = F.relu(self.mid2(h)) + x2
        h = F.interpolate(self.up2(h), size=x1.shape[2:], mode="nearest") + x1
        h = F.relu(self.dec1(h))
        h = F.interpolate(self.up1(h), size=x0.shape[2:], mode="nearest") + x0
        h = F.relu(self.dec0(h))
        m = self.out(h)  # (B, outputs * band, bands, N): every band predicts its bins' masks
        batch, _, bands, frames = m.shape
        m = m.view(batch, -1, self.config.band, bands, frames).transpose(2, 3)
        m = m.reshape(batch, -1, bands * self.config.band, frames)[:, :, :bins]
        return torch.tanh(m)

    def forward(self, estimate: Tensor, mixture: Tensor, scale: Tensor) -> Tensor:
        """Enhance a stem's spectrogram.

        Args:
            estimate: complex ``(B, C, F, N)`` STFT of the separated stem.
            mixture: complex ``(B, C, F, N)`` STFT of the mixture.
            scale: ``(B,)`` waveform RMS of each song's mixture (see :func:`song_scale`).

        Returns:
            complex ``(B, C, F, N)`` enhanced STFT.
        """
        if estimate.shape != mixture.shape:
            raise ValueError(f"estimate {tuple(estimate.shape)} and mixture {tuple(mixture.shape)} differ")
        batch, channels, bins, frames = estimate.shape
        if channels != self.config.nb_channels or bins != self.config.nb_bins:
            raise ValueError(
                f"expected {self.config.nb_channels} channels and {self.config.nb_bins} bins, "
                f"got {channels} and {bins}"
            )
        m = self.masks(self.features(estimate, mixture, scale))
        m = m.view(batch, channels, self.OUTPUTS_PER_CHANNEL, bins, frames)
        m_e = torch.complex(m[:, :, 0], m[:, :, 1])
        m_x = torch.complex(m[:, :, 2], m[:, :, 3])
        return estimate + estimate * m_e + mixture * m_x


def song_scale(mixture: Tensor) -> Tensor:
    """Waveform RMS of each mixture, the enhancer's level reference.

    Args:
        mixture: ``(B, C, T)`` or ``(C, T)``.

    Returns:
        ``(B,)`` (or a 0-d tensor for a single song), at least ``1e-5``.
    """
    dims = tuple(range(mixture.dim() - 2, mixture.dim()))
    return mixture.pow(2).mean(dim=dims).sqrt().clamp_min(1e-5)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
