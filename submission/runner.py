"""The local grader emulation behind ``python test.py``.

It drives any ``MusicDemixingPredictor`` the way the MDX 2021 grader does (the settings come from
the same environment variables, ``prediction(...)`` is called with keyword arguments, the output
folder exists before the call, ``prediction_setup()`` and every song run under time limits) and adds
what a local run needs:

* one failing song (bad input, an exception, a song stopped at the time limit) does not stop the
  others: every song gets a :class:`SongResult` and the caller reports failures;
* ``jobs`` songs in parallel (forked processes, see :mod:`submission.parallel`);
* a rerun skips songs whose outputs are complete and were written by the same predictor with the
  same options, unless ``force``;
* song names that try to leave the test or results folder are refused;
* every output is checked: four stems with the mixture's length, channel count and rate.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from core.constants import TARGETS
from core.errors import SongError
from submission.parallel import TimeLimitExceeded, imap, time_limit

#: written in each finished song's output folder: which predictor made the stems
MARKER = ".stemblend.json"


@dataclass
class Settings:
    """Where and how long: the grader's environment variables, with the same defaults."""

    test_dir: Path
    results_dir: Path
    setup_timeout: float = 900
    song_timeout: float = 240
    partial: list[str] | None = None

    @classmethod
    def from_env(cls, cwd: str | Path | None = None) -> Settings:
        cwd = Path(cwd or os.getcwd())
        partial = os.getenv("PARTIAL_RUN_MUSIC_NAMES")
        return cls(
            test_dir=Path(os.getenv("TEST_DATASET_PATH", cwd / "data" / "test")),
            results_dir=Path(os.getenv("RESULTS_DATASET_PATH", cwd / "data" / "results")),
            setup_timeout=float(os.getenv("INFERENCE_SETUP_TIMEOUT_SECONDS", "900")),
            song_timeout=float(os.getenv("INFERENCE_PER_MUSIC_TIMEOUT_SECONDS", "240")),
            partial=[n.strip() for n in partial.split(",") if n.strip()] if partial else None,
        )


@dataclass
class SongResult:
    name: str
    status: str  # "ok", "skipped" (complete from an earlier run) or "failed"
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass
class RunReport:
    songs: list[SongResult] = field(default_factory=list)
    setup_seconds: float = 0.0
    setup_error: str | None = None

    @property
    def failed(self) -> list[SongResult]:
        return [s for s in self.songs if not s.ok]

    @property
    def succeeded(self) -> list[str]:
        return [s.name for s in self.songs if s.ok]


def list_songs(test_dir: str | Path, partial: list[str] | None = None) -> list[str]:
    """Sub-folders of ``test_dir`` (sorted), limited to ``partial`` when given."""
    test_dir = Path(test_dir)
    if not test_dir.is_dir():
        raise FileNotFoundError(f"{test_dir}: test folder does not exist")
    songs = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if partial is not None:
        songs = [s for s in songs if s in partial] + [s for s in partial if s not in songs]
    return songs


def song_dir(root: str | Path, song: str, confine: bool = True) -> Path:
    """``root/song``, refusing names that leave ``root``.

    Args:
        root: the test or results folder.
        song: a song folder name: no separators, not ``.``/``..``.
        confine: also refuse a folder that resolves outside ``root`` through a symlink (for the
            results folder, where we write; song folders of the test set may be links).

    Raises:
        SongError: the name is not a plain folder name or escapes ``root``.
    """
    if not song or song in (".", "..") or "/" in song or "\\" in song or "\0" in song:
        raise SongError(song, f"folder name is not a plain name inside {root} (it would leave it)")
    path = Path(root) / song
    if confine and path.exists() and path.resolve().parent != Path(root).resolve():
        raise SongError(song, f"{path} resolves to {path.resolve()}, outside {root}")
    return path


def check_outputs(mixture: Path, out_dir: Path, targets=TARGETS) -> None:
    """Every stem exists with the mixture's length, channel count and rate.

    Raises:
        SongError: naming the first stem that is missing or does not match.
    """
    song = out_dir.name
    ref = sf.info(str(mixture))
    for target in targets:
        path = out_dir / f"{target}.wav"
        if not path.is_file():
            raise SongError(song, f"{path}: not written")
        try:
            info = sf.info(str(path))
        except Exception as exc:  # noqa: BLE001
            raise SongError(song, f"{path}: unreadable ({exc})") from exc
        got = (info.frames, info.channels, info.samplerate)
        want = (ref.frames, ref.channels, ref.samplerate)
        if got != want:
            raise SongError(song, f"{path}: (frames, channels, rate) {got}, mixture has {want}")


