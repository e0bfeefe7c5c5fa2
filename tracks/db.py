"""One loading API over our generated folders, MUSDB18-HQ wav folders and MUSDB18 stem files.

:func:`open_tracks` finds the songs of a split and checks each one up front (every stem present
and readable, same sample rate, same length); a bad song raises :class:`core.errors.SongError`
naming the song and the file, or is skipped with a warning when ``on_error="skip"``.
:meth:`Track.load` returns float32 ``(mixture (C, T), stems (S, C, T))``. WAV files are read with
soundfile, so float WAVs are never quantised (musdb would decode them through ffmpeg as 16-bit).

Layouts recognised under ``root``:

* ours: ``manifest.json`` + ``{train,test}/<song>/*.wav``; ``split="valid"`` is the manifest's list.
* MUSDB18-HQ: ``{train,test}/<song>/{mixture,bass,drums,other,vocals}.wav``; ``"valid"`` is musdb's
  validation list (from its ``mus.yaml``), or the ``validation_tracks`` of ``root/setup.yaml``.
* MUSDB18: ``{train,test}/<song>.stem.mp4`` (stream 0 the mixture, then drums, bass, other, vocals).
* a flat folder of song folders or stem files (no split sub-folders): every split is all of it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from core.audio import audio_info, fit_length, read_audio
from core.constants import TARGETS
from core.errors import AudioFileError, SongError

#: stream index of each source in a MUSDB18 stem file
STEM_IDS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}
STEM_SUFFIXES = (".stem.mp4", ".stem.m4a")
#: "auto" mixture mode: a supplied mixture further than this (SNR in dB) from the sum is replaced
AUTO_SUM_SNR_DB = 20.0


class Track:
    """One song: a mixture and its stems.

    Attributes:
        name: song name.
        path: the song folder or stem file.
        rate: sample rate (Hz).
        length: frames.
        targets: stem names, in the order of :meth:`load`'s stems.
        info: the manifest entry of a generated song, else ``{}``.
    """

    def __init__(
        self, name: str, path: Path, rate: int, length: int, targets: tuple, info: dict | None = None
    ):
        self.name, self.path, self.rate, self.length = name, Path(path), int(rate), int(length)
        self.targets = tuple(targets)
        self.info = info or {}

    @property
    def duration(self) -> float:
        return self.length / self.rate

    def load(self, start: int = 0, frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Read ``frames`` frames from ``start`` (all to the end when None).

        Returns:
            ``(mixture (nb_channels, nb_timesteps), stems (nb_targets, nb_channels, nb_timesteps))`` float32.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.duration:.1f} s, {self.rate} Hz)"


class WavTrack(Track):
    """A song folder of WAV (or FLAC) files: ``mixture`` plus one file per target.

    ``mixture="file"`` reads ``mixture.wav``; ``"sum"`` returns the sum of the stems; ``"auto"`` reads
    the file when there is one, else the sum.
    """

    def __init__(self, *args, files: dict, mixture: str = "file", **kwargs):
        super().__init__(*args, **kwargs)
        self.files = files
        self.mixture_mode = "sum" if (mixture == "sum" or "mixture" not in files) else "file"

    def load(self, start: int = 0, frames: int | None = None):
        frames = self.length - start if frames is None else frames
        if start < 0 or frames < 0 or start + frames > self.length:
            raise ValueError(
                f"song '{self.name}': cannot read {frames} frames from {start} (length {self.length})"
            )
        try:
            stems = np.stack(
                [read_audio(self.files[t], start, frames, allow_empty=True)[0] for t in self.targets]
            )
            if self.mixture_mode == "sum":
                mixture = stems.sum(0, dtype=np.float32)
            else:
                mixture = read_audio(self.files["mixture"], start, frames, allow_empty=True)[0]
        except AudioFileError as exc:
            raise SongError(self.name, str(exc)) from exc
        return mixture, stems


class StemTrack(Track):
    """A MUSDB18 multi-stream stem file (``.stem.mp4``/``.m4a``), decoded with stempeg.

    ``mixture="auto"`` uses stream 0 unless it differs from the sum of the stems by more than
    :data:`AUTO_SUM_SNR_DB` on the first read (a separately mastered mixture), then the sum.
    """

    def __init__(self, *args, stem_ids: dict, mixture: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.stem_ids = stem_ids
        self.mixture_mode = mixture

    def load(self, start: int = 0, frames: int | None = None):
        import stempeg

        frames = self.length - start if frames is None else frames
        if start < 0 or frames < 0 or start + frames > self.length:
            raise ValueError(
                f"song '{self.name}': cannot read {frames} frames from {start} (length {self.length})"
            )
        try:
            audio, _ = stempeg.read_stems(
                str(self.path),
                start=start / self.rate,
                duration=frames / self.rate,
                dtype=np.float32,
                always_3d=True,
            )
        except Exception as exc:  # noqa: BLE001 - ffmpeg errors come in many types
            raise SongError(self.name, f"{self.path}: cannot decode ({exc})") from exc
        audio = fit_length(np.ascontiguousarray(np.transpose(audio, (0, 2, 1))), frames).astype(np.float32)
        stems = np.stack([audio[self.stem_ids[t]] for t in self.targets])
        total = stems.sum(0, dtype=np.float32)
        if self.mixture_mode == "auto":
            self.mixture_mode = "file" if _snr(audio[0], total) >= AUTO_SUM_SNR_DB else "sum"
        return (total if self.mixture_mode == "sum" else audio[0]), stems


def _snr(ref: np.ndarray, est: np.ndarray) -> float:
    num = float(np.sum(np.square(ref, dtype=np.float64))) + 1e-9
    return 10 * np.log10(num / (float(np.sum(np.square(ref - est, dtype=np.float64))) + 1e-9))


# --------------------------------------------------------------------------- opening songs
def _wav_song(folder: Path, targets: tuple, mixture: str, info: dict | None) -> WavTrack:
    name = folder.name
    files, missing = {}, []
    for source in ("mixture",) + tuple(targets):
        found = [
            folder / f"{source}{ext}" for ext in (".wav", ".flac") if (folder / f"{source}{ext}").is_file()
        ]
        if found:
            files[source] = found[0]
        elif source != "mixture" or mixture == "file":
            missing.append(f"{source}.wav")
    if missing:
        raise SongError(name, f"missing stem file(s) {', '.join(missing)} in {folder}")
    heads = {}
    for source, path in files.items():
        try:
            heads[source] = audio_info(path)
        except AudioFileError as exc:
            raise SongError(name, str(exc)) from exc
        if heads[source].frames == 0:
            raise SongError(name, f"{path}: audio has zero length")
    _check_same(name, {files[s].name: (h.samplerate, h.frames, h.channels) for s, h in heads.items()})
    head = heads[targets[0]]
    return WavTrack(name, folder, head.samplerate, head.frames, targets, info, files=files, mixture=mixture)


def _check_same(name: str, facts: dict) -> None:
    """``{file: (rate, frames, channels)}`` -> SongError naming the files that disagree."""
    for k, what in enumerate(("sample rates", "lengths (frames)", "channel counts")):
        values = {f: v[k] for f, v in facts.items()}
        if len(set(values.values())) > 1:
            listing = ", ".join(f"{f}: {v}" for f, v in values.items())
            raise SongError(name, f"stems have different {what}: {listing}")


def _stem_song(path: Path, targets: tuple, mixture: str) -> StemTrack:
    import stempeg

    name = path.name
    for suffix in STEM_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if not path.is_file():
        raise SongError(name, f"{path}: file does not exist")
    try:
        info = stempeg.Info(str(path))
        nb = info.nb_audio_streams
    except Exception as exc:  # noqa: BLE001
        raise SongError(name, f"{path}: cannot be read as a stem file ({exc})") from exc
    missing = [t for t in targets if STEM_IDS.get(t, nb) >= nb]
    if missing:
        raise SongError(name, f"{path}: has {nb} audio streams, no stream for {', '.join(missing)}")
    ids = [0] + [STEM_IDS[t] for t in targets]
    _check_same(name, {f"stream {i}": (info.rate(i), info.samples(i), info.channels(i)) for i in ids})
    return StemTrack(name, path, info.rate(0), info.samples(0), targets, stem_ids=STEM_IDS, mixture=mixture)


def _musdb_validation(root: Path) -> list[str]:
    import yaml

    setup = root / "setup.yaml"
    if not setup.is_file():
        import musdb

        setup = Path(musdb.__file__).parent / "configs" / "mus.yaml"
    return list(yaml.safe_load(setup.read_text()).get("validation_tracks") or [])


def _candidates(root: Path, split: str) -> tuple[list[Path], dict]:
    """Song paths of a split, and manifest entries by song name."""
    manifest = root / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        entry = data["splits"].get(split)
        if entry is None:
            raise ValueError(f"{manifest}: no split '{split}' (has {', '.join(data['splits'])})")
        infos = {s["name"]: s for s in data.get("songs", [])}
        return [root / entry["folder"] / n for n in entry["songs"]], infos
    folder = root / ("train" if split == "valid" else split)
    if not folder.is_dir():
        if (root / "train").is_dir() or (root / "test").is_dir():
            raise ValueError(f"{root}: no '{folder.name}' folder for split '{split}'")
        folder = root  # a flat folder of songs: every split is all of it
        songs = sorted(p for p in folder.iterdir() if p.is_dir() or p.name.endswith(STEM_SUFFIXES))
        return songs, {}
    songs = sorted(
        p
        for p in folder.iterdir()
        if (p.is_dir() or p.name.endswith(STEM_SUFFIXES)) and not p.name.startswith(".")
    )
    if split in ("train", "valid") and folder.name == "train":
        valid = set(_musdb_validation(root))
        stem = [p.name.split(".stem.")[0] for p in songs]
        songs = [p for p, n in zip(songs, stem) if (n in valid) == (split == "valid")]
    return songs, {}


def open_tracks(
    root, split: str = "train", targets=TARGETS, on_error: str = "raise", mixture: str = "auto"
) -> list[Track]:
    """Open the songs of a split.

    Args:
        root: a generated folder, a MUSDB18-HQ wav folder, a MUSDB18 stem folder, or a flat folder
            of song folders / stem files.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        targets: stem names to load (any names for wav folders; MUSDB18 names for stem files).
        on_error: ``"raise"`` (SongError naming song and file) or ``"skip"`` (warn and leave it out).
        mixture: ``"auto"`` (wav: the file; stem file: stream 0 unless it is not the sum of the
            stems), ``"file"`` or ``"sum"`` (rebuild the mixture as the sum of the stems).

    Returns:
        Tracks sorted by name.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: bad arguments or no such split.
        SongError: a bad song, when ``on_error="raise"``.
    """
    root = Path(root)
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be 'train', 'valid' or 'test', not '{split}'")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not '{on_error}'")
    if mixture not in ("auto", "file", "sum"):
        raise ValueError(f"mixture must be 'auto', 'file' or 'sum', not '{mixture}'")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder does not exist")
    targets = tuple(targets)
    paths, infos = _candidates(root, split)
    tracks = []
    for path in paths:
        try:
            if path.name.endswith(STEM_SUFFIXES):
                tracks.append(_stem_song(path, targets, mixture))
            else:
                if not path.is_dir():
                    raise SongError(path.name, f"{path}: song folder does not exist")
                tracks.append(_wav_song(path, targets, mixture, infos.get(path.name)))
        except SongError as exc:
            if on_error == "raise":
                raise
            warnings.warn(f"skipping {exc}", stacklevel=2)
    return sorted(tracks, key=lambda t: t.name)
