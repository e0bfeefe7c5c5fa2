"""Compose a song as MIDI (pretty_midi): drums, bass, chords/arpeggios and a lead melody.

Everything random comes from one ``numpy.random.Generator`` so a song depends only on its seed.
A composition is a :class:`Song`: per target a list of ``pretty_midi.Instrument`` parts, the lead
melody as plain notes (for the sung vocals of :mod:`tracks.vocals`), and the sections where a
target is silent (vocal-free intro, drum break, late bass entry). The roles a target can play are
a registry (:data:`ROLES`), so other target sets (e.g. piano/violin) reuse the same composers.
"""

from __future__ import annotations

import numpy as np

from tracks.parts import compose_bass, compose_chords, compose_drums, compose_melody
from tracks.theory import (  # noqa: F401 - re-exported: the composer's vocabulary
    BASS_PROGRAMS,
    DRUM_STYLES,
    MODES,
    OTHER_PROGRAMS,
    PROGRESSIONS,
    VOICE_PROGRAMS,
    Grid,
    Song,
    chord_pitches,
)

#: role name -> composer
ROLES = {"drums": compose_drums, "bass": compose_bass, "chords": compose_chords, "melody": compose_melody}


def silent_bars(rng, role: str, bars: int) -> set[int]:
    """Bars where a role rests: vocal-free intro and a break, drum break, late bass entry.

    ``bars`` is the number of bars in the song; at most a third of them are silent.
    """
    out: set[int] = set()
    intro = max(1, min(4, bars // 4))
    if role == "melody":
        out |= set(range(int(rng.integers(1, intro + 1))))
        if bars > 8 and rng.random() < 0.5:
            b = int(rng.integers(4, bars - 2))
            out |= {b, b + 1}
    elif role == "drums" and rng.random() < 0.6:
        if rng.random() < 0.4:
            out |= set(range(int(rng.integers(1, intro + 1))))
        if bars > 6:
            out |= {int(rng.integers(3, bars - 1))}
    elif role == "bass" and rng.random() < 0.5:
        out |= set(range(int(rng.integers(1, intro + 1))))
    out = sorted(b for b in out if b < bars)
    return set(out[: max(1, bars // 3)] if bars >= 3 else [])


def compose(rng: np.random.Generator, seconds: float, targets: dict) -> Song:
    """Compose a song.

    Args:
        rng: the song's random generator.
        seconds: length in seconds.
        targets: target name -> ``(role, programs)`` with role a key of :data:`ROLES`.

    Returns:
        The :class:`Song`.
    """
    style = str(rng.choice(list(DRUM_STYLES)))
    tempo = float(rng.uniform(70, 180))
    if (DRUM_STYLES[style]["half"] and tempo < 110) or style == "six-eight":
        tempo *= 1.5  # six-eight counts eighth notes
    params = dict(
        tempo=round(tempo, 3),
        style=style,
        key=int(rng.integers(0, 12)),
        mode=str(rng.choice(list(MODES))),
        progression=list(PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]),
        programs={},
    )
    beats = DRUM_STYLES[style]["beats"]
    grid = Grid(
        beat=60.0 / params["tempo"],
        beats=beats,
        swing=DRUM_STYLES[style]["swing"],
        jitter=float(rng.uniform(0.002, 0.012)),
        rng=rng,
    )
    params["humanise_s"] = round(grid.jitter, 4)
    bar_s = grid.beat * beats
    bars = int(np.ceil(seconds / bar_s)) + 1
    song = Song(params=params, seconds=seconds)
    for name, (role, programs) in targets.items():
        program = int(rng.choice(programs))
        params["programs"][name] = program
        silent = silent_bars(rng, role, int(np.ceil(seconds / bar_s)))
        args = (rng, grid, bars, silent, params, program)
        if role == "melody":
            song.parts[name] = compose_melody(*args, target=name, song=song)
        else:
            song.parts[name] = ROLES[role](*args)
        song.silences[name] = _bars_to_intervals(silent, bar_s, seconds)
    return song


def _bars_to_intervals(bars: set[int], bar_s: float, seconds: float) -> list:
    """Merge silent bars into ``[start_s, end_s]`` intervals clipped to the song."""
    out = []
    for b in sorted(bars):
        start, end = b * bar_s, min((b + 1) * bar_s, seconds)
        if start >= seconds:
            break
        if out and abs(out[-1][1] - start) < 1e-9:
            out[-1][1] = end
        else:
            out.append([start, end])
    return [[round(s, 4), round(e, 4)] for s, e in out]
