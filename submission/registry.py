"""Predictors by name: a registry instead of an if/elif factory.

A module registers a factory ``factory(options: dict) -> predictor`` with :func:`register`; the
entry points create predictors with :func:`create` and list them with :func:`names`. The kit's own
predictors live in :data:`BUILTIN_MODULES`; packages written later add theirs by being listed in
:data:`PLUGIN_MODULES` (imported lazily, skipped while they do not exist):

* ``blend.predictor`` registers ``ensemble``;
* ``models.predictors`` registers one predictor per member (``umx``, ``demucs``, ...).

Example::

    @register("scaled", help="every stem is mixture / 4")
    def _scaled(options):
        return ScaledMixturePredictor(**options)

    predictor = create("scaled", subtype="PCM_16")
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

#: modules of this package that register predictors
BUILTIN_MODULES = ("submission.baselines", "submission.oracle")
#: modules of other packages that register predictors once they exist
PLUGIN_MODULES = ("blend.predictor", "models.predictors")


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[[dict], object]
    help: str
    module: str


class UnknownPredictorError(KeyError):
    """No predictor is registered under that name."""

    def __str__(self) -> str:
        return str(self.args[0])


_REGISTRY: dict[str, Entry] = {}
_LOADED: set[str] = set()
#: plug-in modules that exist but failed to import: module -> error message
PLUGIN_ERRORS: dict[str, str] = {}


def register(name: str, help: str = "") -> Callable:
    """Decorator registering ``factory(options: dict) -> predictor`` under ``name``.

    Raises:
        ValueError: ``name`` is already taken by another module's factory.
    """

    def decorator(factory: Callable[[dict], object]) -> Callable[[dict], object]:
        old = _REGISTRY.get(name)
        if old is not None and (old.module, old.factory.__qualname__) != (
            factory.__module__, factory.__qualname__
        ):
            raise ValueError(f"predictor name '{name}' is already registered by {old.module}")
        _REGISTRY[name] = Entry(name, factory, help, factory.__module__)
        return factory

    return decorator


def _import(module: str, optional: bool) -> None:
    if module in _LOADED:
        return
    _LOADED.add(module)
    if optional:
        try:
            if importlib.util.find_spec(module) is None:
                return
        except ModuleNotFoundError:  # the parent package does not exist
            return
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken plug-in must not hide the others
        if not optional:
            raise
        PLUGIN_ERRORS[module] = f"{type(exc).__name__}: {exc}"


def load(plugins: bool = True) -> None:
    """Import the built-in predictor modules and (``plugins=True``) every plug-in that exists."""
    for module in BUILTIN_MODULES:
        _import(module, optional=False)
    if plugins:
        for module in PLUGIN_MODULES:
            _import(module, optional=True)


def names() -> list[str]:
    """Every registered predictor name, built-ins first, in registration order."""
    load()
    return list(_REGISTRY)


def describe() -> dict[str, str]:
    """``{name: one-line help}`` for every registered predictor."""
    load()
    return {name: entry.help for name, entry in _REGISTRY.items()}


def create(name: str, **options):
    """Create the predictor registered as ``name`` with ``options``.

    Plug-ins are only imported when ``name`` is not a built-in, so the grader's default path stays
    light.

    Raises:
        UnknownPredictorError: unknown name (the message lists the known names and any broken plug-in).
    """
    load(plugins=False)
    if name not in _REGISTRY:
        load(plugins=True)
    if name not in _REGISTRY:
        known = ", ".join(_REGISTRY)
        broken = "".join(f"\n  plug-in {m} failed to import: {e}" for m, e in PLUGIN_ERRORS.items())
        raise UnknownPredictorError(f"unknown predictor '{name}' (known: {known}){broken}")
    predictor = _REGISTRY[name].factory(dict(options))
    predictor.registry_name = name
    return predictor
