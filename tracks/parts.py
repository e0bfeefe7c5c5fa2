"""Composers of each role (drums, bass, chords, melody): pretty_midi parts bar by bar."""

from __future__ import annotations

import numpy as np
import pretty_midi

from tracks.theory import (
    CLAP,
    CRASH,
    DRUM_STYLES,
    HAT_CLOSED,
    HAT_OPEN,
    KICK,
    MODES,
    RIDE,
    SNARE,
    TOMS,
    Grid,
    Song,
    chord_pitches,
    is_active,
    velocity,
)


def compose_drums(rng, grid: Grid, bars: int, silent: set[int], params: dict, program: int) -> list:
    """GM drum kit on channel 10 in the song's style; fills before section changes."""
    inst = pretty_midi.Instrument(program=program, is_drum=True, name="drums")
    style = DRUM_STYLES[params["style"]]
    beats = grid.beats
    hat = RIDE if rng.random() < 0.25 else HAT_CLOSED
    hat_div = int(rng.choice([1, 2, 2, 4])) if not style["half"] else 2
    if beats == 6:
        hat_div = 1
    kick_extra = rng.random(beats * 2) < (0.0 if "kicks" in style else 0.3)
    dur = 0.08
    for bar in range(bars):
        if not is_active(bar, silent):
            continue
        if bar % 8 == 0 or (bar > 0 and not is_active(bar - 1, silent)):
            inst.notes.append(
                pretty_midi.Note(velocity(rng, 105), CRASH, grid.time(bar, 0), grid.time(bar, 0) + 1.0)
            )
        fill = (bar % 4 == 3) and rng.random() < 0.5
        for b in range(beats):
            for s in range(hat_div):
                pos = b + s / hat_div
                if fill and b >= beats - 1:
                    continue
                t = grid.time(bar, pos)
                accent = 90 if s == 0 else 70
                pitch = HAT_OPEN if (s == hat_div - 1 and b == beats - 1 and rng.random() < 0.3) else hat
                inst.notes.append(pretty_midi.Note(velocity(rng, accent, 12), pitch, t, t + dur))
            if "kicks" in style:
                kick = b in style["kicks"]
                snare = b in style.get("snares", (1, 3))
                for k in style["kicks"]:
                    if int(k) == b and k != b:  # off-beat kicks
                        t = grid.time(bar, k)
                        inst.notes.append(pretty_midi.Note(velocity(rng, 100), KICK, t, t + dur))
            elif beats == 3:
                kick = b == 0
                snare = b in (1, 2) and rng.random() < 0.5
            elif style["half"]:
                kick = b == 0 or (b == 3 and rng.random() < 0.3)
                snare = b == 2
            else:
                kick = b in (0, 2)
                snare = b in (1, 3)
            if kick:
                t = grid.time(bar, b)
                inst.notes.append(pretty_midi.Note(velocity(rng, 110), KICK, t, t + dur))
            if kick_extra[2 * b + 1] and not snare:
                t = grid.time(bar, b + 0.5)
                inst.notes.append(pretty_midi.Note(velocity(rng, 90), KICK, t, t + dur))
            if snare and not (fill and b >= beats - 1):
                t = grid.time(bar, b)
                inst.notes.append(
                    pretty_midi.Note(velocity(rng, 105), SNARE if rng.random() > 0.1 else CLAP, t, t + dur)
                )
        if fill:
            b0 = beats - 1
            for k in range(4):
                t = grid.time(bar, b0 + k / 4)
                inst.notes.append(
                    pretty_midi.Note(velocity(rng, 95), int(rng.choice(TOMS + (SNARE,))), t, t + dur)
                )
    return [inst]


def compose_bass(rng, grid: Grid, bars: int, silent: set[int], params: dict, program: int) -> list:
    """Bass line on the chord roots: held roots, root-fifth, eighths, or a walking line."""
    inst = pretty_midi.Instrument(program=program, name="bass")
    key, mode, prog = params["key"], params["mode"], params["progression"]
    pattern = str(rng.choice(["roots", "root-fifth", "eighths", "walking", "syncopated"]))
    params["bass_pattern"] = pattern
    octave = 1 if key >= 5 else 2
    for bar in range(bars):
        if not is_active(bar, silent):
            continue
        root = chord_pitches(key, mode, prog[bar % len(prog)], octave)
        r, fifth = root[0], root[0] + 7
        nxt = chord_pitches(key, mode, prog[(bar + 1) % len(prog)], octave)[0]
        if pattern == "roots":
            steps = [(0, grid.beats, r)]
        elif pattern == "root-fifth":
            steps = [(b, 1, r if b % 2 == 0 else fifth) for b in range(grid.beats)]
        elif pattern == "eighths":
            steps = [
                (b / 2, 0.5, r + (12 if (b == 3 and rng.random() < 0.3) else 0))
                for b in range(2 * grid.beats)
            ]
        elif pattern == "walking":
            scale = MODES[mode]
            walk = [r, r + scale[2], r + scale[4], nxt - 1 if nxt > r else nxt + 1][: grid.beats]
            steps = [(b, 1, p) for b, p in enumerate(walk)]
        else:
            steps = [(0, 1.5, r), (1.5, 1, r), (2.5, 0.5, fifth)][: grid.beats]
        for pos, length, pitch in steps:
            start = grid.time(bar, pos)
            end = start + length * grid.beat * float(rng.uniform(0.7, 0.95))
            inst.notes.append(pretty_midi.Note(velocity(rng, 95, 12), int(pitch), start, end))
    return [inst]


