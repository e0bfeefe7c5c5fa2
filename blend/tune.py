"""Tuning runs: fit λ on validation songs, search the Wiener settings with Optuna, write the config.

    python -m blend.tune --data-dir DIR [--config blend/configs/default.yaml | --member NAME=CKPT ...]
                         [--split valid] [--seconds S] [--bands 500,4000] [--grid-step 0.1]
                         [--n-trials 16] [--storage sqlite:///...|postgresql://...] [--study-name NAME]
                         [-o OUT] [--cache-dir DIR] [--pair A,B] [--write-config PATH]

Steps: (1) every member separates every validation song once; outputs are cached on disk keyed by
checkpoint sha256 and song (:mod:`blend.cache`). (2) λ per target in closed form (NNLS with sum to
one, :func:`blend.fit.fit_weights`), per band too with ``--bands``, and Uhlich et al.'s grid search,
each timed and scored. (3) The best λ is fixed and Optuna searches the Wiener settings (iterations
0–3, softmask, residual) over a grid (kept: the cheapest setting within ``--wiener-tolerance`` dB of
the best); trials live in an Optuna storage (SQLite file by default;
``--storage postgresql://...`` lets workers on several machines share one study: start the same
command on each). (4) ``OUT/ensemble.yaml`` (the tuned config, without the members whose λ is zero
everywhere; ``OUT/ensemble-all-members.yaml`` keeps them), ``OUT/report.md``/``.json`` and
``OUT/heatmap.png`` (:mod:`blend.report`).

The objective everywhere is the MDX 2021 grader's global SDR, averaged over songs (and targets).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from blend import members as members_mod
from blend.cache import MemberCache, song_key
from blend.config import DEFAULT_CONFIG, EnsembleConfig, config_from_dict, load_config, save_config
from blend.fit import fit_weights, grid_search, grid_search_stats, sdr_from_stats, song_stats
from blend.render import Renderer, StftSettings, fold_residual
from blend.weights import BlendWeights, equal_weights, make_weights
from blend.wiener import WienerSettings
from blend.wiener_search import (
    WIENER_SPACE,
    WIENER_TOLERANCE_DB,
    cheapest_of_best,
    point_settings,
    run_grid,
    wiener_space,
)
from core.metrics import global_sdr

#: up to this many members the λ grid search blends and scores audio at every point (Uhlich et al.);
#: beyond, the grid has too many points (8008 per target for 7 members at step 0.1) and is scored
#: from the statistics instead, with the same result
BRUTE_FORCE_MEMBERS = 3


@dataclass
class TuneSong:
    """One validation song: how to load it and the members' (cached) outputs.

    Attributes:
        name: song name.
        load: returns ``(mixture (C, T), references (S, C, T))``.
        estimates: one ``(S, C, T)`` array (memmap) per member, in the config's target order.
    """

    name: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    estimates: list[np.ndarray]


@dataclass
class TuneResult:
    """Everything the report shows. SDR tables are ``{row label: {target: dB}}``."""

    config: EnsembleConfig
    rows: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    trials: list = field(default_factory=list)
    chosen: str = ""
    songs: list = field(default_factory=list)
    study: str = ""
    wiener_trial: dict = field(default_factory=dict)  # {"number", "tolerance"} of the kept setting
    stats: list = field(default_factory=list, repr=False)  # full-band SongStats (heatmap)


def crop(mixture: np.ndarray, stems: np.ndarray, frames: int | None):
    """The central ``frames`` samples of a song (all when None or longer)."""
    if not frames or mixture.shape[-1] <= frames:
        return mixture, stems
    a = (mixture.shape[-1] - frames) // 2
    return mixture[..., a:a + frames], stems[..., a:a + frames]


def prepare_songs(
    tracks: Sequence, config: EnsembleConfig, cache: MemberCache, seconds: float | None = None,
    progress: bool = True,
) -> tuple[list[TuneSong], np.ndarray]:
    """Cache every member's output on every song (members are only loaded if something is missing).

    Returns:
        ``(songs, available)`` with ``available`` ``(nb_members, nb_targets)`` bool.
    """
    frames = int(seconds * config.sample_rate) if seconds else None
    keys = [spec.key() for spec in config.members]
    loaded: dict[int, object] = {}
    available = np.ones((len(config.members), len(config.targets)), bool)
    songs = []
    for track in tqdm(tracks, desc="member outputs", unit="song", disable=not progress):
        if track.rate != config.sample_rate:
            raise ValueError(f"song '{track.name}' is at {track.rate} Hz, the members run at "
                             f"{config.sample_rate} Hz")

        def load(track=track):
            mix, stems = track.load()
            order = [list(track.targets).index(t) for t in config.targets]
            return crop(mix, stems[order], frames)

        mixture, _ = load()
        key = song_key(mixture)
        estimates = []
        for m, spec in enumerate(config.members):
            def compute(m=m, spec=spec, mixture=mixture):
                if m not in loaded:
                    loaded[m] = members_mod.load(spec)
                return members_mod.run(loaded[m], mixture, config.targets, spec.segment, spec.overlap)

            estimates.append(cache.get_or_compute(keys[m], track.name, key, compute))
            if m in loaded:
                available[m] = members_mod.availability(loaded[m], config.targets)
        songs.append(TuneSong(track.name, load, estimates))
    return songs, available


def render_sdr(songs: Sequence[TuneSong], weights: BlendWeights, wiener: WienerSettings | None,
               config: EnsembleConfig) -> dict:
    """Mean grader SDR per target of a blend (+ filter) over the songs: ``{target: dB}``."""
    scores = [[global_sdr(r, e) for r, e in zip(refs, out)]
              for _, refs, out in rendered(songs, weights, wiener, config)]
    return dict(zip(config.targets, np.mean(scores, axis=0).tolist()))


def rendered(songs: Sequence[TuneSong], weights: BlendWeights, wiener: WienerSettings | None,
             config: EnsembleConfig):
    """Per song ``(mixture (C, T), references (S, C, T), blend + filter (S, C, T))``, one at a time."""
    renderer = Renderer(weights, wiener, config.stft, config.sample_rate)
    for song in songs:
        mixture, refs = song.load()
        yield mixture, refs, fold_residual(renderer.render(song.estimates, mixture), config.targets,
                                           config.residual_to)


def tune_enhancer(songs: Sequence[TuneSong], config: EnsembleConfig, weights_dir: Path,
                  min_gain: float | None = None) -> tuple[dict, dict]:
    """The ``enhancer:`` section for the targets whose validation SDR the enhancer raises by more than
    ``min_gain`` dB (``weights_dir``: ``base.pth`` and optional ``<target>.pth`` adapters), and the
    score table (:func:`enhancer.evaluate.tune_section` on the tuned blend + filter's estimates)."""
    from enhancer.evaluate import MIN_GAIN_DB, tune_section

    candidates = {t: {"base": str((weights_dir / "base.pth").resolve())} for t in config.targets}
    for t in config.targets:
        if (weights_dir / f"{t}.pth").is_file():
            candidates[t]["adapter"] = str((weights_dir / f"{t}.pth").resolve())
    mixtures, references, estimates = [], {t: [] for t in config.targets}, {t: [] for t in config.targets}
    for mixture, refs, out in rendered(songs, config.weights, config.wiener, config):
        mixtures.append(mixture)
        for s, t in enumerate(config.targets):
            references[t].append(refs[s])
            estimates[t].append(out[s])
    return tune_section(candidates, estimates, references, mixtures,
                        min_gain=MIN_GAIN_DB if min_gain is None else min_gain)


def _from_stats(stats, table, targets) -> dict:
    return dict(zip(targets, np.mean([sdr_from_stats(st, table) for st in stats], axis=0).tolist()))


def fit_all(songs: Sequence[TuneSong], config: EnsembleConfig, available: np.ndarray,
            edges_hz: Sequence[float] = (), grid_step: float = 0.1, progress: bool = True) -> TuneResult:
    """Members alone, equal weights, closed-form λ, grid-search λ (and per-band λ); picks the best."""
    names, targets = config.member_names, config.targets
    result = TuneResult(config, songs=[s.name for s in songs])
    start = time.perf_counter()
    loaded = [s.load() for s in songs]
    stats = [song_stats(s.estimates, refs) for s, (_, refs) in zip(songs, loaded)]
    stats_s = time.perf_counter() - start
    result.stats = stats
    for m, name in enumerate(names):
        table = np.zeros((len(names), len(targets)))
        table[m] = 1.0
        result.rows[f"{name} alone"] = _from_stats(stats, table, targets)
    candidates = {"equal weights": equal_weights(names, targets, available)}
    start = time.perf_counter()
    candidates["closed-form λ"] = fit_weights(stats, names, targets, available=available)
    result.timings["closed-form λ"] = {"seconds": stats_s + time.perf_counter() - start,
                                       "statistics_seconds": stats_s}
    start = time.perf_counter()
    if len(names) <= BRUTE_FORCE_MEMBERS:  # Uhlich et al.: blend and score every grid point
        pairs = [(s.estimates, refs) for s, (_, refs) in zip(songs, loaded)]
        candidates["grid-search λ"], _ = grid_search(pairs, names, targets, grid_step, available)
        how = "brute force"
    else:  # the same grid and SDR from the statistics (exact; tests check both agree)
        candidates["grid-search λ"], _ = grid_search_stats(stats, names, targets, grid_step, available)
        how = "from the statistics"
    result.timings["grid-search λ"] = {"seconds": time.perf_counter() - start, "step": grid_step,
                                       "how": how}
    for label, w in candidates.items():
        result.rows[label] = _from_stats(stats, w.table(), targets)
    if edges_hz:
        start = time.perf_counter()
        band_stats = [song_stats(s.estimates, refs, edges_hz, config.stft, config.sample_rate)
                      for s, (_, refs) in zip(songs, loaded)]
        label = f"per-band λ ({', '.join(f'{e:g}' for e in edges_hz)} Hz)"
        candidates[label] = fit_weights(band_stats, names, targets, edges_hz, available)
        result.timings[label] = {"seconds": time.perf_counter() - start}
        result.rows[label] = render_sdr(songs, candidates[label], None, config)
    del loaded
    tuned = [k for k in candidates if k != "equal weights"]
    result.chosen = max(tuned, key=lambda k: np.mean(list(result.rows[k].values())))
    for label in ("closed-form λ", "grid-search λ"):
        result.timings[label]["mean_sdr"] = float(np.mean(list(result.rows[label].values())))
    result.weights = {k: w.to_dict() for k, w in candidates.items()}
    result.config = config.with_weights(candidates[result.chosen])
    return result


def study_name(config: EnsembleConfig, songs: Sequence[TuneSong], seconds, edges_hz,
               space: dict = WIENER_SPACE) -> str:
    """A name every worker of the same tuning job derives identically (members, songs, λ and the
    Wiener grid: a narrower ``--wiener-space`` is another study, as Optuna fixes a study's choices)."""
    text = json.dumps([[s.key() for s in config.members], [s.name for s in songs], seconds, list(edges_hz),
                       config.weights.to_dict(), {k: list(v) for k, v in space.items()}], sort_keys=True)
    return "blend-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def search_wiener(result: TuneResult, songs: Sequence[TuneSong], storage: str, name: str,
                  n_trials: int | None, base: WienerSettings, space: dict = WIENER_SPACE,
                  tolerance: float = WIENER_TOLERANCE_DB) -> TuneResult:
    """Optuna grid search over the Wiener settings with the chosen λ; resumable and shareable. The
    setting kept is :func:`cheapest_of_best` of the trials (``tolerance`` in dB)."""
    config = result.config

    def score(wiener: WienerSettings, stft: StftSettings) -> dict:
        return render_sdr(songs, config.weights, wiener, replace(config, stft=stft))

    result.trials = run_grid(score, storage, name, n_trials, base, config.stft, space)
    best = cheapest_of_best(result.trials, tolerance)
    wiener, stft = point_settings(best["params"], base, config.stft)
    result.rows["chosen λ + Wiener"] = best["sdr"]
    result.wiener_trial = {"number": best["number"], "tolerance": tolerance}
    result.config = replace(config.with_wiener(wiener), stft=stft)
    result.study = name
    return result


