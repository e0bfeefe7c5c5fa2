"""Shims for installed libraries that need help on this platform, and an import check.

* torchaudio has no CPU wheel for our torch; the set-up installs the closest wheel without
  dependencies and removes its compiled libraries. Its pure-Python parts (what openunmix and demucs
  import at top level) then work. :func:`check_imports` fails loudly if they do not.
* nussl 1.1.9 imports window functions from ``scipy.signal`` that SciPy moved to
  ``scipy.signal.windows``: :func:`import_nussl` puts them back before importing nussl.

Run ``python -m core.compat`` to check every library the kit needs; it exits non-zero naming
the library that fails.
"""

from __future__ import annotations

import importlib
import sys
import warnings


def import_nussl():
    """Import nussl after restoring the scipy window functions it expects."""
    import scipy.signal
    import scipy.signal.windows as windows

    for name in dir(windows):
        if not name.startswith("_") and not hasattr(scipy.signal, name):
            setattr(scipy.signal, name, getattr(windows, name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module("nussl")


#: (module, why the kit needs it)
REQUIRED = [
    ("torch", "every model"),
    ("torchaudio", "imported by openunmix and demucs at top level"),
    ("openunmix.model", "the umx member and the Wiener filter"),
    ("openunmix.filtering", "the multichannel Wiener post-filter"),
    ("demucs.htdemucs", "the demucs member"),
    ("demucs.apply", "demucs chunked inference"),
    ("asteroid.models", "the convtasnet member"),
    ("musdb", "MUSDB18 loading"),
    ("museval", "BSSEval v4 scores"),
    ("stempeg", "reading .stem.mp4 files"),
    ("soundfile", "WAV I/O"),
    ("fluidsynth", "rendering songs (libfluidsynth)"),
    ("pretty_midi", "composing songs"),
    ("pedalboard", "effects, pitch shift and time stretch"),
    ("julius", "resampling"),
    ("peft", "LoRA adapters"),
    ("optuna", "tuning storage"),
]


def check_imports() -> list[str]:
    """Import every required module; return a list of failure messages (empty when all import)."""
    failures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module, why in REQUIRED:
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - report whatever breaks
                failures.append(f"{module} ({why}): {type(exc).__name__}: {exc}")
        try:
            import_nussl()
        except Exception as exc:  # noqa: BLE001
            failures.append(f"nussl (training-free members): {type(exc).__name__}: {exc}")
    return failures


def main() -> int:
    failures = check_imports()
    if failures:
        print("StemBlend set-up: these imports are broken:", file=sys.stderr)
        for line in failures:
            print("  - " + line, file=sys.stderr)
        return 1
    print(f"StemBlend set-up: all {len(REQUIRED) + 1} libraries import.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
