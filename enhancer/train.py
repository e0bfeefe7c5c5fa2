"""Train the base enhancer on pairs from all targets, or a LoRA adapter for one target on top of it.

    # base, on real separator outputs (the shipped training) or, without --estimates, simulated ones
    python -m enhancer.train --data-dir DATA --estimates EST -o runs/enhancer/base --steps 3000
    # adapter for one target (the base frozen, only the adapter's A and B train)
    python -m enhancer.train --data-dir DATA --estimates EST --base runs/enhancer/base/base.pth \
        --adapter vocals --targets vocals -o runs/enhancer/vocals --steps 800

Every ``--valid-every`` steps the model is scored on fixed excerpts of the validation songs (the
grader's SDR without and with the enhancer, per target); the best state is written as
``OUT/base.pth`` or ``OUT/<adapter>.pth`` (the step-0 state, the identity, is the first candidate,
so a run that never helps ships a no-op). ``OUT/last.pth`` holds the full training state:
re-running the same command with ``--resume`` continues where it stopped, drawing the same
examples (item ``i`` of the pair stream depends only on ``(seed, i)``).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from core.constants import TARGETS
from core.metrics import global_sdr
from enhancer.checkpoint import load_base, save_adapter, save_base
from enhancer.lora import DEFAULT_MODULES, AdaptedEnhancer, AdapterSpec
from enhancer.loss import EnhancerLoss, LossConfig
from enhancer.model import EnhancerConfig, PhaseEnhancer, count_parameters, song_scale
from enhancer.pairs import ARTIFACTS, PairDataset, degrade, estimate_path
from enhancer.spectral import istft, stft
from models.checkpoint import atomic_torch_save, safe_load

STATE_FORMAT = "stemblend-enhancer-train/1"


def enhance_batch(model, estimate: Tensor, mixture: Tensor, scale: Tensor | None = None) -> Tensor:
    """Run the enhancer on excerpts: ``(B, C, T)`` estimate and mixture -> ``(B, C, T)``."""
    cfg = model.config
    scale = song_scale(mixture) if scale is None else scale
    spec = model(stft(estimate, cfg.n_fft, cfg.n_hop), stft(mixture, cfg.n_fft, cfg.n_hop), scale)
    return istft(spec, estimate.shape[-1], cfg.n_fft, cfg.n_hop)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m enhancer.train", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True,
                   help="generated or MUSDB18(-HQ) folder (train and valid splits)")
    p.add_argument("--estimates", help="folder EST/<song>/<target>.wav of a predictor's outputs for the "
                   "train and valid songs; without it pairs use simulated artifacts")
    p.add_argument("-o", "--out", required=True, help="run folder")
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS,
                   help="targets to draw pairs for")
    p.add_argument("--base", help="base enhancer .pth: required with --adapter; otherwise the base to "
                   "start from")
    p.add_argument("--adapter", help="train a LoRA adapter of this name (e.g. the target) on the frozen base")
    p.add_argument("--rank", type=int, default=2, help="LoRA rank")
    p.add_argument("--alpha", type=float, default=2.0, help="LoRA alpha (update scaled by alpha / rank)")
    p.add_argument("--modules", nargs="+", default=list(DEFAULT_MODULES),
                   help="base layers the adapter adapts")
    p.add_argument("--artifacts", nargs="+", default=list(ARTIFACTS), choices=list(ARTIFACTS),
                   help="simulated artifact kinds (without --estimates)")
    p.add_argument("--clean-prob", type=float, default=0.1, help="share of clean simulated pairs")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seconds", type=float, default=3.0, help="excerpt length")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--valid-every", type=int, default=250)
    p.add_argument("--valid-seconds", type=float, default=8.0, help="validation excerpt per song and target")
    p.add_argument("--valid-songs", type=int, default=0,
                   help="use only the first N validation songs (0: all)")
    p.add_argument("--train-songs", type=int, default=0,
                   help="draw pairs from the first N training songs only (0: all), e.g. those "
                   "'python -m enhancer.pairs --first N' wrote estimates for")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--widths", type=int, nargs=3, default=list(EnhancerConfig.widths))
    p.add_argument("--band", type=int, default=EnhancerConfig.band)
    p.add_argument("--n-fft", type=int, default=EnhancerConfig.n_fft)
    p.add_argument("--n-hop", type=int, default=EnhancerConfig.n_hop)
    p.add_argument("--phase-weight", type=float, default=LossConfig.phase_weight)
    p.add_argument("--wave-weight", type=float, default=LossConfig.wave_weight)
    p.add_argument("--sdr-weight", type=float, default=LossConfig.sdr_weight)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pth")
    return p


def make_model(args) -> AdaptedEnhancer:
    """The model a run trains: a new or given base, plus a fresh adapter with ``--adapter``."""
    if args.adapter and not args.base:
        raise SystemExit("--adapter needs --base (the pre-trained base enhancer)")
    if args.base:
        base = load_base(args.base)
    else:
        base = PhaseEnhancer(EnhancerConfig(n_fft=args.n_fft, n_hop=args.n_hop, band=args.band,
                                            widths=tuple(args.widths)))
    model = AdaptedEnhancer(base)
    if args.adapter:
        spec = AdapterSpec(rank=args.rank, alpha=args.alpha, modules=tuple(args.modules))
        model.add_adapter(args.adapter, spec)
    return model


def validation_pairs(tracks, targets, seconds: float, estimates_dir, seed: int, artifacts) -> list[dict]:
    """Fixed excerpts: the middle ``seconds`` of each song, as dicts with ``target``, ``estimate``,
    ``mixture`` and ``reference`` (``(C, T)`` tensors)."""
    from core.audio import read_audio

    pairs = []
    for i, track in enumerate(tracks):
        frames = min(track.length, int(seconds * track.rate))
        start = (track.length - frames) // 2
        mixture, stems = track.load(start=start, frames=frames)
        for target in targets:
            index = list(TARGETS).index(target)
            reference = torch.from_numpy(np.ascontiguousarray(stems[index]))
            if estimates_dir:
                path = estimate_path(estimates_dir, track.name, target)
                est = torch.from_numpy(read_audio(path, start, frames)[0])
            else:
                generator = torch.Generator().manual_seed(seed * 7919 + i * 31 + index)
                est, _ = degrade(torch.from_numpy(stems), index, generator, artifacts, clean_prob=0.0)
            pairs.append({"target": target, "estimate": est.float(), "reference": reference.float(),
                          "mixture": torch.from_numpy(np.ascontiguousarray(mixture)).float()})
    return pairs


@torch.no_grad()
def validate(model: AdaptedEnhancer, pairs: list[dict], adapter: str | None) -> dict:
    """Mean SDR per target without the enhancer, with the base alone, and with the trained model."""
    was_training = model.training
    model.eval()
    rows = {}
    for pair in pairs:
        est, mix, ref = pair["estimate"], pair["mixture"], pair["reference"]
        row = rows.setdefault(pair["target"], {"without": [], "with": [], "base": []})
        row["without"].append(global_sdr(ref.numpy(), est.numpy()))
        model.use(adapter)
        row["with"].append(global_sdr(ref.numpy(), enhance_batch(model, est[None], mix[None])[0].numpy()))
        if adapter:
            model.use(None)
            row["base"].append(global_sdr(ref.numpy(), enhance_batch(model, est[None], mix[None])[0].numpy()))
            model.use(adapter)
    model.train(was_training)
    result = {key: {t: float(np.mean(r[key])) for t, r in rows.items() if r[key]}
              for key in ("without", "with", "base")}
    for values in result.values():
        if values:
            values["mean"] = float(np.mean(list(values.values())))
    return {k: v for k, v in result.items() if v}


def _plot(history: list[dict], valid: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = [h["step"] for h in history]
    losses = np.array([h["loss"] for h in history])
    if len(losses):
        k = max(1, len(losses) // 50)
        a.plot(steps[k - 1:], np.convolve(losses, np.ones(k) / k, mode="valid"))
    a.set_xlabel("step")
    a.set_ylabel("training loss")
    b.plot([v["step"] for v in valid], [v["with"]["mean"] - v["without"]["mean"] for v in valid], marker="o")
    b.axhline(0.0, color="gray", lw=0.8)
    b.set_xlabel("step")
    b.set_ylabel("validation SDR gain (dB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(args, argv=None) -> dict:
    """Run (or resume) a training run; returns the best validation metrics."""
    import tracks as tracks_mod

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    argv = list(argv if argv is not None else sys.argv[1:])
    command = "python -m enhancer.train " + shlex.join(a for a in argv if a != "--resume")
    model = make_model(args)
    params = model.trainable(args.adapter)
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0 if args.adapter else 1e-5)
    loss_fn = EnhancerLoss(LossConfig(phase_weight=args.phase_weight, wave_weight=args.wave_weight,
                                      sdr_weight=args.sdr_weight, sample_rate=model.config.sample_rate))
    state = {"step": 0, "best": -math.inf, "history": [], "valid": [], "wall_time_s": 0.0}
    last = out / "last.pth"
    if args.resume and last.is_file():
        saved = safe_load(last)
        if saved.get("format") != STATE_FORMAT:
            raise SystemExit(f"{last}: not an enhancer training state")
        model.base.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = {k: saved[k] for k in state}
        print(f"resuming {last} at step {state['step']}")
    train_tracks = tracks_mod.open_tracks(args.data_dir, split="train")
    valid_tracks = tracks_mod.open_tracks(args.data_dir, split="valid")
    if args.valid_songs:
        valid_tracks = valid_tracks[: args.valid_songs]
    if args.train_songs:
        train_tracks = train_tracks[: args.train_songs]
    if not train_tracks or not valid_tracks:
        raise SystemExit(f"{args.data_dir}: needs songs in the train and valid splits "
                         f"(found {len(train_tracks)} and {len(valid_tracks)})")
    dataset = PairDataset(train_tracks, args.seconds, args.steps * args.batch_size, args.seed,
                          train_targets=args.targets, estimates_dir=args.estimates, artifacts=args.artifacts,
                          clean_prob=args.clean_prob)
    pairs = validation_pairs(valid_tracks, args.targets, args.valid_seconds, args.estimates, args.seed,
                             args.artifacts)
    name = args.adapter or "base"
    best_path = out / f"{name}.pth"
    sampler = range(state["step"] * args.batch_size, args.steps * args.batch_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler,
                                         num_workers=args.workers)
    info = {"trainable_parameters": sum(p.numel() for p in params),
            "base_parameters": count_parameters(model.base)}

    clock = [time.time()]

    def checkpoint(step: int) -> None:
        state["wall_time_s"] += time.time() - clock[0]
        clock[0] = time.time()
        metrics = validate(model, pairs, args.adapter)
        state["valid"].append({"step": step, **metrics})
        wall = state["wall_time_s"]
        if metrics["with"]["mean"] > state["best"]:
            state["best"] = metrics["with"]["mean"]
            record = {"command": command, "step": step, "wall_time_s": wall, **info,
                      "valid_sdr_without": metrics["without"], "valid_sdr_with": metrics["with"]}
            if "base" in metrics:
                record["valid_sdr_base"] = metrics["base"]
            training = {k: v for k, v in vars(args).items() if k != "resume"}
            if args.adapter:
                save_adapter(model, args.adapter, best_path, training, record)
            else:
                save_base(model, best_path, training, record)
        tqdm.write(f"step {step}: validation SDR without {metrics['without']['mean']:.2f} dB, "
                   f"with {metrics['with']['mean']:.2f} dB (best {state['best']:.2f})")

    if state["step"] == 0:
        checkpoint(0)
    model.train()
    bar = tqdm(loader, total=len(sampler) // args.batch_size, initial=0, desc=f"training {name}", unit="step")
    for batch in bar:
        step = state["step"]
        for group in optimizer.param_groups:  # cosine decay to 10% of --lr, a function of the step
            group["lr"] = args.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / max(1, args.steps))))
        scale = song_scale(batch["mixture"])
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + step)  # resumable
        jitter = torch.exp(0.7 * torch.rand(scale.shape, generator=generator) - 0.35)  # song vs excerpt level
        enhanced = enhance_batch(model, batch["estimate"], batch["mixture"], scale * jitter)
        loss, parts = loss_fn(enhanced, batch["reference"], scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        state["step"] = step + 1
        state["history"].append({"step": step + 1, "loss": float(loss.detach()), **parts})
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}", phase=f"{parts['phase']:.3f}")
        if state["step"] % args.valid_every == 0 or state["step"] == args.steps:
            checkpoint(state["step"])
            atomic_torch_save({"format": STATE_FORMAT, "model": model.base.state_dict(),
                               "optimizer": optimizer.state_dict(), **state}, last)
            _plot(state["history"], state["valid"], out / "curves.png")
    bar.close()
    if best_path.is_file():  # the command that reproduces the whole run, and its cost, for the manifest
        package = safe_load(best_path)
        package["metrics"].update(command=command, run_steps=state["step"],
                                  run_wall_time_s=state["wall_time_s"])
        atomic_torch_save(package, best_path)
    summary = {"best_valid_sdr_with": state["best"], "file": str(best_path), "steps": state["step"],
               "wall_time_s": state["wall_time_s"], "valid": state["valid"][-1] if state["valid"] else None}
    report = {"summary": summary, "valid": state["valid"]}
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return summary


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    summary = train(args, argv)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
