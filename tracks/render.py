"""Render pretty_midi parts to float audio with libfluidsynth, in process.

One :class:`FluidRenderer` per soundfont, loaded once and cached (:func:`get_renderer`). FluidSynth's
reverb and chorus are switched off (they keep state between renders and leak one stem into the
next); effects are added per stem by :mod:`tracks.effects`. Samples come straight from
``fluid_synth_write_float`` into numpy buffers, so nothing is quantised to 16 bits.

Every render uses a fresh synthesizer (sharing the loaded soundfont), so a stem never depends on
what was rendered before it: song i depends only on its own seed.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import numpy as np

from tracks.soundfonts import resolve_soundfont


@functools.lru_cache(maxsize=1)
def _lib():
    os.environ.setdefault("PYFLUIDSYNTH_QUIET", "1")
    import fluidsynth

    lib = fluidsynth._fl
    lib.fluid_synth_write_float.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.fluid_synth_write_float.restype = ctypes.c_int
    lib.fluid_set_log_function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    lib.fluid_set_log_function(2, None, None)  # FLUID_WARN: "no preset on channel" for unused channels
    lib.fluid_synth_add_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.fluid_synth_add_sfont.restype = ctypes.c_int
    lib.fluid_synth_remove_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.fluid_synth_remove_sfont.restype = ctypes.c_int
    return fluidsynth, lib


class FluidRenderer:
    """A soundfont loaded once, and a fresh FluidSynth synthesizer for every render.

    FluidSynth's voices keep state between notes (filter and interpolation history of the voice
    slot) and resets only take effect while rendering, so a synth reused across renders makes a
    stem depend on what was rendered before. Each :meth:`render` therefore builds a new synth (about
    10 ms) that borrows the loaded soundfont.

    Args:
        soundfont: a path or a registered soundfont name (see :mod:`tracks.soundfonts`).
        rate: sample rate in Hz.
        gain: FluidSynth master gain.
    """

    def __init__(self, soundfont: str | Path, rate: int = 44100, gain: float = 0.4):
        self._fs, self._fl = _lib()
        self.path = resolve_soundfont(soundfont)
        self.rate = rate
        settings = {
            "synth.reverb.active": 0,
            "synth.chorus.active": 0,
            "synth.polyphony": 512,
            "synth.cpu-cores": 1,
        }
        self.master = self._fs.Synth(gain=gain, samplerate=float(rate), channels=16, **settings)
        self.sfid = self.master.sfload(str(self.path))
        if self.sfid < 0:
            raise ValueError(f"{self.path}: FluidSynth cannot load this soundfont")
        self._sfont = self._fs.fluid_synth_get_sfont_by_id(self.master.synth, self.sfid)
        self._presets = {}

    def has_preset(self, program: int, is_drum: bool = False) -> bool:
        """Whether the soundfont has the GM ``program`` (bank 128 for drum kits)."""
        key = (program, is_drum)
        if key not in self._presets:
            name = self.master.sfpreset_name(self.sfid, 128 if is_drum else 0, program)
            self._presets[key] = name is not None
        return self._presets[key]

    def render(self, instruments: list, frames: int) -> np.ndarray:
        """Render pretty_midi instruments together.

        Args:
            instruments: ``pretty_midi.Instrument`` list (notes, pitch bends, control changes);
                at most 15 melodic parts plus drums.
            frames: output length in frames; notes past the end are cut.

        Returns:
            ``(2, frames)`` float32 audio.
        """
        fs, fl = self._fs, self._fl
        synth = fs.new_fluid_synth(self.master.settings)
        ptr = ctypes.c_void_p(synth)
        sfid = fl.fluid_synth_add_sfont(ptr, ctypes.c_void_p(self._sfont))
        try:
            events = self._events(synth, sfid, instruments, frames)
            out = np.zeros((2, frames), dtype=np.float32)
            left, right = out[0], out[1]
            pos = 0
            for frame, _, fn, args in events:
                if frame >= frames:
                    break
                if frame > pos:
                    fl.fluid_synth_write_float(
                        ptr, frame - pos, left.ctypes.data, pos, 1, right.ctypes.data, pos, 1
                    )
                    pos = frame
                fn(synth, *args)
            if frames > pos:
                fl.fluid_synth_write_float(
                    ptr, frames - pos, left.ctypes.data, pos, 1, right.ctypes.data, pos, 1
                )
        finally:
            fl.fluid_synth_remove_sfont(ptr, ctypes.c_void_p(self._sfont))
            fs.delete_fluid_synth(synth)
        return out

    def _events(self, synth, sfid: int, instruments: list, frames: int) -> list:
        """Select programs and list ``(frame, order, fn, args)`` events sorted by time (offs first)."""
        fs = self._fs
        events = []
        channel = 0
        for inst in instruments:
            if inst.is_drum:
                chan, bank = 9, 128
                program = inst.program if self.has_preset(inst.program, True) else 0
            else:
                chan = channel if channel < 9 else channel + 1
                channel += 1
                bank, program = 0, inst.program if self.has_preset(inst.program) else 0
            fs.fluid_synth_program_select(synth, chan, sfid, bank, program)
            fs.fluid_synth_cc(synth, chan, 91, 0)  # reverb send
            fs.fluid_synth_cc(synth, chan, 93, 0)  # chorus send
            for note in inst.notes:
                on = int(round(note.start * self.rate))
                if on >= frames:
                    continue
                off = max(int(round(note.end * self.rate)), on + 1)
                events.append((on, 2, fs.fluid_synth_noteon, (chan, note.pitch, note.velocity)))
                events.append((off, 0, fs.fluid_synth_noteoff, (chan, note.pitch)))
            for bend in inst.pitch_bends:
                events.append(
                    (
                        int(round(bend.time * self.rate)),
                        1,
                        fs.fluid_synth_pitch_bend,
                        (chan, bend.pitch + 8192),
                    )
                )
            for cc in inst.control_changes:
                events.append(
                    (int(round(cc.time * self.rate)), 1, fs.fluid_synth_cc, (chan, cc.number, cc.value))
                )
        events.sort(key=lambda e: (e[0], e[1]))
        return events


@functools.lru_cache(maxsize=8)
def get_renderer(soundfont: str, rate: int = 44100) -> FluidRenderer:
    """The process-wide renderer of a soundfont (loaded once)."""
    return FluidRenderer(soundfont, rate)
