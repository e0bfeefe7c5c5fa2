"""Ways to draw N noise-like stems that sum to a signal, each stem bounded by ``bound``.

Every strategy has the signature ``strategy(audio, nb_stems, bound, rng) -> stems`` with
``audio`` ``(nb_channels, nb_timesteps)`` float64, ``stems`` ``(nb_stems, nb_channels,
nb_timesteps)`` float64, ``stems.sum(0) == audio`` up to float64 rounding and
``abs(stems) <= bound`` everywhere, provided ``abs(audio) <= nb_stems * bound``. The exact float32
sum is made afterwards by :func:`augment.noise_stems.split` (grid rounding, last stem recomputed);
strategies only choose the random split.

For one sample ``x`` the feasible splits form the polytope ``P(x) = {s in [-b, b]^N : sum(s) = x}``.
The sum constraint forces ``sum_k E[s_k x] = E[x^2]``, so with symmetric strategies every stem keeps
the mean ``x / N`` (the unavoidable leak); what differs is the spread and the shape of the noise
around it:

* ``sequential`` (default): each stem uniform on the widest interval that keeps the rest feasible,
  then a random order per sample. For N >= 3 the first stem drawn is exactly independent of ``x``
  (its interval is all of ``[-b, b]``); the random order makes every stem a mixture that contains
  this independent part, which lowers both its correlation and its mutual information below the
  ``polytope`` law's (mutual information is convex in the channel ``p(s | x)``).
* ``polytope``: uniform on ``P(x)``, i.e. N i.i.d. uniform stems conditioned on their sum
  (rejection sampling): the maximum-entropy law. Same law as ``sequential`` for N = 2.
* ``gauss``: ``x / N`` plus zero-sum Gaussian noise scaled to the per-sample headroom
  ``b - |x| / N`` (the noise level follows the signal's envelope).
* ``spectral``: ``x / N`` plus zero-sum random-phase noise with the magnitude spectrum of the
  block, scaled to the headroom like ``gauss``.
* ``vertex``: a random vertex of ``P(x)`` (N - 1 stems at +-b, one free): the largest possible stem
  power, hence the smallest correlation, but the free stem holds ``x`` exactly (a leak to anyone
  who knows the scheme).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

StrategyFn = Callable[[np.ndarray, int, float, np.random.Generator], np.ndarray]

#: Rounds of rejection sampling before the leftovers fall back to ``sequential`` (only reached for
#: inputs above full scale, where acceptance gets small).
MAX_REJECTION_ROUNDS = 64


@dataclass(frozen=True)
class Strategy:
    """A registered split strategy: its name, sampling function and one-line description."""

    name: str
    fn: StrategyFn
    help: str


#: The strategy the CLI uses (chosen by benchmarks/bench_noise_stems.py, see docs/noise_stems.md).
DEFAULT = "sequential"

#: name -> strategy, filled by :func:`register`.
REGISTRY: dict[str, Strategy] = {}


def register(name: str, help: str):
    """Decorator adding a sampling function to :data:`REGISTRY` under ``name``."""

    def wrap(fn: StrategyFn) -> StrategyFn:
        if name in REGISTRY:
            raise ValueError(f"noise strategy '{name}' registered twice")
        REGISTRY[name] = Strategy(name, fn, help)
        return fn

    return wrap


def get(name: str) -> Strategy:
    """The strategy called ``name``; a ``ValueError`` lists the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown noise strategy '{name}' (choose from {', '.join(names())})") from None


def names() -> list[str]:
    """Registered strategy names, default first."""
    return sorted(REGISTRY, key=lambda n: (n != DEFAULT, n))


def _flat(audio: np.ndarray) -> np.ndarray:
    """``(nb_channels, nb_timesteps)`` -> ``(nb_channels * nb_timesteps,)`` float64."""
    return np.asarray(audio, dtype=np.float64).reshape(-1)


def _headroom(flat: np.ndarray, nb_stems: int, bound: float) -> np.ndarray:
    """Half-width ``b - |x| / N`` of noise that keeps every ``x / N + noise`` within ``[-b, b]``."""
    return np.maximum(bound - np.abs(flat) / nb_stems, 0.0)


