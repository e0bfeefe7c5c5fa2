"""blend/: λ weights, block-wise STFT, the windowed Wiener filter, the closed-form fit, the config,
the chunked ensemble and the member-output cache. Member outputs are plain arrays here; the
predictor and the tuning runs are in test_blend_predictor.py and test_blend_tune.py."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from blend import wiener as wiener_mod
from blend.cache import MemberCache, song_key
from blend.config import DEFAULT_CONFIG, ConfigError, config_from_dict, load_config, save_config
from blend.ensemble import Ensemble
from blend.fit import (
    fit_weights,
    grid_search,
    grid_search_stats,
    nnls_simplex,
    sdr_from_stats,
    simplex_grid,
    song_stats,
)
from blend.render import Renderer, StftSettings, fold_residual
from blend.stft import FrameGrid, OverlapAdd, analyze, hann, istft, stft, take
from blend.weights import WeightsError, blend_time, equal_weights, make_weights, one_hot
from blend.wiener import WienerError, WienerSettings, filter_song, filter_song_whole
from core.constants import TARGETS
from core.metrics import global_sdr

RATE = 44100
M2 = ("a", "b")


def noise(shape, seed=0, scale=0.3):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def problem(nb_members=2, seconds=1.0, seed=0):
    """Random references, their mixture, and noisy member estimates."""
    length = int(seconds * RATE)
    refs = noise((4, 2, length), seed) * np.array([1.0, 0.6, 0.4, 0.8], np.float32)[:, None, None]
    estimates = [refs + noise(refs.shape, seed + 1 + m, 0.2 * (m + 1)) for m in range(nb_members)]
    return refs.sum(0), refs, estimates


# -- weights ------------------------------------------------------------------------------------
def test_weights_are_normalised_per_target():
    w = make_weights([[1, 3, 0, 2], [3, 1, 5, 2]], M2, TARGETS)
    np.testing.assert_allclose(w.table().sum(0), 1.0)
    np.testing.assert_allclose(w.table()[:, 0], [0.25, 0.75])
    np.testing.assert_allclose(w.table()[:, 2], [0.0, 1.0])
    assert not w.values.flags.writeable
    np.testing.assert_allclose(equal_weights(M2, TARGETS).table(), 0.5)
    banded = make_weights(np.ones((3, 2, 4)), M2, TARGETS, edges_hz=[200, 3000])
    np.testing.assert_allclose(banded.values.sum(1), 1.0)


@pytest.mark.parametrize("values, kwargs, message", [
    ([[1, np.nan, 1, 1], [1, 1, 1, 1]], {}, "member 'a' for target 'drums' is not finite"),
    ([[1, 1, 1, np.inf], [1, 1, 1, 1]], {}, "not finite"),
    ([[1, 1, -0.5, 1], [1, 1, 1, 1]], {}, "member 'a' for target 'other' is negative"),
    ([[1, 0, 1, 1], [1, 0, 1, 1]], {}, "target 'drums' sum to zero"),
    ([[1, 1, 1, 1]], {}, "there are 2 members"),
    ([[1, 1, 1], [1, 1, 1]], {}, "4 targets"),
    ([[[1] * 4, [1] * 4]], {"edges_hz": [500]}, "1 band edges need 2 weight tables"),
    ([[[1] * 4] * 2] * 3, {"edges_hz": [3000, 500]}, "strictly increasing"),
    ([[[1] * 4] * 2] * 2, {"edges_hz": [30000]}, "must lie in"),
    ([[[1] * 4] * 2, [[1, 0, 1, 1], [1, 0, 1, 1]]], {"edges_hz": [500]}, "in band 1 (500 Hz - Nyquist)"),
    ([[1, 1, 1, 1], [1, 1, 1, 1]], {"available": [[1, 1, 1, 1], [1, 1, 1, 0]]},
     "member 'b' does not estimate target 'vocals'"),
    ("abc", {}, "not a numeric table"),
])
def test_each_weight_validation_error(values, kwargs, message):
    with pytest.raises(WeightsError) as err:
        make_weights(values, M2, TARGETS, **kwargs)
    assert message in str(err.value)


def test_one_hot_weights_reproduce_that_member_exactly():
    mixture, _, estimates = problem(3)
    names = ("a", "b", "c")
    for m, name in enumerate(names):
        out = blend_time(estimates, one_hot(names, TARGETS, name))
        np.testing.assert_array_equal(out, estimates[m])
        # per band, the same member in every band: through the STFT, up to float rounding
        tables = np.stack([one_hot(names, TARGETS, name).table()] * 3)
        banded = make_weights(tables, names, TARGETS, [300, 5000])
        out = Renderer(banded).render(estimates, mixture)
        # atol: 4e-7 usually; up to 8e-5 (-82 dB) was seen on the first multi-threaded render of a
        # process, never with one thread (float rounding of torch's CPU kernels, not reproducible)
        np.testing.assert_allclose(out, estimates[m], atol=1e-4)


def test_band_weights_pick_each_band_from_its_member():
    mixture, _, estimates = problem(2)
    w = make_weights([[[1, 1, 1, 1], [0, 0, 0, 0]], [[0, 0, 0, 0], [1, 1, 1, 1]]], M2, TARGETS, [2000])
    out = Renderer(w).render(estimates, mixture)
    spec, a, b = stft(out), stft(estimates[0]), stft(estimates[1])
    freqs = np.arange(spec.shape[-2]) * RATE / 4096
    low, high = freqs < 1500, freqs > 2500  # away from the edge (window leakage)
    assert torch.allclose(spec[..., low, :], a[..., low, :], atol=2e-2 * a.abs().max())
    assert torch.allclose(spec[..., high, :], b[..., high, :], atol=2e-2 * b.abs().max())


# -- block-wise STFT ------------------------------------------------------------------------------
@pytest.mark.parametrize("length, n_hop", [(5000, 256), (44100 + 17, 256), (44100 + 17, 384)])
def test_blocks_equal_whole_stft_and_reconstruct(length, n_hop):
    """Block-wise analysis = one whole STFT; overlap-add restores the signal, whatever the spectrum's
    memory layout (frames-major as torch.stft leaves it, or bins-major) and whether or not the hop
    divides n_fft (shifted adds vs. fold)."""
    x = noise((2, length), 3)
    grid, window = FrameGrid(length, 1024, n_hop), hann(1024)
    ola = OverlapAdd(np.zeros_like(x), grid, window)
    for k0, k1 in grid.blocks(7):
        s0, s1 = grid.sample_range(k0, k1)
        spec = analyze(take(x, s0, s1, length), 1024, n_hop, window)
        assert torch.allclose(spec, stft(x, 1024, n_hop)[..., k0:k1], atol=1e-4)
        ola.add(spec if k0 % 2 else spec.contiguous(), k0)
    np.testing.assert_allclose(ola.close(), x, atol=1e-5)
    pieces = []  # streaming: the same samples, handed over in order, never the whole song at once
    ola = OverlapAdd(None, grid, window, shape=(2,), emit=lambda start, s: pieces.append((start, s.copy())))
    for k0, k1 in grid.blocks(7):
        ola.add(analyze(take(x, *grid.sample_range(k0, k1), length), 1024, n_hop, window), k0)
    assert ola.close() is None and [p[0] for p in pieces][0] == 0 and len(pieces) > 2
    assert all(a + p.shape[-1] == b for (a, p), (b, _) in zip(pieces, pieces[1:]))
    assert max(p.shape[-1] for _, p in pieces) < length and ola.acc.shape[-1] < length
    np.testing.assert_allclose(np.concatenate([p for _, p in pieces], -1), x, atol=1e-5)
    np.testing.assert_allclose(istft(stft(x, 1024, n_hop), length, 1024, n_hop), x, atol=1e-5)


# -- Wiener filter (norbert-style properties) -------------------------------------------------------
SMALL = {"n_fft": 256, "n_hop": 64}


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), length=st.integers(200, 3000), channels=st.integers(1, 2),
       nb_targets=st.integers(1, 4), iterations=st.integers(0, 2), softmask=st.booleans(),
       silent=st.booleans())
def test_wiener_with_residual_sums_to_the_mixture(seed, length, channels, nb_targets, iterations, softmask,
                                                   silent):
    rng = np.random.default_rng(seed)
    mixture = (rng.standard_normal((channels, length)) * (0 if silent else 1)).astype(np.float32)
    estimates = np.abs(rng.standard_normal((nb_targets, channels, length))).astype(np.float32)
    before = (mixture.copy(), estimates.copy())
    s = WienerSettings(iterations=iterations, softmask=softmask, residual=True, win_len=8)
    out = filter_song(estimates, mixture, s, **SMALL)
    assert out.shape == (nb_targets + 1, channels, length)
    assert np.all(np.isfinite(out))
    scale = np.abs(mixture).max() + np.abs(estimates).max()
    np.testing.assert_allclose(out.sum(0), mixture, atol=1e-3 * np.abs(mixture).max() + 1e-5 * scale)
    np.testing.assert_array_equal(mixture, before[0])  # inputs are not mutated
    np.testing.assert_array_equal(estimates, before[1])


@pytest.mark.parametrize("engine", wiener_mod.ENGINES)
@pytest.mark.parametrize("iterations, channels, level", [(0, 2, 3), (1, 2, 3), (2, 2, 300), (1, 1, 30)])
@pytest.mark.parametrize("softmask, residual", [(False, False), (False, True), (True, True)])
def test_filter_frames_equals_openunmix_wiener(engine, iterations, channels, level, softmask, residual):
    from openunmix.filtering import wiener

    spec = torch.randn(3, channels, 65, 9, dtype=torch.complex64)
    mix = level * torch.randn(channels, 65, 9, dtype=torch.complex64)  # level > 10: wiener's rescaling
    s = WienerSettings(iterations=iterations, softmask=softmask, residual=residual, engine=engine)
    ours = wiener_mod.filter_frames(spec, mix, s)
    theirs = wiener(spec.abs().permute(3, 2, 1, 0), torch.view_as_real(mix.permute(2, 1, 0)).contiguous(),
                    iterations, softmask=softmask, residual=residual)
    theirs = torch.view_as_complex(theirs.permute(4, 2, 1, 0, 3).contiguous())
    torch.testing.assert_close(ours, theirs, atol=1e-4 * level, rtol=1e-4)
    mix[:, :4] = 0  # digitally silent bins stay silent (openunmix's own atan2 writes 1 there)
    out = wiener_mod.filter_frames(spec, mix, s)
    if softmask or iterations:
        assert torch.all(out[:, :, :4] == 0)
    if residual:  # and the sources still sum to the (silent) mixture there
        torch.testing.assert_close(out.sum(0)[:, :4], mix[:, :4], atol=1e-5, rtol=0)


@pytest.mark.parametrize("iterations", [0, 2])
def test_wiener_on_silence_does_not_fail(iterations):
    zeros = np.zeros((4, 2, 6000), np.float32)
    out = filter_song(zeros, zeros[0], WienerSettings(iterations=iterations), **SMALL)
    assert np.all(out == 0)
    mixture = noise((2, 6000))  # silent estimates under a real mixture
    out = filter_song(zeros, mixture, WienerSettings(iterations=iterations, residual=True), **SMALL)
    assert np.all(np.isfinite(out))
    short = filter_song(zeros[..., :10], mixture[:, :10], WienerSettings(iterations=iterations))
    assert short.shape == (4, 2, 10) and np.all(np.isfinite(short))


@pytest.mark.parametrize("channels", [1, 2])
def test_native_em_equals_openunmix_em_and_leaves_inputs_alone(channels):
    from openunmix.filtering import expectation_maximization

    from blend.em import em, em_from_gains

    g = torch.Generator().manual_seed(channels)
    y = torch.randn(4, channels, 129, 40, dtype=torch.complex128, generator=g)
    x = y.sum(0) + 0.3 * torch.randn(channels, 129, 40, dtype=torch.complex128, generator=g)
    before = (y.clone(), x.clone())
    for scale in (1.0, 7.5):
        ours = em(y, x, 3, eps=1e-10, scale=scale)
        ref = expectation_maximization(torch.view_as_real(y / scale).permute(3, 2, 1, 4, 0).contiguous(),
                                       torch.view_as_real((x / scale).permute(2, 1, 0)).contiguous(), 3)[0]
        ref = torch.view_as_complex(ref.permute(4, 2, 1, 0, 3).contiguous()) * scale
        torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-9)
    assert torch.equal(y, before[0]) and torch.equal(x, before[1])
    x[..., :3] = 0  # em_from_gains: the start gain·carrier is never built
    for carrier in (torch.where(x == 0, torch.ones((), dtype=x.dtype), torch.sgn(x)), x):
        start = y.abs() * carrier
        torch.testing.assert_close(em_from_gains(y.abs(), carrier, x, 2, scale=3.0),
                                   em(start, x, 2, scale=3.0), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="1 or 2 channels"):
        em(torch.ones(2, 3, 4, 5, dtype=torch.complex64), torch.ones(3, 4, 5, dtype=torch.complex64), 1)


def test_wiener_settings_are_validated():
    with pytest.raises(WienerError, match="iterations"):
        WienerSettings(iterations=-1)
    with pytest.raises(WienerError, match="engine"):
        WienerSettings(engine="norbert")
    with pytest.raises(WienerError, match="unknown wiener settings"):
        WienerSettings.from_dict({"niter": 1})
    mixture, _, estimates = problem(1, 0.2)
    with pytest.raises(WienerError, match="EM needs at least two sources"):
        filter_song(estimates[0][:1], mixture, WienerSettings(iterations=1))
    with pytest.raises(WienerError, match="to match the mixture"):
        filter_song(estimates[0][..., :100], mixture)


@pytest.mark.parametrize("iterations, softmask, win_len", [(0, False, 16), (0, True, 16), (1, False, None),
                                                           (1, False, 10_000), (2, True, 16)])
def test_windowed_wiener_equals_the_whole_song_one(iterations, softmask, win_len):
    """Window by window (constant memory) = umx's way (whole STFT, EM on win_len-frame windows)."""
    mixture, _, estimates = problem(1, 1.5)
    s = WienerSettings(iterations=iterations, softmask=softmask, residual=True, win_len=win_len)
    a = filter_song(estimates[0], mixture, s)
    b = filter_song_whole(estimates[0], mixture, s)
    np.testing.assert_allclose(a, b, atol=2e-5 * np.abs(b).max())
    if iterations == 0 and win_len:  # no EM: the windows do not matter at all
        whole = filter_song_whole(estimates[0], mixture, WienerSettings(0, softmask, True, None))
        np.testing.assert_allclose(a, whole, atol=2e-5 * np.abs(b).max())


