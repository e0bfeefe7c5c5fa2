"""Errors the kit raises on purpose: each names the file (or song) and the problem."""

from __future__ import annotations

from pathlib import Path


class StemBlendError(Exception):
    """Base class of every error the kit raises knowingly."""


class AudioFileError(StemBlendError, ValueError):
    """An audio file is missing, unreadable, empty, non-finite or otherwise unusable.

    The message always reads ``"<path>: <problem>"`` so that a user can find the file.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class SongError(StemBlendError, ValueError):
    """A song folder is unusable as a whole (missing stem, mismatched lengths or rates, bad name)."""

    def __init__(self, song: str, problem: str):
        self.song = song
        self.problem = problem
        super().__init__(f"song '{song}': {problem}")


class CheckpointError(StemBlendError, ValueError):
    """A checkpoint is missing, corrupt, does not match its manifest, or describes other targets."""
