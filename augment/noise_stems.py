"""Split a track into N stems that each sound like noise and sum back to it exactly.

``python -m augment.noise_stems INPUT OUTPUT_DIR N [--seed S] [--strategy sequential]`` writes
``OUTPUT_DIR/noise_1.wav ... noise_N.wav`` (float32, the input's rate and channels) and prints,
per stem, its peak, level, correlation with the input, mutual information, spectral similarity and
spectral flatness (see :mod:`augment.noise_metrics`).

Guarantees, for an input ``x`` with ``|x| <= 1`` (any ``|x| <= N`` is accepted):

* No stem clips: every sample of every stem lies in ``[-1, 1]``.
* Exact sum. Every stem is a multiple of ``2^-q`` with ``q = 24 - ceil(log2(M))`` and
  ``M = max_m min(m, N - m + peak)`` the largest magnitude any sum of m stems can reach
  (``M = floor((N + 1) / 2)`` at full scale). Every partial sum, in any order or grouping, is then
  an integer multiple of ``2^-q`` below ``2^24 * 2^-q`` in magnitude, so float32 addition never
  rounds: ``np.sum(stems, 0)`` (float32 or float64), a left-to-right loop and a pairwise sum all
  return ``x_q``, the input rounded to that grid. At full scale ``q`` is 24 for N = 2, 23 for
  N <= 4, 22 for N <= 8, 21 for N <= 16. ``x_q == x`` bit for bit for 16-bit PCM input (N <= 1024)
  and 24-bit PCM input (N <= 4); otherwise ``|sum - x| <= 2^-(q+1)`` (at most 2^-23, -138 dBFS,
  for N <= 8).
* Every stem has the conditional mean ``x / N`` (forced by the sum), so the largest correlation
  with the input is at least ``rms(x) / sqrt(N E[V(x)])`` (about ``rms(x) / N``; see
  :func:`augment.noise_metrics.correlation_lower_bound`). The default strategy (``sequential``)
  surrounds that mean with white, bounded noise (for N >= 3 one stem per sample, at random, is
  drawn independently of the input); strategies are compared in
  ``benchmarks/bench_noise_stems.py`` (docs/noise_stems.md).
"""

from __future__ import annotations

import argparse
import math
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from augment import noise_metrics, noise_strategies
from core.audio import read_audio, write_audio
from core.errors import StemBlendError

#: Frames per processing block (progress steps; the draws depend on it, so it is fixed).
BLOCK = 1 << 17
#: Most stems the CLI accepts (16-bit input stays bit-exact up to here).
MAX_STEMS = 1024
#: Default analysis window of the printed figures (frames, evenly spaced excerpts).
ANALYSIS_SECONDS = 60.0


