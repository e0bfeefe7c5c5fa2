"""Per-stem effect chains (pedalboard) and the mix bus, keeping the mixture the exact sum of the stems.

Effect chains come from *families* (a registry, :data:`FAMILIES`): a family draws, for one stem
and its role, a list of ``(plugin, parameters)`` steps at random. The steps are plain JSON (they go
into the manifest) and :func:`build_chain` turns them into a ``pedalboard.Pedalboard``. The
``"broadcast"`` family is held out of the in-distribution profiles for out-of-distribution tests.

The mix bus never processes the mixture itself: levels, pan and width act on each stem, and the
bus compressor and limiter compute one gain curve from the sum of the stems and multiply every
stem by it (a linear operation), so ``mixture == sum(stems)`` still holds.
"""

from __future__ import annotations

import numpy as np
import pedalboard
from scipy.ndimage import maximum_filter1d
from scipy.signal import lfilter


def _u(rng, lo, hi) -> float:
    return round(float(rng.uniform(lo, hi)), 3)


def _eq(rng, role: str) -> list:
    steps = [
        (
            "HighpassFilter",
            dict(cutoff_frequency_hz=_u(rng, 20, 45) if role in ("bass", "drums") else _u(rng, 60, 180)),
        )
    ]
    for _ in range(int(rng.integers(1, 3))):
        steps.append(
            (
                "PeakFilter",
                dict(cutoff_frequency_hz=_u(rng, 150, 6000), gain_db=_u(rng, -6, 6), q=_u(rng, 0.5, 2.0)),
            )
        )
    if rng.random() < 0.5:
        steps.append(
            ("HighShelfFilter", dict(cutoff_frequency_hz=_u(rng, 4000, 10000), gain_db=_u(rng, -6, 4)))
        )
    return steps


def _comp(rng, strength: float = 1.0) -> list:
    return [
        (
            "Compressor",
            dict(
                threshold_db=_u(rng, -30, -12),
                ratio=round(1 + strength * _u(rng, 1, 5), 3),
                attack_ms=_u(rng, 1, 30),
                release_ms=_u(rng, 50, 250),
            ),
        )
    ]


def _reverb(rng, small: bool) -> list:
    size = _u(rng, 0.1, 0.4) if small else _u(rng, 0.4, 0.9)
    return [
        (
            "Reverb",
            dict(
                room_size=size,
                damping=_u(rng, 0.2, 0.8),
                wet_level=_u(rng, 0.05, 0.3),
                dry_level=_u(rng, 0.7, 1.0),
                width=_u(rng, 0.5, 1.0),
            ),
        )
    ]


def family_none(rng, role: str) -> list:
    """No effects (diversity switched off)."""
    return []


def family_clean(rng, role: str) -> list:
    """EQ and gentle compression."""
    return _eq(rng, role) + (_comp(rng, 0.5) if rng.random() < 0.7 else [])


def family_studio(rng, role: str) -> list:
    """EQ, compression, chorus on chords, delay on the lead, small rooms."""
    steps = _eq(rng, role) + _comp(rng)
    if role in ("other", "chords") and rng.random() < 0.5:
        steps.append(
            ("Chorus", dict(rate_hz=_u(rng, 0.3, 2.0), depth=_u(rng, 0.1, 0.4), mix=_u(rng, 0.2, 0.5)))
        )
    if role in ("vocals", "melody") and rng.random() < 0.6:
        steps.append(
            (
                "Delay",
                dict(delay_seconds=_u(rng, 0.12, 0.45), feedback=_u(rng, 0.1, 0.4), mix=_u(rng, 0.1, 0.3)),
            )
        )
    if role != "bass" and rng.random() < 0.8:
        steps += _reverb(rng, small=True)
    return steps


def family_live(rng, role: str) -> list:
    """Saturation, compression and big rooms, as a band recorded live."""
    steps = _eq(rng, role)
    if role in ("bass", "other", "chords", "drums") and rng.random() < 0.6:
        steps.append(("Distortion", dict(drive_db=_u(rng, 2, 12))))
    steps += _comp(rng, 0.7)
    if role != "bass" or rng.random() < 0.2:
        steps += _reverb(rng, small=False)
    return steps


def family_vintage(rng, role: str) -> list:
    """Dark tape-like tone: low-pass, saturation, chorus/delay, small plate."""
    steps = [("LowpassFilter", dict(cutoff_frequency_hz=_u(rng, 5000, 12000)))] + _eq(rng, role)
    steps.append(("Distortion", dict(drive_db=_u(rng, 1, 8))))
    if role not in ("bass", "drums") and rng.random() < 0.5:
        steps.append(
            ("Chorus", dict(rate_hz=_u(rng, 0.2, 1.2), depth=_u(rng, 0.05, 0.3), mix=_u(rng, 0.2, 0.4)))
        )
    if rng.random() < 0.4:
        steps.append(
            (
                "Delay",
                dict(delay_seconds=_u(rng, 0.08, 0.3), feedback=_u(rng, 0.0, 0.3), mix=_u(rng, 0.05, 0.25)),
            )
        )
    steps += _comp(rng, 0.6) + _reverb(rng, small=True)
    return steps


