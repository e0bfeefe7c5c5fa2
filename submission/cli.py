"""``python predict.py FILE [FILE...] -o DIR``: separate any audio files with a registered predictor.

Flags follow demucs where the job is the same (``-o``, ``-n``, ``--shifts``, ``--overlap``,
``--segment``, ``--int24`` / ``--float32``, ``--clip-mode``, ``-j``, ``--two-stems``). Output:
``DIR/<track>/<stem>.wav`` at the input's rate, length and channel count. ``--shifts``,
``--overlap`` and ``--segment`` are handed to the predictor as options; a predictor that has no use
for one (the baselines, the oracles) ignores it. Files soundfile cannot read (MP3 on old libsndfile,
AAC/ALAC stem files) are decoded with ffmpeg when it is installed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from core.audio import read_audio, write_audio
from core.constants import TARGETS
from core.errors import AudioFileError
from submission.parallel import imap
from submission.registry import create, describe

CLIP_MODES = ("rescale", "clamp", "none")


def build_parser(default_predictor: str = "scaled") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Separate audio files into bass, drums, other and vocals. Without arguments, "
                    "predict.py runs the challenge's grader emulation instead.")
    parser.add_argument("tracks", nargs="+", type=Path, metavar="FILE", help="audio files to separate")
    parser.add_argument("-o", "--out", type=Path, default=Path("separated"),
                        help="output folder; stems go to OUT/<track>/<stem>.wav (default: separated)")
    parser.add_argument("-n", "--predictor", default=default_predictor, metavar="NAME",
                        help=f"registered predictor to use (default: {default_predictor}); "
                             "`python test.py --list-predictors` lists them")
    parser.add_argument("--shifts", type=int, default=1,
                        help="random time shifts averaged per chunk (predictor option; default 1)")
    parser.add_argument("--overlap", type=float, default=0.25,
                        help="overlap between chunks (predictor option; default 0.25)")
    parser.add_argument("--segment", type=float, default=None, metavar="SECONDS",
                        help="chunk length in seconds (predictor option; default: the predictor's)")
    depth = parser.add_mutually_exclusive_group()
    depth.add_argument("--int24", action="store_true", help="write 24-bit WAV (default 16-bit)")
    depth.add_argument("--float32", action="store_true", help="write 32-bit float WAV")
    parser.add_argument("--clip-mode", choices=CLIP_MODES, default="rescale",
                        help="avoid clipping: rescale a stem whose peak exceeds 1 (default), clamp to "
                             "[-0.99, 0.99], or none")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="files separated in parallel (processes; default 1)")
    parser.add_argument("--two-stems", choices=TARGETS, metavar="STEM", default=None,
                        help="write only STEM and no_STEM (the sum of the other stems)")
    return parser


def prevent_clip(audio: np.ndarray, mode: str) -> np.ndarray:
    """demucs' clip strategies on ``(nb_channels, nb_timesteps)`` audio."""
    if mode == "rescale":
        return audio / max(1.01 * float(np.abs(audio).max(initial=0.0)), 1.0)
    if mode == "clamp":
        return np.clip(audio, -0.99, 0.99)
    if mode == "none":
        return audio
    raise ValueError(f"unknown clip mode '{mode}' (choose from {', '.join(CLIP_MODES)})")


def track_name(path: Path) -> str:
    """``song.stem.mp4`` -> ``song``; ``<song>/mixture.wav`` -> ``<song>``."""
    name = path.name.split(".")[0] if path.name.lower().endswith((".stem.mp4", ".stem.m4a")) else path.stem
    return path.resolve().parent.name if name == "mixture" else name


def load_any(path: Path) -> tuple[np.ndarray, int]:
    """Read audio as ``(nb_channels, nb_timesteps)`` float32, decoding with ffmpeg when soundfile cannot."""
    try:
        return read_audio(path)
    except AudioFileError as exc:
        if not path.is_file() or "cannot be read as audio" not in exc.problem or not shutil.which("ffmpeg"):
            raise
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "decoded.wav"
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
               "-c:a", "pcm_f32le", str(wav)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not wav.is_file():
            raise AudioFileError(path, f"cannot be decoded by soundfile or ffmpeg ({result.stderr.strip()})")
        return read_audio(wav)


def separate_track(predictor, path: Path, out_root: Path, subtype: str, clip_mode: str,
                   two_stems: str | None) -> dict[str, Path]:
    """Separate one file and write ``out_root/<track>/<stem>.wav``; returns the written paths."""
    audio, rate = load_any(path)
    predictor.reference_dir = path.parent  # oracles read <song>/{bass,...}.wav beside a mixture.wav
    try:
        estimates = predictor.separate_audio(audio, rate)
    finally:
        predictor.reference_dir = None
    if two_stems:
        rest = sum(est for t, est in estimates.items() if t != two_stems)
        estimates = {two_stems: estimates[two_stems], f"no_{two_stems}": rest}
    folder = out_root / track_name(path)
    return {stem: write_audio(folder / f"{stem}.wav", prevent_clip(est, clip_mode), rate, subtype)
            for stem, est in estimates.items()}


def main(argv: list[str] | None = None, default_predictor: str = "scaled") -> int:
    args = build_parser(default_predictor).parse_args(argv)
    names = {}
    for path in args.tracks:
        name = track_name(path)
        if name in names:
            print(f"error: {path} and {names[name]} would both write to {args.out / name}", file=sys.stderr)
            return 2
        names[name] = path
    try:
        predictor = create(args.predictor, shifts=args.shifts, overlap=args.overlap, segment=args.segment)
    except KeyError as exc:
        print(f"error: {exc}\navailable: {', '.join(describe())}", file=sys.stderr)
        return 2
    predictor.prediction_setup()
    subtype = "FLOAT" if args.float32 else "PCM_24" if args.int24 else "PCM_16"

    def task(path: Path):
        start = time.perf_counter()
        try:
            separate_track(predictor, path, args.out, subtype, args.clip_mode, args.two_stems)
            return path, None, time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001 - one bad file does not stop the others
            return path, f"{type(exc).__name__}: {exc}", time.perf_counter() - start

    from tqdm import tqdm

    failures = []
    with tqdm(total=len(args.tracks), desc=f"separating ({predictor.name})", unit="file") as bar:
        for path, error, seconds in imap(task, args.tracks, args.jobs,
                                         on_error=lambda p, e: (p, f"worker died: {e}", 0.0)):
            bar.update(1)
            if error:
                failures.append(f"{path}: {error}" if str(path) not in error else error)
                bar.write(f"FAILED {failures[-1]}", file=sys.stderr)
            else:
                bar.write(f"{path} -> {args.out / track_name(path)} ({seconds:.1f} s)")
    if failures:
        print(f"{len(failures)} of {len(args.tracks)} file(s) failed", file=sys.stderr)
        return 1
    return 0