def test_windowed_wiener_memory_does_not_grow_with_the_song(monkeypatch):
    frames_seen = []
    original = wiener_mod.filter_frames

    def spy(spec, mix_spec, settings):
        frames_seen.append(spec.shape[-1])
        return original(spec, mix_spec, settings)

    monkeypatch.setattr(wiener_mod, "filter_frames", spy)
    extra = []
    for seconds in (2, 8):
        mixture, _, estimates = problem(1, seconds)
        tracemalloc.start()
        out = filter_song(estimates[0], mixture, WienerSettings(iterations=1, win_len=20))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        extra.append(peak - out.nbytes)  # what the filter needs beyond its output buffer
    assert max(frames_seen) < 30  # the STFT is never taken over more than one window (+ a merged tail)
    assert extra[1] < 1.2 * extra[0] + (1 << 20), f"working memory grew: {extra} bytes"


# -- fitting λ --------------------------------------------------------------------------------------
def test_closed_form_fit_recovers_known_weights():
    rng = np.random.default_rng(4)
    names = ("a", "b", "c")
    true = rng.dirichlet(np.ones(3), size=4).T  # (members, targets)
    songs = []
    for seed in range(3):
        estimates = [noise((4, 2, 20_000), 10 * seed + m) for m in range(3)]
        songs.append((estimates, blend_time(estimates, make_weights(true, names, TARGETS))))
    stats = [song_stats(e, r) for e, r in songs]
    fitted = fit_weights(stats, names, TARGETS)
    np.testing.assert_allclose(fitted.table(), true, atol=1e-6)
    assert np.all(sdr_from_stats(stats[0], fitted.table()) > 60)
    grid, sdr = grid_search(songs, names, TARGETS, step=0.1)
    assert np.all(grid.table() * 10 == np.round(grid.table() * 10))  # on the grid
    np.testing.assert_allclose(grid.table(), true, atol=0.15)  # near the truth, and worse than the fit
    assert np.all(sdr < np.mean([sdr_from_stats(s, fitted.table()) for s in stats], axis=0))
    assert np.all(sdr > 10)
    blended = blend_time(songs[0][0], grid)
    expected = [global_sdr(r, e) for r, e in zip(songs[0][1], blended)]
    np.testing.assert_allclose(sdr_from_stats(stats[0], grid.table()), expected, atol=1e-3)