class OutputDirError(StemBlendError, ValueError):
    """The output directory cannot be created or written: ``"<path>: <problem>"``."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")


def grid_exponent(nb_stems: int, peak: float = 1.0) -> int:
    """``q`` such that stems on the ``2^-q`` grid add up exactly in float32 in any order.

    ``M = max_m min(m, N - m + peak)`` bounds every partial sum of stems in ``[-1, 1]`` whose total
    is at most ``peak`` in magnitude; float32 holds every multiple of ``2^-q`` up to ``2^(24-q)``.
    """
    bound = max(min(m, nb_stems - m + peak) for m in range(1, nb_stems + 1))
    return 24 - max(0, math.ceil(math.log2(max(bound, 1.0))))


def quantize(audio: np.ndarray, q: int) -> np.ndarray:
    """``audio`` rounded to the nearest multiple of ``2^-q`` (float64, exact)."""
    step = 2.0**-q
    return np.round(np.asarray(audio, dtype=np.float64) / step) * step


def _check_nb_stems(nb_stems: int) -> int:
    if isinstance(nb_stems, bool) or int(nb_stems) != nb_stems or not 2 <= nb_stems <= MAX_STEMS:
        raise ValueError(f"N must be an integer from 2 to {MAX_STEMS}, got {nb_stems!r}")
    return int(nb_stems)


def _to_grid(stems: np.ndarray, target: np.ndarray, step: float) -> np.ndarray:
    """Round stems 1..N-1 to the grid and make the last one ``target - sum(others)`` exactly.

    Args:
        stems: ``(nb_stems, nb_channels, nb_timesteps)`` float64 summing to ``target``.
        target: ``(nb_channels, nb_timesteps)`` float64 on the grid.

    Returns:
        ``(nb_stems, nb_channels, nb_timesteps)`` float32 (every value exactly representable).
    """
    out = np.empty(stems.shape, dtype=np.float32)
    head = np.round(stems[:-1] / step) * step
    out[:-1] = head
    out[-1] = target - head.sum(axis=0)
    return out


def split(
    audio: np.ndarray,
    nb_stems: int,
    seed: int | None = None,
    strategy: str | noise_strategies.Strategy = noise_strategies.DEFAULT,
    block: int = BLOCK,
    progress: bool = False,
) -> np.ndarray:
    """Split ``audio`` into ``nb_stems`` bounded noise stems whose float32 sum is ``audio``.

    Args:
        audio: ``(nb_channels, nb_timesteps)`` float; finite, ``max |audio| <= nb_stems``.
        nb_stems: N >= 2.
        seed: seed of ``numpy.random.default_rng``; the same seed, strategy and block give the
            same stems.
        strategy: a name of :mod:`augment.noise_strategies` (or a ``Strategy``).
        block: frames per block.
        progress: show a tqdm bar over the frames.

    Returns:
        ``(nb_stems, nb_channels, nb_timesteps)`` float32, each in ``[-1, 1]``, summing (float32,
        any order) to ``quantize(audio, grid_exponent(nb_stems, peak))``.

    Raises:
        ValueError: bad N, shape, non-finite samples, unknown strategy, or a peak above N.
    """
    nb_stems = _check_nb_stems(nb_stems)
    sample = strategy if isinstance(strategy, noise_strategies.Strategy) else noise_strategies.get(strategy)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2:
        raise ValueError(f"expected (nb_channels, nb_timesteps) audio, got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or Inf samples")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    q = grid_exponent(nb_stems, peak)
    step = 2.0**-q
    bound = 1.0 - nb_stems * step  # leaves room for the grid rounding of the last stem
    if peak + step / 2 > nb_stems * bound:  # the rounded input must stay feasible
        raise ValueError(
            f"input peaks at {peak:.4g}: {nb_stems} stems within [-1, 1] cannot sum to more than "
            f"{nb_stems}; use N >= {math.floor(peak) + 1}"
        )
    rng = np.random.default_rng(seed)
    length = audio.shape[-1]
    out = np.empty((nb_stems,) + audio.shape, dtype=np.float32)
    with tqdm(total=length, unit="frame", unit_scale=True, desc="noise stems", disable=not progress) as bar:
        for start in range(0, length, block):
            stop = min(start + block, length)
            chunk = quantize(audio[:, start:stop], q)
            out[:, :, start:stop] = _to_grid(sample.fn(chunk, nb_stems, bound, rng), chunk, step)
            bar.update(stop - start)
    return out


def check_output_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and prove it writable; :class:`OutputDirError` otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputDirError(path, "output directory is an existing file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise OutputDirError(path, f"output directory cannot be written ({exc.strerror or exc})") from exc
    return path


def max_sum_error(stems: np.ndarray, audio: np.ndarray, block: int = BLOCK) -> float:
    """Largest ``|np.sum(stems, 0) - audio|`` (float32 sum) of ``(N, C, T)`` stems, block by block."""
    error = 0.0
    for start in range(0, audio.shape[-1], block):
        total = np.sum(stems[..., start : start + block], axis=0, dtype=np.float32)
        error = max(error, float(np.max(np.abs(total.astype(np.float64) - audio[:, start : start + block]))))
    return error


@dataclass
class SplitResult:
    """What :func:`split_file` wrote and measured."""

    paths: list[Path]
    rate: int
    seed: int
    q: int
    max_sum_error: float
    bit_exact: bool
    report: list[dict]
    bound: float
    analysed_frames: int


def split_file(
    input_path: str | Path,
    output_dir: str | Path,
    nb_stems: int,
    seed: int | None = None,
    strategy: str = noise_strategies.DEFAULT,
    progress: bool = True,
    analysis_seconds: float | None = ANALYSIS_SECONDS,
) -> SplitResult:
    """Read ``input_path``, split it, write ``output_dir/noise_{k}.wav`` (float32) and measure.

    Args:
        seed: ``None`` draws one (returned in the result so that the run can be repeated).
        analysis_seconds: length of the excerpts the figures are computed on (``None``: all).

    Raises:
        ValueError: bad N or strategy (checked before any reading); :class:`AudioFileError`:
            unreadable input; :class:`OutputDirError`: output directory not writable.
    """
    nb_stems = _check_nb_stems(nb_stems)
    noise_strategies.get(strategy)
    audio, rate = read_audio(input_path)
    output_dir = check_output_dir(output_dir)
    seed = secrets.randbits(32) if seed is None else int(seed)
    stems = split(audio, nb_stems, seed=seed, strategy=strategy, progress=progress)
    paths = [
        write_audio(output_dir / f"noise_{k}.wav", stem, rate, subtype="FLOAT")
        for k, stem in enumerate(stems, start=1)
    ]
    error = max_sum_error(stems, audio)
    frames = audio.shape[-1] if analysis_seconds is None else max(1, int(analysis_seconds * rate))
    return SplitResult(
        paths=paths,
        rate=rate,
        seed=seed,
        q=grid_exponent(nb_stems, float(np.max(np.abs(audio)))),
        max_sum_error=error,
        bit_exact=error == 0.0,
        report=noise_metrics.stem_report(audio, stems, max_frames=frames),
        bound=noise_metrics.correlation_lower_bound(noise_metrics.excerpt(audio, frames), nb_stems),
        analysed_frames=min(audio.shape[-1], frames),
    )


def format_report(result: SplitResult) -> str:
    """The table the CLI prints."""
    lines = [
        f"{'stem':<14}{'peak':>7}{'rms dBFS':>10}{'corr':>8}{'MI bits':>9}{'spec sim':>10}{'flatness':>10}"
    ]
    for row, path in zip(result.report, result.paths):
        lines.append(
            f"{path.name:<14}{row['peak']:>7.3f}{row['rms_dbfs']:>10.1f}{row['corr']:>8.3f}"
            f"{row['mi_bits']:>9.4f}{row['specsim']:>10.3f}{row['flatness']:>10.3f}"
        )
    peak = max(row["peak"] for row in result.report)
    lines.append(f"no stem clips: every sample within [-1, 1] (largest |sample| {peak:.7f})")
    exact = ("bit-exact" if result.bit_exact
             else f"max |sum - input| = {result.max_sum_error:.3g} <= 2^-{result.q + 1}")
    lines.append(f"sum of the stems (float32, any order) vs input: {exact} (grid 2^-{result.q})")
    lines.append(
        f"lower bound on the largest |corr| of any {len(result.paths)}-stem split in [-1, 1]: "
        f"{result.bound:.3f} (Gaussian-equivalent MI {noise_metrics.gaussian_mi_bits(result.bound):.4f} bits)"
    )
    lines.append(f"figures over {result.analysed_frames / result.rate:.1f} s of audio")
    return "\n".join(lines)


def _nb_stems_arg(text: str) -> int:
    try:
        return _check_nb_stems(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc) if text.strip().lstrip("+-").isdigit()
                                         else f"N must be an integer, got {text!r}") from None


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m augment.noise_stems",
        description="Split an audio file into N noise-like stems (float32 WAV, each within [-1, 1]) "
        "whose sum is the input, exactly.",
    )
    parser.add_argument("input", metavar="INPUT", help="audio file (any format soundfile reads)")
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="folder for noise_1.wav ... noise_N.wav")
    parser.add_argument("nb_stems", metavar="N", type=_nb_stems_arg, help="number of stems, >= 2")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: drawn and printed)")
    parser.add_argument("--strategy", default=noise_strategies.DEFAULT, choices=noise_strategies.names(),
                        help=f"how the noise is drawn (default: {noise_strategies.DEFAULT}; "
                        "see docs/noise_stems.md)")
    parser.add_argument("--analysis-seconds", type=_positive_seconds, default=ANALYSIS_SECONDS,
                        help="audio the printed figures are computed on (default: 60, excerpts)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = split_file(args.input, args.output_dir, args.nb_stems, seed=args.seed,
                            strategy=args.strategy, analysis_seconds=args.analysis_seconds)
    except (StemBlendError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(result.paths)} noise stems of {args.input} -> {args.output_dir} "
          f"(strategy {args.strategy}, seed {result.seed})")
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
