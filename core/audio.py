"""Audio file I/O shared by every entry point.

Arrays inside the kit are channel-first: ``(nb_channels, nb_timesteps)`` float32. ``soundfile``
works time-first, so the conversion happens here and nowhere else.

Reading validates (exists, readable, not empty, finite) and raises :class:`AudioFileError` naming
the file. Writing is atomic: a temporary file in the same folder, then ``os.replace``, so a crash
never leaves a half-written stem behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from core.errors import AudioFileError
from core.files import atomic_path

#: libsndfile command that turns the time-stamped PEAK chunk of float WAVs off.
_SFC_SET_ADD_PEAK_CHUNK = 0x1050

#: soundfile subtypes by the names the CLIs use (demucs: default 16-bit, ``--int24``, ``--float32``).
SUBTYPES = {"int16": "PCM_16", "int24": "PCM_24", "float32": "FLOAT"}


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """Header of an audio file (rate, channels, frames) without reading samples.

    Raises:
        AudioFileError: missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(path, "file does not exist")
    try:
        return sf.info(str(path))
    except Exception as exc:  # soundfile raises RuntimeError / LibsndfileError
        raise AudioFileError(path, f"cannot be read as audio ({exc})") from exc


def read_audio(
    path: str | Path, start: int = 0, frames: int = -1, allow_empty: bool = False
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32, channel-first.

    Args:
        path: a file soundfile can read (WAV, FLAC, ...).
        start: first frame to read.
        frames: number of frames, -1 for all.
        allow_empty: accept a file with zero frames.

    Returns:
        ``(audio, rate)`` with audio ``(nb_channels, nb_timesteps)`` float32.

    Raises:
        AudioFileError: missing, unreadable, corrupt, empty, or non-finite samples.
    """
    path = Path(path)
    info = audio_info(path)
    if info.frames == 0 and not allow_empty:
        raise AudioFileError(path, "audio has zero length")
    try:
        data, rate = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioFileError(path, f"corrupt audio data ({exc})") from exc
    if data.shape[0] == 0 and not allow_empty:
        raise AudioFileError(path, "audio has zero length")
    if not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise AudioFileError(path, f"contains {bad} NaN or Inf samples")
    return np.ascontiguousarray(data.T), int(rate)


def write_audio(
    path: str | Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16"
) -> Path:
    """Write ``(nb_channels, nb_timesteps)`` audio atomically and byte-reproducibly.

    Args:
        path: destination; its folder must exist or be creatable.
        audio: ``(nb_channels, nb_timesteps)`` float array.
        rate: sample rate in Hz.
        subtype: a soundfile subtype (``PCM_16``, ``PCM_24``, ``FLOAT``) or a key of :data:`SUBTYPES`.

    Returns:
        The written path.
    """
    path = Path(path)
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise ValueError(f"{path}: expected (nb_channels, nb_timesteps), got shape {audio.shape}")
    with audio_writers({"audio": path}, rate, audio.shape[0], subtype) as write:
        write({"audio": audio})
    return path


@contextlib.contextmanager
def audio_writers(
    paths: dict[str, str | Path], rate: int, nb_channels: int, subtype: str = "PCM_16"
) -> Iterator[Callable[[dict[str, np.ndarray]], None]]:
    """Write several audio files block by block, atomically as a group.

    Yields ``write({key: (nb_channels, n)})``, which appends one block to each file (in call order).
    The files appear under their names only when the ``with`` block ends without error; on an error
    every temporary file is removed, so nothing half-written is left. Byte-reproducible (no PEAK
    chunk: libsndfile stamps it with the time).

    Args:
        paths: destination per key; folders are created if needed.
        rate: sample rate in Hz.
        nb_channels: channels of every file.
        subtype: a soundfile subtype (``PCM_16``, ``PCM_24``, ``FLOAT``) or a key of :data:`SUBTYPES`.
    """
    subtype = SUBTYPES.get(subtype, subtype)
    with contextlib.ExitStack() as stack:
        files = {}
        for key, path in paths.items():
            path = Path(path)
            tmp = stack.enter_context(atomic_path(path, suffix=".tmp" + path.suffix))
            f = stack.enter_context(sf.SoundFile(tmp, "w", rate, nb_channels, subtype=subtype,
                                                 format=_format_for(path)))
            sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
            files[key] = (path, f)

        def write(blocks: dict[str, np.ndarray]) -> None:
            for key, block in blocks.items():
                path, f = files[key]
                block = np.asarray(block)
                if block.ndim != 2 or block.shape[0] != nb_channels:
                    raise ValueError(f"{path}: expected ({nb_channels}, nb_timesteps), "
                                     f"got shape {block.shape}")
                f.write(np.ascontiguousarray(block.T))

        yield write


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    return {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}.get(ext, "WAV")


def match_channels(audio: np.ndarray, nb_channels: int) -> np.ndarray:
    """Convert ``(c, t)`` audio to ``(nb_channels, t)``: mono is duplicated, extra channels averaged."""
    c = audio.shape[0]
    if c == nb_channels:
        return audio
    if c == 1:
        return np.repeat(audio, nb_channels, axis=0)
    if nb_channels == 1:
        return audio.mean(axis=0, keepdims=True)
    if c > nb_channels:
        return audio[:nb_channels]
    raise ValueError(f"cannot map {c} channels to {nb_channels}")


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample ``(..., nb_timesteps)`` audio with julius (band-limited sinc).

    The output length is ``round(nb_timesteps * rate_out / rate_in)`` exactly, so a round trip
    can be cropped or padded back to the original length.
    """
    if rate_in == rate_out:
        return audio
    import julius
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    out = julius.resample_frac(tensor, rate_in, rate_out)
    return out.numpy()


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis to exactly ``length``."""
    n = audio.shape[-1]
    if n == length:
        return audio
    if n > length:
        return audio[..., :length]
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, length - n)]
    return np.pad(audio, pad)