def test_grid_search_from_statistics_equals_brute_force():
    rng = np.random.default_rng(7)
    names = ("a", "b", "c")
    songs = []
    for seed in range(2):
        ref = noise((4, 2, 8_000), 50 + seed)
        estimates = [ref + rng.uniform(0.2, 1.5) * noise((4, 2, 8_000), 10 * seed + m) for m in range(3)]
        songs.append((estimates, ref))
    stats = [song_stats(e, r) for e, r in songs]
    available = np.ones((3, 4), bool)
    available[2, 1] = False  # a member without drums: never weighted there
    brute, brute_sdr = grid_search(songs, names, TARGETS, step=0.1, available=available)
    fast, fast_sdr = grid_search_stats(stats, names, TARGETS, step=0.1, available=available)
    np.testing.assert_allclose(fast.table(), brute.table())
    np.testing.assert_allclose(fast_sdr, brute_sdr, atol=1e-3)
    assert fast.table()[2, 1] == 0


def test_closed_form_fit_per_band_recovers_known_weights():
    names = M2
    true = np.array([[[0.8, 0.2, 0.5, 1.0], [0.2, 0.8, 0.5, 0.0]],   # below 2 kHz
                     [[0.1, 0.6, 0.3, 0.0], [0.9, 0.4, 0.7, 1.0]]])  # above
    w = make_weights(true, names, TARGETS, [2000])
    mixture, _, estimates = problem(2, 1.0, seed=7)
    reference = Renderer(w).render(estimates, mixture)
    stats = [song_stats(estimates, reference, [2000])]
    np.testing.assert_allclose(fit_weights(stats, names, TARGETS, [2000]).values, true, atol=0.01)


