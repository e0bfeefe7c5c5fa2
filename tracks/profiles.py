"""Rendering profiles: which soundfonts, effect families, voices and seed range a split uses.

Out-of-distribution validation is *leave-one-soundfont-out*: the ``ood`` profile renders with a
soundfont, an effect family, espeak voices and a composition-seed range that the in-distribution
profiles never use. Every song's seed is ``seed * SEED_STRIDE + profile.seed_offset +
SPLIT_OFFSETS[split] + i``, so song i depends only on (seed, profile, split, i) and the seed
ranges of different profiles and splits never overlap (:func:`seed_range`).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.constants import TARGETS
from tracks import compose
from tracks.soundfonts import available

#: composition seeds of one ``--seed`` value span ``[seed * SEED_STRIDE, (seed + 1) * SEED_STRIDE)``
SEED_STRIDE = 1_000_000
#: offset of each split inside a profile's seed block
SPLIT_OFFSETS = {"train": 0, "test": 40_000}
#: the most songs a split can have before its seeds would run into the next split
MAX_SONGS = 40_000


@dataclass(frozen=True)
class Profile:
    """How a split is rendered.

    Attributes:
        name: profile name.
        soundfonts: soundfont names (see :mod:`tracks.soundfonts`) drawn per song.
        effects: effect family names (see :mod:`tracks.effects`) drawn per song.
        voices: espeak-ng voices drawn per song for sung vocals.
        variants: espeak-ng voice variants drawn per song.
        sung_share: probability that a song's vocals are sung espeak-ng syllables (else a GM voice patch).
        seed_offset: start of the profile's seed block (multiple of 100 000).
        bus: probability of bus compression, and of limiting, on the mix.
    """

    name: str
    soundfonts: tuple
    effects: tuple
    voices: tuple = ("en", "en-us", "en-gb-x-rp", "en-029")
    variants: tuple = (
        "m1",
        "m3",
        "m7",
        "f1",
        "f2",
        "f4",
        "f5",
        "croak",
        "klatt",
        "klatt3",
        "Andy",
        "Annie",
        "Denis",
        "Mr serious",
        "edward",
        "iven",
        "linda",
        "Storm",
    )
    sung_share: float = 0.6
    seed_offset: int = 0
    bus: tuple = (0.5, 0.7)

    def soundfonts_here(self) -> list[str]:
        """The profile's soundfonts installed on this machine (raises if none is)."""
        here = [s for s in self.soundfonts if s in available()]
        if not here:
            raise FileNotFoundError(
                f"profile '{self.name}': none of its soundfonts is installed "
                f"({', '.join(self.soundfonts)}); install e.g. fluid-soundfont-gm"
            )
        return here


#: profile name -> profile. ``default`` trains; ``ood`` is held out; ``basic`` switches diversity off.
PROFILES = {
    "default": Profile(
        "default",
        soundfonts=("fluidr3", "timgm6mb", "gmbank", "fluidr3mono"),
        effects=("clean", "studio", "live", "vintage"),
        seed_offset=0,
    ),
    "basic": Profile(
        "basic",
        soundfonts=("fluidr3",),
        effects=("none",),
        voices=("en",),
        variants=("m1",),
        sung_share=0.0,
        seed_offset=0,
        bus=(0.0, 0.0),
    ),
    "ood": Profile(
        "ood",
        soundfonts=("musescore",),
        effects=("broadcast",),
        voices=("en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd"),
        variants=("f3", "m2", "m5", "Alicia", "Hugo", "belinda"),
        sung_share=0.6,
        seed_offset=900_000,
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile '{name}' (known: {', '.join(PROFILES)})")
    return PROFILES[name]


def song_seed(seed: int, profile: Profile, split: str, index: int) -> int:
    """Composition seed of song ``index`` of ``split``."""
    if not 0 <= index < MAX_SONGS:
        raise ValueError(f"song index {index} out of range [0, {MAX_SONGS})")
    return seed * SEED_STRIDE + profile.seed_offset + SPLIT_OFFSETS[split] + index


def seed_range(seed: int, profile: Profile, split: str) -> tuple[int, int]:
    """``[lo, hi)`` of the composition seeds a split can use."""
    lo = song_seed(seed, profile, split, 0)
    return lo, lo + MAX_SONGS


#: role and programs of each default target
DEFAULT_TARGETS = {
    "bass": ("bass", compose.BASS_PROGRAMS),
    "drums": ("drums", (0, 8, 16, 24, 25, 32, 40)),
    "other": ("chords", compose.OTHER_PROGRAMS),
    "vocals": ("melody", compose.VOICE_PROGRAMS),
}
assert tuple(DEFAULT_TARGETS) == TARGETS


def parse_targets(specs: list[str] | None) -> dict:
    """``["piano=chords:0,1", "violin=melody:40"]`` -> ``{name: (role, programs)}``; None -> default."""
    if not specs:
        return dict(DEFAULT_TARGETS)
    out = {}
    for spec in specs:
        try:
            name, rest = spec.split("=", 1)
            role, programs = rest.split(":", 1) if ":" in rest else (rest, "")
            progs = (
                tuple(int(p) for p in programs.split(",") if p) or DEFAULT_TARGETS.get(name, (role, (0,)))[1]
            )
        except ValueError as exc:
            raise ValueError(f"bad target spec '{spec}': expected NAME=ROLE[:PROGRAM,...]") from exc
        if role not in compose.ROLES:
            raise ValueError(f"bad target spec '{spec}': role must be one of {', '.join(compose.ROLES)}")
        out[name] = (role, progs)
    return out
