"""On-disk cache of member outputs for tuning: computed once per (checkpoint, song).

Layout: ``ROOT/<member sha256[:16]>/<song>-<mixture sha256[:12]>.npy``, each a float32
``(nb_targets, nb_channels, nb_timesteps)`` array in the ensemble's target order. The member key is
the checkpoint's sha256 (or the hash of a built member's arguments, :meth:`MemberSpec.key`); the
song key hashes the mixture samples, so an edited or cropped song never hits a stale entry. Entries
are written atomically (temporary file + ``os.replace``), so several tuning workers may share a
cache; they are read back memory-mapped, so a tuning run does not hold every song in RAM.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.files import atomic_path


def song_key(mixture: np.ndarray) -> str:
    """sha256 of a mixture ``(nb_channels, nb_timesteps)`` (shape, dtype and samples)."""
    digest = hashlib.sha256(json.dumps([list(mixture.shape), str(mixture.dtype)]).encode())
    digest.update(np.ascontiguousarray(mixture).data)
    return digest.hexdigest()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "song"


class MemberCache:
    """Member outputs on disk.

    Args:
        root: cache folder (created on first write).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path(self, member_key: str, song: str, key: str) -> Path:
        return self.root / member_key[:16] / f"{_safe(song)}-{key[:12]}.npy"

    def get(self, member_key: str, song: str, key: str) -> np.ndarray | None:
        """The cached ``(nb_targets, nb_channels, nb_timesteps)`` output (read-only memmap), or None."""
        path = self.path(member_key, song, key)
        if not path.is_file():
            return None
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError):  # a truncated file from a killed run: recompute it
            return None

    def put(self, member_key: str, song: str, key: str, estimates: np.ndarray) -> Path:
        """Store an output atomically."""
        path = self.path(member_key, song, key)
        with atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, np.ascontiguousarray(estimates, dtype=np.float32))
        return path

    def get_or_compute(
        self, member_key: str, song: str, key: str, compute: Callable[[], np.ndarray]
    ) -> np.ndarray:
        """The cached output, computing and storing it first when missing."""
        cached = self.get(member_key, song, key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        self.put(member_key, song, key, compute())
        return self.get(member_key, song, key)