def test_nnls_simplex_edge_cases():
    np.testing.assert_allclose(nnls_simplex(np.ones((1, 1)), np.ones(1)), [1.0])
    lam = nnls_simplex(np.ones((2, 2)), np.ones(2))  # identical members: any split, still on the simplex
    assert lam.sum() == pytest.approx(1.0) and np.all(lam >= 0)
    lam = nnls_simplex(np.eye(2), np.array([2.0, -1.0]))  # unconstrained optimum outside the simplex
    np.testing.assert_allclose(lam, [1.0, 0.0], atol=1e-6)
    assert len(simplex_grid(3, 0.1)) == 66
    with pytest.raises(ValueError, match="divide 1"):
        simplex_grid(2, 0.3)


# -- config -----------------------------------------------------------------------------------------
def config_dict(**changes):
    d = {"members": [{"name": "a", "checkpoint": "a.pth"},
                     {"name": "b", "member": "fnn", "kwargs": {"hidden_size": 8}}],
         "bands": {"edges_hz": [500.0], "weights": [{"a": [1, 2, 3, 4], "b": [1, 1, 1, 1]},
                                                     {"a": {"bass": 1, "vocals": 1}, "b": [1, 1, 1, 1]}]},
         "wiener": {"iterations": 2, "softmask": True, "residual": True, "residual_to": "other",
                    "win_len": 64},
         "runtime": {"chunk_seconds": 30, "context_seconds": 1}}
    d.update(changes)
    return d


