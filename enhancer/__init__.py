"""Phase-aware enhancer of separated stems with per-target LoRA adapters (the ensemble's last stage).

* :mod:`enhancer.model`: the base network (complex masks on the stem's and the mixture's STFT).
* :mod:`enhancer.lora`: per-target LoRA adapters through ``peft``, switchable at run time.
* :mod:`enhancer.loss`: multi-resolution complex STFT loss + magnitude-weighted phase coherence.
* :mod:`enhancer.spectral`: STFT and exact segment-wise processing with overlap-add.
* :mod:`enhancer.pairs`: before/after training pairs (real separator outputs or simulated artifacts).
* :mod:`enhancer.train`: ``python -m enhancer.train`` (base, then adapters).
* :mod:`enhancer.apply`: :func:`load` (one target's stage, what the ensemble calls) and
  :func:`from_config` / :class:`Enhancer` (all targets on one base).
* :mod:`enhancer.evaluate`: SDR with/without, real-time factor, :func:`tune_section` for the tuner.
* :mod:`enhancer.manifest`: shipping weights into ``enhancer/weights/`` with a manifest.
"""

__all__ = ["Enhancer", "StemEnhancer", "choose_targets", "from_config", "load", "tune_section"]


def __getattr__(name):  # torch and peft load only when the stage is used
    if name in ("Enhancer", "StemEnhancer", "from_config", "load"):
        from enhancer import apply

        return getattr(apply, name)
    if name in ("choose_targets", "tune_section"):
        from enhancer import evaluate

        return getattr(evaluate, name)
    raise AttributeError(f"module 'enhancer' has no attribute '{name}'")
