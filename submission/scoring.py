"""Scores as the MDX 2021 grader computes them, and optionally as SiSEC reports them (museval v4).

* Grader: every file is read with ``soundfile.read`` and cast to float32; per instrument
  ``10*log10((sum(ref**2) + 1e-7) / (sum((ref - est)**2) + 1e-7))`` over all samples and channels
  (:func:`core.metrics.global_sdr`); a song's score is the mean over instruments, the overall score
  the mean over songs. Shapes must match exactly.
* museval: BSSEval v4 SDR on 1 s windows, median over frames per song, then median over songs.

:func:`summarize` builds the ``results.json`` layout: ``{"songs": {song: {instrument: sdr}},
"instruments": {instrument: mean}, "mean": overall}``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf

from core import files
from core.constants import TARGETS
from core.errors import SongError
from core.metrics import global_sdr


def read_like_grader(path: str | Path) -> np.ndarray:
    """``soundfile.read`` cast to float32: ``(nb_timesteps, nb_channels)`` or ``(nb_timesteps,)``."""
    data, _ = sf.read(str(path))
    return data.astype(np.float32)


def score_song(reference_dir: str | Path, estimate_dir: str | Path, targets=TARGETS) -> dict[str, float]:
    """The grader's SDR of one song's written stems.

    Returns:
        ``{instrument: sdr}`` in dB.

    Raises:
        SongError: a file is missing or unreadable, or the shapes differ (naming the file).
    """
    reference_dir, estimate_dir = Path(reference_dir), Path(estimate_dir)
    scores = {}
    for target in targets:
        ref_path, est_path = reference_dir / f"{target}.wav", estimate_dir / f"{target}.wav"
        try:
            ref, est = read_like_grader(ref_path), read_like_grader(est_path)
        except Exception as exc:  # noqa: BLE001 - soundfile errors vary
            raise SongError(reference_dir.name, f"cannot score {target}: {exc}") from exc
        if ref.shape != est.shape:
            raise SongError(reference_dir.name,
                            f"{est_path}: shape {est.shape} differs from the reference {ref.shape}")
        scores[target] = global_sdr(ref, est)
    return scores


def score_arrays(references: np.ndarray, estimates: np.ndarray, targets=TARGETS) -> dict[str, float]:
    """The grader's SDR of in-memory stems.

    Args:
        references: ``(nb_sources, nb_channels, nb_timesteps)``.
        estimates: same shape.
    """
    return {t: global_sdr(r, e) for t, r, e in zip(targets, references, estimates)}


def museval_song(reference_dir: str | Path, estimate_dir: str | Path, targets=TARGETS,
                 window: int = 44100) -> dict[str, float]:
    """BSSEval v4 SDR (museval) per instrument: median over 1 s frames (NaN frames ignored)."""
    import museval

    def load(folder):
        arrays = [read_like_grader(Path(folder) / f"{t}.wav") for t in targets]
        return np.stack([a[:, None] if a.ndim == 1 else a for a in arrays])  # (S, T, C)

    sdr, _, _, _ = museval.evaluate(load(reference_dir), load(estimate_dir), win=window, hop=window)
    with np.errstate(all="ignore"):
        return {t: float(np.nanmedian(row)) if np.any(np.isfinite(row)) else math.nan
                for t, row in zip(targets, sdr)}


def summarize(songs: dict[str, dict[str, float]], targets=TARGETS, reduce: str = "mean") -> dict:
    """``{"songs": ..., "instruments": {instrument: mean over songs}, "mean": overall}``.

    Args:
        songs: ``{song: {instrument: score}}``.
        reduce: ``"mean"`` (the grader) or ``"median"`` (SiSEC's median over songs).
    """
    fn = np.nanmean if reduce == "mean" else np.nanmedian
    instruments = {}
    for t in targets:
        values = [s[t] for s in songs.values() if t in s and np.isfinite(s[t])]
        instruments[t] = float(fn(values)) if values else math.nan
    if reduce == "mean":  # the grader: mean over songs of each song's mean
        song_means = [float(np.mean([s[t] for t in targets])) for s in songs.values()]
        overall = float(np.mean(song_means)) if song_means else math.nan
    else:
        finite = [v for v in instruments.values() if np.isfinite(v)]
        overall = float(np.mean(finite)) if finite else math.nan
    return {"songs": {k: dict(v) for k, v in songs.items()}, "instruments": instruments, "mean": overall}


def gap(inside: dict, outside: dict, targets=TARGETS) -> dict:
    """In-distribution minus out-of-distribution score, per instrument and overall (dB)."""
    per = {t: inside["instruments"][t] - outside["instruments"][t] for t in targets}
    return {"instruments": per, "mean": inside["mean"] - outside["mean"]}


def score_folders(test_dir: str | Path, results_dir: str | Path, songs: list[str],
                  museval: bool = False, progress: bool = True):
    """Score written stems: ``(grader summary, museval summary or None, {song: error})``."""
    from tqdm import tqdm

    grader, bss, errors = {}, {}, {}
    for song in tqdm(songs, desc="scoring", unit="song", disable=not progress):
        try:
            grader[song] = score_song(Path(test_dir) / song, Path(results_dir) / song)
            if museval:
                bss[song] = museval_song(Path(test_dir) / song, Path(results_dir) / song)
        except Exception as exc:  # noqa: BLE001 - one song's error is reported, not fatal
            errors[song] = str(exc) if isinstance(exc, SongError) else f"song '{song}': {exc}"
            grader.pop(song, None)
    return summarize(grader), (summarize(bss, reduce="median") if museval else None), errors


def score_in_memory(predictor, test_dir: str | Path, songs: list[str], progress: bool = True):
    """Score a predictor without writing stems (for the baselines beside a report).

    Returns:
        ``(summary, {song: error})``.
    """
    from tqdm import tqdm

    from core.audio import fit_length, match_channels

    scores, errors = {}, {}
    for song in tqdm(songs, desc=getattr(predictor, "name", "baseline"), unit="song",
                     disable=not progress):
        folder = Path(test_dir) / song
        try:
            estimates, _ = predictor.separate_file(folder / "mixture.wav")
            refs = np.stack([read_like_grader(folder / f"{t}.wav") for t in TARGETS])
            ests = []
            for t in TARGETS:  # the grader's layout: (nb_timesteps, nb_channels), or 1-D for mono
                est = match_channels(fit_length(estimates[t], refs.shape[1]),
                                     1 if refs.ndim == 2 else refs.shape[2])
                ests.append(est[0] if refs.ndim == 2 else est.T)
            scores[song] = score_arrays(refs, np.stack(ests))
        except Exception as exc:  # noqa: BLE001
            errors[song] = f"song '{song}': {type(exc).__name__}: {exc}"
    return summarize(scores), errors


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | Path, data: dict) -> Path:
    """Write JSON atomically (NaN becomes null)."""
    return files.write_json(path, _json_safe(data), indent=2, sort_keys=False)
