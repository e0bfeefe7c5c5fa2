"""Music building blocks of the composer: modes, progressions, drum styles, GM programs, timing grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}

#: chord progressions as scale degrees (0-based), one chord per bar
PROGRESSIONS = (
    (0, 4, 5, 3),
    (0, 5, 3, 4),
    (5, 3, 0, 4),
    (0, 3, 4, 4),
    (0, 0, 3, 4),
    (1, 4, 0, 0),
    (0, 6, 5, 4),
    (0, 3, 0, 4),
    (5, 4, 3, 4),
    (0, 2, 3, 4),
    (3, 4, 0, 5),
    (0, 4, 1, 3),
)

#: drum styles: beats per bar, subdivisions per beat, swing ratio, half-time feel
DRUM_STYLES = {
    "straight": dict(beats=4, swing=0.0, half=False),
    "swung": dict(beats=4, swing=0.62, half=False),
    "half-time": dict(beats=4, swing=0.0, half=True),
    "waltz": dict(beats=3, swing=0.0, half=False),
    "shuffle-half": dict(beats=4, swing=0.6, half=True),
    "four-on-floor": dict(beats=4, swing=0.0, half=False, kicks=(0, 1, 2, 3)),
    "breakbeat": dict(beats=4, swing=0.0, half=False, kicks=(0, 1.5, 2.5)),
    "six-eight": dict(beats=6, swing=0.0, half=False, kicks=(0, 3), snares=(3,)),
}

KICK, SNARE, RIM, CLAP = 36, 38, 37, 39
HAT_CLOSED, HAT_PEDAL, HAT_OPEN, RIDE, CRASH = 42, 44, 46, 51, 49
TOMS = (41, 45, 48, 50)

#: default GM programs per role
BASS_PROGRAMS = tuple(range(32, 40))
OTHER_PROGRAMS = (
    0,
    1,
    2,
    4,
    5,
    6,
    16,
    17,
    18,
    19,
    24,
    25,
    26,
    27,
    29,
    48,
    49,
    50,
    51,
    61,
    62,
    88,
    89,
    90,
    91,
    92,
    94,
    95,
    11,
    46,
)
VOICE_PROGRAMS = (52, 53, 54, 85)


@dataclass
class Song:
    """One composed song.

    Attributes:
        params: JSON-serialisable parameters (tempo, key, mode, style, programs, ...).
        parts: target name -> list of pretty_midi instruments.
        melody: target name -> list of ``(start_s, end_s, midi_pitch, velocity, syllable_index)`` for
            melodic roles (used by the sung vocals).
        silences: target name -> list of ``(start_s, end_s)`` intervals where the target is silent.
        seconds: song length in seconds.
    """

    params: dict
    parts: dict = field(default_factory=dict)
    melody: dict = field(default_factory=dict)
    silences: dict = field(default_factory=dict)
    seconds: float = 30.0


@dataclass
class Grid:
    """Timing of a song: seconds per beat, beats per bar, swing, humanisation."""

    beat: float
    beats: int
    swing: float
    jitter: float
    rng: np.random.Generator

    def time(self, bar: int, beat: float) -> float:
        """Onset of ``beat`` (may be fractional) in ``bar``, swung and humanised, in seconds."""
        whole, frac = divmod(beat, 1.0)
        if self.swing and abs(frac - 0.5) < 1e-6:
            frac = self.swing
        t = (bar * self.beats + whole + frac) * self.beat
        return max(0.0, t + float(self.rng.normal(0.0, self.jitter)))


def velocity(rng: np.random.Generator, base: int, spread: int = 10) -> int:
    return int(np.clip(base + rng.integers(-spread, spread + 1), 1, 127))


def is_active(bar: int, silent_bars: set[int]) -> bool:
    return bar not in silent_bars


def chord_pitches(key: int, mode: str, degree: int, octave: int, size: int = 3) -> list[int]:
    """MIDI pitches of the diatonic chord on ``degree`` (triad or seventh)."""
    scale = MODES[mode]
    out = []
    for k in range(size):
        d = degree + 2 * k
        out.append(12 * (octave + 1) + key + scale[d % 7] + 12 * (d // 7))
    return out
