"""Building blocks shared by every transform: registry, probability gate, source selection, seeding.

A transform acts on a batch of stems ``(nb_samples, nb_sources, nb_channels, nb_timesteps)``:

* ``p`` is the probability that the transform is applied to an example (one Bernoulli draw per
  example, like ``proba`` of ``demucs.augment.Scale`` and ``demucs.repitch.RepitchedWrapper``).
  Once applied, the transform draws its own values (a gain, a coin per source for a flip, ...).
* ``sources`` names the targets it acts on (default: all); the others pass through unchanged
  (cropped like the selected ones when the transform changes the length).
* ``same`` chooses one draw shared by all selected sources (``True``) or one draw per source.
* Every random number comes from the ``torch.Generator`` passed in, so the same seed gives the same
  output. The ``demucs.augment`` modules draw from torch's global RNG: :func:`demucs_rng` seeds a
  forked global RNG from the generator, so they are deterministic too and leave the caller's global
  RNG untouched.

Nothing here touches audio samples beyond indexing; the DSP lives in the libraries the transform
modules name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: name -> transform class, filled by :func:`register`.
REGISTRY: dict[str, type[Transform]] = {}


def register(name: str):
    """Class decorator adding a transform to :data:`REGISTRY` under ``name`` (the config key)."""

    def wrap(cls):
        if name in REGISTRY:
            raise ValueError(f"transform '{name}' registered twice")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return wrap


def as_generator(seed_or_generator=None) -> torch.Generator:
    """A CPU ``torch.Generator`` from an int seed, a torch or numpy generator, or ``None``.

    ``None`` draws a seed from torch's global RNG (so ``torch.manual_seed`` governs it); a
    ``numpy.random.Generator`` gives a torch generator seeded from one of its draws.
    """
    if isinstance(seed_or_generator, torch.Generator):
        return seed_or_generator
    if isinstance(seed_or_generator, np.random.Generator):
        seed = int(seed_or_generator.integers(0, 2**63 - 1))
    elif seed_or_generator is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    elif isinstance(seed_or_generator, (int, np.integer)):
        seed = int(seed_or_generator)
    else:
        raise TypeError(f"expected a seed, torch.Generator or numpy Generator, got {type(seed_or_generator)}")
    return torch.Generator().manual_seed(seed)


def draw_seed(generator: torch.Generator) -> int:
    """One 62-bit seed drawn from ``generator``."""
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())


@contextlib.contextmanager
def demucs_rng(generator: torch.Generator, device: torch.device | str = "cpu"):
    """Run code that draws from torch's global RNG (``demucs.augment``) deterministically.

    The global RNG of the CPU (and of ``device`` when it is a GPU) is forked, seeded from
    ``generator``, and restored on exit.
    """
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(draw_seed(generator))
        yield


@dataclass(frozen=True)
class Values:
    """A random value: ``uniform: [low, high]``, ``choices: [...]`` or a fixed number.

    ``draw(n, generator) -> (n,)`` float64 tensor.
    """

    low: float | None = None
    high: float | None = None
    choices: tuple[float, ...] | None = None

    @classmethod
    def parse(cls, spec, what: str) -> Values:
        """From a config entry: a number, ``{uniform: [lo, hi]}`` or ``{choices: [...]}``."""
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            return cls(choices=(float(spec),))
        if isinstance(spec, Values):
            return spec
        if isinstance(spec, dict) and len(spec) == 1:
            (kind, value), = spec.items()
            if kind == "uniform" and isinstance(value, (list, tuple)) and len(value) == 2:
                low, high = (float(v) for v in value)
                if low > high:
                    raise ValueError(f"{what}: uniform range [{low}, {high}] has low > high")
                return cls(low=low, high=high)
            if kind == "choices" and isinstance(value, (list, tuple)) and len(value) > 0:
                return cls(choices=tuple(float(v) for v in value))
        raise ValueError(
            f"{what}: expected a number, {{uniform: [low, high]}} or {{choices: [v1, v2, ...]}}, got {spec!r}"
        )

    @property
    def is_uniform(self) -> bool:
        return self.choices is None

    def support(self) -> tuple[float, float]:
        """Smallest and largest value a draw can take."""
        if self.choices is None:
            return self.low, self.high
        return min(self.choices), max(self.choices)

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.choices is None:
            u = torch.rand(n, generator=generator, dtype=torch.float64)
            return self.low + (self.high - self.low) * u
        index = torch.randint(0, len(self.choices), (n,), generator=generator)
        return torch.tensor(self.choices, dtype=torch.float64)[index]


def mixture_of(stems: torch.Tensor) -> torch.Tensor:
    """The mixture as the sum of the stems: ``(..., nb_sources, C, T) -> (..., C, T)``."""
    return stems.sum(dim=-3)


class Transform:
    """Base class: gate, source selection and length bookkeeping; subclasses implement :meth:`apply`.

    Args:
        p: probability that an example is transformed, in [0, 1].
        sources: target names to act on (default: all of ``targets``).
        same: one draw for all selected sources (default: the class's ``default_same``).
        targets: names of the sources axis, in order.
        sample_rate: Hz, for transforms with durations or DSP.
    """

    name = "transform"
    #: True for transforms worth caching or moving to worker processes (Rubber Band).
    expensive = False
    #: whether one draw is shared by the selected sources unless the config says otherwise.
    default_same = False

    def __init__(self, p: float = 1.0, sources: Sequence[str] | None = None, same: bool | None = None,
                 targets: Sequence[str] = ("bass", "drums", "other", "vocals"), sample_rate: int = 44100):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{self.name}: probability p={p} is outside [0, 1]")
        self.p = float(p)
        self.targets = tuple(targets)
        self.sample_rate = int(sample_rate)
        self.same = self.default_same if same is None else bool(same)
        if sources is None:
            sources = self.targets
        elif isinstance(sources, str):
            sources = [sources]
        unknown = [s for s in sources if s not in self.targets]
        if unknown:
            raise ValueError(f"{self.name}: unknown sources {unknown}; the targets are {list(self.targets)}")
        if not sources:
            raise ValueError(f"{self.name}: 'sources' is empty")
        self.sources = tuple(sources)
        self.indices = [self.targets.index(s) for s in self.sources]

    # -- to override -------------------------------------------------------------------------------
    def apply(self, wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Transform every example of ``wav (b, s, C, T)`` (the selected sources of gated examples).

        Returns ``(b, s, C, self.output_length(T))``.
        """
        raise NotImplementedError

    def output_length(self, length: int) -> int:
        """Output length for an input of ``length`` frames (the same for every draw)."""
        return length

    def passthrough(self, wav: torch.Tensor) -> torch.Tensor:
        """What an untouched example becomes: a copy cropped to :meth:`output_length`."""
        return wav[..., : self.output_length(wav.shape[-1])].clone()

    # -- shared machinery ----------------------------------------------------------------------------
    def __call__(self, wav: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Apply to ``wav (nb_samples, nb_sources, C, T)`` -> ``(B, S, C, T')`` (``wav`` itself if p = 0)."""
        if wav.dim() != 4:
            raise ValueError(f"{self.name}: expected (nb_samples, nb_sources, C, T), "
                             f"got shape {tuple(wav.shape)}")
        if wav.shape[1] != len(self.targets):
            raise ValueError(f"{self.name}: {wav.shape[1]} sources but targets are {list(self.targets)}")
        if self.p == 0.0:
            return wav
        gate = torch.rand(wav.shape[0], generator=generator) < self.p
        all_sources = len(self.indices) == wav.shape[1]
        if bool(gate.all()) and all_sources:  # the common case: no copies around the transform
            return self.apply(wav, generator)
        out = self.passthrough(wav)
        if not bool(gate.any()):
            return out
        if bool(gate.all()):
            out[:, self.indices] = self.apply(wav[:, self.indices], generator).to(out.dtype)
            return out
        index = gate.nonzero().squeeze(1).to(wav.device)
        changed = self.apply(wav[index][:, self.indices], generator)
        rows = out[index]
        rows[:, self.indices] = changed.to(out.dtype)
        out[index] = rows
        return out

    def shared(self, wav: torch.Tensor, fn) -> torch.Tensor:
        """Apply ``fn`` (a per-source demucs module) with one draw per example when ``same`` is set.

        The selected sources of each example are laid end to end in time, so a module that draws
        per (example, source) draws once per example.
        """
        if not self.same:
            return fn(wav)
        b, s, c, t = wav.shape
        merged = wav.permute(0, 2, 1, 3).reshape(b, 1, c, s * t)
        out = fn(merged)
        t_out = out.shape[-1] // s
        return out.reshape(b, c, s, t_out).permute(0, 2, 1, 3).contiguous()

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        sources = "" if self.sources == self.targets else f", sources={list(self.sources)}"
        extra = self.extra_repr()
        return f"{self.name}(p={self.p}{sources}, same={self.same}{', ' + extra if extra else ''})"
