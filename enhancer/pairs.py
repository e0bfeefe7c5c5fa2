"""Before/after pairs for the enhancer: (separated stem, mixture) -> true stem.

Two sources of "before":

* **Real separator outputs** (what the shipped enhancer must be trained on): a folder
  ``ESTIMATES/<song>/<target>.wav`` written by any predictor (the ensemble with its enhancer off,
  or one member), e.g. with ``python -m enhancer.pairs --data-dir DATA --split train --predictor
  ensemble -o ESTIMATES``. :class:`PairDataset` reads the same excerpt from the estimate, the
  mixture and the reference.
* **Simulated separation artifacts** (until trained members exist, and for tests): the true stem
  re-separated from the mixture with a corrupted oracle ratio mask, the way mask-based separators
  fail: ``bleed`` (the mask leans towards 1: other stems leak in, more so high up), ``musical_noise``
  (random per-bin mask errors and a hard floor: isolated spectral peaks and holes), ``smear`` (the
  mask blurred over time and frequency: pre-echo, dulled transients). The estimate takes the
  mixture's phase, as a masking separator's does. Artifact kinds form a registry
  (:data:`ARTIFACTS`), so adapters per artifact kind can be trained with ``--artifacts``.

Shapes: ``(nb_channels, nb_timesteps)`` waveforms, ``(nb_sources, nb_channels, nb_timesteps)`` stems.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from core.audio import audio_info, read_audio, write_audio
from core.constants import TARGETS
from core.errors import SongError
from enhancer.spectral import istft, stft

#: artifact name -> ``fn(mask (C, F, N), generator) -> mask``
ARTIFACTS: dict[str, Callable[[Tensor, torch.Generator], Tensor]] = {}


def artifact(name: str):
    """Register a mask corruption under ``name``."""

    def decorator(fn):
        ARTIFACTS[name] = fn
        return fn

    return decorator


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=generator))


@artifact("smear")
def smear(mask: Tensor, generator: torch.Generator) -> Tensor:
    """Blur the mask over 3-9 frames and 1-5 bins (dulled transients, pre-echo)."""
    k_time = int(torch.randint(1, 5, (), generator=generator)) * 2 + 1
    k_freq = int(torch.randint(0, 3, (), generator=generator)) * 2 + 1
    blurred = F.avg_pool2d(mask[None], (k_freq, k_time), stride=1, padding=(k_freq // 2, k_time // 2),
                           count_include_pad=False)[0]
    return blurred


@artifact("bleed")
def bleed(mask: Tensor, generator: torch.Generator) -> Tensor:
    """Lean the mask towards 1, more at high frequencies: the other stems leak in."""
    amount = _uniform(generator, 0.05, 0.35)
    tilt = _uniform(generator, 0.0, 1.5)
    freqs = torch.linspace(0.0, 1.0, mask.shape[-2])[:, None]
    leak = (amount * (0.5 + tilt * freqs)).clamp(max=0.9)
    return mask + leak * (1.0 - mask)


@artifact("musical_noise")
def musical_noise(mask: Tensor, generator: torch.Generator) -> Tensor:
    """Random per-bin mask errors and a hard floor: isolated peaks and holes (musical noise)."""
    sigma = _uniform(generator, 0.3, 1.0)
    floor = _uniform(generator, 0.05, 0.35)
    noisy = mask * torch.exp(sigma * torch.randn(mask.shape, generator=generator))
    return torch.where(noisy > floor, noisy, torch.zeros_like(noisy)).clamp(0.0, 1.0)


def ratio_mask(stems: Tensor, target: int, n_fft: int, n_hop: int) -> tuple[Tensor, Tensor]:
    """Oracle ratio mask of one stem and the mixture STFT.

    Args:
        stems: ``(S, C, T)``.

    Returns:
        ``(mask (C, F, N) in [0, 1], mixture_spec complex (C, F, N))``.
    """
    specs = stft(stems, n_fft, n_hop)
    power = specs.abs().pow(2)
    mask = power[target] / (power.sum(0) + 1e-10)
    return mask, specs.sum(0)


def degrade(
    stems: Tensor,
    target: int,
    generator: torch.Generator,
    kinds: Sequence[str] = tuple(ARTIFACTS),
    clean_prob: float = 0.1,
    n_fft: int = 4096,
    n_hop: int = 1024,
) -> tuple[Tensor, list[str]]:
    """A simulated separator output for ``stems[target]``.

    Args:
        stems: ``(S, C, T)`` true stems (their sum is the mixture).
        target: index of the stem to "separate".
        generator: the randomness.
        kinds: artifact kinds to draw from; each is applied with probability 0.6 (at least one).
        clean_prob: probability of returning the true stem untouched (teaches pass-through).
        n_fft, n_hop: STFT of the simulated separator (not the enhancer's grid).

    Returns:
        ``(estimate (C, T), applied kinds)``.
    """
    unknown = [k for k in kinds if k not in ARTIFACTS]
    if unknown:
        raise ValueError(f"unknown artifact kinds {unknown} (known: {sorted(ARTIFACTS)})")
    if not kinds or float(torch.rand((), generator=generator)) < clean_prob:
        return stems[target].clone(), []
    chosen = [k for k in kinds if float(torch.rand((), generator=generator)) < 0.6]
    if not chosen:
        chosen = [kinds[int(torch.randint(len(kinds), (), generator=generator))]]
    length = stems.shape[-1]
    n_fft = min(n_fft, 1 << (max(length // 2, 2).bit_length() - 1))
    n_hop = min(n_hop, n_fft // 4)
    mask, mix_spec = ratio_mask(stems, target, n_fft, n_hop)
    for kind in ARTIFACTS:  # registry order: smear, bleed, musical_noise
        if kind in chosen:
            mask = ARTIFACTS[kind](mask, generator)
    return istft(mask * mix_spec, length, n_fft, n_hop), chosen


def estimate_path(estimates_dir: str | Path, song: str, target: str) -> Path:
    """Where a predictor's estimate of ``target`` for ``song`` lives (``DIR/<song>/<target>.wav``)."""
    return Path(estimates_dir) / song / f"{target}.wav"


def check_estimates(estimates_dir: str | Path, tracks, targets: Sequence[str]) -> None:
    """Raise :class:`SongError` for the first song whose estimates are missing or the wrong length."""
    for track in tracks:
        for target in targets:
            path = estimate_path(estimates_dir, track.name, target)
            if not path.is_file():
                raise SongError(track.name, f"no estimate {path} (write them with python -m enhancer.pairs)")
            info = audio_info(path)
            if info.frames != track.length or info.samplerate != track.rate:
                raise SongError(track.name, f"estimate {path} has {info.frames} frames at {info.samplerate} "
                                f"Hz, the song {track.length} at {track.rate} Hz")


class PairDataset(torch.utils.data.Dataset):
    """Random excerpts as enhancer training pairs; item ``i`` depends only on ``(seed, i)``.

    Args:
        tracks: ``tracks.Track`` objects (``name``, ``length``, ``load(start, frames)``).
        seconds: excerpt length.
        size: number of items (``len``); indices past it are valid too (resumed runs).
        seed: base seed.
        targets: names of the stems in ``track.load`` order.
        train_targets: the targets pairs are drawn for (default all of ``targets``).
        estimates_dir: folder of real separator outputs; ``None``: simulated artifacts.
        artifacts: simulated artifact kinds (ignored with ``estimates_dir``).
        clean_prob: share of simulated pairs whose "before" is the clean stem.

    Items: ``{"estimate": (C, T), "mixture": (C, T), "reference": (C, T), "target": int}`` tensors.
    """

    def __init__(self, tracks, seconds: float, size: int, seed: int = 0, targets: Sequence[str] = TARGETS,
                 train_targets: Sequence[str] | None = None, estimates_dir: str | Path | None = None,
                 artifacts: Sequence[str] = tuple(ARTIFACTS), clean_prob: float = 0.1):
        if not tracks:
            raise ValueError("no tracks to draw enhancer pairs from")
        self.tracks, self.seconds, self.size, self.seed = list(tracks), float(seconds), int(size), int(seed)
        self.targets = list(targets)
        self.train_targets = list(train_targets or targets)
        bad = [t for t in self.train_targets if t not in self.targets]
        if bad:
            raise ValueError(f"targets {bad} are not among the loaded stems {self.targets}")
        self.estimates_dir = Path(estimates_dir) if estimates_dir else None
        self.artifacts, self.clean_prob = tuple(artifacts), float(clean_prob)
        if self.estimates_dir is not None:
            check_estimates(self.estimates_dir, self.tracks, self.train_targets)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        track = self.tracks[int(torch.randint(len(self.tracks), (), generator=generator))]
        target = self.train_targets[int(torch.randint(len(self.train_targets), (), generator=generator))]
        frames = min(track.length, int(self.seconds * track.rate))
        best = None
        for _ in range(4):  # prefer excerpts where the target is audible
            start = int(torch.randint(track.length - frames + 1, (), generator=generator))
            mixture, stems = track.load(start=start, frames=frames)
            loudness = float(np.sqrt(np.mean(stems[self.targets.index(target)] ** 2)))
            if best is None or loudness > best[0]:
                best = (loudness, start, mixture, stems)
            if loudness > 1e-3:
                break
        _, start, mixture, stems = best
        stems_t = torch.from_numpy(np.ascontiguousarray(stems, dtype=np.float32))
        index_t = self.targets.index(target)
        if self.estimates_dir is not None:
            estimate, _ = read_audio(estimate_path(self.estimates_dir, track.name, target), start, frames)
            estimate = torch.from_numpy(estimate)
        else:
            estimate, _ = degrade(stems_t, index_t, generator, self.artifacts, self.clean_prob)
        return {
            "estimate": estimate.float(),
            "mixture": torch.from_numpy(np.ascontiguousarray(mixture, dtype=np.float32)),
            "reference": stems_t[index_t],
            "target": torch.tensor(self.train_targets.index(target)),
        }


def write_estimates(data_dir: str | Path, split: str, predictor: str, out_dir: str | Path,
                    options: dict | None = None, songs: Sequence[str] | None = None,
                    first: int = 0) -> list[Path]:
    """Run a registered predictor on every song of a split and write ``OUT/<song>/<target>.wav``.

    ``songs`` keeps only the named songs, ``first`` only the first N of the split (0: all; the
    songs ``python -m enhancer.train --train-songs N`` draws from).

    Songs whose four estimates already exist are skipped (the command can be resumed).

    Returns:
        The song folders written or found complete.
    """
    import tracks as tracks_mod
    from submission import registry

    options = {"no_enhancer": True, **(options or {})}
    found = tracks_mod.open_tracks(data_dir, split=split)
    if songs:
        found = [t for t in found if t.name in set(songs)]
    if first:
        found = found[:first]
    model = registry.create(predictor, **options)
    done = []
    for track in tqdm(found, desc=f"{predictor} estimates", unit="song"):
        folder = Path(out_dir) / track.name
        if all((folder / f"{t}.wav").is_file() for t in TARGETS):
            done.append(folder)
            continue
        mixture, _ = track.load()
        estimates = model.separate_audio(np.asarray(mixture, dtype=np.float32), track.rate)
        for target in TARGETS:
            write_audio(folder / f"{target}.wav", estimates[target], track.rate, subtype="FLOAT")
        done.append(folder)
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m enhancer.pairs",
        description="Write a predictor's estimates of a split's songs: the 'before' of enhancer pairs.")
    parser.add_argument("--data-dir", required=True, help="generated or MUSDB18(-HQ) folder")
    parser.add_argument("--split", default="train", choices=["train", "valid", "test"])
    parser.add_argument("--predictor", default="ensemble", help="a registered predictor (default ensemble)")
    parser.add_argument("-o", "--out", required=True, help="output folder OUT/<song>/<target>.wav")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="predictor option (repeatable); no_enhancer=true is always set")
    parser.add_argument("--songs", nargs="*", help="only these songs")
    parser.add_argument("--first", type=int, default=0, metavar="N",
                        help="only the first N songs of the split (0: all)")
    args = parser.parse_args(argv)
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--option {item!r}: expected KEY=VALUE")
        options[key] = {"true": True, "false": False}.get(value.lower(), value)
    folders = write_estimates(args.data_dir, args.split, args.predictor, args.out, options, args.songs,
                              args.first)
    print(f"{len(folders)} songs of '{args.split}' have {args.predictor} estimates in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
