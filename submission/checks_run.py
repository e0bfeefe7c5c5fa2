"""Checks of what a pre-flight run produced: time per song against its limit, and the output files.

:func:`judge_run` turns the hook's event log (see :mod:`submission.preflight_hook`) into
:class:`~submission.checks_static.Check` results; :func:`check_song_outputs` reads every stem the way
the grader does (``soundfile.read``) and compares it with the mixture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from core.constants import TARGETS
from submission.checks_static import Check

#: below this fraction of the limit left, a song "randomly fails near the limit" on a busier machine
MARGIN_WARN = 0.20


@dataclass
class Song:
    """One test song: its mixture header and its time limit."""

    name: str
    mixture: Path
    frames: int
    channels: int
    rate: int
    limit: float

    @property
    def duration(self) -> float:
        return self.frames / self.rate


@dataclass
class SongReport:
    """Per-song line of the report (also the ``--json`` record)."""

    song: str
    duration: float
    limit: float
    seconds: float | None = None
    margin: float | None = None
    status: str = "fail"
    error: str | None = None
    outputs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def read_events(log: str | Path) -> list[dict]:
    """The hook's JSON lines (a missing log, or a torn last line, reads as fewer events)."""
    log = Path(log)
    if not log.is_file():
        return []
    events = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def margin_of(seconds: float, limit: float) -> float:
    """Fraction of the limit left: ``(limit - seconds) / limit``."""
    return (limit - seconds) / limit if limit > 0 else 0.0


def judge_time(what: str, seconds: float, limit: float, variable: str) -> Check:
    """A time against its limit: fail above, warn within :data:`MARGIN_WARN` of it."""
    margin = margin_of(seconds, limit)
    text = f"{seconds:.1f} s of {limit:.4g} s ({100 * margin:.0f}% margin)"
    if seconds > limit:
        return Check(what, "fail", f"{text}: over the limit; the grader stops it ({variable})",
                     "make it faster: fewer shifts or members, a shorter segment, or a GPU (gpu: true)")
    if margin < MARGIN_WARN:
        return Check(what, "warn", f"{text}: under {100 * MARGIN_WARN:.0f}% margin, it randomly fails near "
                                   "the limit on a busier grader machine",
                     "leave at least 20% of the limit free (fewer shifts, fewer members)")
    return Check(what, "ok", text)


def judge_setup(events: list[dict], setup_limit: float) -> list[Check]:
    """The predictor was created (imports worked offline) and ``prediction_setup`` fit its limit."""
    inits = [e for e in events if e["event"] == "init"]
    end = next((e for e in events if e["event"] == "end"), None)
    checks = []
    if not inits:
        error = (end or {}).get("error") or "the run ended before any predictor was created"
        return [Check("import", "fail", f"the predictor was not created without network: {error}",
                      "make `python predict.py` import offline: ship every file it needs in the repo "
                      "(no downloads at import), and list its packages in requirements.txt")]
    checks.append(Check("import", "ok", f"{inits[0]['cls']} created after {inits[0]['t']:.1f} s, offline"))
    setups = [e for e in events if e["event"] == "setup"]
    errors = [e["error"] for e in setups
              if e.get("error") and not e["error"].startswith("NotImplementedError")]
    seconds = sum(e["seconds"] for e in setups)
    if errors:
        checks.append(Check("setup", "fail", f"prediction_setup failed after {seconds:.1f} s: {errors[0]}",
                            "fix prediction_setup (loading weights from the repo, no downloads)"))
    else:
        checks.append(judge_time("setup", seconds, setup_limit, "INFERENCE_SETUP_TIMEOUT_SECONDS"))
    return checks


def judge_network(events: list[dict], mode: str) -> list[Check]:
    """Report the isolation used, and every blocked connection attempt (a warning)."""
    checks = [Check("network", "ok", f"blocked for the run: {mode}")]
    attempts = [e for e in events if e["event"] == "network"]
    if attempts:
        seen = list(dict.fromkeys(f"{e['address']} (from {e['where']})" for e in attempts))
        checks.append(Check("network access", "warn",
                            f"{len(attempts)} blocked attempt(s): " + "; ".join(seen[:5]),
                            "the grader is offline: ship the files instead of downloading them"))
    return checks


