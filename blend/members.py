"""Ensemble members as the config names them: loading, identity (sha256) and running one.

A member entry is either a checkpoint written by ``models.save_member`` (``checkpoint:``, loaded
with ``models.load_member``: weights-only, sha256 checked) or a registered member built from
arguments (``member:`` + ``kwargs:``; training-free members such as ``nussl``). Relative checkpoint
paths are relative to the config file's folder.

Shapes: mixture ``(nb_channels, nb_timesteps)``; a member's output ``(nb_targets, nb_channels,
nb_timesteps)`` re-ordered to the ensemble's targets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import StemBlendError


class MemberSpecError(StemBlendError, ValueError):
    """A member entry of an ensemble config is malformed."""


@dataclass(frozen=True)
class MemberSpec:
    """One member of the ensemble.

    Attributes:
        name: label used in the weight tables (unique in the ensemble).
        checkpoint: checkpoint path (absolute, or relative to ``base_dir``).
        member: registered member name to build from ``kwargs`` (instead of a checkpoint).
        kwargs: constructor arguments for ``member``.
        sha256: expected sha256 of the checkpoint (optional; checked on load).
        segment, overlap: chunking of the member's ``separate`` (None: the member's defaults).
        base_dir: folder relative checkpoint paths start from (the config file's folder).
    """

    name: str
    checkpoint: str | None = None
    member: str | None = None
    kwargs: dict = field(default_factory=dict)
    sha256: str | None = None
    segment: float | None = None
    overlap: float | None = None
    base_dir: Path = Path(".")

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str):
            raise MemberSpecError(f"member entry needs a non-empty 'name', got {self.name!r}")
        if (self.checkpoint is None) == (self.member is None):
            raise MemberSpecError(f"member '{self.name}': give exactly one of 'checkpoint' (a trained "
                                  "member) or 'member' (a registered member built from 'kwargs')")

    @property
    def path(self) -> Path | None:
        """Resolved checkpoint path."""
        if self.checkpoint is None:
            return None
        p = Path(self.checkpoint)
        return p if p.is_absolute() else self.base_dir / p

    def to_dict(self, base_dir: Path | None = None) -> dict:
        """YAML entry; the checkpoint path is written relative to ``base_dir`` when possible."""
        d: dict = {"name": self.name}
        if self.checkpoint is not None:
            d["checkpoint"] = relative_path(self.path, base_dir)
            if self.sha256:
                d["sha256"] = self.sha256
        else:
            d["member"], d["kwargs"] = self.member, dict(self.kwargs)
        for key in ("segment", "overlap"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d

    @classmethod
    def from_dict(cls, d: dict, base_dir: Path) -> MemberSpec:
        if not isinstance(d, dict):
            raise MemberSpecError(f"member entry must be a mapping, got {d!r}")
        known = {"name", "checkpoint", "member", "kwargs", "sha256", "segment", "overlap"}
        unknown = set(d) - known
        if unknown:
            raise MemberSpecError(f"member '{d.get('name')}': unknown keys {sorted(unknown)}; "
                                  f"known: {sorted(known)}")
        return cls(base_dir=Path(base_dir), **{k: v for k, v in d.items() if v is not None or k == "name"})

    def key(self) -> str:
        """Identity of the member's outputs: sha256 of the checkpoint file, or of its build arguments."""
        if self.checkpoint is not None:
            if not self.path.is_file():
                raise MemberSpecError(f"member '{self.name}': {self.path}: checkpoint does not exist")
            from models import sha256_file

            return sha256_file(self.path)
        text = json.dumps({"member": self.member, "kwargs": self.kwargs}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def relative_path(path: Path, base_dir: Path | None) -> str:
    """``path`` relative to ``base_dir`` (the folder of the file that will name it), or as is without one."""
    if base_dir is None:
        return str(path)
    try:
        return str(Path(path).resolve().relative_to(Path(base_dir).resolve()))
    except ValueError:
        import os

        return os.path.relpath(Path(path).resolve(), Path(base_dir).resolve())


def load(spec: MemberSpec):
    """Build the member (a ``models.Member``) in eval mode.

    Raises:
        core.errors.CheckpointError: missing/corrupt checkpoint or sha256 mismatch (from models).
        MemberSpecError: unknown registered member or bad arguments.
    """
    import models

    if spec.checkpoint is not None:
        return models.load_member(spec.path, sha256=spec.sha256)
    try:
        cls = models.get(spec.member)
    except KeyError as exc:
        raise MemberSpecError(f"member '{spec.name}': {exc.args[0]}") from None
    try:
        return cls(**spec.kwargs).eval()
    except (TypeError, ValueError) as exc:
        raise MemberSpecError(f"member '{spec.name}': arguments {spec.kwargs} do not build '{spec.member}' "
                              f"({exc})") from None


def availability(member, targets) -> np.ndarray:
    """``(nb_targets,)`` bool: which of ``targets`` the member estimates."""
    return np.array([t in tuple(member.targets) for t in targets])


def run(member, mixture: np.ndarray, targets, segment: float | None = None, overlap: float | None = None):
    """Separate with one member and re-order its output to ``targets``.

    Args:
        member: a loaded member.
        mixture: ``(nb_channels, nb_timesteps)`` float32.
        targets: the ensemble's targets; a target the member lacks comes out as silence.
        segment, overlap: the member's chunking (None: its defaults).

    Returns:
        ``(len(targets), nb_channels, nb_timesteps)`` float32.
    """
    kwargs = {k: v for k, v in (("segment", segment), ("overlap", overlap)) if v is not None}
    est = np.asarray(member.separate(np.ascontiguousarray(mixture, dtype=np.float32), **kwargs), np.float32)
    own = tuple(member.targets)
    expected = (len(own),) + mixture.shape
    if est.shape != expected:
        raise StemBlendError(f"member '{getattr(member, 'name', type(member).__name__)}' returned shape "
                             f"{est.shape}, expected {expected}")
    if own == tuple(targets):
        return est
    out = np.zeros((len(targets),) + mixture.shape, np.float32)
    for s, target in enumerate(targets):
        if target in own:
            out[s] = est[own.index(target)]
    return out