def family_broadcast(rng, role: str) -> list:
    """Held out for out-of-distribution tests: phaser, ladder filter, hard clipping, heavy limiting."""
    steps = [
        (
            "LadderFilter",
            dict(cutoff_hz=_u(rng, 3000, 14000), resonance=_u(rng, 0.0, 0.4), drive=_u(rng, 1.0, 2.0)),
        )
    ]
    if role not in ("bass",) and rng.random() < 0.5:
        steps.append(
            ("Phaser", dict(rate_hz=_u(rng, 0.2, 1.5), depth=_u(rng, 0.3, 0.8), mix=_u(rng, 0.2, 0.5)))
        )
    steps.append(("Clipping", dict(threshold_db=_u(rng, -12, -4))))
    steps += _comp(rng, 1.5)
    steps.append(("Limiter", dict(threshold_db=_u(rng, -8, -2), release_ms=_u(rng, 50, 200))))
    steps += _reverb(rng, small=bool(rng.random() < 0.5))
    return steps


#: effect family name -> drawer ``(rng, role) -> [(plugin, params), ...]``
FAMILIES = {
    "none": family_none,
    "clean": family_clean,
    "studio": family_studio,
    "live": family_live,
    "vintage": family_vintage,
    "broadcast": family_broadcast,
}


def draw_chain(family: str, rng: np.random.Generator, role: str) -> list:
    """Draw a chain from a family: a JSON-able list of ``[plugin_name, params]``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown effect family '{family}' (known: {', '.join(FAMILIES)})")
    return [[name, params] for name, params in FAMILIES[family](rng, role)]


def build_chain(steps: list) -> pedalboard.Pedalboard:
    """A pedalboard from ``[[plugin_name, params], ...]``."""
    return pedalboard.Pedalboard([getattr(pedalboard, name)(**params) for name, params in steps])


def apply_chain(audio: np.ndarray, steps: list, rate: int) -> np.ndarray:
    """Run a stem through its chain.

    Args:
        audio: ``(nb_channels, nb_timesteps)`` float32.
        steps: from :func:`draw_chain`.

    Returns:
        ``(nb_channels, nb_timesteps)`` float32, same length.
    """
    if not steps:
        return audio
    out = build_chain(steps)(np.ascontiguousarray(audio, dtype=np.float32), rate, reset=True)
    return out[:, : audio.shape[1]].astype(np.float32)


# --------------------------------------------------------------------------- mix bus
def pan_width(audio: np.ndarray, pan: float, width: float) -> np.ndarray:
    """Constant-power pan (-1 left .. 1 right) and mid/side width (0 mono .. 1.5 wide) of ``(2, T)``.

    Both are one 2x2 matrix applied to the channels.
    """
    angle = (pan + 1) * np.pi / 4
    gains = np.diag([np.cos(angle), np.sin(angle)]) * np.sqrt(2)
    mid_side = 0.5 * np.array([[1 + width, 1 - width], [1 - width, 1 + width]])
    return (gains @ mid_side).astype(np.float32) @ np.asarray(audio, dtype=np.float32)


def _envelope(x: np.ndarray, rate: int, attack_ms: float, release_ms: float) -> np.ndarray:
    """One-pole smoothed level of ``(T,)`` (attack and release approximated by their mean)."""
    tau = 0.5 * (attack_ms + release_ms) / 1000.0
    a = np.exp(-1.0 / (tau * rate))
    return lfilter([1 - a], [1, -a], x)


def bus_gain(mixture: np.ndarray, rate: int, comp: dict | None, limit_db: float | None) -> np.ndarray:
    """Gain curve of a bus compressor and a look-ahead limiter, computed on the mixture.

    Args:
        mixture: ``(nb_channels, nb_timesteps)``.
        comp: ``threshold_db, ratio, attack_ms, release_ms`` or None.
        limit_db: limiter ceiling in dBFS, or None.

    Returns:
        ``(nb_timesteps,)`` gain (<= 1) to multiply every stem by.
    """
    level = np.max(np.abs(mixture), axis=0).astype(np.float64)
    gain = np.ones_like(level)
    if comp:
        env = np.sqrt(np.maximum(_envelope(level**2, rate, comp["attack_ms"], comp["release_ms"]), 1e-12))
        over = np.maximum(20 * np.log10(env) - comp["threshold_db"], 0.0)
        gain *= 10 ** (-over * (1 - 1 / comp["ratio"]) / 20)
    if limit_db is not None:
        ceiling = 10 ** (limit_db / 20)
        need = np.minimum(1.0, ceiling / np.maximum(level * gain, 1e-12))
        window = max(1, int(0.005 * rate))
        need = -maximum_filter1d(-need, size=2 * window + 1)  # look-ahead: a running minimum
        gain *= np.minimum(_envelope(need, rate, 1.0, 60.0), need)
    return gain.astype(np.float32)


def quantise(stems: np.ndarray, bits: int) -> np.ndarray:
    """Round stems to the grid ``2**-bits`` so that any sum of them is exact in float32.

    With ``bits <= 21`` and peaks <= 1 every partial sum of four stems is an integer multiple of the
    grid below ``2**24`` grid steps, hence exactly representable; int16 files use ``bits=15``.
    """
    scale = np.float32(2.0**bits)  # powers of two: scaling is exact in float32
    out = np.asarray(stems, dtype=np.float32) * scale
    np.rint(out, out=out)
    out *= np.float32(1.0 / scale)
    return out
