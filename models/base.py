"""The member interface every ensemble member implements, and chunked overlap-add inference.

A member is a ``torch.nn.Module`` mapping a 44.1 kHz mixture ``(nb_samples, nb_channels,
nb_timesteps)`` to estimates ``(nb_samples, nb_targets, nb_channels, nb_timesteps)`` in the order
of ``member.targets``. ``forward`` is the network on a short excerpt (training, tests);
``separate`` runs a whole song chunk by chunk so that memory stays flat however long it is.

Chunking (:func:`overlap_add`) is demucs' scheme plus a context margin: chunks of ``segment``
seconds start every ``segment * (1 - overlap)`` seconds; each is extended by ``context`` samples of
real neighbouring audio on both sides, run, cropped back, weighted by a triangular fade (raised to
``transition_power``) and summed; the sum is divided by the summed weights. When the context covers
a member's receptive field and chunk starts are multiples of its ``alignment`` (STFT hop, U-Net
stride), the result equals the unchunked one up to float rounding.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from core.constants import SAMPLE_RATE, TARGETS


class Member(nn.Module):
    """Base class of ensemble members.

    Subclasses implement :meth:`forward` and may override :meth:`loss` (the member's own training
    loss), :meth:`prepare` (input statistics before training) and the chunking attributes.
    Constructor keyword arguments are captured automatically (:meth:`config`) so that a
    checkpoint can rebuild the member; they must be plain values (numbers, strings, lists, dicts).

    Args:
        targets: names of the estimated sources, in output order.
        sample_rate: rate the member runs at (Hz).
        nb_channels: audio channels (2: stereo).
    """

    #: registry name, set by :func:`models.registry.register`.
    name: str = ""
    #: False for training-free members (nussl).
    trainable: bool = True
    #: default chunk length (s) and overlap (fraction) of :meth:`separate`.
    default_segment: float | None = 20.0
    default_overlap: float = 0.1
    #: chunk starts are multiples of this many samples (STFT hop, total U-Net stride).
    alignment: int = 1
    #: samples of real audio added on each side of a chunk (>= receptive field for exact chunking).
    context: int = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _capture_init(cls.__init__)

    def __init__(self, targets=TARGETS, sample_rate: int = SAMPLE_RATE, nb_channels: int = 2):
        super().__init__()
        self.targets = tuple(targets)
        self.sample_rate = int(sample_rate)
        self.nb_channels = int(nb_channels)

    @property
    def nb_targets(self) -> int:
        return len(self.targets)

    def config(self) -> dict:
        """Constructor keyword arguments that rebuild this member (``type(self)(**config())``)."""
        return dict(getattr(self, "_init_kwargs", {}))

    def forward(self, mix: Tensor) -> Tensor:
        """Separate a short excerpt.

        Args:
            mix: ``(nb_samples, nb_channels, nb_timesteps)``.

        Returns:
            ``(nb_samples, nb_targets, nb_channels, nb_timesteps)``.
        """
        raise NotImplementedError

    def loss(self, mix: Tensor, stems: Tensor) -> Tensor:
        """Training loss (default: mean absolute error on the waveforms).

        Args:
            mix: ``(nb_samples, nb_channels, nb_timesteps)``.
            stems: references ``(nb_samples, nb_targets, nb_channels, nb_timesteps)``.

        Returns:
            A scalar tensor.
        """
        return torch.nn.functional.l1_loss(self(mix), stems)

    def prepare(self, batches) -> None:
        """Fit input statistics on an iterable of ``(mix (B, C, T), stems (B, S, C, T))`` batches.

        Called once before training starts; the default does nothing.
        """

    def training_seconds(self) -> float | None:
        """Excerpt length the member must be trained on, or None for any length."""
        return None

    @torch.inference_mode()
    def separate(
        self,
        mix,
        segment: float | None = None,
        overlap: float | None = None,
        transition_power: float = 1.0,
        progress: bool = False,
    ):
        """Separate a whole song with bounded memory.

        Args:
            mix: ``(nb_channels, nb_timesteps)`` tensor or numpy array at ``sample_rate``.
            segment: chunk length in seconds (default ``default_segment``; ``0`` or a value longer
                than the song: a single pass).
            overlap: overlap between chunks as a fraction of ``segment``.
            transition_power: exponent of the triangular fade.
            progress: show a tqdm bar over chunks.

        Returns:
            ``(nb_targets, nb_channels, nb_timesteps)``, numpy if ``mix`` was numpy.

        Denormal floats are flushed to zero from then on (``torch.set_flush_denormal(True)``).
        """
        as_numpy = isinstance(mix, np.ndarray)
        tensor = torch.as_tensor(mix, dtype=torch.float32)
        # denormal floats (decaying tails, near-silent passages) slow CPU kernels down up to 30x
        torch.set_flush_denormal(True)
        segment = self.default_segment if segment is None else segment
        overlap = self.default_overlap if overlap is None else overlap
        was_training = self.training
        self.eval()
        try:
            out = overlap_add(
                lambda x: self(x[None])[0],
                tensor,
                self.nb_targets,
                segment_frames=int(segment * self.sample_rate) if segment else 0,
                overlap=overlap,
                context=self.context,
                alignment=self.alignment,
                transition_power=transition_power,
                progress=progress,
            )
        finally:
            self.train(was_training)
        return out.numpy() if as_numpy else out


def overlap_add(
    fn,
    mix: Tensor,
    nb_targets: int,
    segment_frames: int,
    overlap: float = 0.25,
    context: int = 0,
    alignment: int = 1,
    transition_power: float = 1.0,
    progress: bool = False,
) -> Tensor:
    """Apply ``fn`` chunk by chunk and blend the chunks with a triangular fade.

    Args:
        fn: maps ``(nb_channels, n)`` to ``(nb_targets, nb_channels, n)``.
        mix: ``(nb_channels, nb_timesteps)``.
        nb_targets: sources ``fn`` returns.
        segment_frames: chunk length in samples; ``<= 0`` or ``>= nb_timesteps``: one pass.
        overlap: fraction of a chunk shared with the next, in ``[0, 1)``.
        context: samples of neighbouring audio added on each side and cropped after ``fn``.
        alignment: chunk starts and context are rounded to multiples of this.
        transition_power: exponent of the fade (demucs' ``transition_power``).
        progress: tqdm bar over chunks.

    Returns:
        ``(nb_targets, nb_channels, nb_timesteps)`` float32.
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    nb_channels, length = mix.shape
    if segment_frames <= 0 or segment_frames >= length:
        return fn(mix)
    segment_frames = max(alignment, segment_frames // alignment * alignment)
    stride = max(alignment, int(segment_frames * (1 - overlap)) // alignment * alignment)
    context = -(-context // alignment) * alignment
    half = segment_frames // 2
    fade = torch.cat([torch.arange(1, half + 1), torch.arange(segment_frames - half, 0, -1)]).float()
    fade = (fade / fade.max()) ** transition_power
    out = torch.zeros(nb_targets, nb_channels, length)
    weight = torch.zeros(length)
    offsets = range(0, max(1, length - segment_frames + stride), stride)
    for offset in tqdm(offsets, desc="chunks", unit="chunk", disable=not progress, leave=False):
        size = min(segment_frames, length - offset)
        start, end = max(0, offset - context), min(length, offset + size + context)
        chunk = fn(mix[:, start:end])
        chunk = chunk[..., offset - start : offset - start + size]
        out[..., offset : offset + size] += fade[:size] * chunk
        weight[offset : offset + size] += fade[:size]
    return out / weight


def _capture_init(init):
    """Wrap ``__init__`` so that the outermost call records its keyword arguments."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        outermost = "_init_kwargs" not in self.__dict__
        if outermost:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop("self")
            arguments.update(arguments.pop("kwargs", {}) if "kwargs" in signature.parameters else {})
            object.__setattr__(self, "_init_kwargs", _plain(arguments))
        init(self, *args, **kwargs)

    return wrapper


def _plain(value):
    """Tuples to lists, recursively, so that configs compare equal after a JSON round trip."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
