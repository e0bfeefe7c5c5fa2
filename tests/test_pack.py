"""``python -m submission pack`` on temporary git repositories: lfs attributes, tag, listing, 2023 layout.

Nothing here touches the kit's own repository: every test writes its own repository under
``tmp_path`` (the 2023 test copies the kit's Python packages there).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from submission.__main__ import main
from submission.pack import lfs_patterns, matches, propose_tag, updated_gitattributes

ROOT = Path(__file__).resolve().parents[1]
AICROWD = {"challenge_id": "music-demixing-challenge-ismir-2021",
           "grader_id": "evaluations-api-music-demixing", "authors": ["tester"], "description": "tiny",
           "external_dataset_used": False, "gpu": False}
SDX23 = {"challenge_id": "music-demixing-track-mdx-23", "authors": ["tester"], "description": "tiny",
         "external_dataset_used": False, "gpu": False, "labelnoise": False, "bleeding": False}
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A 2021-layout git repository with a weight file, its manifest and a 6 MB data file."""
    repo = tmp_path / "repo"
    (repo / "evaluator").mkdir(parents=True)
    (repo / "evaluator" / "music_demixing.py").write_text("class MusicDemixingPredictor: pass\n")
    (repo / "predict.py").write_text("print('hi')\n")
    (repo / "aicrowd.json").write_text(json.dumps(AICROWD))
    (repo / "apt.txt").write_text("ffmpeg\n")
    (repo / "requirements.txt").write_text("numpy\n")
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0.1.0"\n')
    (repo / ".gitignore").write_text("cache/\n")
    (repo / "cache").mkdir()
    (repo / "cache" / "ignored.bin").write_bytes(b"0" * 10)
    weights = repo / "models" / "weights"
    weights.mkdir(parents=True)
    content = bytes(range(256)) * 8
    (weights / "tiny.pth").write_bytes(content)
    (weights / "manifest.json").write_text(json.dumps(
        {"weights": {"tiny.pth": {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}}}))
    (repo / "assets").mkdir()
    (repo / "assets" / "big table.npy").write_bytes(b"\1" * (6 * 1024 * 1024))
    git(repo, "init", "-q")
    return repo


def run_pack(repo: Path, *extra: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["pack", "--repo", str(repo), "--json", *extra])
    return code, json.loads(out.getvalue())


def by_status(report: dict, status: str) -> list[str]:
    return [f"{c['name']}: {c['message']} | {c['fix']}" for c in report["checks"] if c["status"] == status]


def test_gitattributes_listing_and_commands(repo, tmp_path):
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    code, report = run_pack(repo)
    assert code == 0, by_status(report, "fail")
    attributes = (repo / ".gitattributes").read_text()
    for pattern in ("*.pth", "*.th", "*.ckpt", "*.safetensors", "*.pt"):
        assert f"{pattern} filter=lfs diff=lfs merge=lfs -text" in attributes
    assert "/assets/big[[:space:]]table.npy filter=lfs diff=lfs merge=lfs -text" in attributes
    files = {f["path"]: f for f in report["files"]}
    assert files["models/weights/tiny.pth"]["lfs"] and files["assets/big table.npy"]["lfs"]
    assert files["assets/big table.npy"]["bytes"] == 6 * 1024 * 1024
    assert not files["predict.py"]["lfs"] and not files["models/weights/manifest.json"]["lfs"]
    assert ".gitattributes" in files and "cache/ignored.bin" not in files
    assert report["lfs_bytes"] == 6 * 1024 * 1024 + 2048
    assert report["tag"] == "submission-0.1.0"
    assert report["commands"] == ["git lfs install", "git add -A",
                                  'git commit -m "StemBlend submission-0.1.0"',
                                  'git tag -am "submission-0.1.0" submission-0.1.0',
                                  "git push origin submission-0.1.0"]
    # it never commits, tags or pushes
    assert git(repo, "tag", "-l") == "" and git(remote, "for-each-ref") == ""
    assert subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True).returncode != 0
    # a second run changes nothing
    code, again = run_pack(repo)
    assert (repo / ".gitattributes").read_text() == attributes
    assert any("already sends" in c["message"] for c in again["checks"] if c["name"] == ".gitattributes")


def test_existing_gitattributes_kept_and_human_listing(repo, capsys):
    (repo / ".gitattributes").write_text("*.wav binary\n*.pth filter=lfs diff=lfs merge=lfs -text")
    assert main(["pack", "--repo", str(repo)]) == 0
    text = (repo / ".gitattributes").read_text()
    assert text.startswith("*.wav binary\n*.pth filter=lfs diff=lfs merge=lfs -text\n")
    assert text.count("*.pth ") == 1 and "*.th filter=lfs" in text
    out = capsys.readouterr().out
    assert "Nothing was pushed" in out and "git push origin submission-0.1.0" in out and "READY" in out
    assert "through git-lfs" in out


def test_dry_run_writes_nothing(repo):
    code, report = run_pack(repo, "--dry-run")
    assert code == 0
    assert not (repo / ".gitattributes").exists()
    assert any("would add 6 lfs line(s)" in c["message"] for c in report["checks"])
    assert {f["path"]: f["lfs"] for f in report["files"]}["assets/big table.npy"]


