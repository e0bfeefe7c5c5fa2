"""The run tables of models.study: the augmentation ablation compares runs epoch by epoch."""

from __future__ import annotations

import json

import pytest

from core.errors import CheckpointError
from models.study import ablation_table


def _history(path, valid_means):
    path.mkdir()
    entries = [{"epoch": k + 1, "valid_sdr": {"mean": v}, "ood_sdr": {"mean": v - 1}} for k, v in
               enumerate(valid_means)]
    (path / "history.json").write_text(json.dumps(entries))


def test_ablation_compares_up_to_the_shorter_run(tmp_path):
    _history(tmp_path / "aug", [1.0, 2.0, 3.5, 4.0])
    _history(tmp_path / "noaug", [1.5, 2.5])
    table = ablation_table(tmp_path / "aug", tmp_path / "noaug").splitlines()
    assert table[0] == "| epoch | aug valid | noaug valid | aug OOD | noaug OOD |"
    assert len(table) == 2 + 2 + 1  # header, 2 epochs, best row
    assert table[-1] == "| best of 1-2 | 2.00 | 2.50 | 1.00 | 1.50 |"


def test_ablation_names_a_missing_run(tmp_path):
    _history(tmp_path / "aug", [1.0])
    with pytest.raises(CheckpointError, match="noaug"):
        ablation_table(tmp_path / "aug", tmp_path / "noaug")
