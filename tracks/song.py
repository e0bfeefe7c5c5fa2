"""Render one song: compose, synthesise each stem, run its effect chain, mix, make the sum exact.

:func:`render_song` is a pure function of its seed and options: the composition, the sound
(soundfont, programs, sung vocals) and the mix each draw from their own child of
``numpy.random.SeedSequence(song_seed)``.
"""

from __future__ import annotations

import numpy as np

from tracks import compose, effects, vocals
from tracks.profiles import DEFAULT_TARGETS, Profile
from tracks.render import get_renderer

#: fade (seconds) into and out of a silent section
GATE_FADE = 0.02


def db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-12)))


def _energy(audio: np.ndarray) -> float:
    flat = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    return float(np.dot(flat.astype(np.float64), flat)) if flat.size < 4096 else float(np.dot(flat, flat))


def rms(audio: np.ndarray) -> float:
    """Root mean square over all samples of ``(..., T)``."""
    return float(np.sqrt(_energy(audio) / audio.size)) if audio.size else 0.0


def gate(audio: np.ndarray, intervals: list, rate: int) -> np.ndarray:
    """Zero ``(C, T)`` audio exactly inside each ``[start_s, end_s)``, with short fades around them."""
    if not intervals:
        return audio
    mask = np.ones(audio.shape[-1], dtype=np.float32)
    fade = max(1, int(GATE_FADE * rate))
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
    for start_s, end_s in intervals:
        start, end = int(round(start_s * rate)), int(round(end_s * rate))
        mask[start:end] = 0.0
        lo, hi = max(0, start - fade), min(mask.size, end + fade)
        mask[lo:start] = np.minimum(mask[lo:start], ramp[::-1][fade - (start - lo) :])
        mask[end:hi] = np.minimum(mask[end:hi], ramp[: hi - end])
    return audio * mask


def active_rms(audio: np.ndarray, intervals: list, rate: int) -> float:
    """RMS of ``(C, T)`` outside its silent intervals."""
    energy, count = _energy(audio), audio.shape[-1]
    for start_s, end_s in intervals:
        part = audio[:, int(round(start_s * rate)) : int(round(end_s * rate))]
        energy -= _energy(part)
        count -= part.shape[-1]
    return float(np.sqrt(max(energy, 0.0) / (count * audio.shape[0]))) if count > 0 else 0.0


def render_song(
    song_seed: int,
    seconds: float,
    profile: Profile,
    targets: dict | None = None,
    rate: int = 44100,
    bits: int = 21,
) -> tuple[np.ndarray, dict]:
    """Render one song.

    Args:
        song_seed: the composition seed (see :func:`tracks.profiles.song_seed`).
        seconds: length.
        profile: soundfonts, effect families, voices.
        targets: ``{name: (role, programs)}`` (default: bass, drums, other, vocals).
        rate: sample rate.
        bits: stems are rounded to multiples of ``2**-bits`` (21 for float32 files, 15 for int16) so
            the mixture is their exact sum.

    Returns:
        ``(stems, info)``: stems ``(nb_targets, 2, nb_timesteps)`` float32 in the order of ``targets``,
        info a JSON-able dict of the song's parameters.
    """
    targets = dict(targets or DEFAULT_TARGETS)
    seq = np.random.SeedSequence(song_seed)
    comp_rng, sound_rng, mix_rng = (np.random.default_rng(s) for s in seq.spawn(3))
    frames = int(round(seconds * rate))
    song = compose.compose(comp_rng, seconds, targets)
    soundfonts = profile.soundfonts_here()
    soundfont = str(sound_rng.choice(soundfonts))
    family = str(mix_rng.choice(profile.effects))
    info = dict(
        seed=song_seed,
        profile=profile.name,
        soundfont=soundfont,
        effects=family,
        composition=song.params,
        silences=song.silences,
        stems={},
    )
    renderer = get_renderer(soundfont, rate)
    sung = sound_rng.random() < profile.sung_share
    voice = dict(
        voice=str(sound_rng.choice(profile.voices)),
        variant=str(sound_rng.choice(profile.variants)),
        seed=int(sound_rng.integers(2**31)),
    )
    bus_comp_p, limit_p = profile.bus
    stems = []
    for name, (role, _) in targets.items():
        stem_info = {"role": role, "program": song.params["programs"][name]}
        if role == "melody" and name == "vocals" and sung and vocals.available():
            audio = vocals.sing(
                song.melody[name],
                frames,
                rate,
                voice["voice"],
                voice["variant"],
                np.random.default_rng(voice["seed"]),
                song.params["melody"][name],
            )
            stem_info["source"] = dict(kind="espeak-ng", **voice)
        else:
            audio = renderer.render(song.parts[name], frames)
            stem_info["source"] = dict(kind="soundfont")
        level = active_rms(audio, song.silences[name], rate)
        if level > 0:
            audio = audio * np.float32(10 ** (-20 / 20) / level)
        chain = effects.draw_chain(family, mix_rng, role if name not in ("vocals", "other") else name)
        audio = effects.apply_chain(audio, chain, rate)
        target_db = float(mix_rng.uniform(-30, -18))
        level = active_rms(audio, song.silences[name], rate)
        if level > 0:
            audio = audio * np.float32(10 ** (target_db / 20) / level)
        pan = 0.0 if role in ("bass", "drums") else float(mix_rng.uniform(-0.4, 0.4))
        width = float(mix_rng.uniform(0.3, 1.3)) if role != "bass" else float(mix_rng.uniform(0.0, 0.5))
        audio = gate(effects.pan_width(audio, pan, width), song.silences[name], rate)
        stems.append(audio.astype(np.float32))
        stem_info.update(chain=chain, level_db=round(target_db, 2), pan=round(pan, 3), width=round(width, 3))
        info["stems"][name] = stem_info
    stems = np.stack(stems)
    comp = None
    if mix_rng.random() < bus_comp_p:
        comp = dict(
            threshold_db=float(mix_rng.uniform(-24, -12)),
            ratio=float(mix_rng.uniform(1.5, 4)),
            attack_ms=float(mix_rng.uniform(5, 30)),
            release_ms=float(mix_rng.uniform(80, 300)),
        )
    limit_db = float(mix_rng.uniform(-3, -0.5)) if mix_rng.random() < limit_p else None
    if comp or limit_db is not None:
        stems = stems * effects.bus_gain(stems.sum(0), rate, comp, limit_db)
    info["bus"] = dict(compressor=comp, limiter_db=limit_db)
    return finish(stems, bits), info


def finish(stems: np.ndarray, bits: int, ceiling: float = 0.98) -> np.ndarray:
    """Scale so the mixture and every stem peak below ``ceiling``, then round to the exact-sum grid.

    Args:
        stems: ``(nb_sources, nb_channels, nb_timesteps)``.

    Returns:
        ``(nb_sources, nb_channels, nb_timesteps)`` float32 on the grid ``2**-bits``.
    """
    peak = max(float(np.max(np.abs(stems.sum(0)))), float(np.max(np.abs(stems))), 1e-9)
    if peak > ceiling:
        stems = stems * (ceiling / peak)
    return effects.quantise(stems, bits)
