"""The challenge's reference baselines: copy the mixture to every stem, or the mixture / 4."""

from __future__ import annotations

import numpy as np

from submission.base import SeparatorPredictor
from submission.registry import register


class CopyPredictor(SeparatorPredictor):
    """Every stem is the mixture itself (the starter kit's ``CopyPredictor``)."""

    def separate(self, mixture: np.ndarray) -> dict[str, np.ndarray]:
        """``mixture (nb_channels, nb_timesteps)`` -> ``{target: mixture}``."""
        return {target: mixture.copy() for target in self.instruments}


class ScaledMixturePredictor(SeparatorPredictor):
    """Every stem is ``mixture / nb_targets`` (the starter kit's ``ScaledMixturePredictor``)."""

    def separate(self, mixture: np.ndarray) -> dict[str, np.ndarray]:
        """``mixture (nb_channels, nb_timesteps)`` -> ``{target: mixture / 4}``."""
        scaled = mixture / len(self.instruments)
        return {target: scaled.copy() for target in self.instruments}


@register("copy", help="every stem is the mixture (lower bound)")
def _copy(options: dict) -> CopyPredictor:
    return CopyPredictor(**options)


@register("scaled", help="every stem is mixture / 4 (the starter kit's baseline)")
def _scaled(options: dict) -> ScaledMixturePredictor:
    return ScaledMixturePredictor(**options)
