"""Training: the loss goes down, the CLI writes a resumable run, DDP on two CPU processes, shipping,
and the member predictors' setup checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import models
from core.errors import CheckpointError
from models.data import TrainingChunks, load_pipeline
from models.manifest import read_manifest, ship

ROOT = Path(__file__).resolve().parents[1]

#: a tiny fnn and a cheap augmentation, for runs of a few seconds
CONFIG = {
    "model": {"n_fft": 512, "n_hop": 128, "bandwidth": 4000, "hidden_size": 16, "nb_layers": 1, "context": 1},
    "training": {
        "batch_size": 2,
        "seconds": 1.0,
        "samples_per_epoch": 4,
        "valid_songs": 1,
        "prepare_batches": 1,
    },
    "augmentations": {
        "chunking": {"independent_offsets": 0.5},
        "example": [{"name": "channel_swap", "p": 1.0}, {"name": "gain", "p": 1.0, "min": 0.5, "max": 1.2}],
        "batch": [{"name": "remix", "p": 0.5, "group_size": 2}],
    },
}


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """4 training songs (one of them for validation) and a test song of 4 s."""
    import tracks

    root = tmp_path_factory.mktemp("songs")
    tracks.render_dataset(root, train=4, test=1, seconds=4, seed=0, progress=False)
    return root


@pytest.fixture()
def config(tmp_path):
    path = tmp_path / "fnn.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def train(args: list[str]) -> int:
    from models.train_cli import main

    return main(args + ["--no-progress", "--threads", "1"])


def test_a_few_training_steps_lower_the_loss(songs):
    from tracks import open_tracks

    torch.manual_seed(0)
    member = models.get("fnn")(**CONFIG["model"])
    pipeline = load_pipeline(None, member.targets, member.sample_rate)
    data = TrainingChunks(open_tracks(songs, "train"), 44100, 4, seed=0, pipeline=pipeline)
    mix, stems = (torch.stack(x) for x in zip(*[data[i] for i in range(4)]))
    assert torch.allclose(mix, stems.sum(1), atol=1e-6)
    member.prepare([(mix, stems)])
    optimizer = torch.optim.Adam(member.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = member.loss(mix, stems)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_training_examples_depend_only_on_seed_epoch_and_index(songs):
    from tracks import open_tracks

    pipeline = load_pipeline(CONFIG["augmentations"], ("bass", "drums", "other", "vocals"), 44100)
    a = TrainingChunks(open_tracks(songs, "train"), 22050, 3, seed=1, pipeline=pipeline)
    b = TrainingChunks(open_tracks(songs, "train"), 22050, 3, seed=1, pipeline=pipeline)
    b.set_epoch(1)
    b.set_epoch(0)
    assert torch.equal(a[2][1], b[2][1])
    b.set_epoch(1)
    assert not torch.equal(a[2][1], b[2][1])


def test_cli_writes_a_run_that_resumes_exactly_and_ships(songs, config, tmp_path):
    common = ["--model", "fnn", "--data-dir", str(songs), "--ood-dir", str(songs), "--config", str(config)]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(common + ["-o", str(straight), "--epochs", "2"]) == 0
    assert train(common + ["-o", str(split), "--epochs", "1"]) == 0
    with pytest.raises(SystemExit, match="--resume"):
        train(common + ["-o", str(split), "--epochs", "2"])
    assert train(common + ["-o", str(split), "--epochs", "2", "--resume"]) == 0  # as if killed after epoch 1

    history = json.loads((split / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert set(history[0]["valid_sdr"]) == {"bass", "drums", "other", "vocals", "mean"}
    assert "ood_sdr" in history[0]
    assert (split / "curve.png").stat().st_size > 1000
    a = torch.load(straight / "last.pth", weights_only=True)["model"]
    b = torch.load(split / "last.pth", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a), "a resumed run must continue exactly"

    best = models.load_member(split / "best.pth")
    metrics = best.checkpoint["metrics"]
    assert metrics["command"].startswith("python train.py --model fnn")
    assert metrics["ood_sdr"] is not None and np.isfinite(metrics["valid_sdr"]["mean"])

    weights = tmp_path / "weights"
    entry = ship(split / "best.pth", "fnn", weights_dir=weights)
    assert entry["sha256"] == models.sha256_file(weights / "fnn.pth") and entry["dtype"] == "float16"
    assert read_manifest(weights / "manifest.json")["weights"]["fnn.pth"]["valid_sdr"] == metrics["valid_sdr"]
    assert models.load_member(weights / "fnn.pth").name == "fnn"  # sha256 checked against the manifest


def test_member_predictor_checks_its_checkpoint_before_any_song(songs, tmp_path):
    from submission.registry import create
    from tracks import open_tracks

    member = models.get("fnn")(**CONFIG["model"])
    path = models.save_member(member, tmp_path / "w" / "fnn.pth")
    mix, _ = open_tracks(songs, "test")[0].load()
    predictor = create("fnn", checkpoint=str(path))
    estimates = predictor.separate_audio(mix, 44100)
    assert set(estimates) == {"bass", "drums", "other", "vocals"} and estimates["vocals"].shape == mix.shape
    (tmp_path / "w" / "manifest.json").write_text(json.dumps({"weights": {"fnn.pth": {"sha256": "ab" * 32}}}))
    with pytest.raises(CheckpointError, match="does not match the manifest"):
        create("fnn", checkpoint=str(path)).prediction_setup()
    with pytest.raises(CheckpointError, match="does not exist"):
        create("umx", checkpoint=str(tmp_path / "missing.pth")).prediction_setup()


def test_two_process_ddp_training_with_gloo(songs, config, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--standalone",
        str(ROOT / "train.py"),
        "--model",
        "fnn",
        "--data-dir",
        str(songs),
        "--config",
        str(config),
        "-o",
        str(run),
        "--epochs",
        "1",
        "--threads",
        "1",
        "--no-progress",
    ]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 threads x 2 processes" in done.stdout + done.stderr
    best = models.load_member(run / "best.pth")
    assert best.checkpoint["metrics"]["world_size"] == 2
