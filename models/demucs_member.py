"""The ``demucs`` member: a small ``demucs.htdemucs.HTDemucs`` (or ``hdemucs.HDemucs``), run with
``demucs.apply.apply_model`` (split into segments, overlap, optional random shifts).

:meth:`DemucsMember.from_demucs_checkpoint` loads an official demucs checkpoint file (the dict
``{"klass", "args", "kwargs", "state", ...}`` that ``demucs.states.serialize_model`` saves) from a
local path. The file is read with ``torch.load(weights_only=True)`` allowing only demucs' own model
classes (and ``fractions.Fraction``) as globals, so any other pickled code is refused.
"""

from __future__ import annotations

import fractions
import warnings

import torch
from torch import Tensor

from core.constants import SAMPLE_RATE, TARGETS
from core.errors import CheckpointError
from models.base import Member
from models.registry import register


def _variants() -> dict:
    """Demucs model classes by variant name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from demucs.demucs import Demucs
        from demucs.hdemucs import HDemucs
        from demucs.htdemucs import HTDemucs
    return {"htdemucs": HTDemucs, "hdemucs": HDemucs, "demucs": Demucs}


@register("demucs")
class DemucsMember(Member):
    """Hybrid (Transformer) Demucs.

    Args:
        targets, sample_rate, nb_channels: see :class:`models.base.Member` (demucs' ``sources``,
            ``samplerate``, ``audio_channels``).
        variant: ``htdemucs``, ``hdemucs`` or ``demucs``.
        segment: training excerpt length in seconds; also the split length of ``apply_model``.
        model_kwargs: further constructor arguments of the demucs class (``channels``,
            ``depth``, ``nfft``, ``t_layers``, ...).
        shifts: random shifts averaged at inference (demucs' ``--shifts``; 0: none).
        mix_prior: estimates are ``model(mix) + mix_prior * mix``: with ``1 / nb_targets`` a fresh
            model starts at mixture / 4 and learns the correction (a short CPU training otherwise
            spends its first epochs growing outputs from zero); 0 for official checkpoints.
    """

    default_overlap = 0.25

    def __init__(
        self,
        targets=TARGETS,
        sample_rate: int = SAMPLE_RATE,
        nb_channels: int = 2,
        variant: str = "htdemucs",
        segment: float = 4.0,
        model_kwargs: dict | None = None,
        shifts: int = 0,
        mix_prior: float = 0.0,
    ):
        super().__init__(targets, sample_rate, nb_channels)
        self.mix_prior = float(mix_prior)
        variants = _variants()
        if variant not in variants:
            raise ValueError(f"unknown demucs variant '{variant}' ({', '.join(variants)})")
        self.segment, self.shifts = float(segment), int(shifts)
        self.default_segment = self.segment
        self.model = variants[variant](
            sources=list(self.targets),
            audio_channels=nb_channels,
            samplerate=sample_rate,
            segment=segment,
            **(model_kwargs or {}),
        )

    def training_seconds(self) -> float:
        """HTDemucs is trained and split on excerpts of exactly ``segment`` seconds."""
        return self.segment

    def forward(self, mix: Tensor) -> Tensor:
        """``(B, C, T)`` -> ``(B, S, C, T)``: the raw model while training, else ``apply_model``."""
        if self.training:
            return self._with_prior(self.model(mix), mix)
        return self._apply(mix, overlap=self.default_overlap)

    def _with_prior(self, estimates: Tensor, mix: Tensor) -> Tensor:
        return estimates + self.mix_prior * mix[:, None] if self.mix_prior else estimates

    def _apply(
        self,
        mix: Tensor,
        overlap: float,
        segment: float | None = None,
        progress: bool = False,
        transition_power: float = 1.0,
    ) -> Tensor:
        from demucs.apply import apply_model

        segment = min(segment or self.segment, self.segment)
        out = apply_model(
            self.model,
            mix,
            shifts=self.shifts,
            split=True,
            overlap=overlap,
            segment=segment,
            progress=progress,
            transition_power=transition_power,
        )
        return self._with_prior(out, mix)

    @torch.inference_mode()
    def separate(self, mix, segment=None, overlap=None, transition_power: float = 1.0, progress=False):
        """Whole song through ``apply_model`` (its own split/overlap keeps memory flat).

        ``segment`` cannot exceed the training segment (HTDemucs' limit).
        """
        as_numpy = not isinstance(mix, Tensor)
        tensor = torch.as_tensor(mix, dtype=torch.float32)
        torch.set_flush_denormal(True)  # see Member.separate
        was_training = self.training
        self.eval()
        try:
            out = self._apply(
                tensor[None],
                self.default_overlap if overlap is None else overlap,
                segment,
                progress,
                transition_power,
            )[0]
        finally:
            self.train(was_training)
        return out.numpy() if as_numpy else out

    @classmethod
    def from_demucs_checkpoint(cls, path, shifts: int = 0) -> DemucsMember:
        """Load an official demucs checkpoint (``klass``/``args``/``kwargs``/``state`` dict).

        Raises:
            CheckpointError: missing, corrupt, pickled code other than demucs' classes, quantized
                (diffq) weights, or a state that does not fit.
        """
        from models.checkpoint import safe_load

        variants = _variants()
        package = safe_load(path, allowed_globals=[*variants.values(), fractions.Fraction])
        if not isinstance(package, dict) or not {"klass", "kwargs", "state"} <= set(package):
            raise CheckpointError(f"{path}: not a demucs checkpoint (expected klass, args, kwargs, state)")
        by_class = {klass: name for name, klass in variants.items()}
        if package["klass"] not in by_class:
            raise CheckpointError(f"{path}: unsupported demucs class {package['klass']!r}")
        if package.get("args"):
            raise CheckpointError(f"{path}: positional constructor arguments are not supported")
        state = package["state"]
        if state.get("__quantized"):
            raise CheckpointError(
                f"{path}: quantized (diffq) demucs weights are not supported; "
                "use the non-quantized release of the model"
            )
        kwargs = dict(package["kwargs"])
        try:
            member = cls(
                targets=list(kwargs.pop("sources")),
                sample_rate=int(kwargs.pop("samplerate", SAMPLE_RATE)),
                nb_channels=int(kwargs.pop("audio_channels", 2)),
                variant=by_class[package["klass"]],
                segment=float(kwargs.pop("segment", 10.0)),
                model_kwargs={k: _plain(v) for k, v in kwargs.items()},
                shifts=shifts,
            )
            member.model.load_state_dict(
                {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
            )
        except (KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path}: does not build a demucs model ({' '.join(str(exc).split())[:300]})"
            ) from None
        return member.eval()


def _plain(value):
    if isinstance(value, fractions.Fraction):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
