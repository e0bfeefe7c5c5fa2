"""Enhancer files: the base and its adapters, saved apart, loaded without unpickling code.

Both are plain dicts written with ``torch.save`` and read with ``weights_only=True``
(:func:`models.checkpoint.safe_load`)::

    base:    {"format": "stemblend-enhancer/1", "config": {...EnhancerConfig...},
              "fingerprint": "<sha256 of the weights>", "training": {...}, "metrics": {...},
              "state": {name: tensor}}
    adapter: {"format": "stemblend-enhancer-adapter/1", "name": "vocals", "spec": {...AdapterSpec...},
              "base_fingerprint": "...", "training": {...}, "metrics": {...}, "state": {name: tensor}}

An adapter records the fingerprint of the base it was trained on and refuses to load onto another
one (its low-rank update is only meaningful on those exact weights). Files listed in a
``manifest.json`` beside them (``enhancer/weights/manifest.json``, the members' format) must
match the recorded sha256. Every problem raises :class:`core.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from core.errors import CheckpointError
from enhancer.lora import AdaptedEnhancer, AdapterSpec
from enhancer.model import EnhancerConfig, PhaseEnhancer
from models.checkpoint import atomic_torch_save, plain, safe_load, sha256_file
from models.manifest import expected_sha256

BASE_FORMAT = "stemblend-enhancer/1"
ADAPTER_FORMAT = "stemblend-enhancer-adapter/1"


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, shapes and float32 values of a state dict (file-format independent)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key].detach().cpu().float().contiguous()
        digest.update(f"{key}:{tuple(value.shape)};".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def save_base(model: PhaseEnhancer | AdaptedEnhancer, path: str | Path, training: dict | None = None,
              metrics: dict | None = None) -> Path:
    """Write the base enhancer (without any adapter) atomically; returns the path."""
    if isinstance(model, AdaptedEnhancer):
        state, config = model.base_state(), model.config
    else:
        state, config = model.state_dict(), model.config
    state = {k: v.detach().cpu().clone() for k, v in state.items()}
    package = {
        "format": BASE_FORMAT,
        "config": config.to_dict(),
        "fingerprint": fingerprint(state),
        "training": plain(training or {}, "training"),
        "metrics": plain(metrics or {}, "metrics"),
        "state": state,
    }
    return atomic_torch_save(package, path)


def save_adapter(model: AdaptedEnhancer, name: str, path: str | Path, training: dict | None = None,
                 metrics: dict | None = None) -> Path:
    """Write adapter ``name`` of ``model`` on its own (a few kilobytes) atomically; returns the path."""
    state = {k: v.detach().cpu().clone() for k, v in model.adapter_state(name).items()}
    package = {
        "format": ADAPTER_FORMAT,
        "name": name,
        "spec": model.specs[name].to_dict(),
        "base_fingerprint": fingerprint(model.base_state()),
        "training": plain(training or {}, "training"),
        "metrics": plain(metrics or {}, "metrics"),
        "state": state,
    }
    return atomic_torch_save(package, path)


def _read(path: str | Path, fmt: str, required: tuple[str, ...], manifest=None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: enhancer file does not exist")
    want = expected_sha256(path, manifest)
    if want:
        digest = sha256_file(path)
        if digest != want:
            raise CheckpointError(f"{path}: sha256 {digest[:12]}... does not match the manifest's "
                                  f"{want[:12]}...; the file was changed or corrupted")
    package = safe_load(path)
    if not isinstance(package, dict) or package.get("format") != fmt:
        found = package.get("format") if isinstance(package, dict) else type(package).__name__
        raise CheckpointError(f"{path}: not an enhancer file of format {fmt} (found {found!r})")
    missing = [k for k in required if k not in package]
    if missing:
        raise CheckpointError(f"{path}: incomplete enhancer file (missing {', '.join(missing)})")
    return package


def load_base(path: str | Path, manifest=None) -> PhaseEnhancer:
    """Load a base written by :func:`save_base`, in eval mode.

    Args:
        path: the ``.pth`` file.
        manifest: as in :func:`models.load_member` (``None``: ``manifest.json`` beside the file if any).

    Returns:
        The model, with ``model.checkpoint = {"path", "fingerprint", "training", "metrics"}``.
    """
    package = _read(path, BASE_FORMAT, ("config", "state"), manifest)
    try:
        model = PhaseEnhancer(EnhancerConfig.from_dict(package["config"]))
        model.load_state_dict(package["state"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the enhancer they describe ({exc})") from None
    model.checkpoint = {
        "path": str(path),
        "fingerprint": package.get("fingerprint") or fingerprint(package["state"]),
        "training": package.get("training", {}),
        "metrics": package.get("metrics", {}),
    }
    return model.eval()


def load_adapter(model: AdaptedEnhancer, path: str | Path, name: str | None = None, manifest=None,
                 check_base: bool = True) -> str:
    """Add the adapter saved in ``path`` to ``model`` (under ``name``, default its saved name).

    Raises:
        CheckpointError: not an adapter file, trained on another base, or not fitting this base.

    Returns:
        The adapter's name in ``model``.
    """
    package = _read(path, ADAPTER_FORMAT, ("name", "spec", "state"), manifest)
    name = name or package["name"]
    if check_base and package.get("base_fingerprint"):
        base = fingerprint(model.base_state())
        if package["base_fingerprint"] != base:
            raise CheckpointError(
                f"{path}: adapter '{name}' was trained on another base enhancer (fingerprint "
                f"{package['base_fingerprint'][:12]}..., this base {base[:12]}...); retrain it on this base"
            )
    try:
        model.add_adapter(name, AdapterSpec.from_dict(package["spec"]))
        model.load_adapter_state(name, package["state"])
    except (TypeError, ValueError, KeyError) as exc:
        if name in model.specs:
            model.delete_adapter(name)
        raise CheckpointError(f"{path}: adapter does not fit this base ({exc})") from None
    model.adapter_files = {**getattr(model, "adapter_files", {}), name: str(path)}
    return name


def read_metadata(path: str | Path) -> dict:
    """``training`` and ``metrics`` of an enhancer file (base or adapter), without building a model."""
    package = safe_load(path)
    if not isinstance(package, dict) or package.get("format") not in (BASE_FORMAT, ADAPTER_FORMAT):
        raise CheckpointError(f"{path}: not an enhancer file")
    return {"format": package["format"], "training": package.get("training", {}),
            "metrics": package.get("metrics", {})}
