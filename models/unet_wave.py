"""The ``unet-wave`` member: a Conv1D waveform U-Net that masks the input waveform.

Encoder: ``depth`` stride-2 ``Conv1d`` layers with filters growing by ``growth`` per layer (as
Wave-U-Net's linear growth), batch norm and LeakyReLU(0.2). Decoder: stride-2 ``ConvTranspose1d``
layers with ReLU, batch norm and dropout, each followed by concatenation with the encoder output of
the same resolution (skips). The last layer gives one mask per target and channel, applied to the
input waveform: ``estimate = mask * mixture``. Stereo, all four targets, MAE loss.

``mask``: ``tanh`` scales a tanh by ``mask_range`` (signed gain, so the sample-wise product can
also attenuate against the sign of the mixture), ``sigmoid`` is a gain in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.constants import SAMPLE_RATE, TARGETS
from models.base import Member
from models.registry import register


@register("unet-wave")
class UNetWave(Member):
    """Waveform U-Net with a mask on the input.

    Args:
        targets, sample_rate, nb_channels: see :class:`models.base.Member`.
        channels: filters of the first encoder layer.
        growth: filters added per encoder layer.
        depth: encoder (and decoder) layers; inputs are padded to a multiple of ``2 ** depth``.
        kernel_size: odd kernel of the encoder convolutions (the decoder uses ``kernel_size + 1``).
        dropout: dropout in the decoder layers.
        mask: ``tanh`` or ``sigmoid``.
        mask_range: scale of the ``tanh`` mask.
    """

    default_segment = 20.0
    default_overlap = 0.05

    def __init__(
        self,
        targets=TARGETS,
        sample_rate: int = SAMPLE_RATE,
        nb_channels: int = 2,
        channels: int = 16,
        growth: int = 16,
        depth: int = 8,
        kernel_size: int = 9,
        dropout: float = 0.1,
        mask: str = "tanh",
        mask_range: float = 2.0,
    ):
        super().__init__(targets, sample_rate, nb_channels)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if mask not in ("tanh", "sigmoid"):
            raise ValueError(f"unknown mask '{mask}' (tanh or sigmoid)")
        self.depth, self.mask, self.mask_range = depth, mask, float(mask_range)
        self.alignment = 2**depth
        self.context = 2 * kernel_size * 2**depth
        widths = [channels + growth * i for i in range(depth)]
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(cin, cout, kernel_size, stride=2, padding=kernel_size // 2),
                nn.BatchNorm1d(cout),
                nn.LeakyReLU(0.2),
            )
            for cin, cout in zip([nb_channels] + widths, widths)
        )
        up = []
        for i in reversed(range(depth)):
            cin = widths[i] if i == depth - 1 else 2 * widths[i]
            cout = widths[i - 1] if i > 0 else channels
            up.append(
                nn.Sequential(
                    nn.ConvTranspose1d(cin, cout, kernel_size + 1, stride=2, padding=kernel_size // 2),
                    nn.BatchNorm1d(cout),
                    nn.ReLU(),
                    nn.Dropout(dropout),
                )
            )
        self.up = nn.ModuleList(up)
        self.head = nn.Conv1d(channels + nb_channels, self.nb_targets * nb_channels, 1)
        with torch.no_grad():  # start near mixture / nb_targets: small weights, mask bias 1 / S
            self.head.weight.mul_(0.01)
            start = 1.0 / self.nb_targets
            self.head.bias.fill_(
                math.atanh(start / self.mask_range) if mask == "tanh" else math.log(start / (1 - start))
            )

    def forward(self, mix: Tensor) -> Tensor:
        """``(B, C, T)`` -> ``(B, S, C, T)``: masks times the mixture waveform."""
        batch, channels, length = mix.shape
        x = F.pad(mix, (0, -length % 2**self.depth))
        skips = [x]
        for down in self.down:
            x = down(x)
            skips.append(x)
        skips.pop()
        for up in self.up:
            x = torch.cat([up(x), skips.pop()], dim=1)
        logits = self.head(x)[..., :length].reshape(batch, self.nb_targets, channels, length)
        if self.mask == "tanh":
            masks = self.mask_range * torch.tanh(logits)
        else:
            masks = torch.sigmoid(logits)
        return masks * mix[:, None]
