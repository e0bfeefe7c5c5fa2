"""Multitrack songs for training and evaluation: a generator and one loading API.

* :func:`tracks.synth.render_dataset` / ``python -m tracks.synth``: render songs (MUSDB18-HQ layout).
* :func:`open_tracks`: load our folders, MUSDB18-HQ wav folders, MUSDB18 ``.stem.mp4`` folders.
* :class:`ChunkDataset`, :class:`PooledDataset`: torch datasets of random chunks.
"""

from tracks.db import Track, open_tracks

__all__ = ["Track", "open_tracks", "ChunkDataset", "PooledDataset", "render_dataset"]


def __getattr__(name):  # torch and the renderer load only when asked for
    if name in ("ChunkDataset", "PooledDataset"):
        from tracks import dataset

        return getattr(dataset, name)
    if name == "render_dataset":
        from tracks.synth import render_dataset

        return render_dataset
    raise AttributeError(f"module 'tracks' has no attribute '{name}'")