def test_config_round_trip(tmp_path):
    path = tmp_path / "sub" / "ensemble.yaml"
    config = config_from_dict(config_dict(), tmp_path)
    save_config(config, path, header="made by a test")
    assert path.read_text().startswith("# made by a test\n")
    again = load_config(path)
    assert again.members[0].path.resolve() == (tmp_path / "a.pth").resolve()
    assert again.to_dict(tmp_path) == config.to_dict(tmp_path)
    np.testing.assert_allclose(again.weights.values, config.weights.values)
    assert again.wiener == config.wiener and again.residual_to == "other"
    assert again.runtime.chunk_seconds == 30 and again.weights.edges_hz == (500.0,)
    plain = config_from_dict({"members": [{"name": "a", "checkpoint": "a.pth"}], "wiener": None})
    assert plain.wiener is None and plain.weights.table().tolist() == [[1.0] * 4]
    assert load_config(DEFAULT_CONFIG).targets == TARGETS


@pytest.mark.parametrize("changes, message", [
    ({"colour": 1}, "unknown keys ['colour']"),
    ({"members": []}, "'members' must be a non-empty list"),
    ({"members": [{"name": "a", "checkpoint": "x"}, {"name": "a", "checkpoint": "y"}]}, "duplicate member"),
    ({"members": [{"name": "a"}]}, "give exactly one of 'checkpoint'"),
    ({"bands": None, "weights": {"a": [1, 1, 1, 1]}}, "missing ['b']"),
    ({"bands": None, "weights": {"a": [1, 1, 1, 1], "b": [1, 1]}}, "one weight per target"),
    ({"bands": None, "weights": {"a": [0, 1, 1, 1], "b": [0, 1, 1, 1]}}, "'bass' sum to zero"),
    ({"wiener": {"iterations": 1, "residual_to": "piano"}}, "residual_to must be a target"),
    ({"wiener": {"niter": 1}}, "unknown wiener settings"),
    ({"enhancer": {"piano": {}}}, "enhancer for unknown targets"),
])
def test_config_errors_name_the_file(tmp_path, changes, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config_dict(**changes)))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("members: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")


