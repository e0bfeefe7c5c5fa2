"""Data augmentation from the source separation literature (issue 4).

``load_config(path_or_dict) -> Pipeline``; ``Pipeline.example(stems (S, C, T), generator)`` per
example, ``Pipeline.batch(stems (B, S, C, T), generator)`` per batch; the mixture is the sum of the
augmented stems (``mixture_of``). See docs/augment.md.

Names are imported lazily (PEP 562) so that ``python -m augment.<tool>`` does not pay for torch,
demucs or pedalboard unless it uses them.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "load_config": "augment.config",
    "presets": "augment.config",
    "AugmentConfigError": "augment.config",
    "Pipeline": "augment.pipeline",
    "ExampleTransform": "augment.pipeline",
    "mixture_of": "augment.base",
    "as_generator": "augment.base",
    "Transform": "augment.base",
    "REGISTRY": "augment.base",
    "chunk_offsets": "augment.chunking",
    "load_chunk": "augment.chunking",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        if name == "REGISTRY":  # filled by importing the transform modules
            importlib.import_module("augment.config")._ensure_registered()
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'augment' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
