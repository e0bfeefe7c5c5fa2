"""The ``convtasnet`` member: asteroid's ``ConvTasNet`` as a stereo four-target waveform member.

Asteroid's models are single-channel: each channel of the mixture is separated on its own (the
channels are folded into the batch) into ``nb_targets`` sources. Asteroid's X-UMX would be the
natural choice for music but does not run on torch 2, hence Conv-TasNet, in a configuration
small enough for CPUs (stride 16 encoder at 44.1 kHz, two repeats of six blocks). Loss: negative
signal-to-distortion ratio per target (the metric the grader uses, not scale-invariant), pooled over
the batch so that silent excerpts do not teach it to output silence. Softmax masks over the targets
(ReLU masks died for whole targets in our runs).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from core.constants import SAMPLE_RATE, TARGETS
from models.base import Member
from models.registry import register


def _conv_tasnet_class():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from asteroid.models import ConvTasNet
    return ConvTasNet


@register("convtasnet")
class ConvTasNetMember(Member):
    """Conv-TasNet through asteroid, one pass per channel.

    Args:
        targets, sample_rate, nb_channels: see :class:`models.base.Member`.
        n_filters, kernel_size, stride: the learned encoder/decoder filterbank.
        bn_chan, hid_chan, skip_chan, n_blocks, n_repeats, conv_kernel_size, norm_type, mask_act:
            the TCN mask network (asteroid's names).
    """

    default_segment = 10.0
    default_overlap = 0.1

    def __init__(
        self,
        targets=TARGETS,
        sample_rate: int = SAMPLE_RATE,
        nb_channels: int = 2,
        n_filters: int = 128,
        kernel_size: int = 32,
        stride: int = 16,
        bn_chan: int = 64,
        hid_chan: int = 128,
        skip_chan: int = 64,
        n_blocks: int = 6,
        n_repeats: int = 2,
        conv_kernel_size: int = 3,
        norm_type: str = "gLN",
        mask_act: str = "softmax",
    ):
        super().__init__(targets, sample_rate, nb_channels)
        self.model = _conv_tasnet_class()(
            n_src=self.nb_targets,
            n_filters=n_filters,
            kernel_size=kernel_size,
            stride=stride,
            bn_chan=bn_chan,
            hid_chan=hid_chan,
            skip_chan=skip_chan,
            n_blocks=n_blocks,
            n_repeats=n_repeats,
            conv_kernel_size=conv_kernel_size,
            norm_type=norm_type,
            mask_act=mask_act,
            sample_rate=sample_rate,
        )
        self.alignment = stride
        # gLN normalises over the whole excerpt: context only smooths chunk edges
        self.context = sample_rate // 2

    def forward(self, mix: Tensor) -> Tensor:
        """``(B, C, T)`` -> ``(B, S, C, T)``, each channel separated on its own."""
        batch, channels, length = mix.shape
        out = self.model(mix.reshape(batch * channels, 1, length))
        out = out[..., :length].reshape(batch, channels, self.nb_targets, length)
        return out.transpose(1, 2)

    def loss(self, mix: Tensor, stems: Tensor) -> Tensor:
        """Negative SDR (dB) per target, pooled over the batch (:func:`batch_sdr_db`)."""
        return -batch_sdr_db(self(mix), stems, mix).mean()


def batch_sdr_db(estimates: Tensor, references: Tensor, mix: Tensor, floor: float = 1e-4) -> Tensor:
    """SDR per target over the whole batch, with a noise floor tied to the mixture energy.

    A per-example SDR is minus infinity for a silent reference (an excerpt without vocals), which
    teaches the network to output silence for that target for good. Pooling the energies over the
    batch and adding ``floor`` times the mixture energy to both terms keeps the loss finite and
    meaningful.

    Args:
        estimates, references: ``(B, S, C, T)``.
        mix: ``(B, C, T)``.

    Returns:
        ``(S,)`` in dB.
    """
    eps = floor * mix.square().sum() / estimates.shape[1] + 1e-8
    num = references.square().sum(dim=(0, 2, 3)) + eps
    den = (references - estimates).square().sum(dim=(0, 2, 3)) + eps
    return 10 * torch.log10(num / den)