def compose_chords(rng, grid: Grid, bars: int, silent: set[int], params: dict, program: int) -> list:
    """Block chords (held, stabs) or arpeggios on the progression."""
    inst = pretty_midi.Instrument(program=program, name="chords")
    key, mode, prog = params["key"], params["mode"], params["progression"]
    texture = str(rng.choice(["block", "stabs", "arpeggio", "arpeggio-up-down", "pulse"]))
    params.setdefault("chord_textures", []).append(texture)
    size = int(rng.choice([3, 3, 4]))
    octave = int(rng.choice([3, 4]))
    for bar in range(bars):
        if not is_active(bar, silent):
            continue
        pitches = chord_pitches(key, mode, prog[bar % len(prog)], octave, size)
        if texture == "block":
            start, end = grid.time(bar, 0), grid.time(bar, grid.beats) - 0.02
            for p in pitches:
                inst.notes.append(pretty_midi.Note(velocity(rng, 75), p, start, end))
        elif texture in ("stabs", "pulse"):
            hits = [b + 0.5 for b in range(grid.beats)] if texture == "stabs" else list(range(grid.beats))
            for pos in hits:
                start = grid.time(bar, pos)
                for p in pitches:
                    inst.notes.append(pretty_midi.Note(velocity(rng, 80), p, start, start + 0.4 * grid.beat))
        else:
            order = pitches + [pitches[0] + 12]
            if texture == "arpeggio-up-down":
                order = order + order[-2:0:-1]
            div = 2 if grid.beat < 0.45 else 4
            for k in range(grid.beats * div):
                start = grid.time(bar, k / div)
                p = order[k % len(order)]
                inst.notes.append(
                    pretty_midi.Note(velocity(rng, 75), p, start, start + 1.5 * grid.beat / div)
                )
    return [inst]


def compose_melody(
    rng, grid: Grid, bars: int, silent: set[int], params: dict, program: int, target: str, song: Song
) -> list:
    """Lead melody in phrases of 1-2 bars with rests, vibrato and portamento as pitch bends."""
    inst = pretty_midi.Instrument(program=program, name=target)
    key, mode, prog = params["key"], params["mode"], params["progression"]
    scale = MODES[mode]
    centre = 12 * 5 + key + (int(rng.choice([-5, 0, 0, 3])) if target == "vocals" else 0)
    notes = []
    degree = int(rng.integers(0, 5))
    vib_rate, vib_depth = float(rng.uniform(4.5, 6.5)), float(rng.uniform(0.1, 0.45))
    glide = float(rng.uniform(0.0, 0.08))
    syllable = 0
    for bar in range(bars):
        if not is_active(bar, silent):
            continue
        if rng.random() < 0.25:  # breathe: a bar of rest
            continue
        chord = prog[bar % len(prog)]
        pos = float(rng.choice([0.0, 0.5, 1.0]))
        while pos < grid.beats - 0.25:
            length = float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
            length = min(length, grid.beats - pos)
            step = int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
            degree = int(np.clip(degree + step, -3, 9))
            if rng.random() < 0.4:  # lean on chord tones
                degree = chord + 2 * int(rng.integers(0, 3))
            pitch = centre + scale[degree % 7] + 12 * (degree // 7)
            start = grid.time(bar, pos)
            end = grid.time(bar, pos + length) - 0.03
            if end - start > 0.08:
                notes.append((start, end, int(pitch), velocity(rng, 90, 12), syllable))
                syllable += 1
            pos += length + float(rng.choice([0.0, 0.0, 0.5]))
    for start, end, pitch, vel, _ in notes:
        inst.notes.append(pretty_midi.Note(vel, pitch, start, end))
    inst.pitch_bends.extend(_expression_bends(notes, vib_rate, vib_depth, glide))
    song.melody[target] = notes
    params.setdefault("melody", {})[target] = dict(
        vibrato_hz=vib_rate, vibrato_semitones=vib_depth, portamento_s=glide
    )
    return [inst]


def _expression_bends(notes, rate: float, depth: float, glide: float, step: float = 0.02) -> list:
    """Pitch bends (range +-2 semitones) for delayed vibrato and a glide into each note."""
    bends = []
    prev = None
    for start, end, pitch, _, _ in notes:
        t = start
        while t < end:
            semis = 0.0
            if prev is not None and glide > 0 and t - start < glide and abs(prev - pitch) <= 2:
                semis += (prev - pitch) * (1 - (t - start) / glide)
            onset = max(0.0, (t - start - 0.15) / 0.2)
            semis += depth * min(1.0, onset) * np.sin(2 * np.pi * rate * (t - start))
            bends.append(pretty_midi.PitchBend(int(np.clip(semis / 2 * 8191, -8192, 8191)), t))
            t += step
        bends.append(pretty_midi.PitchBend(0, end))
        prev = pitch
    return bends
