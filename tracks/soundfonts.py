"""General MIDI soundfonts, found at run time in the standard locations.

Each registered soundfont has a short name (used in manifests and on the command line) and the
file names Debian packages install it under. :func:`available` lists the ones present on this
machine; :func:`resolve_soundfont` turns a name or a path into a path.

======================  ====================================  =============================
name                    file                                  Debian package
======================  ====================================  =============================
``fluidr3``             FluidR3_GM.sf2                        fluid-soundfont-gm
``timgm6mb``            TimGM6mb.sf2                          timgm6mb-soundfont
``gmbank``              sf_GMbank.sf2                         csound-soundfont
``fluidr3mono``         FluidR3Mono_GM.sf3                    fluidr3mono-gm-soundfont
``musescore``           MuseScore_General.sf3 / _Lite.sf3     musescore-general-soundfont(-lite)
======================  ====================================  =============================

(``FluidR3_GS.sf2`` from fluid-soundfont-gs holds only GS variation banks, no bank-0 GM set, so it
is not a soundfont of its own here.)
"""

from __future__ import annotations

import os
from pathlib import Path

#: name -> candidate file names, most preferred first
SOUNDFONTS = {
    "fluidr3": ("FluidR3_GM.sf2",),
    "timgm6mb": ("TimGM6mb.sf2",),
    "gmbank": ("sf_GMbank.sf2",),
    "fluidr3mono": ("FluidR3Mono_GM.sf3",),
    "musescore": ("MuseScore_General.sf3", "MuseScore_General_Lite.sf3", "MuseScore_General.sf2"),
}


def search_dirs() -> list[Path]:
    """Folders searched for soundfonts: ``$STEMBLEND_SOUNDFONTS`` (os.pathsep list), then the usual ones."""
    extra = [Path(p) for p in os.environ.get("STEMBLEND_SOUNDFONTS", "").split(os.pathsep) if p]
    prefixes = [
        Path(os.environ.get("CONDA_PREFIX", "/nonexistent")),
        Path("/usr/local"),
        Path("/usr"),
        Path.home() / ".local",
        Path("/opt/homebrew"),
    ]
    dirs = []
    for prefix in prefixes:
        dirs += [
            prefix / "share/sounds/sf2",
            prefix / "share/sounds/sf3",
            prefix / "share/soundfonts",
            prefix / "share/samples",
            prefix / "share/sounds",
        ]
    return extra + dirs


def find_soundfont(name: str) -> Path | None:
    """Path of a registered soundfont, or None when it is not installed."""
    for filename in SOUNDFONTS[name]:
        for folder in search_dirs():
            path = folder / filename
            if path.is_file():
                return path
    return None


def available() -> list[str]:
    """Registered soundfont names installed on this machine, in registry order."""
    return [name for name in SOUNDFONTS if find_soundfont(name) is not None]


def resolve_soundfont(soundfont: str | Path) -> Path:
    """A registered name or a path -> an existing path.

    Raises:
        FileNotFoundError: naming the soundfont and where it was searched.
    """
    if str(soundfont) in SOUNDFONTS:
        path = find_soundfont(str(soundfont))
        if path is None:
            raise FileNotFoundError(
                f"soundfont '{soundfont}' ({' or '.join(SOUNDFONTS[str(soundfont)])}) is not installed; "
                f"searched {', '.join(str(d) for d in search_dirs() if d.is_dir())} and $STEMBLEND_SOUNDFONTS"
            )
        return path
    path = Path(soundfont)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: soundfont file does not exist (registered names: {', '.join(SOUNDFONTS)})"
        )
    return path