def members_config(args) -> EnsembleConfig:
    """The members (and base settings) to tune: ``--config`` and/or ``--member NAME=CKPT``."""
    if args.member:
        entries = []
        for item in args.member:
            name, sep, path = item.partition("=")
            if not sep:
                raise SystemExit(f"--member expects NAME=CHECKPOINT, got '{item}'")
            entries.append({"name": name, "checkpoint": str(Path(path).resolve())})
        config = config_from_dict({"members": entries}, Path.cwd(), "--member")
    else:
        config = load_config(args.config)
    if args.exclude:
        config = config.only([n for n in config.member_names if n not in set(args.exclude)])
    return config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m blend.tune", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="dataset root (generated, MUSDB18-HQ, MUSDB18, flat)")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"], help="songs to tune on")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="config giving the members and settings")
    p.add_argument("--member", action="append", metavar="NAME=CKPT", help="member checkpoint (repeat)")
    p.add_argument("--exclude", action="append", metavar="NAME",
                   help="leave this member of the config out (repeat), e.g. a member too slow for the "
                        "real-time budget")
    p.add_argument("-o", "--out", default="runs/blend-tune", help="output folder")
    p.add_argument("--cache-dir", default="cache/blend", help="member output cache")
    p.add_argument("--seconds", type=float, default=None, help="tune on the central S seconds of each song")
    p.add_argument("--max-songs", type=int, default=None, help="use only the first N songs")
    p.add_argument("--bands", default="", help="band edges in Hz for per-band λ, e.g. 500,4000")
    p.add_argument("--grid-step", type=float, default=0.1, help="λ grid spacing of the grid search")
    p.add_argument("--n-trials", type=int, default=None,
                   help="Wiener trials for this worker (default: the grid points not tried yet; 0: only "
                        "report the study)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite:///OUT/optuna.db)")
    p.add_argument("--study-name", default=None, help="Optuna study name (default: derived from the job)")
    p.add_argument("--wiener-win-len", type=int, default=None, help="Wiener window in frames (umx meaning)")
    p.add_argument("--pair", default=None, help="two members A,B for the λ heatmap (default: the first two)")
    p.add_argument("--write-config", default=None, metavar="PATH",
                   help="also write the tuned config here (e.g. blend/configs/default.yaml)")
    p.add_argument("--wiener-space", action="append", metavar="KEY=V1,V2",
                   help="narrow the Wiener grid, e.g. iterations=0,1 (repeat; keys: iterations, softmask, "
                        "residual, n_fft: the filter's STFT size, hop n_fft/4)")
    p.add_argument("--wiener-tolerance", type=float, default=WIENER_TOLERANCE_DB, metavar="DB",
                   help="Wiener trials this close to the best count as equal; the cheapest is kept "
                        f"(fewest iterations; default {WIENER_TOLERANCE_DB})")
    p.add_argument("--cache-only", action="store_true",
                   help="only run the members on the songs and fill the cache (e.g. while other members "
                        "still train, or before starting several workers)")
    p.add_argument("--enhancer", default=None, metavar="DIR",
                   help="after λ and Wiener, enable the enhancer of DIR (base.pth, <target>.pth adapters, "
                        "e.g. enhancer/weights) for the targets whose validation SDR it raises")
    p.add_argument("--enhancer-min-gain", type=float, default=None, metavar="DB",
                   help="smallest mean validation gain that enables the enhancer for a target "
                        "(default enhancer.evaluate.MIN_GAIN_DB, 0.3)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    from blend import report
    from tracks import open_tracks

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = members_config(args)
    edges = [float(e) for e in args.bands.split(",") if e.strip()]
    if edges:  # validate the edges early, with the message make_weights gives
        make_weights(np.ones((len(edges) + 1, len(base.members), len(base.targets))), base.member_names,
                     base.targets, edges, sample_rate=base.sample_rate)
    tracks = open_tracks(args.data_dir, args.split, targets=base.targets)[: args.max_songs]
    if not tracks:
        raise SystemExit(f"{args.data_dir}: no songs in split '{args.split}'")
    songs, available = prepare_songs(tracks, base, MemberCache(args.cache_dir), args.seconds, not args.quiet)
    if args.cache_only:
        print(f"cached {len(base.members)} members x {len(songs)} songs in {args.cache_dir}")
        return 0
    result = fit_all(songs, base, available, edges, args.grid_step, not args.quiet)
    wiener = base.wiener or WienerSettings()
    if args.wiener_win_len is not None:
        wiener = replace(wiener, win_len=args.wiener_win_len)
    result.rows["chosen λ"] = result.rows[result.chosen]
    storage = args.storage or f"sqlite:///{(out / 'optuna.db').resolve()}"
    space = wiener_space(args.wiener_space)
    name = args.study_name or study_name(result.config, songs, args.seconds, edges, space)
    search_wiener(result, songs, storage, name, args.n_trials, wiener, space, args.wiener_tolerance)
    if args.enhancer:
        section, table = tune_enhancer(songs, result.config, Path(args.enhancer), args.enhancer_min_gain)
        result.config = replace(result.config, enhancer=section)
        from enhancer.evaluate import markdown
        print(f"enhancer on validation (enabled: {sorted(section) or 'none'}):\n{markdown(table)}")
    paths = report.write(result, songs, out, pair=args.pair.split(",") if args.pair else None)
    header = (f"Tuned by: python -m blend.tune --data-dir {args.data_dir} --split {args.split} "
              f"({len(songs)} songs); λ: {result.chosen}; study {name}")
    save_config(result.config, out / "ensemble-all-members.yaml", header)  # λ = 0 rows kept
    result.config = result.config.without_unused()  # zero-λ members would run for nothing
    save_config(result.config, out / "ensemble.yaml", header)
    if args.write_config:
        save_config(result.config, args.write_config, header)
    print(report.summary(result))
    print("wrote " + ", ".join(str(p) for p in [out / "ensemble.yaml", *paths]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
