"""Training loop of every trainable member (``python train.py --model NAME --data-dir DIR ...``).

Per epoch: random augmented chunks (:mod:`models.data`), the member's own loss, Adam, then the MDX
SDR on the validation songs (and, with ``--ood-dir``, on out-of-distribution songs), a learning
rate cut on plateaus, early stopping on the validation mean. The run folder holds:

* ``last.pth``: the full training state after every epoch (``--resume`` continues from it),
* ``best.pth``: the best member so far (:func:`models.save_member`, with its metrics),
* ``history.json`` and ``curve.png``: loss and SDR per epoch.

Example ``i`` of epoch ``e`` depends only on ``(seed, e, i)`` and the torch seed is reset every
epoch, so a killed run resumed with ``--resume`` continues as if it had not stopped. With
``torchrun --nproc_per_node N`` the loss module is wrapped in DistributedDataParallel (gloo): each
process draws its own examples, rank 0 validates and writes.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from models import registry
from models.checkpoint import atomic_torch_save, plain, safe_load, save_member
from models.data import TrainingChunks
from models.evaluation import evaluate_member

STATE_FORMAT = "stemblend-train-state/1"

#: training hyper-parameters and their defaults (config ``training:`` section, CLI flags override)
DEFAULTS = {
    "epochs": 100,
    "batch_size": 8,
    "seconds": 6.0,
    "samples_per_epoch": 512,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "clip_grad": 0.0,
    "patience": 12,
    "lr_patience": 4,
    "lr_decay": 0.3,
    "max_minutes": 0.0,
    "valid_songs": 12,
    "prepare_batches": 8,
}


class LossModule(nn.Module):
    """``forward(mix, stems) -> loss`` of a member, so that DistributedDataParallel can wrap it."""

    def __init__(self, member):
        super().__init__()
        self.member = member

    def forward(self, mix, stems):
        return self.member.loss(mix, stems)


def setup_distributed() -> tuple[int, int]:
    """Join the torchrun process group (gloo) when ``WORLD_SIZE > 1``; return ``(rank, world)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _broadcast(value: float, world: int) -> float:
    if world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(tensor, 0)
    return float(tensor.item())


