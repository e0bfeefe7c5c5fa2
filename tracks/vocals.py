"""Sung vocals: espeak-ng syllables pitched and stretched onto the melody (TD-PSOLA).

espeak-ng speaks the song's words on a flat pitch (SSML ``<prosody range="0">``), so every word has
one known glottal period. Pitch-synchronous overlap-add (TD-PSOLA, in numpy) then moves each word
to its note's pitch, with vibrato and a glide from the previous note, and stretches only its
vowel to the note's length; the consonants keep their own timing and the formants stay put, so the
stem has real formants, consonants and sibilants. Breaths (shaped noise) precede phrases.

All words of a song are spoken in one espeak-ng call (separated by breaks and split on the
silences), cached per process; espeak-ng itself is deterministic, so the stem depends only on the
song's seed and voice.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess

import numpy as np
import soundfile as sf
from scipy.signal import lfilter, resample_poly

#: words the singer draws a song's lyrics from (sibilants, plosives, nasals, open vowels)
VOCABULARY = (
    "la",
    "na",
    "oh",
    "yeah",
    "baby",
    "love",
    "night",
    "heart",
    "away",
    "fire",
    "go",
    "home",
    "time",
    "light",
    "dream",
    "you",
    "me",
    "sky",
    "down",
    "stay",
    "run",
    "free",
    "shine",
    "rain",
    "feel",
    "sun",
    "gone",
    "more",
    "so",
    "sweet",
    "kiss",
    "stars",
    "stone",
    "shadow",
    "tonight",
    "forever",
    "hold",
    "money",
    "city",
    "lonely",
    "dancing",
    "sister",
    "whisper",
    "smile",
    "ocean",
    "river",
    "wild",
)
BREAK_MS = 450


def available() -> bool:
    """Whether espeak-ng is installed."""
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=2048)
def speak(voice: str, variant: str, pitch: int, words: tuple, speed: int = 130) -> tuple[tuple, int]:
    """Speak ``words`` on a flat pitch.

    Returns:
        ``(segments, rate)``: one float32 mono array per word.

    Raises:
        RuntimeError: espeak-ng failed (message names the voice).
    """
    text = f' <break time="{BREAK_MS}ms"/> '.join(words)
    ssml = f'<speak><prosody range="0">{text}</prosody></speak>'
    cmd = [
        "espeak-ng",
        "--stdout",
        "-m",
        "-v",
        f"{voice}+{variant}",
        "-p",
        str(pitch),
        "-s",
        str(speed),
        ssml,
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise RuntimeError(
            f"espeak-ng failed for voice {voice}+{variant}: {proc.stderr.decode(errors='replace')}"
        )
    audio, rate = _read_wav(proc.stdout)
    segments = _split(audio, rate, len(words))
    if len(segments) != len(words):  # a word with a long internal pause: speak words one by one
        segments = [
            _split(
                *_read_wav(
                    subprocess.run(
                        cmd[:-1] + [f'<speak><prosody range="0">{w}</prosody></speak>'],
                        capture_output=True,
                        timeout=60,
                    ).stdout
                ),
                1,
            )[0]
            for w in words
        ]
    return tuple(segments), rate


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    # espeak-ng writes a streaming header (unknown length): patch the sizes so libsndfile reads it all
    buf = bytearray(data)
    buf[4:8] = (len(buf) - 8).to_bytes(4, "little")
    pos = buf.find(b"data")
    if pos >= 0:
        buf[pos + 4 : pos + 8] = (len(buf) - pos - 8).to_bytes(4, "little")
    audio, rate = sf.read(io.BytesIO(bytes(buf)), dtype="float32", always_2d=True)
    return audio[:, 0], int(rate)


def _split(audio: np.ndarray, rate: int, count: int) -> list[np.ndarray]:
    """Cut speech into words at the ``count - 1`` longest quiet stretches."""
    quiet = np.abs(audio) < 2e-3
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    runs = sorted(((e - s, s, e) for s, e in zip(starts, ends) if e - s > 0.15 * rate), reverse=True)
    inner = sorted((s, e) for _, s, e in runs if s > 0 and e < len(audio))[: count - 1]
    bounds = [0] + [x for s, e in inner for x in (s, e)] + [len(audio)]
    words = [audio[bounds[2 * i] : bounds[2 * i + 1]] for i in range(len(bounds) // 2)]
    return [_trim(w) for w in words if np.abs(w).max(initial=0) > 1e-3]


def _trim(word: np.ndarray, thr: float = 2e-3) -> np.ndarray:
    loud = np.nonzero(np.abs(word) > thr)[0]
    return word[loud[0] : loud[-1] + 1] if loud.size else word


def pitch_of(word: np.ndarray, rate: int, fmin: float = 40.0, fmax: float = 700.0) -> tuple[float, int]:
    """Glottal period (samples) and the index of one glottal peak, from the loudest 60 ms."""
    n = int(0.06 * rate)
    if len(word) <= n:
        return rate / 150.0, 0
    energy = np.convolve(word**2, np.ones(n // 4), mode="valid")
    centre = int(np.argmax(energy)) + n // 8
    lo = int(np.clip(centre - n // 2, 0, len(word) - n))
    frame = word[lo : lo + n] * np.hanning(n)
    ac = np.correlate(frame, frame, mode="full")[n - 1 :]
    a, b = int(rate / fmax), int(rate / fmin)
    lag = a + int(np.argmax(ac[a:b]))
    if 0 < lag < len(ac) - 1:  # parabolic refinement
        y0, y1, y2 = ac[lag - 1], ac[lag], ac[lag + 1]
        denom = y0 - 2 * y1 + y2
        period = lag + float(np.clip(0.5 * (y0 - y2) / denom, -1, 1) if denom else 0.0)
    else:
        period = float(lag)
    peak = lo + int(np.argmax(np.abs(word[lo : lo + lag + 1])))
    return float(period), peak


@functools.lru_cache(maxsize=512)
def voice_range(voice: str, variant: str) -> tuple[float, float]:
    """Spoken f0 (Hz) of a voice at espeak pitch 0 and 99 (measured at 30 and 99, log-linear)."""
    f = []
    for p in (30, 99):
        (word,), rate = speak(voice, variant, p, ("aah",))
        f.append(rate / pitch_of(word, rate)[0])
    lo, hi = f
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
        return 100.0, 250.0
    return lo * (lo / hi) ** (30 / 69), hi


def espeak_pitch(f_target: float, lo: float, hi: float) -> int:
    """espeak ``-p`` value whose spoken f0 is closest to ``f_target`` (log-linear in p)."""
    p = 99 * np.log(f_target / lo) / np.log(hi / lo) if hi > lo * 1.01 else 50
    return int(np.clip(round(p), 0, 99))


def psola(word: np.ndarray, rate: int, period: float, peak: int, f_out: np.ndarray) -> np.ndarray:
    """Re-pitch and stretch a flat-pitched word.

    Args:
        word: ``(nb_timesteps,)`` speech on one pitch.
        period: its glottal period (samples); ``peak``: one glottal peak.
        f_out: ``(nb_out,)`` output pitch (Hz) per output sample; its length sets the duration.

    Returns:
        ``(nb_out,)`` float32.
    """
    n_out, n_in = len(f_out), len(word)
    half = max(2, int(round(period)))
    loud = np.abs(word) > 0.25 * np.abs(word).max(initial=1e-9)
    idx = np.nonzero(loud)[0]
    on, off = (int(idx[0]), int(idx[-1])) if idx.size else (0, n_in)
    tail = n_in - off
    u = np.arange(n_out, dtype=np.float64)
    if on + tail >= 0.8 * n_out or off <= on:  # no room: squeeze the whole word
        t = u * (n_in / n_out)
    else:
        vowel_out = n_out - on - tail
        t = np.where(
            u < on,
            u,
            np.where(u < on + vowel_out, on + (u - on) * (off - on) / vowel_out, off + (u - on - vowel_out)),
        )
    phase = np.cumsum(f_out / rate)
    marks = np.searchsorted(phase, np.arange(1, int(phase[-1]) + 1)).clip(0, n_out - 1)
    if marks.size == 0:
        return np.zeros(n_out, np.float32)
    src = peak + np.round((t[marks] - peak) / period) * period
    src = np.clip(np.round(src).astype(np.int64), half, max(half, n_in - half - 1))
    padded = np.pad(word, (half, half + 1))
    offsets = np.arange(-half, half + 1)
    window = np.hanning(2 * half + 1).astype(np.float32)
    grains = padded[(src + half)[:, None] + offsets] * window
    gain = np.clip((rate / f_out[marks]) / period, 0.25, 2.0).astype(np.float32)[:, None]
    pos = (marks + half)[:, None] + offsets
    out = np.bincount(pos.ravel(), weights=(grains * gain).ravel(), minlength=n_out + 2 * half + 1)
    return out[half : half + n_out].astype(np.float32)


def breath(rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    """An inhale: band-limited noise under a rise-and-fall envelope, ``(nb_timesteps,)``."""
    n = int(seconds * rate)
    noise = rng.standard_normal(n).astype(np.float32)
    a = np.exp(-2 * np.pi * 3000 / rate)
    noise = lfilter([1 - a], [1, -a], noise - lfilter([1 - 0.96], [1, -0.96], noise))
    env = np.sin(np.linspace(0, np.pi, n)) ** 2
    return (noise * env).astype(np.float32)


def sing(
    notes: list, frames: int, rate: int, voice: str, variant: str, rng: np.random.Generator, expression: dict
) -> np.ndarray:
    """Render a lead melody as sung words.

    Args:
        notes: ``(start_s, end_s, midi_pitch, velocity, syllable_index)`` from the composer.
        frames: output length at ``rate``.
        voice, variant: espeak-ng voice (e.g. ``"en-us"``) and variant (e.g. ``"f2"``).
        rng: the song's vocal random generator.
        expression: ``vibrato_hz``, ``vibrato_semitones``, ``portamento_s``.

    Returns:
        ``(2, frames)`` float32 (mono, duplicated).
    """
    out = np.zeros(frames, np.float32)
    if not notes:
        return np.stack([out, out])
    words = tuple(rng.choice(VOCABULARY, size=int(rng.integers(4, 10)), replace=False).tolist())
    speed = int(rng.integers(110, 170))
    lo, hi = voice_range(voice, variant)
    pitches = np.array([n[2] for n in notes], dtype=np.float64)
    sung_centre = np.sqrt(lo * hi) * 1.6
    median_hz = 440.0 * 2 ** ((np.median(pitches) - 69) / 12)
    octave = 12 * int(np.round(np.log2(sung_centre / median_hz)))
    pitches = pitches + octave
    centre_hz = 440.0 * 2 ** ((np.median(pitches) - 69) / 12)
    segments, srate = speak(voice, variant, espeak_pitch(centre_hz, lo, hi), words, speed)
    analysed = [(w, *pitch_of(w, srate)) for w in segments]
    vib_hz, vib_st, glide = (
        expression["vibrato_hz"],
        expression["vibrato_semitones"],
        expression["portamento_s"],
    )
    sr = srate
    voc = np.zeros(int(frames * sr / rate) + sr, np.float32)
    prev_end, prev_pitch = -1.0, None
    for (start, end, _, velocity, syllable), pitch in zip(notes, pitches):
        if int(start * sr) >= len(voc) - 1:
            break
        word, period, peak = analysed[syllable % len(analysed)]
        n_out = max(16, int((end - start) * sr))
        tt = np.arange(n_out) / sr
        semis = pitch + vib_st * np.clip((tt - 0.15) / 0.2, 0, 1) * np.sin(2 * np.pi * vib_hz * tt)
        if prev_pitch is not None and start - prev_end < 0.05 and glide > 0:
            semis = semis + (prev_pitch - pitch) * np.clip(1 - tt / glide, 0, 1)
        f_out = 440.0 * 2 ** ((semis - 69) / 12)
        sung = psola(word, sr, period, peak, f_out)
        fade = min(n_out // 2, int(0.03 * sr))
        sung[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
        sung *= np.float32((velocity / 100) / (np.abs(sung).max(initial=0) + 1e-6))
        begin = int(start * sr)
        if start - prev_end > 0.35 and rng.random() < 0.7:  # breathe before a phrase
            length = float(rng.uniform(0.15, min(0.4, start - prev_end - 0.05)))
            b0 = int((start - length - 0.04) * sr)
            if b0 >= 0:
                air = breath(rng, sr, length)[: len(voc) - b0]
                voc[b0 : b0 + len(air)] += air * np.float32(rng.uniform(0.02, 0.06))
        sung = sung[: len(voc) - begin]
        voc[begin : begin + len(sung)] += sung
        prev_end, prev_pitch = end, pitch
    voc = resample_poly(voc, rate, sr)[:frames].astype(np.float32) if sr != rate else voc[:frames]
    voc = np.pad(voc, (0, frames - len(voc)))
    return np.stack([voc, voc])
