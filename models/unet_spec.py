"""The ``unet-spec`` member: a Spleeter-style 2-D U-Net on the magnitude spectrogram.

As Spleeter (Hennequin et al. 2020), scaled down for CPUs: an encoder of ``depth`` 5x5 stride-2
convolutions with batch norm and LeakyReLU(0.2), filters doubling from ``channels``; a decoder of
5x5 stride-2 transposed convolutions with ReLU, batch norm and dropout on its first three layers,
concatenating the encoder's outputs (skips); a last convolution gives one sigmoid mask per target
and channel, normalised Spleeter's way (squared masks over their sum) into soft masks. Bins above
``bandwidth`` reuse the mean mask of the top bins. Loss: L1 on magnitudes, as Spleeter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.constants import SAMPLE_RATE, TARGETS
from models.registry import register
from models.spectral import SpectralMember, extend_bins, masks_from_logits


class _Down(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 5, stride=2, padding=2), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)
        )


class _Up(nn.Sequential):
    def __init__(self, cin: int, cout: int, dropout: float):
        layers = [
            nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(cout),
        ]
        super().__init__(*layers, *([nn.Dropout2d(dropout)] if dropout else []))


@register("unet-spec")
class UNetSpec(SpectralMember):
    """2-D U-Net soft-mask member.

    Args:
        targets, sample_rate, nb_channels, n_fft, n_hop, bandwidth: see :class:`SpectralMember`.
        channels: filters of the first encoder layer (doubling per layer).
        depth: encoder (and decoder) layers.
        dropout: dropout of the first three decoder layers (Spleeter: 0.5).
        mask: ``ratio`` (Spleeter), ``sigmoid`` or ``softmax``.
    """

    default_segment = 30.0

    def __init__(
        self,
        targets=TARGETS,
        sample_rate: int = SAMPLE_RATE,
        nb_channels: int = 2,
        n_fft: int = 2048,
        n_hop: int = 512,
        bandwidth: float | None = 11000.0,
        channels: int = 8,
        depth: int = 5,
        dropout: float = 0.3,
        mask: str = "ratio",
    ):
        super().__init__(
            targets, sample_rate, nb_channels, n_fft, n_hop, bandwidth, context_frames=4 * 2**depth
        )
        self.depth, self.mask = depth, mask
        self.alignment = n_hop * 2**depth
        widths = [channels * 2**i for i in range(depth)]
        self.down = nn.ModuleList(_Down(cin, cout) for cin, cout in zip([nb_channels] + widths, widths))
        ups = []
        for i in reversed(range(depth)):
            cin = widths[i] if i == depth - 1 else 2 * widths[i]
            cout = widths[i - 1] if i > 0 else channels
            ups.append(_Up(cin, cout, dropout if len(ups) < 3 else 0.0))
        self.up = nn.ModuleList(ups)
        self.head = nn.Conv2d(channels + nb_channels, self.nb_targets * nb_channels, 3, padding=1)

    def estimate(self, magnitude: Tensor) -> Tensor:
        """``(B, C, F, N)`` mixture magnitude -> ``(B, S, C, F, N)`` estimates."""
        batch, channels, bins, frames = magnitude.shape
        x = self.features(magnitude)
        step = 2**self.depth
        pad_f, pad_n = -self.max_bin % step, -frames % step
        x = F.pad(x, (0, pad_n, 0, pad_f))
        skips = [x]
        for down in self.down:
            x = down(x)
            skips.append(x)
        skips.pop()
        for up in self.up:
            x = up(x)
            x = torch.cat([x, skips.pop()], dim=1)
        logits = self.head(x)[..., : self.max_bin, :frames]
        logits = logits.reshape(batch, self.nb_targets, channels, self.max_bin, frames)
        masks = extend_bins(masks_from_logits(logits, self.mask), bins)
        return masks * magnitude[:, None]

    def loss(self, mix: Tensor, stems: Tensor) -> Tensor:
        """L1 between estimated and reference magnitudes (Spleeter's loss)."""
        estimates = self.estimate(self.spectrogram(mix).abs())
        return F.l1_loss(estimates, self.spectrogram(stems).abs())