def _signature(predictor, mixture: Path) -> dict:
    stat = mixture.stat()
    options = getattr(predictor, "options", {})
    fingerprint = getattr(predictor, "fingerprint", None)
    return {"predictor": getattr(predictor, "name", type(predictor).__name__),
            "options": {k: repr(v) for k, v in sorted(options.items())},
            "fingerprint": fingerprint() if callable(fingerprint) else None,
            "mixture": [stat.st_size, stat.st_mtime_ns]}


def is_complete(predictor, mixture: Path, out_dir: Path) -> bool:
    """The outputs are complete and were written by this predictor (name, options, fingerprint) from
    this mixture."""
    try:
        marker = json.loads((out_dir / MARKER).read_text())
        check_outputs(mixture, out_dir)
    except (OSError, ValueError, SongError):
        return False
    return marker == _signature(predictor, mixture)


def predict_song(predictor, settings: Settings, song: str, force: bool = False) -> SongResult:
    """Run ``predictor.prediction(...)`` on one song under the per-song time limit.

    Never raises (except KeyboardInterrupt): failures come back as ``SongResult(status="failed")``
    with a message naming the song and the file.
    """
    start = time.perf_counter()
    try:
        in_dir = song_dir(settings.test_dir, song, confine=False)
        out_dir = song_dir(settings.results_dir, song)
        mixture = in_dir / "mixture.wav"
        if not in_dir.is_dir():
            raise SongError(song, f"{in_dir}: song folder does not exist")
        if not mixture.is_file():
            raise SongError(song, f"{mixture}: missing mixture.wav")
        if not force and is_complete(predictor, mixture, out_dir):
            return SongResult(song, "skipped")
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / MARKER).unlink(missing_ok=True)
        with time_limit(settings.song_timeout, what=f"song '{song}'"):
            predictor.prediction(
                mixture_file_path=str(mixture),
                bass_file_path=str(out_dir / "bass.wav"),
                drums_file_path=str(out_dir / "drums.wav"),
                other_file_path=str(out_dir / "other.wav"),
                vocals_file_path=str(out_dir / "vocals.wav"),
            )
        check_outputs(mixture, out_dir)
        (out_dir / MARKER).write_text(json.dumps(_signature(predictor, mixture)))
        return SongResult(song, "ok", time.perf_counter() - start)
    except TimeLimitExceeded as exc:
        message = f"song '{song}': {exc} (INFERENCE_PER_MUSIC_TIMEOUT_SECONDS)"
        return SongResult(song, "failed", time.perf_counter() - start, message)
    except Exception as exc:  # noqa: BLE001 - one failing song does not stop the others
        message = str(exc) if isinstance(exc, SongError) else f"song '{song}': {type(exc).__name__}: {exc}"
        return SongResult(song, "failed", time.perf_counter() - start, message)


def setup_predictor(predictor, timeout: float | None) -> tuple[float, str | None]:
    """``prediction_setup()`` under the setup time limit; returns ``(seconds, error or None)``."""
    start = time.perf_counter()
    try:
        with time_limit(timeout, what="prediction_setup"):
            predictor.prediction_setup()
    except NotImplementedError:
        pass
    except Exception as exc:  # noqa: BLE001
        return time.perf_counter() - start, f"prediction_setup failed: {type(exc).__name__}: {exc}"
    return time.perf_counter() - start, None


def run_songs(predictor, settings: Settings, songs: list[str] | None = None, jobs: int = 1,
              force: bool = False, progress: bool = True) -> RunReport:
    """The grader emulation: set up, then predict every song (``jobs`` at a time).

    Args:
        predictor: any ``MusicDemixingPredictor``.
        settings: folders and time limits (:meth:`Settings.from_env` reads the grader's variables).
        songs: song names; default every sub-folder of the test folder (``settings.partial`` applies).
        jobs: songs in parallel.
        force: recompute songs whose outputs are complete.
        progress: show a tqdm bar.

    Returns:
        A :class:`RunReport` with one :class:`SongResult` per song, in song order.
    """
    from tqdm import tqdm

    songs = list_songs(settings.test_dir, settings.partial) if songs is None else list(songs)
    songs = list(dict.fromkeys(songs))
    report = RunReport()
    report.setup_seconds, report.setup_error = setup_predictor(predictor, settings.setup_timeout)
    if report.setup_error:
        report.songs = [SongResult(s, "failed", 0.0, f"song '{s}': {report.setup_error}") for s in songs]
        return report

    def on_error(song, exc):
        return SongResult(song, "failed", 0.0, f"song '{song}': worker died ({type(exc).__name__}: {exc})")

    results = {}
    bar = tqdm(total=len(songs), desc=getattr(predictor, "name", "predict"), unit="song",
               disable=not progress)
    for result in imap(lambda s: predict_song(predictor, settings, s, force), songs, jobs, on_error):
        results[result.name] = result
        bar.update(1)
        if not result.ok:
            bar.write(f"FAILED {result.error}")
    bar.close()
    report.songs = [results[s] for s in songs]
    return report