def test_tag_never_reuses_an_existing_one(repo):
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    git(repo, "tag", "submission-0.1.0")
    code, report = run_pack(repo)
    assert code == 0 and report["tag"] == "submission-0.1.0-2"
    code, report = run_pack(repo, "--version", "0.1.0")
    assert code == 1
    assert any("submission-0.1.0 already exists" in m and "0.1.0-2" in m for m in by_status(report, "fail"))
    code, report = run_pack(repo, "--version", "v2")
    assert code == 0 and report["tag"] == "submission-v2"
    assert propose_tag({"submission-1", "submission-3", "other"}, None, False)[0] == "submission-4"
    assert propose_tag(set(), None, False)[0] == "submission-1"


def test_missing_layout_file_and_ignored_weights(repo):
    (repo / "apt.txt").unlink()
    (repo / ".gitignore").write_text("cache/\n*.pth\n")
    code, report = run_pack(repo)
    assert code == 1
    failures = "\n".join(by_status(report, "fail"))
    assert "not in the upload: apt.txt" in failures
    assert "models/weights/tiny.pth: listed in a manifest but not in the upload" in failures
    assert "git add -f models/weights/tiny.pth" in failures


def test_lfs_pointer_and_bad_aicrowd_json_block_the_upload(repo):
    (repo / "models" / "weights" / "tiny.pth").write_text("version https://git-lfs.github.com/spec/v1\n")
    (repo / "aicrowd.json").write_text(json.dumps(dict(AICROWD, gpu="no")))
    code, report = run_pack(repo)
    assert code == 1
    failures = "\n".join(by_status(report, "fail"))
    assert "tiny.pth: a git-lfs pointer" in failures and "git lfs pull" in failures
    assert "'gpu' is a str" in failures


def test_gitattributes_helpers():
    new, added = updated_gitattributes("", [], Path("."))
    assert len(added) == 5 and lfs_patterns(new) == ["*.pth", "*.th", "*.ckpt", "*.safetensors", "*.pt"]
    assert matches("models/weights/x.pth", "*.pth") and not matches("x.pth.json", "*.pth")
    assert matches("assets/a b.npy", "/assets/a b.npy")
    assert not matches("other/assets/a b.npy", "/assets/a b.npy")


def copy_kit(dest: Path) -> Path:
    """The kit's Python packages, shipped weights and predict.py (no data, no venv) in a throw-away
    folder: enough for the default predictor (the ensemble) to load."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("core", "evaluator", "submission", "blend", "models", "enhancer", "augment", "tracks"):
        shutil.copytree(ROOT / package, dest / package, ignore=ignore)
    for name in ("predict.py", "requirements.txt", "apt.txt"):
        shutil.copy(ROOT / name, dest / name)
    (dest / "aicrowd.json").write_text(json.dumps(SDX23))
    return dest


def test_sdx23_user_config_wraps_the_kit_default(tmp_path):
    repo = copy_kit(tmp_path / "kit")
    code, report = run_pack(repo, "--format", "sdx23")
    assert code == 0, by_status(report, "fail")
    source = (repo / "my_submission" / "user_config.py").read_text()
    assert "from predict import DEFAULT_PREDICTOR" in source and "MySeparationModel = " in source
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["separate_music_file"]["status"] == "ok"
    assert "4 stems of shape (44100, 2) at 44100 Hz" in checks["separate_music_file"]["message"]
    assert "my_submission/user_config.py" in {f["path"] for f in report["files"]}


HAND_WRITTEN = '''
import numpy as np


class Broken:
    instruments = ["bass", "drums", "other", "vocals"]

    def separate_music_file(self, mixed_sound_array, sample_rate):
        half = mixed_sound_array[: len(mixed_sound_array) // 2, :1]
        return {i: half for i in self.instruments[:3]}, {i: 22050 for i in self.instruments}


MySeparationModel = Broken
'''


def test_sdx23_hand_written_config_is_kept_and_checked(tmp_path):
    repo = tmp_path / "sdx"
    (repo / "my_submission").mkdir(parents=True)
    (repo / "my_submission" / "user_config.py").write_text(HAND_WRITTEN)
    (repo / "aicrowd.json").write_text(json.dumps(SDX23))
    (repo / "requirements.txt").write_text("numpy\n")
    code, report = run_pack(repo, "--format", "sdx23")
    assert code == 1
    assert (repo / "my_submission" / "user_config.py").read_text() == HAND_WRITTEN
    failure = next(c for c in report["checks"] if c["name"] == "separate_music_file")["message"]
    assert "bass has shape (22050, 1), the input (44100, 2)" in failure
    assert "no array for vocals" in failure and "rate 22050, the input 44100" in failure
    # one that cannot even import
    (repo / "my_submission" / "user_config.py").write_text("import not_a_package_xyz\n")
    code, report = run_pack(repo, "--format", "sdx23")
    failure = next(c for c in report["checks"] if c["name"] == "separate_music_file")["message"]
    assert code == 1 and "does not work offline" in failure and "not_a_package_xyz" in failure