def _fit_noise(flat: np.ndarray, noise: np.ndarray, bound: float) -> np.ndarray:
    """``x / N + g * noise`` with the largest per-sample ``g <= 1`` that stays within ``[-b, b]``.

    Args:
        flat: ``(nb_samples,)`` signal.
        noise: ``(nb_stems, nb_samples)`` zero-sum noise.
    """
    nb_stems = noise.shape[0]
    head = _headroom(flat, nb_stems, bound)
    peak = np.abs(noise).max(axis=0)
    gain = np.minimum(1.0, np.divide(head, peak, out=np.ones_like(head), where=peak > 0))
    return flat / nb_stems + noise * gain


@register("sequential", "uniform in the feasible interval, stem after stem, random order per sample")
def sequential(audio: np.ndarray, nb_stems: int, bound: float, rng: np.random.Generator) -> np.ndarray:
    """Stem k uniform on ``[max(-b, r - L b), min(b, r + L b)]`` (``r`` what is left, ``L`` stems
    after it), the last stem the remainder, then the stems shuffled independently per sample.

    Always feasible, no rejection; every stem has the same law (mean ``x / N``).

    Args:
        audio: ``(nb_channels, nb_timesteps)``.

    Returns:
        ``(nb_stems, nb_channels, nb_timesteps)`` float64.
    """
    flat = _flat(audio)
    rest = flat.copy()
    out = np.empty((nb_stems, flat.size))
    for k in range(nb_stems - 1):
        left = nb_stems - 1 - k
        lo = np.maximum(-bound, rest - left * bound)
        hi = np.minimum(bound, rest + left * bound)
        out[k] = lo + (hi - lo) * rng.random(flat.size)
        rest -= out[k]
    out[-1] = rest
    order = np.argsort(rng.random((nb_stems, flat.size)), axis=0)
    out = np.take_along_axis(out, order, axis=0)
    return out.reshape((nb_stems,) + np.shape(audio))


@register("polytope", "uniform on the set of bounded splits (i.i.d. uniform stems given their sum)")
def polytope(
    audio: np.ndarray, nb_stems: int, bound: float, rng: np.random.Generator, tilt: float = 0.0
) -> np.ndarray:
    """Uniform law on ``{s in [-b, b]^N : sum(s) = x}`` per sample, by rejection.

    Draw N - 1 stems uniform on ``[-b, b]``, set the last to ``x - sum``, keep the sample when the
    last is within ``[-b, b]`` (probability about 1/2 for full-scale input at any N <= 16), redraw
    the others. The accepted law is exchangeable, so every stem has the same statistics.

    ``tilt`` > 0 (a study knob of the benchmark) replaces the uniform base by the U-shaped density
    ``cosh(tilt * s / b)``: more stem power, hence less correlation, but the law moves towards the
    vertices of ``P(x)`` and the mutual information grows (docs/noise_stems.md).

    Args:
        audio: ``(nb_channels, nb_timesteps)``.

    Returns:
        ``(nb_stems, nb_channels, nb_timesteps)`` float64.
    """
    flat = _flat(audio)
    out = np.empty((nb_stems, flat.size))
    todo = np.arange(flat.size)
    for _ in range(MAX_REJECTION_ROUNDS):
        if todo.size == 0:
            break
        draws = bound * _draw_cosh(tilt, (nb_stems - 1, todo.size), rng)
        last = flat[todo] - draws.sum(axis=0)
        ok = np.abs(last) <= bound
        if tilt > 0:
            ok &= rng.random(todo.size) * np.cosh(tilt) < np.cosh(tilt * last / bound)
        out[:-1, todo[ok]] = draws[:, ok]
        out[-1, todo[ok]] = last[ok]
        todo = todo[~ok]
    if todo.size:
        out[:, todo] = sequential(flat[todo][None], nb_stems, bound, rng)[:, 0]
    return out.reshape((nb_stems,) + np.shape(audio))


