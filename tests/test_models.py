"""Members: shapes, registry, chunked inference, checkpoints (round trip, refusals), official loaders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import models
from core.constants import TARGETS
from core.errors import CheckpointError
from models.base import overlap_add

RATE = 44100

#: tiny configurations: every member builds and runs in well under a second
TINY = {
    "umx": dict(n_fft=512, n_hop=128, hidden_size=16, nb_layers=1, bandwidth=4000),
    "fnn": dict(n_fft=512, n_hop=128, hidden_size=16, nb_layers=1, bandwidth=4000, context=2),
    "unet-spec": dict(n_fft=512, n_hop=128, bandwidth=4000, channels=4, depth=3),
    "unet-wave": dict(channels=4, growth=4, depth=4, kernel_size=5),
    "convtasnet": dict(
        n_filters=16, kernel_size=32, stride=16, bn_chan=8, hid_chan=16, skip_chan=8, n_blocks=2, n_repeats=1
    ),
    "demucs": dict(
        segment=0.5,
        model_kwargs=dict(channels=4, depth=2, nfft=512, t_layers=1, t_heads=1, dconv_depth=1, dconv_comp=2),
    ),
}


@pytest.fixture(autouse=True, scope="module")
def _flush_denormals():
    """Random tiny networks produce denormal floats that slow CPU kernels down 30x or more."""
    torch.set_flush_denormal(True)


def tiny(name: str):
    torch.manual_seed(0)
    return models.get(name)(**TINY[name]).eval()


def noise(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 0.1


def test_registry_lists_every_member_and_rejects_unknown_names():
    assert set(models.names()) >= {"umx", "demucs", "unet-wave", "unet-spec", "fnn", "convtasnet", "nussl"}
    with pytest.raises(KeyError, match="unknown member 'nope'.*umx"):
        models.get("nope")


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_and_separate_shapes(name):
    member = tiny(name)
    mix = noise(2, 2, RATE // 2)
    with torch.no_grad():
        out = member(mix)
    assert out.shape == (2, 4, 2, RATE // 2) and torch.isfinite(out).all()
    song = noise(2, RATE + 123).numpy()
    est = member.separate(song, segment=0.5, overlap=0.25)
    assert isinstance(est, np.ndarray) and est.shape == (4, 2, RATE + 123)
    assert member.targets == TARGETS and member.config()["targets"] == list(TARGETS)


def test_nussl_member_outputs_four_targets_summing_to_the_mixture():
    member = models.get("nussl")()
    mix = noise(1, 2, RATE, seed=3)
    out = member(mix)
    assert out.shape == (1, 4, 2, RATE)
    assert torch.allclose(out.sum(1), mix, atol=1e-4)
    assert not member.trainable and models.get("nussl").trainable is False


def test_overlap_add_of_a_pointwise_function_is_exact():
    mix = noise(2, 10_001)
    fn = lambda x: torch.stack([x * k for k in (1.0, -2.0, 0.5)])  # noqa: E731
    for segment, overlap, context in ((1000, 0.25, 0), (777, 0.5, 64), (3000, 0.0, 10)):
        out = overlap_add(fn, mix, 3, segment, overlap, context=context)
        assert torch.allclose(out, fn(mix), atol=1e-6)
    with pytest.raises(ValueError, match="overlap"):
        overlap_add(fn, mix, 3, 1000, overlap=1.0)


@pytest.mark.parametrize("name", ["fnn", "unet-spec", "unet-wave"])
def test_chunked_equals_unchunked_for_finite_receptive_fields(name):
    member = tiny(name)
    mix = noise(2, 3 * RATE, seed=1)
    whole = member.separate(mix, segment=0)
    chunked = member.separate(mix, segment=0.6, overlap=0.25)
    assert torch.allclose(chunked, whole, atol=1e-4), (chunked - whole).abs().max()


@pytest.mark.parametrize("name", ["umx", "convtasnet"])
def test_chunked_is_close_to_unchunked_for_sequence_models(name):
    member = tiny(name)
    mix = noise(2, 3 * RATE, seed=2)
    member.prepare([(mix[None], None)])  # umx: input statistics, masks start at 1/4
    whole = member.separate(mix, segment=0)
    assert whole.square().sum() > 1e-3 * mix.square().sum(), "outputs must not be silent"

    chunked = member.separate(mix, segment=1.0, overlap=0.25)
    err = 10 * torch.log10(whole.square().sum() / (whole - chunked).square().sum())
    assert err > 20, f"chunked differs from unchunked: {err:.1f} dB"


@pytest.mark.parametrize("name", sorted(TINY))
def test_checkpoint_round_trip_gives_identical_outputs(name, tmp_path):
    member = tiny(name)
    path = models.save_member(member, tmp_path / f"{name}.pth", {"lr": 1e-3}, {"valid_sdr": {"mean": 1.5}})
    # a plain dict of tensors and values: loads with weights_only=True
    package = torch.load(path, weights_only=True)
    assert package["member"] == name and package["targets"] == list(TARGETS)
    loaded = models.load_member(path)
    assert loaded.checkpoint["metrics"]["valid_sdr"]["mean"] == 1.5
    assert loaded.checkpoint["sha256"] == models.sha256_file(path)
    mix = noise(1, 2, RATE // 2, seed=4)
    with torch.no_grad():
        assert torch.equal(member(mix), loaded(mix))


def test_saving_the_same_weights_twice_gives_the_same_sha256(tmp_path):
    """Re-shipping a run must not change its sha256 (the manifest and the tuning cache key on it)."""
    member = tiny("fnn")
    a = models.save_member(member, tmp_path / "a" / "fnn.pth", {"lr": 1e-3}, {}, half=True)
    b = models.save_member(member, tmp_path / "b" / "fnn.pth", {"lr": 1e-3}, {}, half=True)
    assert models.sha256_file(a) == models.sha256_file(b)


def test_half_precision_checkpoint_is_smaller_and_close(tmp_path):
    member = tiny("fnn")
    full = models.save_member(member, tmp_path / "full.pth")
    half = models.save_member(member, tmp_path / "half.pth", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    mix = noise(1, 2, RATE // 4)
    with torch.no_grad():
        assert torch.allclose(member(mix), models.load_member(half)(mix), atol=1e-3)


class Payload:
    """A class: pickled by reference, i.e. code the loader must refuse to import."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_loading_refuses_a_checkpoint_that_carries_pickled_code(tmp_path):
    path = models.save_member(tiny("fnn"), tmp_path / "evil.pth")
    package = torch.load(path, weights_only=True)
    package["training_args"] = {"hook": Payload()}
    torch.save(package, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth: refused: the checkpoint carries pickled code"):
        models.load_member(path)


def test_missing_corrupt_sha_mismatch_and_targets_mismatch_raise_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothere\.pth: checkpoint does not exist"):
        models.load_member(tmp_path / "nothere.pth")
    good = models.save_member(tiny("fnn"), tmp_path / "fnn.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"corrupt\.pth: corrupt or not a PyTorch checkpoint"):
        models.load_member(corrupt)
    manifest = {"weights": {"fnn.pth": {"sha256": "0" * 64}}}
    with pytest.raises(CheckpointError, match=r"fnn\.pth: sha256 .* does not match the manifest"):
        models.load_member(good, manifest=manifest)
    (tmp_path / "manifest.json").write_text(json.dumps({"weights": {"other.pth": {"sha256": "1" * 64}}}))
    with pytest.raises(CheckpointError, match="not listed"):
        models.load_member(good)  # the manifest beside the file must list it
    manifest["weights"]["fnn.pth"]["sha256"] = models.sha256_file(good)
    assert models.load_member(good, manifest=manifest).name == "fnn"
    vocals_only = models.save_member(
        models.get("fnn")(**{**TINY["fnn"], "targets": ["vocals"]}), tmp_path / "sub" / "vocals.pth"
    )
    with pytest.raises(CheckpointError, match=r"targets do not match.*bass, drums, other missing"):
        models.load_member(vocals_only, targets=TARGETS)
    package = torch.load(good, weights_only=True)
    package["state"].pop(next(iter(package["state"])))
    torch.save(package, tmp_path / "sub" / "partial.pth")
    with pytest.raises(CheckpointError, match="weights do not fit"):
        models.load_member(tmp_path / "sub" / "partial.pth")


def test_official_open_unmix_folder_loads_like_openunmix_itself(tmp_path):
    from openunmix.model import OpenUnmix
    from openunmix.utils import load_separator

    from models.umx import UMX

    torch.manual_seed(0)
    for target in TARGETS:
        model = OpenUnmix(nb_bins=257, nb_channels=2, hidden_size=16, nb_layers=3, max_bin=40)
        torch.save(model.state_dict(), tmp_path / f"{target}.pth")
        args = {"nfft": 512, "nhop": 128, "nb_channels": 2, "hidden_size": 16, "bandwidth": 3400}
        (tmp_path / f"{target}.json").write_text(json.dumps({"args": args, "best_loss": 1.0}))
    (tmp_path / "separator.json").write_text(
        json.dumps(
            {"targets": list(TARGETS), "sample_rate": RATE, "nb_channels": 2, "nfft": 512, "nhop": 128}
        )
    )
    member = UMX.from_umx_dir(tmp_path).eval()
    reference = load_separator(str(tmp_path), targets=list(TARGETS), niter=0, pretrained=True).eval()
    mix = noise(1, 2, RATE // 2)
    with torch.no_grad():
        assert torch.allclose(member(mix), reference(mix), atol=1e-6)
    (tmp_path / "drums.pth").unlink()
    with pytest.raises(CheckpointError, match="no drums.pth"):
        UMX.from_umx_dir(tmp_path)


def test_official_demucs_checkpoint_loads_and_foreign_classes_are_refused(tmp_path):
    from demucs.apply import apply_model
    from demucs.htdemucs import HTDemucs

    from models.demucs_member import DemucsMember

    torch.manual_seed(0)
    kwargs = dict(
        sources=["drums", "bass", "other", "vocals"],
        audio_channels=2,
        samplerate=RATE,
        segment=0.5,
        channels=4,
        depth=2,
        nfft=512,
        t_layers=1,
        t_heads=1,
        dconv_depth=1,
        dconv_comp=2,
    )
    model = HTDemucs(**kwargs).eval()
    package = {
        "klass": HTDemucs,
        "args": (),
        "kwargs": kwargs,
        "state": {k: v.half() for k, v in model.state_dict().items()},
        "training_args": {"epochs": 1},
    }
    torch.save(package, tmp_path / "955717e8-8726e21a.th")
    member = DemucsMember.from_demucs_checkpoint(tmp_path / "955717e8-8726e21a.th")
    assert member.targets == ("drums", "bass", "other", "vocals")
    model.load_state_dict({k: v.float() for k, v in package["state"].items()})
    mix = noise(1, 2, RATE, seed=5)
    assert torch.allclose(
        member.separate(mix[0]), apply_model(model, mix, shifts=0, overlap=0.25)[0], atol=1e-5
    )
    package["klass"] = torch.nn.Linear  # a class demucs' loader would happily call
    torch.save(package, tmp_path / "foreign.th")
    with pytest.raises(CheckpointError, match="carries pickled code"):
        DemucsMember.from_demucs_checkpoint(tmp_path / "foreign.th")


def test_shipped_weights_match_their_manifest_and_fit_the_size_budget():
    """Every committed checkpoint is listed with its true sha256 and size, every listed one exists,
    each names its training command, and together they stay within the issue's 40 MB."""
    from models.checkpoint import sha256_file
    from models.manifest import MANIFEST, WEIGHTS_DIR, read_manifest

    listed = read_manifest(MANIFEST)["weights"]
    files = {p.name: p for p in WEIGHTS_DIR.glob("*.pth")}
    assert set(listed) == set(files)
    for name, entry in listed.items():
        assert entry["sha256"] == sha256_file(files[name]), name
        assert entry["size"] == files[name].stat().st_size, name
        assert entry["training_command"].startswith("python train.py --model "), name
    assert sum(p.stat().st_size for p in files.values()) <= 40_000_000
