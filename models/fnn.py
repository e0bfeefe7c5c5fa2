"""The ``fnn`` member: Uhlich et al.'s feed-forward spectral-mask network (ICASSP 2015), small.

Each output frame sees ``2 * context + 1`` frames of normalised log-magnitude (stereo, bins up
to ``bandwidth``) through a dense layer (a 1-D convolution over time), then ``nb_layers`` dense
layers with batch norm and ReLU, then one mask per target, channel and bin (softmax over the
targets, so the estimates add up to the mixture magnitude). Cheap: a few milliseconds per second of
audio on one core.
"""

from __future__ import annotations

from torch import Tensor, nn

from core.constants import SAMPLE_RATE, TARGETS
from models.registry import register
from models.spectral import SpectralMember, masks_from_logits


@register("fnn")
class FNN(SpectralMember):
    """Feed-forward mask network.

    Args:
        targets, sample_rate, nb_channels, n_fft, n_hop, bandwidth: see :class:`SpectralMember`.
        hidden_size: units per dense layer.
        nb_layers: dense layers after the input layer.
        context: frames of context on each side of the estimated frame.
        dropout: dropout after each hidden layer.
        mask: ``softmax``, ``sigmoid`` or ``ratio`` (see :func:`models.spectral.masks_from_logits`).
    """

    def __init__(
        self,
        targets=TARGETS,
        sample_rate: int = SAMPLE_RATE,
        nb_channels: int = 2,
        n_fft: int = 2048,
        n_hop: int = 512,
        bandwidth: float | None = 11000.0,
        hidden_size: int = 256,
        nb_layers: int = 2,
        context: int = 3,
        dropout: float = 0.1,
        mask: str = "softmax",
    ):
        super().__init__(targets, sample_rate, nb_channels, n_fft, n_hop, bandwidth, context_frames=context)
        self.mask = mask
        layers = [
            nn.Conv1d(nb_channels * self.max_bin, hidden_size, 2 * context + 1, padding=context, bias=False),
            nn.BatchNorm1d(hidden_size),
            nn.ReLU(),
        ]
        for _ in range(nb_layers):
            layers += [
                nn.Conv1d(hidden_size, hidden_size, 1, bias=False),
                nn.BatchNorm1d(hidden_size),
                nn.ReLU(),
            ]
            layers += [nn.Dropout(dropout)] if dropout else []
        layers.append(nn.Conv1d(hidden_size, self.nb_targets * nb_channels * self.nb_bins, 1))
        self.net = nn.Sequential(*layers)

    def estimate(self, magnitude: Tensor) -> Tensor:
        """``(B, C, F, N)`` mixture magnitude -> ``(B, S, C, F, N)`` estimates."""
        batch, channels, bins, frames = magnitude.shape
        x = self.features(magnitude).reshape(batch, channels * self.max_bin, frames)
        logits = self.net(x).reshape(batch, self.nb_targets, channels, bins, frames)
        return masks_from_logits(logits, self.mask) * magnitude[:, None]
