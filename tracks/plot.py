"""Spectrograms of one song's stems as a PNG.

    python -m tracks.plot SONG_DIR -o docs/images/stems.png [--seconds 12] [--start 0]

``SONG_DIR`` is a song folder (``mixture.wav`` + stems). One panel per file: the mixture, then
each stem, log-frequency magnitude in dB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from core.audio import read_audio
from core.constants import TARGETS


def plot_song(song_dir, out_path, seconds: float = 12.0, start: float = 0.0, targets=TARGETS) -> Path:
    """Draw the mixture and each stem of ``song_dir`` into ``out_path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import stft

    song_dir, out_path = Path(song_dir), Path(out_path)
    names = ["mixture", *targets]
    fig, axes = plt.subplots(
        len(names), 1, figsize=(10, 1.9 * len(names)), sharex=True, constrained_layout=True
    )
    image = None
    for ax, name in zip(axes, names):
        audio, rate = read_audio(song_dir / f"{name}.wav")
        mono = audio.mean(0)[int(start * rate) : int((start + seconds) * rate)]
        freqs, times, spec = stft(mono, fs=rate, nperseg=2048, noverlap=1536)
        db = 20 * np.log10(np.abs(spec) + 1e-7)
        image = ax.pcolormesh(
            times + start,
            np.maximum(freqs, 20),
            db,
            vmin=-110,
            vmax=-30,
            shading="auto",
            cmap="magma",
            rasterized=True,
        )
        ax.set_yscale("log")
        ax.set_ylim(30, rate / 2)
        ax.set_ylabel("Hz")
        ax.set_title(name, loc="left", fontsize=10)
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(image, ax=axes, label="dB", shrink=0.6)
    fig.suptitle(song_dir.name)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tracks.plot", description="Spectrograms of a song's stems.")
    p.add_argument("song_dir", help="song folder with mixture.wav and the stems")
    p.add_argument("-o", "--output", default="stems.png", help="PNG path (default stems.png)")
    p.add_argument("--seconds", type=float, default=12.0, help="seconds to draw (default 12)")
    p.add_argument("--start", type=float, default=0.0, help="first second drawn (default 0)")
    p.add_argument(
        "--targets", nargs="+", default=list(TARGETS), help="stem names (default the four MDX targets)"
    )
    args = p.parse_args(argv)
    try:
        path = plot_song(args.song_dir, args.output, args.seconds, args.start, args.targets)
    except (OSError, ValueError) as exc:
        print(f"tracks.plot: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
