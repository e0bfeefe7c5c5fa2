"""blend.gap: the in-distribution vs out-of-distribution table from blend.evaluate's outputs."""

from __future__ import annotations

import json

import pytest

from blend.gap import gap_table, load_sets, main

TARGETS = ["bass", "drums", "other", "vocals"]


def write_figures(folder, rows, songs=2):
    folder.mkdir(parents=True)
    (folder / "figures.json").write_text(json.dumps({"songs": [f"s{k}" for k in range(songs)], "rows": rows}))


def test_gap_is_reference_minus_set_and_keeps_common_rows(tmp_path):
    write_figures(tmp_path / "test", {"umx alone": dict(zip(TARGETS, [4, 5, 3, 2])),
                                      "only here": dict(zip(TARGETS, [1, 1, 1, 1]))})
    write_figures(tmp_path / "ood", {"umx alone": dict(zip(TARGETS, [3, 6, 1, 2]))})
    sets = load_sets([tmp_path / "test", tmp_path / "ood"], ["test", "ood"])
    lines = gap_table(sets, TARGETS).splitlines()
    assert len(lines) == 3  # header, rule, the one common row
    assert lines[2] == "| umx alone | 3.50 | 3.00 | +1.00 | -1.00 | +2.00 | +0.00 |"


def test_cli_writes_the_plot_and_names_a_missing_folder(tmp_path, capsys):
    write_figures(tmp_path / "a", {"x": dict(zip(TARGETS, [1, 2, 3, 4]))})
    write_figures(tmp_path / "b", {"x": dict(zip(TARGETS, [0, 2, 3, 4]))})
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "gap.png")]) == 0
    assert (tmp_path / "gap.png").stat().st_size > 5_000
    assert "| x | 2.50 | 2.25 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="nowhere/figures.json"):
        main([str(tmp_path / "a"), str(tmp_path / "nowhere")])
