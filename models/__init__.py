"""Ensemble members: a registry, self-describing checkpoints, chunked inference, shipped weights.

import models
models.names()                        # ['convtasnet', 'demucs', 'fnn', 'nussl', 'umx', ...]
member = models.get("umx")(hidden_size=128)
estimates = member.separate(mix)      # (C, T) -> (S, C, T), chunked, bounded memory
models.save_member(member, "umx.pth", training_args={...}, metrics={...})
member = models.load_member("models/weights/umx.pth")   # weights_only load + sha256 check
"""

from models.base import Member, overlap_add
from models.checkpoint import load_member, save_member, sha256_file
from models.manifest import MANIFEST, WEIGHTS_DIR, read_manifest
from models.registry import get, names, register

__all__ = [
    "MANIFEST",
    "WEIGHTS_DIR",
    "Member",
    "get",
    "load_member",
    "names",
    "overlap_add",
    "read_manifest",
    "register",
    "save_member",
    "sha256_file",
]
