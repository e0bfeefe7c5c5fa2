"""Tuning runs: the machinery on member outputs given as arrays, and the CLI on a tiny song folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import models
from blend import report
from blend.cache import MemberCache
from blend.config import ConfigError, config_from_dict, load_config
from blend.evaluate import main as evaluate_main
from blend.tune import TuneSong, fit_all, main, search_wiener
from blend.wiener import WienerSettings
from core.constants import TARGETS


def array_songs(nb_songs=2, seconds=1.0):
    """Songs whose 'members' are noisy copies of the references (member b twice as noisy)."""
    songs = []
    for k in range(nb_songs):
        rng = np.random.default_rng(k)
        refs = (0.2 * rng.standard_normal((4, 2, int(seconds * 44100)))).astype(np.float32)
        estimates = [refs + (0.1 * (m + 1) * rng.standard_normal(refs.shape)).astype(np.float32)
                     for m in range(2)]
        songs.append(TuneSong(f"song{k}", lambda refs=refs: (refs.sum(0), refs), estimates))
    return songs


def test_tuning_machinery_on_arrays(tmp_path):
    config = config_from_dict({"members": [{"name": "a", "member": "x"}, {"name": "b", "member": "y"}]})
    songs = array_songs()
    result = fit_all(songs, config, np.ones((2, 4), bool), edges_hz=[1000.0], grid_step=0.25, progress=False)
    rows = result.rows
    assert {"a alone", "b alone", "equal weights", "closed-form λ", "grid-search λ"} <= set(rows)
    mean = {k: np.mean(list(v.values())) for k, v in rows.items()}
    # independent noises: the optimum weights a 4:1 (inverse noise power), better than either or equal
    assert mean["closed-form λ"] > max(mean["a alone"], mean["equal weights"]) + 0.2
    np.testing.assert_allclose(result.config.weights.values[0][:, 0], [0.8, 0.2], atol=0.05)
    assert result.timings["closed-form λ"]["seconds"] > 0 and result.timings["grid-search λ"]["step"] == 0.25
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = {"iterations": [0, 1], "softmask": [False], "residual": [False, True]}
    search_wiener(result, songs, storage, "t", 3, WienerSettings(win_len=32), space)
    assert len(result.trials) == 3 and "chosen λ + Wiener" in result.rows
    search_wiener(result, songs, storage, "t", 1, WienerSettings(win_len=32), space)  # resumes the study
    assert len(result.trials) == 4
    assert result.config.wiener.win_len == 32
    # the filter's STFT size is a grid axis too: the kept point's n_fft (hop n_fft / 4) is in the config
    search_wiener(result, songs, storage, "t-stft", None, WienerSettings(win_len=32),
                  {"iterations": [1], "softmask": [True], "residual": [False], "n_fft": [1024, 2048]})
    assert len(result.trials) == 2 and len({t["value"] for t in result.trials}) == 2  # both sizes scored
    kept = next(t for t in result.trials if t["number"] == result.wiener_trial["number"])["params"]["n_fft"]
    assert (result.config.stft.n_fft, result.config.stft.n_hop) == (kept, kept // 4)
    paths = report.write(result, songs, tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| closed-form λ" in text and "![SDR over λ](heatmap.png)" in text
    assert json.loads((tmp_path / "out" / "report.json").read_text())["chosen"] == result.chosen
    assert (tmp_path / "out" / "heatmap.png").stat().st_size > 5000 and len(paths) == 3


def write_tiny_dataset(root: Path, nb_songs=1, seconds=1.5) -> Path:
    for k in range(nb_songs):
        rng = np.random.default_rng(k)
        folder = root / f"song{k}"
        folder.mkdir(parents=True)
        stems = (0.1 * rng.standard_normal((4, int(seconds * 44100), 2))).astype(np.float32)
        for target, stem in zip(TARGETS, stems):
            sf.write(folder / f"{target}.wav", stem, 44100, subtype="FLOAT")
        sf.write(folder / "mixture.wav", stems.sum(0), 44100, subtype="FLOAT")
    return root


def tiny_checkpoints(root: Path) -> list[str]:
    torch.manual_seed(0)
    models.save_member(models.get("fnn")(hidden_size=8), root / "fnn.pth")
    models.save_member(models.get("fnn")(hidden_size=8, context=1), root / "fnn2.pth")
    return [f"fnn={root / 'fnn.pth'}", f"fnn2={root / 'fnn2.pth'}"]


def test_tune_cli_writes_a_loadable_config_and_reuses_the_cache(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "songs")
    members = tiny_checkpoints(tmp_path)
    args = ["--data-dir", str(data), "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "out"),
            "--n-trials", "2", "--grid-step", "0.5", "--wiener-win-len", "32", "-q"]
    for m in members:
        args += ["--member", m]
    assert main([*args, "--cache-only"]) == 0  # members run, nothing is tuned yet
    cached = sorted(p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == 2 and not (tmp_path / "out" / "ensemble.yaml").exists()  # one per member and song
    assert main(args) == 0
    config = load_config(tmp_path / "out" / "ensemble-all-members.yaml")
    assert config.member_names == ("fnn", "fnn2") and config.members[0].path.resolve().is_file()
    assert config.wiener.win_len == 32 and (tmp_path / "out" / "optuna.db").is_file()
    used = load_config(tmp_path / "out" / "ensemble.yaml")  # without the members whose λ is all zero
    assert set(used.member_names) <= {"fnn", "fnn2"} and used.wiener == config.wiener
    assert main(args) == 0  # second run: outputs come from the cache, the study continues
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy")) == cached
    assert "chosen λ + Wiener" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "out" / "report.json").read_text())["trials"]) == 4
    assert MemberCache(tmp_path / "cache").root.is_dir()
    # the README figures from the tuned config: members come from the same cache
    tuned = str(tmp_path / "out" / "ensemble.yaml")
    assert evaluate_main(["--data-dir", str(data), "--split", "valid", "--config", tuned, "--cache-dir",
                          str(tmp_path / "cache"), "--baselines", "scaled", "-o", str(tmp_path / "eval"),
                          "-q"]) == 0
    figures = json.loads((tmp_path / "eval" / "figures.json").read_text())
    expected = {"fnn alone", "fnn2 alone", "equal weights", "tuned λ", "tuned λ + Wiener",
                "mixture / 4 (scaled)"}
    assert set(figures["rows"]) == expected
    assert "Wiener gain (dB)" in figures["goals"] and (tmp_path / "eval" / "figures.png").is_file()
    # a narrower --wiener-space: its own study (Optuna fixes a study's choices), its own trials
    narrow = ["--wiener-space", "iterations=3", "--wiener-space", "softmask=true",
              "--wiener-space", "residual=true"]
    assert main([*args, *narrow]) == 0
    assert load_config(tmp_path / "out" / "ensemble-all-members.yaml").wiener.iterations == 3


def test_wiener_space_narrows_the_grid():
    from blend.wiener_search import WIENER_SPACE, wiener_space

    assert wiener_space(None) == WIENER_SPACE
    space = wiener_space(["iterations=1", "softmask=false", "residual=true,false", "n_fft=8192"])
    assert space == {"iterations": [1], "softmask": [False], "residual": [True, False], "n_fft": [8192]}
    for bad in ("niter=1", "iterations", "softmask=maybe"):
        with pytest.raises(SystemExit, match="--wiener-space"):
            wiener_space([bad])


def test_exclude_leaves_a_member_out(tmp_path):
    from blend.tune import build_parser, members_config

    members = tiny_checkpoints(tmp_path)
    args = build_parser().parse_args(["--data-dir", ".", "--member", members[0], "--member", members[1],
                                      "--exclude", "fnn2"])
    config = members_config(args)
    assert config.member_names == ("fnn",) and config.weights.table().tolist() == [[1.0] * 4]
    args = build_parser().parse_args(["--data-dir", ".", "--member", members[0], "--exclude", "fnn"])
    with pytest.raises(ConfigError, match="at least one member"):
        members_config(args)


def test_tune_enables_the_enhancer_only_where_it_gains(tmp_path, capsys):
    from enhancer.checkpoint import save_base
    from enhancer.model import PhaseEnhancer

    data = write_tiny_dataset(tmp_path / "songs")
    torch.manual_seed(0)
    save_base(PhaseEnhancer(n_fft=512, n_hop=128, band=4, widths=(16, 24, 32)), tmp_path / "enh" / "base.pth")
    args = ["--data-dir", str(data), "--cache-dir", str(tmp_path / "cache"), "--n-trials", "1",
            "--grid-step", "0.5", "--wiener-space", "iterations=0", "--enhancer", str(tmp_path / "enh"), "-q"]
    for m in tiny_checkpoints(tmp_path):
        args += ["--member", m]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0  # an untrained base is the identity: gain 0
    assert load_config(tmp_path / "a" / "ensemble.yaml").enhancer == {}
    assert "enabled: none" in capsys.readouterr().out
    out = tmp_path / "b" / "configs"
    assert main([*args, "-o", str(tmp_path / "b"), "--enhancer-min-gain", "-1",
                 "--write-config", str(out / "tuned.yaml")]) == 0
    text = "".join(line for line in (out / "tuned.yaml").read_text().splitlines(True) if line[0] != "#")
    assert "../../enh/base.pth" in text and str(tmp_path) not in text  # relative to the config file
    config = load_config(out / "tuned.yaml")
    assert sorted(config.enhancer) == list(TARGETS)
    assert Path(config.enhancer["vocals"]["base"]) == (tmp_path / "enh" / "base.pth").resolve()


def test_cheapest_of_best_keeps_fewer_iterations_within_the_tolerance():
    from blend.wiener_search import cheapest_of_best

    def trial(number, value, iterations, residual=False, seconds=1.0):
        return {"number": number, "value": value, "seconds": seconds,
                "params": {"iterations": iterations, "softmask": True, "residual": residual}}

    trials = [trial(0, 6.204, 2), trial(1, 6.196, 1, seconds=2.0), trial(2, 6.196, 1, residual=True),
              trial(3, 5.25, 0)]
    assert cheapest_of_best(trials)["number"] == 1            # 0.008 dB below the best, one iteration less
    assert cheapest_of_best(trials, tolerance=0.0)["number"] == 0
    assert cheapest_of_best(trials, tolerance=1.0)["number"] == 3
    with pytest.raises(ValueError):
        cheapest_of_best([])
