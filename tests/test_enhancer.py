"""The phase-aware LoRA enhancer: identity at start, adapters, segments, phase, training, config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.audio import read_audio, write_audio
from core.errors import CheckpointError, SongError
from core.metrics import global_sdr
from enhancer.apply import Enhancer, StemEnhancer, from_config, load
from enhancer.checkpoint import load_adapter, load_base, save_adapter, save_base
from enhancer.evaluate import choose_targets
from enhancer.lora import MAX_ADAPTER_FRACTION, AdaptedEnhancer, AdapterSpec, randomize_adapter
from enhancer.loss import EnhancerLoss, frequency_weights, phase_coherence, phase_error
from enhancer.model import PhaseEnhancer, count_parameters, song_scale
from enhancer.pairs import ARTIFACTS, PairDataset, degrade
from enhancer.spectral import istft, process_segments, stft
from enhancer.train import enhance_batch

RATE = 44100
TARGET_NAMES = ("bass", "drums", "other", "vocals")
#: a small enhancer for fast tests (the shipped size is checked in test_adapter_budget)
SMALL = {"n_fft": 512, "n_hop": 128, "band": 4, "widths": (16, 24, 32)}
SPEC = AdapterSpec(rank=1, modules=("mid1", "freq_mix", "out"))


def synth_stems(seconds: float, seed: int) -> np.ndarray:
    """``(4, 2, T)`` toy bass, drums, other, vocals."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 55 * 2 ** (rng.integers(0, 12) / 12)
    bass = 0.3 * np.sin(2 * np.pi * f0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
    env = np.exp(-30 * ((t * 4) % 1))
    drums = 0.3 * rng.standard_normal(t.size) * env
    other = sum(0.08 * np.sin(2 * np.pi * f0 * 4 * r * t + rng.uniform(0, 6)) for r in (1, 1.25, 1.5))
    vib = f0 * 8 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    vocals = sum(0.1 / k * np.sin(2 * np.pi * k * np.cumsum(vib) / RATE) for k in range(1, 6))
    vocals = vocals * (np.sin(2 * np.pi * 0.5 * t) > -0.5)
    mono = np.stack([bass, drums, other, vocals])
    pan = rng.uniform(0.3, 0.7, size=(4, 1))
    return np.stack([mono * pan, mono * (1 - pan)], axis=1).astype(np.float32)


def write_dataset(root, songs=3, seconds=2.0, valid=1):
    """A MUSDB18-HQ style folder: ``train/<song>/*.wav`` and ``setup.yaml`` naming the valid songs."""
    names = [f"song{i}" for i in range(songs)]
    for i, name in enumerate(names):
        stems = synth_stems(seconds, i)
        for target, stem in zip(TARGET_NAMES, stems):
            write_audio(root / "train" / name / f"{target}.wav", stem, RATE, "FLOAT")
        write_audio(root / "train" / name / "mixture.wav", stems.sum(0), RATE, "FLOAT")
    (root / "setup.yaml").write_text("validation_tracks:\n" + "".join(f"  - {n}\n" for n in names[-valid:]))
    return names


def randomized_base(seed=0, std=0.05) -> PhaseEnhancer:
    """A base that is not the identity (its zero-initialised output layer filled)."""
    torch.manual_seed(seed)
    model = PhaseEnhancer(**SMALL).eval()
    with torch.no_grad():
        model.out.weight.normal_(0, std)
    return model


def specs(seconds=0.5, seed=0):
    stems = torch.from_numpy(synth_stems(seconds, seed))
    mix = stems.sum(0)
    est = stems[3] + 0.3 * stems[2]
    return stft(est, 512, 128)[None], stft(mix, 512, 128)[None], song_scale(mix).reshape(1), stems


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one thread is faster, and far faster on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(one_thread):
    """A base trained for a few steps on simulated pairs (plus the losses before and after)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    refs, ests, mixes = [], [], []
    for seed in range(3):
        stems = torch.from_numpy(synth_stems(0.5, seed))
        for target in (0, 3):
            est, _ = degrade(stems, target, generator, clean_prob=0.0)
            refs.append(stems[target])
            ests.append(est)
            mixes.append(stems.sum(0))
    batch = [torch.stack(x) for x in (ests, mixes, refs)]
    model = AdaptedEnhancer(PhaseEnhancer(**SMALL))
    params = model.trainable(None)
    optimizer = torch.optim.Adam(params, lr=2e-3)
    loss_fn = EnhancerLoss()

    def loss_now():
        with torch.no_grad():
            return float(loss_fn(enhance_batch(model, batch[0], batch[1]), batch[2], song_scale(batch[1]))[0])

    before = loss_now()
    for _ in range(20):
        loss, _ = loss_fn(enhance_batch(model, batch[0], batch[1]), batch[2], song_scale(batch[1]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model, before, loss_now()


def test_fresh_base_is_identity_through_segments():
    stems = synth_stems(1.5, 1)
    enhancer = Enhancer.with_model(PhaseEnhancer(**SMALL), segment=0.05)
    out = enhancer.enhance("vocals", stems[3], stems.sum(0))
    assert out.shape == stems[3].shape and out.dtype == np.float32
    np.testing.assert_allclose(out, stems[3], atol=1e-5)


def test_fresh_adapter_leaves_base_output_unchanged():
    est, mix, scale, _ = specs()
    model = AdaptedEnhancer(randomized_base())
    with torch.no_grad():
        before = model(est, mix, scale)
        assert (before - est).abs().max() > 1e-3  # the base itself is not the identity
        model.add_adapter("vocals", SPEC)
        after = model(est, mix, scale)
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


def test_adapter_budget():
    model = AdaptedEnhancer(PhaseEnhancer())
    size = model.add_adapter("vocals")
    assert 0 < size <= MAX_ADAPTER_FRACTION * count_parameters(PhaseEnhancer())
    with pytest.raises(ValueError, match="more than 2%"):
        model.add_adapter("big", AdapterSpec(rank=16))
    assert model.adapters == ["vocals"]
    with pytest.raises(ValueError, match="no layers"):
        model.add_adapter("bad", AdapterSpec(modules=("nope",)))


def test_adapter_save_load_round_trip(tmp_path):
    est, mix, scale, _ = specs()
    model = AdaptedEnhancer(randomized_base())
    model.add_adapter("vocals", SPEC)
    randomize_adapter(model, "vocals", seed=1)
    base_file = save_base(model, tmp_path / "base.pth")
    adapter_file = save_adapter(model, "vocals", tmp_path / "vocals.pth")
    assert adapter_file.stat().st_size < 0.05 * base_file.stat().st_size
    loaded = AdaptedEnhancer(load_base(base_file))
    assert load_adapter(loaded, adapter_file) == "vocals"
    with torch.no_grad():
        torch.testing.assert_close(loaded(est, mix, scale), model(est, mix, scale), atol=1e-6, rtol=0)
    other = AdaptedEnhancer(randomized_base(seed=5))
    with pytest.raises(CheckpointError, match="another base"):
        load_adapter(other, adapter_file)
    with pytest.raises(CheckpointError, match="not an enhancer file"):
        load_adapter(loaded, base_file, name="x")


def test_switching_adapters_changes_output():
    est, mix, scale, _ = specs()
    model = AdaptedEnhancer(randomized_base())
    with torch.no_grad():
        base_out = model(est, mix, scale)
        for seed, name in enumerate(("vocals", "drums")):
            model.add_adapter(name, SPEC)
            randomize_adapter(model, name, std=0.1, seed=seed)
        outs = {}
        for name in ("vocals", "drums", None, "vocals"):
            model.use(name)
            outs[name] = model(est, mix, scale)
    assert (outs["vocals"] - outs["drums"]).abs().max() > 1e-4
    assert (outs["vocals"] - base_out).abs().max() > 1e-4
    torch.testing.assert_close(outs[None], base_out)
    with pytest.raises(KeyError, match="no adapter 'bass'"):
        model.use("bass")


def test_segments_equal_whole_signal_processing():
    stems = torch.from_numpy(synth_stems(0.6, 2))
    est, mix = stems[1] + 0.2 * stems[0], stems.sum(0)
    model = randomized_base(std=0.2)
    scale = song_scale(mix).reshape(1)

    def fn(e, x):
        return model(e[None], x[None], scale)[0]

    with torch.no_grad():
        whole = istft(fn(stft(est, 512, 128), stft(mix, 512, 128)), est.shape[-1], 512, 128)
        for segment in (0, 40, 97):
            out = process_segments(fn, est, mix, 512, 128, segment=segment, context=model.receptive_frames)
            torch.testing.assert_close(out, whole, atol=2e-5, rtol=0)
        short = process_segments(fn, est, mix, 512, 128, segment=40, context=1)
    assert (short - whole).abs().max() > 1e-4  # too little context is visible


def test_training_lowers_loss(trained):
    _, before, after = trained
    assert after < 0.9 * before


def test_clean_input_keeps_its_phase(trained):
    model, _, _ = trained
    stems = synth_stems(0.5, 7)
    clean, mix = stems[3], stems.sum(0)
    out = StemEnhancer(model, segment=0.1)(clean, mix)
    error = phase_error(stft(torch.from_numpy(out), 512, 128), stft(torch.from_numpy(clean), 512, 128))
    assert error < 0.05  # radians, magnitude-weighted over the bins with 90% of the energy
    assert global_sdr(clean, out) > 15.0


def test_phase_terms():
    x = torch.randn(1, 2, 8192)
    spec = stft(x, 1024, 256)
    weights = frequency_weights(1024, RATE, 2000.0, 0.5)
    assert weights.mean().item() == pytest.approx(1.0) and weights[0] > weights[-1]
    assert phase_coherence(spec, spec, weights).item() < 1e-6
    assert phase_coherence(-spec, spec, weights).item() == pytest.approx(2.0, abs=1e-4)
    assert phase_coherence(spec * 1j, spec, weights).item() == pytest.approx(1.0, abs=1e-4)
    assert phase_error(spec * np.exp(0.1j), spec) == pytest.approx(0.1, abs=1e-4)
    loss_fn = EnhancerLoss()
    scale = song_scale(x)
    same, parts = loss_fn(x, x, scale)
    assert parts["spec"] < 1e-6 and parts["phase"] < 1e-6 and parts["wave"] == 0.0 and parts["sdr"] > 30.0
    assert same < loss_fn(0.5 * x, x, scale)[0] < loss_fn(-x, x, scale)[0]
    assert loss_fn(-x, x, scale)[1]["phase"] > 1.9
    silent = loss_fn(x, torch.zeros_like(x), scale)[0]
    assert torch.isfinite(silent) and silent.item() < 10.0


def test_degradations():
    stems = torch.from_numpy(synth_stems(1.0, 3))
    for kind in ARTIFACTS:
        est, applied = degrade(stems, 3, torch.Generator().manual_seed(0), kinds=[kind], clean_prob=0.0)
        sdr = global_sdr(stems[3].numpy(), est.numpy())
        assert applied == [kind] and torch.isfinite(est).all() and est.shape == stems[3].shape
        assert 0.0 < sdr < 30.0, (kind, sdr)
    est, applied = degrade(stems, 0, torch.Generator(), clean_prob=1.0)
    assert applied == [] and torch.equal(est, stems[0])
    with pytest.raises(ValueError, match="unknown artifact"):
        degrade(stems, 0, torch.Generator(), kinds=["hiss"])


def test_pair_dataset_reads_real_estimates(tmp_path):
    import tracks

    write_dataset(tmp_path / "data")
    found = tracks.open_tracks(tmp_path / "data", "train")
    est_dir = tmp_path / "est"
    for track in found:
        mixture, stems = track.load()
        for target, stem in zip(TARGET_NAMES, stems):
            write_audio(est_dir / track.name / f"{target}.wav", 0.5 * stem + 0.1 * mixture, RATE, "FLOAT")
    data = PairDataset(found, 0.5, 8, seed=3, estimates_dir=est_dir)
    first, again = data[5], data[5]
    for key in ("estimate", "mixture", "reference"):
        assert first[key].shape == (2, RATE // 2) and torch.equal(first[key], again[key])
    expected = 0.5 * first["reference"] + 0.1 * first["mixture"]
    torch.testing.assert_close(first["estimate"], expected, atol=1e-6, rtol=0)
    (est_dir / found[0].name / "drums.wav").unlink()
    with pytest.raises(SongError, match=found[0].name):
        PairDataset(found, 0.5, 8, estimates_dir=est_dir)


def test_write_estimates_with_a_registered_predictor(tmp_path):
    from enhancer.pairs import write_estimates

    names = write_dataset(tmp_path / "data", songs=2, seconds=1.0)
    folders = write_estimates(tmp_path / "data", "valid", "scaled", tmp_path / "est")
    assert [f.name for f in folders] == names[-1:]
    mixture = synth_stems(1.0, 1).sum(0)
    for target in TARGET_NAMES:
        audio, rate = read_audio(tmp_path / "est" / names[-1] / f"{target}.wav")
        assert rate == RATE and audio.shape == mixture.shape
        np.testing.assert_allclose(audio, mixture / 4, atol=1e-6)


def test_enhancer_config_specs(tmp_path):
    model = AdaptedEnhancer(randomized_base())
    model.add_adapter("vocals", SPEC)
    randomize_adapter(model, "vocals")
    save_base(model, tmp_path / "w" / "base.pth")
    save_adapter(model, "vocals", tmp_path / "w" / "vocals.pth")
    stems = synth_stems(0.5, 4)
    mix = stems.sum(0)
    vocals_spec = {"base": "w/base.pth", "adapter": "w/vocals.pth", "segment": 0.1}
    stage = load(vocals_spec, base_dir=tmp_path)  # what blend.ensemble calls per target
    vocals = stage(stems[3], mix)
    assert vocals.shape == (2, RATE // 2) and np.abs(vocals - stems[3]).max() > 1e-4
    assert stage(stems[3][:1], mix[:1]).shape == (1, RATE // 2)  # mono in, mono out
    section = {"vocals": vocals_spec, "drums": {"base": "w/base.pth"}, "bass": {}}
    enhancer = from_config(section, base_dir=tmp_path)
    assert enhancer.enabled == ["drums", "vocals"] and enhancer.adapter_for("drums") is None
    assert enhancer.stems["drums"].model is enhancer.stems["vocals"].model  # one shared base
    np.testing.assert_allclose(enhancer.enhance("vocals", stems[3], mix), vocals, atol=1e-6)
    np.testing.assert_array_equal(enhancer.enhance("bass", stems[0], mix), stems[0])
    drums = enhancer.enhance("drums", stems[1], mix)  # base alone, after the vocals adapter ran
    np.testing.assert_allclose(drums, StemEnhancer(load_base(tmp_path / "w" / "base.pth"))(stems[1], mix),
                               atol=1e-6)
    assert from_config(None) is None and from_config({"bass": {}}) is None
    with pytest.raises(ValueError, match="unknown keys"):
        load({**vocals_spec, "checkpoint": "x"}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown target"):
        from_config({"piano": vocals_spec}, base_dir=tmp_path)
    with pytest.raises(CheckpointError, match="missing.pth"):
        load({"base": "w/missing.pth"}, base_dir=tmp_path)
    manifest = {"format": "stemblend-weights/1", "weights": {"base.pth": {"sha256": "0" * 64}}}
    (tmp_path / "w" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="sha256"):
        load(vocals_spec, base_dir=tmp_path)


def test_choose_targets_enables_only_improvements():
    rng = np.random.default_rng(0)
    refs = {t: [rng.standard_normal((2, 4000)).astype(np.float32) for _ in range(2)]
            for t in ("bass", "vocals")}
    noise = {t: [0.3 * rng.standard_normal((2, 4000)).astype(np.float32) for _ in range(2)] for t in refs}
    ests = {t: [r + n for r, n in zip(refs[t], noise[t])] for t in refs}
    lookup = {(t, id(e)): (r, n) for t in refs for e, r, n in zip(ests[t], refs[t], noise[t])}

    def fake(target, est, mix):
        ref, n = lookup[(target, id(est))]
        return ref + (0.5 * n if target == "vocals" else 2.0 * n)

    enabled, table = choose_targets(fake, ests, refs, [np.zeros((2, 4000))] * 2)
    assert enabled == ["vocals"]
    assert table["vocals"]["gain"] == pytest.approx(20 * np.log10(2), abs=1e-3)
    assert table["bass"]["gain"] < 0 and not table["bass"]["enabled"]


def test_tune_section_keeps_only_helpful_targets(tmp_path):
    from enhancer.evaluate import tune_section

    save_base(PhaseEnhancer(**SMALL), tmp_path / "base.pth")  # untrained: the identity, gains are 0
    section = {t: {"base": "base.pth", "segment": 0.1} for t in ("drums", "vocals")}
    stems = synth_stems(0.3, 5)
    estimates = {t: [stems[i] + 0.1 * stems[0]] for i, t in ((1, "drums"), (3, "vocals"))}
    references = {t: [stems[i]] for i, t in ((1, "drums"), (3, "vocals"))}
    kept, table = tune_section(section, estimates, references, [stems.sum(0)], base_dir=tmp_path)
    assert kept == {} and abs(table["vocals"]["gain"]) < 1e-3
    kept, _ = tune_section(section, estimates, references, [stems.sum(0)], base_dir=tmp_path, min_gain=-1.0)
    assert kept == section


def test_train_command_resumes_and_ships(tmp_path):
    from enhancer import manifest, train

    write_dataset(tmp_path / "data", songs=3, seconds=1.5)
    small = ["--widths", "16", "24", "32", "--band", "4", "--n-fft", "512", "--n-hop", "128"]
    common = ["--data-dir", str(tmp_path / "data"), "--batch-size", "2", "--seconds", "0.5",
              "--valid-every", "1", "--valid-seconds", "1", "--threads", "1", "--seed", "3"]
    run = tmp_path / "run"
    assert train.main(common + small + ["-o", str(run), "--steps", "2"]) == 0
    assert train.main(common + small + ["-o", str(run), "--steps", "3", "--resume"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["summary"]["steps"] == 3 and [v["step"] for v in metrics["valid"]] == [0, 1, 2, 3]
    base = load_base(run / "base.pth")
    assert base.config.n_fft == 512 and "enhancer.train" in base.checkpoint["metrics"]["command"]
    adapter_run = tmp_path / "adapter"
    assert train.main(common + ["-o", str(adapter_run), "--steps", "1", "--base", str(run / "base.pth"),
                                "--adapter", "vocals", "--targets", "vocals", "--rank", "1",
                                "--modules", "out"]) == 0
    weights = tmp_path / "weights"
    entry = manifest.ship(run / "base.pth", "base", weights)
    manifest.ship(adapter_run / "vocals.pth", "vocals", weights)
    assert entry["kind"] == "enhancer-base" and set(entry["valid_sdr_with"]) >= set(TARGET_NAMES)
    assert entry["steps"] == 3 and entry["wall_time_s"] > 0
    assert entry["training_command"].endswith("--steps 3")  # the command without --resume
    section = {"vocals": {"base": "base.pth", "adapter": "vocals.pth"}}
    enhancer = from_config(section, base_dir=weights)  # sha256 checked against weights/manifest.json
    assert enhancer.adapter_for("vocals") == "vocals" and enhancer.enabled == ["vocals"]
