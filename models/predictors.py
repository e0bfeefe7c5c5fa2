"""One ``submission`` predictor per member (``umx``, ``demucs``, ``fnn``, ...), for ``test.py``.

    predictor = submission.registry.create("umx", checkpoint="models/weights/umx.pth", segment=30)

Options: ``checkpoint`` (default ``models/weights/<name>.pth``), ``manifest`` (default: the
``manifest.json`` beside the checkpoint; ``False`` skips the sha256 check), ``segment``,
``overlap`` (chunked inference), ``shifts`` (demucs), ``threads`` (torch threads). The checkpoint
is loaded and checked in ``prediction_setup()``, so a missing or corrupt file, a sha256 that does not
match the manifest, or other targets fail before any song is processed. Training-free members
(``nussl``) need no checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models import registry
from models.manifest import WEIGHTS_DIR
from submission.base import SeparatorPredictor
from submission.registry import register


class MemberPredictor(SeparatorPredictor):
    """Separates with a single member.

    Args:
        member_name: registry name of the member.
        **options: see the module docstring, plus :class:`SeparatorPredictor`'s.
    """

    def __init__(self, member_name: str, **options):
        super().__init__(**options)
        self.member_name = member_name
        self.member = None

    def prediction_setup(self):
        """Load (and check) the member's checkpoint."""
        import torch

        from models.checkpoint import load_member

        if self.options.get("threads"):
            torch.set_num_threads(int(self.options["threads"]))
        cls = registry.get(self.member_name)
        if not cls.trainable:
            self.member = cls()
        else:
            path = Path(self.options.get("checkpoint") or WEIGHTS_DIR / f"{self.member_name}.pth")
            self.member = load_member(path, manifest=self.options.get("manifest"), targets=self.instruments)
        if self.options.get("shifts") is not None and hasattr(self.member, "shifts"):
            self.member.shifts = int(self.options["shifts"])
        self.member.eval()

    def separate(self, mixture: np.ndarray) -> dict[str, np.ndarray]:
        """``(nb_channels, nb_timesteps)`` -> ``{target: (nb_channels, nb_timesteps)}``."""
        segment, overlap = self.options.get("segment"), self.options.get("overlap")
        estimates = self.member.separate(
            mixture,
            segment=None if segment is None else float(segment),
            overlap=None if overlap is None else float(overlap),
        )
        return {t: estimates[self.member.targets.index(t)] for t in self.instruments}


def _register(name: str) -> None:
    cls_doc = {
        "umx": "Open-Unmix member (one BLSTM per target, niter 0)",
        "demucs": "small Hybrid Transformer Demucs member (apply_model split/overlap)",
        "unet-wave": "Conv1D waveform U-Net member (mask on the input waveform)",
        "unet-spec": "Spleeter-style 2-D U-Net member (soft masks on the magnitude)",
        "fnn": "Uhlich's feed-forward spectral-mask member",
        "convtasnet": "asteroid Conv-TasNet member (per channel)",
        "nussl": "training-free REPET-SIM + HPSS member (nussl)",
    }.get(name, f"ensemble member '{name}'")

    @register(name, help=cls_doc + "; options: checkpoint, segment, overlap")
    def factory(options: dict) -> MemberPredictor:
        return MemberPredictor(name, **options)


for _name in registry.names():
    _register(_name)

__all__ = ["MemberPredictor"]
