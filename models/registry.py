"""Registry of ensemble members: ``get(name)`` returns a member class, ``names()`` lists them all.

Members register themselves with the :func:`register` decorator when their module is imported.
Built-in members are imported lazily on the first ``get`` of their name, so ``import models``
stays cheap (asteroid, demucs and nussl take seconds to import).
"""

from __future__ import annotations

import importlib

#: name -> member class, filled by :func:`register`.
_MEMBERS: dict[str, type] = {}

#: Built-in members and the module that registers each (imported on first use).
BUILTIN = {
    "umx": "models.umx",
    "demucs": "models.demucs_member",
    "unet-wave": "models.unet_wave",
    "unet-spec": "models.unet_spec",
    "fnn": "models.fnn",
    "convtasnet": "models.convtasnet",
    "nussl": "models.nussl_members",
}


def register(name: str):
    """Class decorator: make a member class available as ``get(name)``.

    The class gets a ``name`` attribute, written into its checkpoints.
    """

    def decorate(cls: type) -> type:
        if name in _MEMBERS and _MEMBERS[name] is not cls:
            raise ValueError(f"member name '{name}' is already registered by {_MEMBERS[name].__qualname__}")
        cls.name = name
        _MEMBERS[name] = cls
        return cls

    return decorate


def get(name: str) -> type:
    """The member class registered as ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    if name not in _MEMBERS and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in _MEMBERS:
        raise KeyError(f"unknown member '{name}'; known members: {', '.join(names())}")
    return _MEMBERS[name]


def names() -> list[str]:
    """Every member name, built-in or registered, sorted."""
    return sorted(set(_MEMBERS) | set(BUILTIN))


def trainable_names() -> list[str]:
    """Names of members that have parameters to train (imports every built-in member)."""
    return [name for name in names() if get(name).trainable]
