"""Local validation, the work behind ``python test.py``: run, score, compare, report.

For each dataset (the first is the in-distribution reference): run the predictor through the grader
emulation (:mod:`submission.runner`), score the written stems as the grader does (and with museval
if asked), score the baselines (oracle bounds and mixture / 4) in memory on the same songs, print a
song x instrument table and a comparison, write ``results.json`` and ``results.png`` in the results
folder. With several datasets, the per-target gap between the first and each other one is printed
and stored under ``"ood"`` in the first dataset's ``results.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from submission import report, scoring
from submission.datasets import Dataset, prepare
from submission.registry import create
from submission.runner import Settings, list_songs, run_songs

#: the baselines shown beside every predictor: upper bounds and the starter kit's baseline
BASELINES = ("oracle-irm", "oracle-wiener", "scaled")
#: baseline scores per song, in the results folder, reused while the test files do not change
BASELINE_CACHE = "baselines.json"


@dataclass
class DatasetResult:
    dataset: Dataset
    test_dir: Path
    results_dir: Path
    results: dict = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def results_dir_for(results_dir: Path, index: int, dataset: Dataset) -> Path:
    """The first dataset writes to ``results_dir`` (the grader's layout); others beside it."""
    return results_dir if index == 0 else results_dir.parent / f"{results_dir.name}-{dataset.label}"


def evaluate_dataset(predictor, dataset: Dataset, settings: Settings, cache_root: Path, jobs: int = 1,
                     force: bool = False, museval: bool = False, baselines=BASELINES,
                     progress: bool = True) -> DatasetResult:
    """Run and score one dataset; print its tables; write ``results.json`` and ``results.png``."""
    test_dir = prepare(dataset, cache_root, progress)
    settings = Settings(test_dir, settings.results_dir, settings.setup_timeout, settings.song_timeout,
                        settings.partial)
    out = DatasetResult(dataset, test_dir, settings.results_dir)
    songs = list_songs(test_dir, settings.partial)
    start = time.perf_counter()
    run = run_songs(predictor, settings, songs, jobs=jobs, force=force, progress=progress)
    elapsed = time.perf_counter() - start
    out.failures = {s.name: s.error for s in run.failed}
    summary, bss, errors = scoring.score_folders(test_dir, settings.results_dir, run.succeeded, museval,
                                                 progress)
    out.failures.update(errors)
    scored = list(summary["songs"])

    cache = settings.results_dir / BASELINE_CACHE
    bases = {name: baseline_scores(name, test_dir, scored, cache, progress)
             for name in baselines if name != predictor.name and scored}
    rows = {predictor.name: summary, **{_baseline_label(n): b for n, b in bases.items()}}

    print()
    print(report.song_table(summary, title=f"[{dataset.label}] {predictor.name}: grader SDR (dB), "
                                            f"{len(scored)} song(s) from {test_dir}"))
    print()
    print(report.comparison_table(rows, title=f"[{dataset.label}] beside the baselines (same songs)"))
    if bss is not None:
        print()
        print(report.song_table(bss, summary_row="median",
                                title=f"[{dataset.label}] museval v4 SDR (median over frames, then songs)"))
    out.results = dict(summary)
    out.results.update({
        "predictor": predictor.name,
        "options": {k: repr(v) for k, v in getattr(predictor, "options", {}).items()},
        "dataset": {"label": dataset.label, "path": str(dataset.path), "songs_dir": str(test_dir)},
        "failed": out.failures,
        "skipped": [s.name for s in run.songs if s.status == "skipped"],
        "seconds": {"setup": run.setup_seconds, "run": elapsed,
                    "per_song": {s.name: s.seconds for s in run.songs if s.status == "ok"}},
        "baselines": {n: {"instruments": b["instruments"], "mean": b["mean"]} for n, b in bases.items()},
    })
    if bss is not None:
        out.results["museval"] = bss
    scoring.write_json(settings.results_dir / "results.json", out.results)
    report.plot(settings.results_dir / "results.png", rows,
                title=f"{predictor.name} on {dataset.label} ({len(scored)} songs)")
    return out


def _song_signature(folder: Path) -> list:
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(folder.glob("*.wav"))]


def baseline_scores(name: str, test_dir: Path, songs: list[str], cache_file: Path,
                    progress: bool = True) -> dict:
    """A baseline's summary on ``songs``, reusing scores cached in ``cache_file`` for unchanged songs
    (the oracles cost seconds per song; they only depend on the test files)."""
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    entries = cache.setdefault(name, {})
    signatures = {song: _song_signature(test_dir / song) for song in songs}
    todo = [s for s in songs if entries.get(s, {}).get("signature") != signatures[s]]
    if todo:
        fresh, _ = scoring.score_in_memory(create(name), test_dir, todo, progress)
        for song, scores in fresh["songs"].items():
            entries[song] = {"signature": signatures[song], "scores": scores}
        scoring.write_json(cache_file, cache)
    return scoring.summarize({s: entries[s]["scores"] for s in songs if s in entries})


def _baseline_label(name: str) -> str:
    return "scaled (mixture/4)" if name == "scaled" else name


def validate(predictor_name: str, options: dict, datasets: list[Dataset], settings: Settings,
             cache_root: Path, jobs: int = 1, force: bool = False, museval: bool = False,
             baselines=BASELINES, progress: bool = True) -> list[DatasetResult]:
    """Evaluate ``predictor_name`` on every dataset; the first one is the in-distribution reference."""
    predictor = create(predictor_name, **options)
    outcomes = []
    for index, dataset in enumerate(datasets):
        ds_settings = Settings(dataset.path, results_dir_for(Path(settings.results_dir), index, dataset),
                               settings.setup_timeout, settings.song_timeout,
                               settings.partial if index == 0 else None)
        outcomes.append(evaluate_dataset(predictor, dataset, ds_settings, cache_root, jobs, force, museval,
                                         baselines, progress))
    if len(outcomes) > 1:
        _report_gaps(outcomes)
    for outcome in outcomes:
        for error in outcome.failures.values():
            print(f"FAILED [{outcome.dataset.label}] {error}")
    return outcomes


def _report_gaps(outcomes: list[DatasetResult]) -> None:
    first = outcomes[0]
    scores = {o.dataset.label: o.results for o in outcomes if o.results["songs"]}
    if first.dataset.label not in scores:
        return
    gaps = {label: scoring.gap(first.results, s) for label, s in scores.items()
            if label != first.dataset.label}
    print()
    print(report.gap_table(scores, gaps, first.dataset.label))
    for outcome in outcomes[1:]:
        if outcome.dataset.note:
            print(f"  {outcome.dataset.note}")
    by_label = {o.dataset.label: o for o in outcomes}
    first.results["ood"] = {
        label: {"instruments": scores[label]["instruments"], "mean": scores[label]["mean"], "gap": g,
                "baselines": scores[label]["baselines"], "note": by_label[label].dataset.note,
                "results_dir": str(by_label[label].results_dir)}
        for label, g in gaps.items()}
    scoring.write_json(first.results_dir / "results.json", first.results)
    report.plot(first.results_dir / "results.png",
                {first.results["predictor"]: first.results,
                 **{_baseline_label(n): b for n, b in first.results["baselines"].items()}},
                datasets=scores, title=f"{first.results['predictor']}: in- vs out-of-distribution")
