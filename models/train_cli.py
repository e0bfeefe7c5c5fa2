"""Command line of ``train.py``: read a member's config, override it with flags, train.

    python train.py --model umx --data-dir data/corpus [--ood-dir data/ood] [-o runs/umx] [--resume]
        [--config configs/train/umx.yaml] [--epochs N] [--max-minutes M] [--batch-size B] [--lr LR]
        [--seconds S] [--samples-per-epoch N] [--patience P] [--seed K] [--threads T] [-j WORKERS]
        [--no-augment | --augment CONFIG] [--max-train-songs N] [--valid-songs N]
        [--model-arg KEY=VALUE ...]

    torchrun --nproc_per_node 2 train.py --model fnn ...      # DDP on CPU (gloo)

The config (``configs/train/<model>.yaml`` by default) has three sections: ``model`` (constructor
arguments of the member), ``training`` (the keys of :data:`models.training.DEFAULTS`) and
``augmentations`` (as ``augment.load_config`` reads it).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import torch
import yaml

from models.data import load_pipeline
from models.training import DEFAULTS, Trainer, build_member

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "train"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train an ensemble member.")
    p.add_argument("--model", "-n", required=True, help="member name (models.names())")
    p.add_argument(
        "--data-dir", required=True, help="dataset folder with train/valid splits (tracks.open_tracks)"
    )
    p.add_argument("--ood-dir", help="out-of-distribution songs, scored every epoch")
    p.add_argument("--ood-split", default="test", help="split of --ood-dir (default test)")
    p.add_argument("--config", help="YAML config (default configs/train/<model>.yaml)")
    p.add_argument("-o", "--run-dir", help="output folder (default runs/<model>)")
    p.add_argument("--resume", action="store_true", help="continue from <run-dir>/last.pth if it exists")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, help="torch threads per process (default: all cores / processes)")
    p.add_argument("-j", "--workers", type=int, default=0, help="DataLoader worker processes")
    aug = p.add_mutually_exclusive_group()
    aug.add_argument("--no-augment", action="store_true", help="train without augmentation (ablation)")
    aug.add_argument("--augment", help="augmentation config or preset instead of the config's section")
    p.add_argument(
        "--max-train-songs", type=int, help="use only the first N training songs (corpus-size study)"
    )
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a constructor argument (YAML value), repeatable",
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars (log files)")
    for key, default in DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        p.add_argument(flag, type=type(default), help=f"training.{key} (default {default})")
    return p


def load_config(path: Path) -> dict:
    """The YAML config with its three sections (missing sections are empty)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such training config")
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - {"model", "training", "augmentations"}
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)} (model, training, augmentations)")
    bad = set(data.get("training") or {}) - set(DEFAULTS) - {"workers"}
    if bad:
        raise ValueError(f"{path}: unknown training keys {sorted(bad)} (known: {', '.join(DEFAULTS)})")
    return {k: data.get(k) or {} for k in ("model", "training", "augmentations")}


def resolve(args) -> tuple[dict, dict, dict | str | None]:
    """Merge config and flags into ``(model_kwargs, hyper-parameters, augmentation section)``."""
    config_path = Path(args.config) if args.config else CONFIG_DIR / f"{args.model}.yaml"
    config = (
        load_config(config_path)
        if (args.config or config_path.is_file())
        else {"model": {}, "training": {}, "augmentations": {}}
    )
    model_kwargs = dict(config["model"])
    for item in args.model_arg:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--model-arg {item!r}: expected KEY=VALUE")
        model_kwargs[key] = yaml.safe_load(value)
    hp = {**DEFAULTS, **config["training"]}
    for key in DEFAULTS:
        value = getattr(args, key)
        if value is not None:
            hp[key] = value
    hp["workers"] = args.workers
    augmentation = None if args.no_augment else (args.augment or config["augmentations"] or None)
    return model_kwargs, hp, augmentation


def main(argv=None) -> int:
    from tracks import open_tracks

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    model_kwargs, hp, augmentation = resolve(args)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(args.threads or max(1, torch.get_num_threads() // world))
    torch.set_flush_denormal(True)  # denormal floats slow CPU kernels down many times
    torch.manual_seed(args.seed)  # the initial weights, too, depend only on the seed
    member = build_member(args.model, model_kwargs)
    pipeline = load_pipeline(augmentation, member.targets, member.sample_rate)
    train = open_tracks(args.data_dir, "train", targets=member.targets)[: args.max_train_songs]
    valid = open_tracks(args.data_dir, "valid", targets=member.targets)
    if not valid:
        raise SystemExit(f"{args.data_dir}: no validation songs (the manifest's validation list is empty)")
    ood = open_tracks(args.ood_dir, args.ood_split, targets=member.targets) if args.ood_dir else []
    run_dir = Path(args.run_dir or f"runs/{args.model}")
    command = "python train.py " + shlex.join(argv)
    record = {
        "command": command,
        "model": args.model,
        "data_dir": args.data_dir,
        "ood_dir": args.ood_dir,
        "train_songs": len(train),
        "seed": args.seed,
        "augmentation": augmentation,
        "model_kwargs": model_kwargs,
    }
    trainer = Trainer(member, train, valid, ood, run_dir, hp, pipeline, args.seed, command, record)
    if args.resume and trainer.resume():
        trainer._log(f"resumed from {run_dir / 'last.pth'} after epoch {trainer.epoch}")
    elif (run_dir / "last.pth").exists():
        raise SystemExit(
            f"{run_dir}/last.pth exists: pass --resume to continue it, or choose another --run-dir"
        )
    trainer._log(
        f"{len(train)} training songs, {len(trainer.valid_tracks)} validation, "
        f"{len(trainer.ood_tracks)} OOD; {sum(p.numel() for p in member.parameters()):,} parameters; "
        f"{torch.get_num_threads()} threads x {trainer.world} processes"
    )
    metrics = trainer.fit(progress=not args.no_progress)
    trainer._log(
        f"best epoch {metrics['epoch']}: valid {metrics['valid_sdr']} ood {metrics['ood_sdr']} "
        f"({metrics['wall_time_s']:.0f} s)"
    )
    return 0