# -- the chunked ensemble ---------------------------------------------------------------------------
class PointwiseMember(torch.nn.Module):
    """A member whose output at a sample depends on that sample only (chunking cannot change it)."""

    sample_rate = RATE

    def __init__(self, gains, targets=TARGETS):
        super().__init__()
        self.gains, self.targets = np.asarray(gains, np.float32), tuple(targets)

    def separate(self, mix, segment=None, overlap=None):
        mix = np.asarray(mix)
        return self.gains[:, None, None] * mix[None] + 0.2 * mix[None] ** 2


@pytest.mark.parametrize("wiener, bands", [
    (None, False), ({"iterations": 1, "residual": True, "win_len": 24}, True),
    ({"iterations": 0, "win_len": 24}, False)])
def test_chunked_ensemble_equals_whole_song_rendering(wiener, bands):
    d = {"members": [{"name": "a", "member": "x"}, {"name": "b", "member": "y"}],
         "weights": {"a": [1, 2, 3, 4], "b": [1, 1, 1, 1]}, "wiener": wiener,
         "runtime": {"chunk_seconds": 1.0, "context_seconds": 0.2}}
    if bands:
        d["bands"] = {"edges_hz": [800], "weights": [d["weights"], {"a": [1, 0, 0, 1], "b": [1, 1, 1, 1]}]}
    config = config_from_dict(d)
    members = [PointwiseMember([0.1, 0.2, 0.3, 0.4]), PointwiseMember([0.4, 0.1, 0.2, 0.3])]
    mixture = noise((2, int(3.3 * RATE)), 5)
    ensemble = Ensemble(config, members=members)
    out = ensemble.separate(mixture)
    estimates = [m.separate(mixture) for m in members]
    whole = Renderer(ensemble.weights, config.wiener, StftSettings()).render(estimates, mixture)
    whole = fold_residual(whole, TARGETS, config.residual_to)
    np.testing.assert_allclose(out, whole, atol=1e-6)
    assert out.shape == (4, 2, mixture.shape[1]) and ensemble.timings["members"] > 0
    assert ensemble.separate(mixture[:, :100]).shape == (4, 2, 100)  # shorter than one STFT frame
    counts = []
    for song in (mixture, mixture[:, :100]):  # streamed: the same samples, in order, in small blocks
        blocks = []
        def sink(start, block, b=blocks):
            b.append((start, block.copy()))
        assert ensemble.separate(song, sink=sink) is None
        starts = [start for start, _ in blocks]
        assert starts[0] == 0 and starts == sorted(set(starts))
        streamed = np.concatenate([block for _, block in blocks], axis=-1)
        np.testing.assert_array_equal(streamed, ensemble.separate(song))
        counts.append(len(blocks))
    assert counts[0] > 3 and counts[1] == 1  # 1 s chunks of a 3.3 s song; the short song at once


