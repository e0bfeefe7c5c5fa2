"""Blending the members: λ-weighted averaging (per target, optionally per band), the multichannel
Wiener post-filter, tuning runs, and the default ``ensemble`` predictor.

    from blend import load_config, Ensemble
    ensemble = Ensemble(load_config())              # blend/configs/default.yaml
    stems = ensemble.separate(mixture)              # (C, T) -> (S, C, T)

    python -m blend.tune --data-dir data -o runs/blend-tune     # fit λ, search Wiener settings

Modules: :mod:`blend.weights` (λ), :mod:`blend.stft` (block-wise STFT), :mod:`blend.wiener`,
:mod:`blend.render` (blend + filter), :mod:`blend.fit` (closed form, grid search),
:mod:`blend.config`, :mod:`blend.members`, :mod:`blend.ensemble`, :mod:`blend.cache`,
:mod:`blend.tune` (with :mod:`blend.wiener_search`), :mod:`blend.report`, :mod:`blend.evaluate`,
:mod:`blend.predictor`.
"""

__all__ = ["Ensemble", "EnsembleConfig", "EnsemblePredictor", "WienerSettings", "load_config", "save_config"]


def __getattr__(name):  # torch and the submission package load only when asked for
    if name == "EnsemblePredictor":
        from blend.predictor import EnsemblePredictor

        return EnsemblePredictor
    if name == "Ensemble":
        from blend.ensemble import Ensemble

        return Ensemble
    if name in ("EnsembleConfig", "load_config", "save_config"):
        from blend import config

        return getattr(config, name)
    if name == "WienerSettings":
        from blend.wiener import WienerSettings

        return WienerSettings
    raise AttributeError(f"module 'blend' has no attribute '{name}'")
