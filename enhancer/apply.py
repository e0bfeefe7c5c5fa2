"""The enhancer as the ensemble's optional last stage.

The ensemble config (``blend/config.py``) carries an ``enhancer:`` mapping from target to a spec;
a target is enhanced when it has a non-empty spec (the tuning run writes specs only for targets
where the enhancer raises the validation SDR)::

    enhancer:
      vocals: {base: ../../enhancer/weights/base.pth, adapter: ../../enhancer/weights/vocals.pth}
      drums: {base: ../../enhancer/weights/base.pth}          # the base alone, no adapter
      # optional per spec: segment: 4.0 (seconds of spectrogram per block; memory bound)

Relative paths start from ``base_dir`` (the ensemble predictor passes the config file's folder;
default: the repository root).

* :func:`load` ``(spec, base_dir) -> StemEnhancer``: what :mod:`blend.ensemble` calls per target;
  the result is a callable ``fn(estimate (C, T), mixture (C, T)) -> (C, T)``.
* :func:`from_config` ``(section, base_dir) -> Enhancer``: every target of a section on one shared
  base with the adapters switched per call (evaluation, the tuner's :func:`enhancer.evaluate.choose_targets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from core.audio import match_channels
from core.constants import TARGETS
from enhancer.checkpoint import load_adapter, load_base
from enhancer.lora import AdaptedEnhancer
from enhancer.model import PhaseEnhancer, song_scale
from enhancer.spectral import as_tensor, process_segments

#: where relative paths are resolved when no ``base_dir`` is given
REPO_ROOT = Path(__file__).resolve().parents[1]
#: keys of a target's spec
SPEC_KEYS = ("base", "adapter", "segment")
DEFAULT_SEGMENT = 4.0


def _numpy(audio) -> np.ndarray:
    return np.asarray(audio.detach().cpu() if isinstance(audio, Tensor) else audio, dtype=np.float32)


@torch.inference_mode()
def enhance_stem(model: AdaptedEnhancer, adapter: str | None, estimate, mixture,
                 segment: float = DEFAULT_SEGMENT, progress: bool = False) -> np.ndarray:
    """Enhance one separated stem with ``model`` and adapter ``adapter`` (``None``: the base alone).

    Args:
        model: the base with its adapters.
        adapter: the adapter to switch to.
        estimate: ``(C, T)`` separated stem (numpy or tensor), C = 1 or 2, at 44.1 kHz.
        mixture: ``(C, T)`` the mixture it was separated from.
        segment: seconds of spectrogram per block (exact: the result does not depend on it).
        progress: tqdm bar over blocks.

    Returns:
        ``(C, T)`` float32 numpy.
    """
    estimate_np, mixture_np = _numpy(estimate), _numpy(mixture)
    if estimate_np.shape != mixture_np.shape or estimate_np.ndim != 2:
        raise ValueError(f"estimate {estimate_np.shape} and mixture {mixture_np.shape} must both be "
                         "(nb_channels, nb_timesteps)")
    if segment <= 0:
        raise ValueError(f"enhancer segment must be positive seconds, got {segment}")
    channels = estimate_np.shape[0]
    cfg = model.config
    est = as_tensor(match_channels(estimate_np, cfg.nb_channels))
    mix = as_tensor(match_channels(mixture_np, cfg.nb_channels))
    scale = song_scale(mix).reshape(1)
    model.eval()
    model.use(adapter)

    def network(est_spec: Tensor, mix_spec: Tensor) -> Tensor:
        return model(est_spec[None], mix_spec[None], scale)[0]

    frames = max(1, int(round(segment * cfg.sample_rate / cfg.n_hop)))
    out = process_segments(network, est, mix, cfg.n_fft, cfg.n_hop, segment=frames,
                           context=model.receptive_frames, progress=progress).numpy()
    return match_channels(out, channels) if channels != cfg.nb_channels else out


class StemEnhancer:
    """One target's enhancer: ``fn(estimate (C, T), mixture (C, T)) -> (C, T)`` float32 numpy.

    Args:
        model: base (+ adapters); a bare :class:`PhaseEnhancer` is wrapped.
        adapter: adapter of ``model`` to use, ``None`` for the base alone.
        segment: seconds per block.
    """

    def __init__(self, model: AdaptedEnhancer | PhaseEnhancer, adapter: str | None = None,
                 segment: float = DEFAULT_SEGMENT):
        self.model = model if isinstance(model, AdaptedEnhancer) else AdaptedEnhancer(model)
        if adapter is not None and adapter not in self.model.specs:
            raise KeyError(f"no adapter '{adapter}' (loaded: {', '.join(self.model.adapters) or 'none'})")
        if segment <= 0:
            raise ValueError(f"enhancer segment must be positive seconds, got {segment}")
        self.adapter, self.segment = adapter, float(segment)

    def __call__(self, estimate, mixture, progress: bool = False) -> np.ndarray:
        return enhance_stem(self.model, self.adapter, estimate, mixture, self.segment, progress)


class Enhancer:
    """Enhancers by target; targets without one pass through untouched.

    Args:
        stems: ``{target: StemEnhancer}``.
    """

    def __init__(self, stems: Mapping[str, StemEnhancer]):
        unknown = [t for t in stems if t not in TARGETS]
        if unknown:
            raise ValueError(f"enhancer for unknown targets {unknown} (targets: {list(TARGETS)})")
        self.stems = dict(stems)

    @classmethod
    def with_model(cls, model: AdaptedEnhancer | PhaseEnhancer, targets=TARGETS,
                   segment: float = DEFAULT_SEGMENT) -> Enhancer:
        """Every target on one model, each with the adapter named like it if there is one."""
        model = model if isinstance(model, AdaptedEnhancer) else AdaptedEnhancer(model)
        return cls({t: StemEnhancer(model, t if t in model.specs else None, segment) for t in targets})

    @property
    def enabled(self) -> list[str]:
        return [t for t in TARGETS if t in self.stems]

    def adapter_for(self, target: str) -> str | None:
        return self.stems[target].adapter if target in self.stems else None

    def enhance(self, target: str, estimate, mixture, progress: bool = False) -> np.ndarray:
        """``(C, T)`` enhanced stem, or the estimate itself (as float32 numpy) for other targets."""
        if target not in self.stems:
            return _numpy(estimate)
        return self.stems[target](estimate, mixture, progress)

    __call__ = enhance


def resolve(path: str | Path, base_dir: str | Path | None = None) -> Path:
    """A config path: absolute as is, else relative to ``base_dir`` (default the repository root)."""
    path = Path(path)
    return path if path.is_absolute() else Path(base_dir or REPO_ROOT) / path


def _check_spec(spec, where: str) -> None:
    if not isinstance(spec, Mapping):
        raise ValueError(f"enhancer config for {where}: expected a mapping with {list(SPEC_KEYS)}, "
                         f"got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"enhancer config for {where}: unknown keys {unknown} (known: {list(SPEC_KEYS)})")
    if not spec.get("base"):
        raise ValueError(f"enhancer config for {where}: 'base' (path of the base enhancer) is required")


def load(spec: Mapping, base_dir: str | Path | None = None, manifest=None) -> StemEnhancer:
    """One target's enhancer from its spec (``{base, adapter?, segment?}``), on its own base copy.

    Raises:
        ValueError: a malformed spec.
        CheckpointError: a missing, corrupt or mismatched file (the message names it).
    """
    _check_spec(spec, "a target")
    model = AdaptedEnhancer(load_base(resolve(spec["base"], base_dir), manifest=manifest))
    adapter = None
    if spec.get("adapter"):
        adapter = load_adapter(model, resolve(spec["adapter"], base_dir), manifest=manifest)
    return StemEnhancer(model, adapter, float(spec.get("segment", DEFAULT_SEGMENT)))


def from_config(section: Mapping | None, base_dir: str | Path | None = None,
                manifest=None) -> Enhancer | None:
    """All targets of an ``enhancer:`` section, sharing one loaded base per base file.

    Returns:
        An :class:`Enhancer`, or ``None`` when no target has a spec.
    """
    section = {t: s for t, s in (section or {}).items() if s}
    if not section:
        return None
    bases: dict[Path, AdaptedEnhancer] = {}
    stems = {}
    for target, spec in section.items():
        if target not in TARGETS:
            raise ValueError(f"enhancer config: unknown target '{target}' (targets: {list(TARGETS)})")
        _check_spec(spec, f"'{target}'")
        path = resolve(spec["base"], base_dir).resolve()
        if path not in bases:
            bases[path] = AdaptedEnhancer(load_base(path, manifest=manifest))
        model = bases[path]
        adapter = None
        if spec.get("adapter"):
            adapter = load_adapter(model, resolve(spec["adapter"], base_dir), name=target, manifest=manifest)
        stems[target] = StemEnhancer(model, adapter, float(spec.get("segment", DEFAULT_SEGMENT)))
    return Enhancer(stems)
