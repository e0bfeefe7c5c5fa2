#!/usr/bin/env python
"""Local validation: run a predictor on test songs as the grader would, score it, report.

    python test.py [-n NAME] [--data-dir [LABEL=]DIR ...] [--ood] [--results-dir DIR] [--museval]
                   [-j N] [--force] [--no-wiener] [--no-enhancer] [--no-baselines] [--list-predictors]

With no test songs present it first renders the demo test set (4 songs x 20 s) into data/test.
The grader's environment variables (TEST_DATASET_PATH, RESULTS_DATASET_PATH,
INFERENCE_SETUP_TIMEOUT_SECONDS, INFERENCE_PER_MUSIC_TIMEOUT_SECONDS, PARTIAL_RUN_MUSIC_NAMES) are
honoured. Exits 1 if any song failed. See docs/submission.md.
"""

import argparse
import sys
from pathlib import Path

from predict import DEFAULT_PREDICTOR
from submission.datasets import Dataset, ensure_demo_test_set, ood_datasets, parse_data_dir
from submission.registry import PLUGIN_ERRORS, names
from submission.runner import Settings
from submission.validate import BASELINES, validate

ROOT = Path(__file__).resolve().parent


def parse_option(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    import yaml

    return key.replace("-", "_"), yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Local validation of a StemBlend predictor.")
    parser.add_argument("-n", "--predictor", default=DEFAULT_PREDICTOR, metavar="NAME",
                        help=f"registered predictor (default: {DEFAULT_PREDICTOR})")
    parser.add_argument("--data-dir", action="append", metavar="[LABEL=]DIR", default=None,
                        help="folder of song folders or stem files; repeat to score several datasets "
                             "(the first is the in-distribution reference; default: data/test)")
    parser.add_argument("--ood", action="store_true",
                        help="also score the out-of-distribution sets that exist: data/ood/test and "
                             "../shared/real, and report the per-target gap")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where stems, results.json and results.png go (default: data/results)")
    parser.add_argument("--museval", action="store_true",
                        help="also compute museval BSSEval v4 SDR (median over frames, then songs)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="songs in parallel (default 1)")
    parser.add_argument("--force", action="store_true",
                        help="recompute songs whose outputs are already complete")
    parser.add_argument("--no-wiener", action="store_true",
                        help="predictor option wiener=False (switch the Wiener post-filter off)")
    parser.add_argument("--no-enhancer", action="store_true",
                        help="predictor option enhancer=False (switch the enhancer off)")
    parser.add_argument("--option", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                        help="any other predictor option, e.g. --option niter=2")
    parser.add_argument("--no-baselines", action="store_true",
                        help=f"do not score the baselines ({', '.join(BASELINES)}) beside the predictor")
    parser.add_argument("--list-predictors", action="store_true",
                        help="print the registered predictor names, one per line, and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_predictors:
        print("\n".join(names()))
        for module, error in PLUGIN_ERRORS.items():
            print(f"warning: plug-in {module} failed to import: {error}", file=sys.stderr)
        return 0
    settings = Settings.from_env(cwd=ROOT)
    if args.results_dir is not None:
        settings.results_dir = args.results_dir
    if args.data_dir:
        datasets = [parse_data_dir(spec) for spec in args.data_dir]
    else:
        if settings.test_dir == ROOT / "data" / "test":
            ensure_demo_test_set(ROOT / "data", progress=not args.quiet)
        datasets = [Dataset("test", settings.test_dir)]
    if args.ood:
        known = {d.path.resolve() for d in datasets}
        extra = [d for d in ood_datasets(ROOT) if d.path.resolve() not in known]
        if not extra:
            print("[test.py] --ood: no out-of-distribution set found (data/ood/test, ../shared/real)")
        datasets += extra
    options = dict(args.option)
    if args.no_wiener:
        options["wiener"] = False
    if args.no_enhancer:
        options["enhancer"] = False
    outcomes = validate(args.predictor, options, datasets, settings, cache_root=ROOT / "data" / "datasets",
                        jobs=args.jobs, force=args.force, museval=args.museval,
                        baselines=() if args.no_baselines else BASELINES, progress=not args.quiet)
    failed = sum(len(o.failures) for o in outcomes)
    print(f"\nresults: {outcomes[0].results_dir / 'results.json'}"
          + (f"  ({failed} song(s) failed)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