def _draw_cosh(tilt: float, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Samples of the density ``cosh(tilt * s)`` on ``[-1, 1]`` (uniform for ``tilt == 0``)."""
    u = rng.random(shape)
    if tilt <= 0:
        return 2.0 * u - 1.0
    side = np.where(rng.random(shape) < 0.5, 1.0, -1.0)  # mixture of exp(+t s) and exp(-t s)
    return side * np.log(np.exp(-tilt) + u * (np.exp(tilt) - np.exp(-tilt))) / tilt


@register("gauss", "x/N plus zero-sum Gaussian noise scaled to the per-sample headroom")
def gauss(audio: np.ndarray, nb_stems: int, bound: float, rng: np.random.Generator) -> np.ndarray:
    """``x / N + n`` with ``n`` zero-sum Gaussian of standard deviation ``(b - |x| / N) / 3``,
    shrunk per sample where a stem would leave ``[-b, b]``.

    Args:
        audio: ``(nb_channels, nb_timesteps)``.

    Returns:
        ``(nb_stems, nb_channels, nb_timesteps)`` float64.
    """
    flat = _flat(audio)
    noise = rng.standard_normal((nb_stems, flat.size))
    noise -= noise.mean(axis=0)
    noise *= _headroom(flat, nb_stems, bound) / 3.0
    return _fit_noise(flat, noise, bound).reshape((nb_stems,) + np.shape(audio))


@register("spectral", "x/N plus zero-sum random-phase noise with the block's magnitude spectrum")
def spectral(audio: np.ndarray, nb_stems: int, bound: float, rng: np.random.Generator) -> np.ndarray:
    """``x / N + n`` where each stem's noise has the block's magnitude spectrum and random phases
    (a phase-randomised surrogate), made zero-sum across stems and fitted to the headroom.

    Args:
        audio: ``(nb_channels, nb_timesteps)``.

    Returns:
        ``(nb_stems, nb_channels, nb_timesteps)`` float64; silent input gives silent stems.
    """
    audio = np.asarray(audio, dtype=np.float64)
    length = audio.shape[-1]
    magnitude = np.abs(np.fft.rfft(audio, axis=-1))  # (C, F)
    phase = rng.uniform(0.0, 2 * np.pi, size=(nb_stems,) + magnitude.shape)
    noise = np.fft.irfft(magnitude * np.exp(1j * phase), n=length, axis=-1)  # (N, C, T)
    noise -= noise.mean(axis=0)
    flat = audio.reshape(-1)
    noise = noise.reshape(nb_stems, -1)
    rms = np.sqrt(np.mean(noise**2))
    if rms > 0:
        noise *= np.sqrt(np.mean(_headroom(flat, nb_stems, bound) ** 2)) / (3.0 * rms)
    return _fit_noise(flat, noise, bound).reshape((nb_stems,) + audio.shape)


@register("vertex", "a random vertex of the feasible set: N-1 stems at +-1, one free (max power)")
def vertex(audio: np.ndarray, nb_stems: int, bound: float, rng: np.random.Generator) -> np.ndarray:
    """N - 1 stems at ``+-b`` and one free stem ``v = x - j b``, ``j`` the sum of the signs (parity
    of N - 1, nearest to ``x / b``); which stem is free and where the signs go is uniform, so
    ``E[s_k | x] = x / N``.

    Args:
        audio: ``(nb_channels, nb_timesteps)``.

    Returns:
        ``(nb_stems, nb_channels, nb_timesteps)`` float64.
    """
    flat = _flat(audio)
    parity = (nb_stems - 1) % 2
    signs = 2 * np.round((flat / bound - parity) / 2) + parity
    signs = np.clip(signs, -(nb_stems - 1), nb_stems - 1)
    free = flat - signs * bound
    plus = (nb_stems - 1 + signs) / 2
    rank = np.argsort(np.argsort(rng.random((nb_stems, flat.size)), axis=0), axis=0)
    out = np.where(rank == 0, free, np.where(rank <= plus, bound, -bound))
    return out.reshape((nb_stems,) + np.shape(audio))