class Trainer:
    """One training run.

    Args:
        member: the member to train.
        train_tracks, valid_tracks, ood_tracks: ``tracks.Track`` lists (``ood_tracks`` may be empty).
        run_dir: output folder.
        hp: hyper-parameters (:data:`DEFAULTS` keys).
        pipeline: an ``augment.Pipeline``.
        seed: base seed.
        command: the command line, recorded in the checkpoints.
        record: plain dict of everything else worth keeping (config, data paths).
    """

    def __init__(
        self,
        member,
        train_tracks,
        valid_tracks,
        ood_tracks,
        run_dir,
        hp: dict,
        pipeline,
        seed: int = 0,
        command: str = "",
        record: dict | None = None,
    ):
        self.rank, self.world = setup_distributed()
        self.member, self.hp, self.pipeline, self.seed = member, hp, pipeline, int(seed)
        self.valid_tracks, self.ood_tracks = (
            valid_tracks[: hp["valid_songs"]],
            ood_tracks[: hp["valid_songs"]],
        )
        self.run_dir, self.command, self.record = Path(run_dir), command, record or {}
        seconds = member.training_seconds() or hp["seconds"]
        self.frames = int(round(seconds * member.sample_rate))
        self.dataset = TrainingChunks(
            train_tracks,
            self.frames,
            max(1, hp["samples_per_epoch"] // self.world),
            self.seed * 1000 + self.rank,
            pipeline,
        )
        self.optimizer = torch.optim.Adam(member.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=hp["lr_decay"], patience=hp["lr_patience"]
        )
        self.epoch, self.best, self.best_epoch, self.bad_epochs = 0, -math.inf, -1, 0
        self.history: list[dict] = []
        self.wall_time = 0.0

    # -- state -------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "format": STATE_FORMAT,
            "member": self.member.name,
            "kwargs": plain(self.member.config()),
            "epoch": self.epoch,
            "model": self.member.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": plain(self.scheduler.state_dict()),
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": plain(self.history),
            "wall_time_s": self.wall_time,
        }

    def resume(self) -> bool:
        """Load ``last.pth`` if it exists; True when a run was resumed."""
        path = self.run_dir / "last.pth"
        if not path.is_file():
            return False
        state = safe_load(path)
        if state.get("format") != STATE_FORMAT or state.get("member") != self.member.name:
            raise ValueError(f"{path}: not a training state of member '{self.member.name}'")
        if state["kwargs"] != plain(self.member.config()):
            raise ValueError(
                f"{path}: was trained with other model arguments ({state['kwargs']}); "
                "use another --run-dir or the same config"
            )
        self.member.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.best, self.best_epoch = state["epoch"], state["best"], state["best_epoch"]
        self.bad_epochs, self.history, self.wall_time = (
            state["bad_epochs"],
            state["history"],
            state["wall_time_s"],
        )
        return True

    # -- loop --------------------------------------------------------------------------------------
    def fit(self, progress: bool = True) -> dict:
        """Train until ``epochs``, early stopping or ``max_minutes``; return the best metrics."""
        torch.manual_seed(self.seed)
        if self.epoch == 0 and self.rank == 0:
            self.member.prepare(self._prepare_batches())
        model = LossModule(self.member)
        if self.world > 1:
            model = nn.parallel.DistributedDataParallel(model)
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.hp["batch_size"],
            shuffle=False,
            num_workers=self.hp.get("workers", 0),
            drop_last=True,
        )
        budget = self.hp["max_minutes"] * 60
        while self.epoch < self.hp["epochs"] and not _broadcast(float(self._finished(budget)), self.world):
            start = time.perf_counter()
            loss = self._train_epoch(model, loader, progress, budget, start)
            entry = {"epoch": self.epoch + 1, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"]}
            if self.rank == 0:
                entry["valid_sdr"] = evaluate_member(self.member, self.valid_tracks)
                if self.ood_tracks:
                    entry["ood_sdr"] = evaluate_member(self.member, self.ood_tracks)
            mean = _broadcast(entry.get("valid_sdr", {}).get("mean", 0.0), self.world)
            self.scheduler.step(mean)
            self.epoch += 1
            improved = mean > self.best
            if improved:
                self.best, self.best_epoch, self.bad_epochs = mean, self.epoch, 0
            else:
                self.bad_epochs += 1
            self.wall_time += time.perf_counter() - start
            entry["seconds"] = time.perf_counter() - start
            self.history.append(entry)
            if self.rank == 0:
                self._write(improved, entry)
        if self.world > 1:
            dist.barrier()
        return self.best_metrics()

    def _finished(self, budget: float) -> bool:
        """Time budget used up, or early stop (also for a resumed run that had stopped)."""
        if budget and self.wall_time >= budget:
            self._log(f"time budget of {self.hp['max_minutes']} min used up")
            return True
        if self.bad_epochs >= self.hp["patience"]:
            self._log(f"early stop: no better validation SDR for {self.hp['patience']} epochs")
            return True
        return False

    def _prepare_batches(self):
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.hp["batch_size"])
        for i, (mix, stems) in enumerate(loader):
            if i >= self.hp["prepare_batches"]:
                break
            yield mix, stems

    def _train_epoch(self, model, loader, progress: bool, budget: float, start: float) -> float:
        self.member.train()
        self.dataset.set_epoch(self.epoch)
        torch.manual_seed(self.seed * 1000 + self.epoch * 10 + self.rank)
        batch_gen = torch.Generator().manual_seed(self.seed * 7919 + self.epoch * 100 + self.rank)
        total, count = 0.0, 0
        bar = tqdm(
            loader,
            desc=f"epoch {self.epoch + 1}",
            unit="batch",
            leave=False,
            disable=not progress or self.rank != 0,
        )
        for mix, stems in bar:
            if self.pipeline.batch_transforms:
                stems = self.pipeline.batch(stems, batch_gen)
                mix = stems.sum(1)
            self.optimizer.zero_grad(set_to_none=True)
            loss = model(mix, stems)
            loss.backward()
            if self.hp["clip_grad"]:
                nn.utils.clip_grad_norm_(self.member.parameters(), self.hp["clip_grad"])
            self.optimizer.step()
            total, count = total + loss.item(), count + 1
            bar.set_postfix(loss=f"{total / count:.4g}")
            if budget:
                over = float(self.wall_time + time.perf_counter() - start >= budget)
                if _broadcast(over, self.world):  # every process stops at the same step
                    break  # the epoch ends early; validation still runs
        return total / max(count, 1)

    # -- output ------------------------------------------------------------------------------------
    def best_metrics(self) -> dict:
        best = next((h for h in self.history if h["epoch"] == self.best_epoch), {})
        return {
            "command": self.command,
            "epoch": self.best_epoch,
            "epochs": self.epoch,
            "wall_time_s": round(self.wall_time, 1),
            "valid_sdr": best.get("valid_sdr"),
            "ood_sdr": best.get("ood_sdr"),
            "valid_songs": len(self.valid_tracks),
            "ood_songs": len(self.ood_tracks),
            "world_size": self.world,
        }

    def _write(self, improved: bool, entry: dict) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if improved:
            save_member(
                self.member, self.run_dir / "best.pth", {**self.record, "hp": self.hp}, self.best_metrics()
            )
        atomic_torch_save(self.state(), self.run_dir / "last.pth")
        (self.run_dir / "history.json").write_text(json.dumps(self.history, indent=1))
        plot_curves(self.history, self.run_dir / "curve.png", self.member.name)
        self._log(_describe(entry) + ("  *best*" if improved else ""))

    def _log(self, text: str) -> None:
        if self.rank == 0:
            tqdm.write(f"[{self.member.name}] {text}")


def _describe(entry: dict) -> str:
    parts = [f"epoch {entry['epoch']:3d}", f"loss {entry['loss']:.4g}", f"lr {entry['lr']:.2g}"]
    for key, label in (("valid_sdr", "valid"), ("ood_sdr", "ood")):
        if key in entry:
            sdr = entry[key]
            parts.append(f"{label} SDR " + " ".join(f"{k} {v:.2f}" for k, v in sdr.items()))
    parts.append(f"{entry['seconds']:.0f} s")
    return " | ".join(parts)


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    """Training loss and validation / OOD mean SDR per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [h["loss"] for h in history], color="tab:gray", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log" if all(h["loss"] > 0 for h in history) else "linear")
    ax2 = ax.twinx()
    for key, color in (("valid_sdr", "tab:blue"), ("ood_sdr", "tab:orange")):
        points = [(h["epoch"], h[key]["mean"]) for h in history if key in h]
        if points:
            ax2.plot(*zip(*points), color=color, marker="o", label=f"{key.split('_')[0]} SDR (mean)")
    ax2.set_ylabel("MDX SDR (dB)")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    ax.legend(lines, labels, loc="lower right")
    ax.set_title(f"{title}: training curve")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_member(name: str, model_kwargs: dict):
    """``models.get(name)(**model_kwargs)``, refusing training-free members."""
    cls = registry.get(name)
    if not cls.trainable:
        raise ValueError(f"member '{name}' has nothing to train")
    return cls(**model_kwargs)
