"""``EnsemblePredictor``: the kit's default submission, registered as ``ensemble``.

It loads an ensemble config (default ``blend/configs/default.yaml``), builds the members once in
``prediction_setup`` and separates each song with :class:`blend.ensemble.Ensemble` (members chunk
by chunk, λ blend, Wiener post-filter, optional enhancers). Reading, resampling, mono handling and
writing are :class:`submission.base.SeparatorPredictor`'s; ``prediction()`` streams: the stems are
written as the chunks become final, so memory does not grow with the song beyond the mixture.

Options (``submission.registry.create("ensemble", **options)``, ``test.py --option KEY=VALUE``):

* ``config``: path of the ensemble config.
* ``wiener=False`` / ``no_wiener=True``: blend only (``test.py --no-wiener``).
* ``enhancer=False`` / ``no_enhancer=True``: skip the enhancers (``test.py --no-enhancer``).
* ``niter``, ``softmask``, ``residual``, ``wiener_win_len``: override the config's Wiener settings
  (umx's flag names).
* ``chunk_seconds``, ``context_seconds``: the ensemble's chunking; ``segment``, ``overlap``: every
  member's own chunking.
* ``progress``: tqdm bars.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from blend.config import DEFAULT_CONFIG, EnsembleConfig, Runtime, load_config
from blend.ensemble import Ensemble
from submission.base import SeparatorPredictor
from submission.registry import register

#: predictor option -> WienerSettings field
_WIENER_OPTIONS = {"niter": "iterations", "softmask": "softmask", "residual": "residual",
                   "wiener_win_len": "win_len"}


class EnsemblePredictor(SeparatorPredictor):
    """λ-weighted blend of the members plus the multichannel Wiener filter.

    Args:
        **options: see the module docstring; unknown options are kept and ignored.
    """

    def __init__(self, **options):
        super().__init__(**options)
        self.config_path = Path(options.get("config") or DEFAULT_CONFIG)
        self.use_wiener = bool(options.get("wiener", True)) and not options.get("no_wiener", False)
        self.use_enhancer = bool(options.get("enhancer", True)) and not options.get("no_enhancer", False)
        self.ensemble: Ensemble | None = None
        shifts = options.get("shifts")
        if shifts not in (None, 0, 1):
            warnings.warn(f"ensemble: shifts={shifts} is not supported, running without shifts", stacklevel=2)

    def build_config(self) -> EnsembleConfig:
        """The config file with the option overrides applied."""
        config = load_config(self.config_path)
        missing = [t for t in self.instruments if t not in config.targets]
        if missing:
            raise ValueError(f"{self.config_path}: the ensemble does not estimate {missing}")
        overrides = {f: self.options[opt] for opt, f in _WIENER_OPTIONS.items() if opt in self.options}
        if overrides and config.wiener is not None:
            config = config.with_wiener(dataclasses.replace(config.wiener, **overrides))
        runtime = {k: float(self.options[k]) for k in Runtime.__dataclass_fields__ if k in self.options}
        if runtime:
            config = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, **runtime))
        return config

    def prediction_setup(self):
        """Load the config and every member (once)."""
        self.ensemble = Ensemble(
            self.build_config(), wiener=self.use_wiener, enhancer=self.use_enhancer,
            segment=self.options.get("segment"), overlap=self.options.get("overlap"),
            progress=bool(self.options.get("progress", False)),
        )

    def fingerprint(self) -> str:
        """sha256 of the effective config (λ, Wiener, stages switched on) and of every member's
        checkpoint: ``test.py`` recomputes a song's stems whenever any of them changes."""
        config = self.ensemble.config
        state = dict(config.to_dict(), wiener_on=self.use_wiener, enhancer_on=self.use_enhancer)
        state["members"] = [{"name": spec.name, "sha256": spec.key()} for spec in config.members]
        return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()

    def separate(self, mixture: np.ndarray) -> dict[str, np.ndarray]:
        """``(nb_channels, nb_timesteps)`` at 44.1 kHz -> ``{target: (nb_channels, nb_timesteps)}``."""
        out = self.ensemble.separate(mixture)
        return {t: out[i] for i, t in enumerate(self.ensemble.targets)}

    #: ``prediction()`` writes the stems chunk by chunk (no whole-song stems in memory)
    can_stream = True

    def separate_stream(self, mixture: np.ndarray, write) -> None:
        """:meth:`separate`, handing each final block to ``write({target: (nb_channels, n)})``."""
        targets = self.ensemble.targets
        self.ensemble.separate(mixture, sink=lambda start, block: write(
            {t: block[i] for i, t in enumerate(targets)}))


@register("ensemble", help="λ-weighted blend of the members + multichannel Wiener filter "
                           "(blend/configs/default.yaml)")
def _ensemble(options: dict) -> EnsemblePredictor:
    return EnsemblePredictor(**options)
