"""The Wiener-settings search of a tuning run: an Optuna grid over iterations, softmask, residual and
the filter's STFT size.

:func:`run_grid` walks the grid with any scoring function (``(wiener, stft) -> {target: dB}``), resumably
and shareably (trials live in an Optuna storage: SQLite, or PostgreSQL for workers on several
machines); :func:`cheapest_of_best` picks the setting to keep. :mod:`blend.tune` scores a setting by
rendering the validation songs with the fitted λ.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from blend.optuna_storage import open_study
from blend.render import StftSettings
from blend.wiener import WienerSettings

#: the Wiener grid Optuna walks through. ``n_fft``: the STFT the filter works in (hop ``n_fft // 4``,
#: as umx); the members are blended as waveforms, so the filter need not use any member's STFT
WIENER_SPACE = {"iterations": [0, 1, 2, 3], "softmask": [False, True], "residual": [False, True],
                "n_fft": [4096, 8192]}
#: Wiener trials within this many dB of the best count as equal; the cheapest of them is chosen. An EM
#: iteration costs about as much as the rest of the filter: one buying less than this on the validation
#: songs is not worth it (the measured case that set it: docs/blend.md, "Kept:")
WIENER_TOLERANCE_DB = 0.02


def wiener_space(items: Sequence[str] | None) -> dict:
    """:data:`WIENER_SPACE` with some axes narrowed by ``KEY=V1,V2`` items (``--wiener-space``)."""
    space = dict(WIENER_SPACE)
    for item in items or ():
        key, sep, values = item.partition("=")
        if not sep or key not in space:
            raise SystemExit(f"--wiener-space expects KEY=V1,V2 with KEY in {sorted(space)}, got '{item}'")
        kind = type(space[key][0])
        parsed = []
        for v in values.split(","):
            if kind is bool and v.strip().lower() not in ("true", "false"):
                raise SystemExit(f"--wiener-space {key}: expected true/false, got '{v}'")
            parsed.append(v.strip().lower() == "true" if kind is bool else kind(v))
        space[key] = parsed
    return space


def cheapest_of_best(trials: Sequence[dict], tolerance: float = WIENER_TOLERANCE_DB) -> dict:
    """The trial to keep: among those whose mean SDR (``value``) is within ``tolerance`` dB of the
    best, the one with the fewest EM iterations, then without the residual source, then the fastest
    (each iteration costs as much as the rest of the filter; differences this small are noise)."""
    if not trials:
        raise ValueError("no finished Wiener trial")
    top = max(t["value"] for t in trials)
    near = [t for t in trials if t["value"] >= top - tolerance]
    return min(near, key=lambda t: (t["params"].get("iterations", 0), bool(t["params"].get("residual")),
                                    t.get("seconds", 0.0), -t["value"]))


def point_settings(params: dict, base: WienerSettings, base_stft: StftSettings
                   ) -> tuple[WienerSettings, StftSettings]:
    """The filter settings of a grid point: ``base`` with the point's Wiener values, and the STFT of
    its ``n_fft`` (hop ``n_fft // 4``; ``base_stft`` when the point has none)."""
    params = dict(params)
    n_fft = params.pop("n_fft", None)
    stft = base_stft if n_fft is None else StftSettings(n_fft=int(n_fft), n_hop=int(n_fft) // 4)
    return replace(base, **params), stft


def run_grid(score: Callable[[WienerSettings, StftSettings], dict], storage: str, name: str,
             n_trials: int | None, base: WienerSettings, base_stft: StftSettings = StftSettings(),
             space: dict = WIENER_SPACE) -> list[dict]:
    """Try the grid points of ``space`` not tried yet in study ``name`` (at most ``n_trials``; 0 only
    reads the study), each as ``base``/``base_stft`` with the point's settings
    (:func:`point_settings`) scored by ``score``.

    Returns:
        every finished trial of the study as ``{"number", "params", "value" (mean dB), "sdr"
        ({target: dB}), "seconds", "worker"}``.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(name, storage, optuna.samplers.GridSampler(space))

    def objective(trial):
        params = {k: trial.suggest_categorical(k, v) for k, v in space.items()}
        start = time.perf_counter()
        sdr = score(*point_settings(params, base, base_stft))
        trial.set_user_attr("sdr", sdr)
        trial.set_user_attr("seconds", time.perf_counter() - start)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        return float(np.mean(list(sdr.values())))

    grid_size = int(np.prod([len(v) for v in space.values()]))
    left = grid_size - len({tuple(sorted(t.params.items())) for t in study.trials
                            if t.state == optuna.trial.TrialState.COMPLETE})
    n_trials = left if n_trials is None else min(n_trials, left)
    if n_trials > 0:
        study.optimize(objective, n_trials=n_trials)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return [{"number": t.number, "params": t.params, "value": t.value, **t.user_attrs} for t in done]
