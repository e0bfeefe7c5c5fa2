"""Self-describing member checkpoints, loaded without unpickling code.

A checkpoint is a plain dict saved with ``torch.save``::

    {"format": "stemblend-member/1", "member": "umx", "class": "models.umx.UMX",
     "kwargs": {...constructor arguments...}, "targets": [...], "sample_rate": 44100,
     "training_args": {...}, "metrics": {...validation SDR...}, "state": {name: tensor}}

Only tensors, numbers, strings, lists and dicts: ``torch.load(weights_only=True)`` reads it, and
a file that carries pickled code (a class, a function) is refused. Every problem raises
:class:`core.errors.CheckpointError` naming the file: missing, corrupt, pickled code, sha256 not
matching the manifest, targets not matching what the caller needs, weights not fitting the member.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import torch

from core.errors import CheckpointError
from core.files import atomic_path
from models import registry
from models.base import Member

FORMAT = "stemblend-member/1"
_REQUIRED = ("format", "member", "kwargs", "targets", "sample_rate", "state")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_load(path: str | Path, allowed_globals=()):
    """``torch.load(path, weights_only=True)`` with errors that name the file and the problem.

    Args:
        path: checkpoint file.
        allowed_globals: classes the file may reference (e.g. demucs' model classes); anything
            else that is not a tensor or plain container is refused.

    Raises:
        CheckpointError: missing, pickled code, or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint does not exist")
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for broken files
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if "Weights only load failed" in text or found:
            what = found.group(1) if found else "an object that is not a tensor or plain container"
            raise CheckpointError(
                f"{path}: refused: the checkpoint carries pickled code ({what}); only tensors, numbers, "
                "strings, lists and dicts are loaded (weights_only=True). Re-save it with "
                "models.save_member or convert it from a trusted source."
            ) from None
        raise CheckpointError(
            f"{path}: corrupt or not a PyTorch checkpoint ({type(exc).__name__}: "
            f"{text.splitlines()[0] if text else 'no message'})"
        ) from None


def save_member(
    member: Member,
    path: str | Path,
    training_args: dict | None = None,
    metrics: dict | None = None,
    half: bool = False,
) -> Path:
    """Write a self-describing checkpoint atomically.

    Args:
        member: a registered member.
        path: destination ``.pth``.
        training_args: how it was trained (command-line arguments, config), plain values.
        metrics: e.g. ``{"valid_sdr": {"bass": 4.1, ..., "mean": 4.5}, "ood_sdr": {...}}``.
        half: store floating-point weights as float16 (half the size).

    Returns:
        The written path.
    """
    if not member.name:
        raise ValueError(f"{type(member).__qualname__} is not a registered member")
    state = {}
    for key, value in member.state_dict().items():
        value = value.detach().cpu().clone()
        state[key] = value.half() if half and value.is_floating_point() else value
    package = {
        "format": FORMAT,
        "member": member.name,
        "class": f"{type(member).__module__}.{type(member).__qualname__}",
        "kwargs": plain(member.config(), "kwargs"),
        "targets": list(member.targets),
        "sample_rate": int(member.sample_rate),
        "training_args": plain(training_args or {}, "training_args"),
        "metrics": plain(metrics or {}, "metrics"),
        "state": state,
    }
    return atomic_torch_save(package, path)


def load_member(
    path: str | Path,
    manifest=None,
    targets=None,
    sha256: str | None = None,
) -> Member:
    """Load a member written by :func:`save_member`.

    Args:
        path: the checkpoint.
        manifest: a manifest path or dict (see :mod:`models.manifest`) the file must be listed in
            with a matching sha256; ``None``: the ``manifest.json`` beside the file when there is
            one; ``False``: no check.
        targets: targets the caller needs; the checkpoint must estimate every one of them (the
            member's output order is ``member.targets``).
        sha256: expected sha256 (checked in addition to the manifest).

    Returns:
        The member in eval mode, with ``member.checkpoint`` = ``{"path", "sha256",
        "training_args", "metrics"}``.

    Raises:
        CheckpointError: see the module docstring.
    """
    from models import manifest as manifest_mod

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint does not exist")
    digest = sha256_file(path)
    expected = manifest_mod.expected_sha256(path, manifest)
    for source, want in (("manifest", expected), ("expected", sha256)):
        if want and want != digest:
            raise CheckpointError(
                f"{path}: sha256 {digest[:12]}... does not match the {source} sha256 {want[:12]}...; "
                "the file was changed or corrupted (restore it, or retrain and update the manifest)"
            )
    package = safe_load(path)
    check_package(package, path)
    lacking = [t for t in (targets or ()) if t not in package["targets"]]
    if lacking:
        raise CheckpointError(
            f"{path}: targets do not match: the checkpoint estimates {list(package['targets'])}, "
            f"but {list(targets)} are needed ({', '.join(lacking)} missing)"
        )
    member = build_member(package, path)
    member.checkpoint = {
        "path": str(path),
        "sha256": digest,
        "training_args": package.get("training_args", {}),
        "metrics": package.get("metrics", {}),
    }
    return member.eval()


def check_package(package, path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``package`` looks like a member checkpoint."""
    if not isinstance(package, dict):
        raise CheckpointError(f"{path}: not a StemBlend member checkpoint (a {type(package).__name__})")
    missing = [key for key in _REQUIRED if key not in package]
    if missing:
        raise CheckpointError(f"{path}: not a StemBlend member checkpoint (missing {', '.join(missing)})")
    if package["format"] != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {package['format']!r} (expected {FORMAT})")
    kwarg_targets = package["kwargs"].get("targets")
    if kwarg_targets is not None and list(kwarg_targets) != list(package["targets"]):
        raise CheckpointError(
            f"{path}: targets {package['targets']} disagree with its arguments {kwarg_targets}"
        )


def build_member(package: dict, path: Path) -> Member:
    """Rebuild the member a checked package describes and load its weights."""
    try:
        cls = registry.get(package["member"])
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0]}") from None
    try:
        member = cls(**package["kwargs"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: its arguments do not build a '{package['member']}' member ({exc})"
        ) from None
    if int(package["sample_rate"]) != member.sample_rate:
        raise CheckpointError(
            f"{path}: sample rate {package['sample_rate']} != member's {member.sample_rate}"
        )
    reference = member.state_dict()
    state = {}
    for key, value in package["state"].items():
        if key in reference and value.is_floating_point():
            value = value.to(reference[key].dtype)
        state[key] = value
    try:
        member.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise CheckpointError(
            f"{path}: weights do not fit the '{package['member']}' member ({detail})"
        ) from None
    return member


def atomic_torch_save(obj, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename. Written through a file
    object, so the archive's inner folder is torch's fixed ``archive`` rather than the random
    temporary name: saving the same weights twice gives the same bytes (and sha256)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        torch.save(obj, stream)
    return Path(path)


def plain(value, where: str = "value"):
    """Convert to JSON-like plain values (paths to str, numpy scalars to numbers) or raise TypeError."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored in a checkpoint (plain values only)")