def test_ensemble_refuses_weight_on_a_target_a_member_lacks():
    config = config_from_dict({"members": [{"name": "a", "member": "x"}, {"name": "v", "member": "y"}]})
    members = [PointwiseMember([1, 1, 1, 1]), PointwiseMember([1], targets=("vocals",))]
    with pytest.raises(WeightsError, match="member 'v' does not estimate target 'bass'"):
        Ensemble(config, members=members)
    config = config_from_dict({"members": config_dict()["members"][:1] + [{"name": "v", "member": "y"}],
                               "weights": {"a": [1, 1, 1, 1], "v": [0, 0, 0, 1]}, "wiener": None})
    out = Ensemble(config, members=members).separate(noise((2, 1000)))
    assert out.shape == (4, 2, 1000)


# -- cache ------------------------------------------------------------------------------------------
def test_member_cache_computes_once_per_member_and_song(tmp_path):
    cache, calls = MemberCache(tmp_path), []
    mixture = noise((2, 1000))

    def compute():
        calls.append(1)
        return np.stack([mixture] * 4)

    key = song_key(mixture)
    first = cache.get_or_compute("ab" * 32, "song/1", key, compute)
    second = cache.get_or_compute("ab" * 32, "song/1", key, compute)
    np.testing.assert_array_equal(first, second)
    assert len(calls) == 1 and isinstance(second, np.memmap)
    assert song_key(mixture * 2) != key
    cache.get_or_compute("cd" * 32, "song/1", key, compute)  # another checkpoint: computed again
    assert len(calls) == 2 and not list(tmp_path.rglob("*.tmp*"))


def test_without_unused_drops_zero_weight_members():
    config = config_from_dict(
        {
            "members": [{"name": n, "member": "nussl"} for n in ("a", "b", "c")],
            "weights": {"a": [1, 0, 0.5, 0], "b": [0, 0, 0, 0], "c": [0, 1, 0.5, 1]},
        }
    )
    pruned = config.without_unused()
    assert pruned.member_names == ("a", "c")
    np.testing.assert_allclose(pruned.weights.table(), [[1, 0, 0.5, 0], [0, 1, 0.5, 1]])
    assert pruned.without_unused() is pruned


def test_window_envelope_inside_the_song_is_its_periodic_pattern():
    from blend.stft import envelope

    grid, window = FrameGrid(50_000, 1024, 256), hann(1024)
    whole = envelope(grid, 0, grid.length, window)  # the general formula (the block touches both ends)
    for s0, s1 in [(2000, 9000), (30_000, 47_000), (0, 3000), (47_000, 50_000)]:
        np.testing.assert_allclose(envelope(grid, s0, s1, window), whole[s0:s1], rtol=1e-12)