def judge_song(song: Song, events: list[dict]) -> tuple[SongReport, Check]:
    """One song's time against its limit, from its ``song`` event."""
    report = SongReport(song.name, round(song.duration, 3), song.limit)
    event = next((e for e in events if e["event"] == "song" and e["song"] == song.name), None)
    if event is None:
        report.error = "never predicted (the run stopped before this song)"
        return report, Check(f"song {song.name}", "fail", report.error,
                             "see the failures above and the run's output")
    report.seconds = round(event["seconds"], 3)
    report.margin = round(margin_of(event["seconds"], song.limit), 4)
    error = event.get("error")
    if error and ("Timeout" in error or "TimeLimit" in error or "time limit" in error):
        report.error = f"stopped at the per-song limit: {error}"
        check = Check(f"song {song.name}", "fail",
                      f"{event['seconds']:.1f} s: exceeded the per-song limit of {song.limit:.4g} s "
                      f"({error})",
                      "make it faster (fewer shifts or members, shorter segments) or use a GPU")
    elif error:
        report.error = error
        check = Check(f"song {song.name}", "fail",
                      f"prediction failed after {event['seconds']:.1f} s: {error}",
                      "run `python predict.py` and fix the exception above")
    else:
        check = judge_time(f"song {song.name}", event["seconds"], song.limit,
                           "INFERENCE_PER_MUSIC_TIMEOUT_SECONDS")
    report.status = check.status
    return report, check


def check_song_outputs(song: Song, results_dir: str | Path, instruments=TARGETS) -> tuple[dict, list[Check]]:
    """Every stem exists, has the mixture's (frames, channels) and rate, is finite; clipping counted.

    Returns:
        ``({instrument: {"frames", "channels", "rate", "nonfinite", "clipped"}}, checks)``.
    """
    results_dir = Path(results_dir)
    found, problems, clipped = {}, [], []
    for instrument in instruments:
        path = results_dir / song.name / f"{instrument}.wav"
        if not path.is_file():
            problems.append(f"{instrument}.wav missing")
            continue
        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (frames, channels)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported
            problems.append(f"{instrument}.wav unreadable ({exc})")
            continue
        nonfinite = int(audio.size - np.count_nonzero(np.isfinite(audio)))
        n_clipped = int(np.count_nonzero(np.abs(audio) >= 1.0))
        found[instrument] = {"frames": int(audio.shape[0]), "channels": int(audio.shape[1]),
                             "rate": int(rate), "nonfinite": nonfinite, "clipped": n_clipped}
        want = (song.frames, song.channels)
        if (audio.shape[0], audio.shape[1]) != want:
            problems.append(f"{instrument}.wav has (frames, channels) {tuple(audio.shape)}, "
                            f"the mixture {want}")
        if rate != song.rate:
            problems.append(f"{instrument}.wav is at {rate} Hz, the mixture at {song.rate} Hz")
        if nonfinite:
            problems.append(f"{instrument}.wav has {nonfinite} NaN/Inf samples")
        if n_clipped:
            clipped.append(f"{instrument} {n_clipped}")
    name = f"outputs {song.name}"
    checks = []
    if problems:
        checks.append(Check(name, "fail", "; ".join(problems),
                            "write every stem with the mixture's length, channel count and sample rate, "
                            "finite values only (SeparatorPredictor in submission/base.py does this)"))
    else:
        checks.append(Check(name, "ok", f"{len(instruments)} stems, {song.frames} frames x "
                                        f"{song.channels} ch at {song.rate} Hz, finite"))
    if clipped:
        checks.append(Check(name, "warn", "samples at |x| >= 1 (clipped): " + ", ".join(clipped),
                            "rescale the stems (predict.py --clip-mode rescale) or write float32"))
    return found, checks
