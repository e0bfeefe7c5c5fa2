"""Checks of a submission that need no run: ``aicrowd.json`` and the shipped weight files.

Every check returns :class:`Check` results: a name, a status (``ok``, ``warn`` or ``fail``), what
was found, and for a problem what to fix. ``python -m submission check`` prints them and exits
non-zero when one fails; ``python -m submission pack`` reuses the weight checks.

Weights are described by ``manifest.json`` files under ``models/`` (and ``enhancer/``), the layout
:mod:`models.manifest` writes::

    {"weights": {"umx.pth": {"sha256": "...", "size": 1234567, ...}}}

(file names relative to the manifest's folder). A list of ``{"path": ..., "sha256": ...}`` entries
is accepted too. Each listed file must exist, must not be a git-lfs pointer (what a clone without
``git lfs`` leaves in place of the weights), and must match its sha256 (and size when given).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

#: first line of a git-lfs pointer file
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
#: weight files always go through git-lfs
WEIGHT_PATTERNS = ("*.pth", "*.th", "*.ckpt", "*.safetensors", "*.pt")
#: folders searched for ``manifest.json`` files listing weights
MANIFEST_ROOTS = ("models", "enhancer")
#: folders never searched for weight files (environments, generated data, caches)
SKIP_DIRS = {".git", ".venv", "venv", "data", "runs", "cache", "__pycache__", ".pytest_cache",
             ".ruff_cache", "node_modules"}

#: aicrowd.json: key -> (type, required value or None), per challenge layout
AICROWD_SCHEMAS = {
    "mdx21": {
        "challenge_id": (str, None),
        "grader_id": (str, "evaluations-api-music-demixing"),
        "authors": (list, None),
        "description": (str, None),
        "external_dataset_used": (bool, None),
        "gpu": (bool, None),
    },
    "sdx23": {
        "challenge_id": (str, None),
        "authors": (list, None),
        "description": (str, None),
        "external_dataset_used": (bool, None),
        "gpu": (bool, None),
        "labelnoise": (bool, None),
        "bleeding": (bool, None),
    },
}


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: str  # "ok", "warn" or "fail"
    message: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# -- aicrowd.json ----------------------------------------------------------------------------------
def _type_name(value) -> str:
    return {bool: "bool", str: "str", list: "list", int: "int", float: "float", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)


def check_aicrowd_json(repo: str | Path, layout: str = "mdx21") -> list[Check]:
    """``aicrowd.json`` exists, parses, and has every key of ``layout`` with the right type.

    Args:
        repo: the submission's root folder.
        layout: ``"mdx21"`` (MDX 2021: ``grader_id`` must be ``evaluations-api-music-demixing``)
            or ``"sdx23"`` (SDX 2023: ``labelnoise`` and ``bleeding`` instead of ``grader_id``).
    """
    path = Path(repo) / "aicrowd.json"
    name = "aicrowd.json"
    schema = AICROWD_SCHEMAS[layout]
    if not path.is_file():
        keys = ", ".join(schema)
        return [Check(name, "fail", f"{path}: file does not exist",
                      f"create it with the keys {keys} (see docs/upload.md)")]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [Check(name, "fail", f"{path}: not valid JSON ({exc})", "fix the JSON syntax")]
    if not isinstance(data, dict):
        return [Check(name, "fail", f"{path}: top level is a {_type_name(data)}, not an object",
                      "make it a JSON object {...}")]
    problems, fixes = [], []
    for key, (kind, required) in schema.items():
        if key not in data:
            problems.append(f"missing key '{key}'")
            fixes.append(f"add \"{key}\": " + (json.dumps(required) if required else f"<{kind.__name__}>"))
            continue
        value = data[key]
        # bool is an int subclass in Python but not in JSON: compare the exact type
        if type(value) is not kind:
            problems.append(f"'{key}' is a {_type_name(value)} ({json.dumps(value)}), "
                            f"expected {kind.__name__}")
            hint = " (true or false, no quotes)" if kind is bool else ""
            fixes.append(f"make '{key}' a {kind.__name__}{hint}")
        elif required is not None and value != required:
            problems.append(f"'{key}' is {json.dumps(value)}, the grader expects {json.dumps(required)}")
            fixes.append(f"set \"{key}\": {json.dumps(required)}")
    if problems:
        return [Check(name, "fail", f"{path}: " + "; ".join(problems), "; ".join(fixes))]
    checks = [Check(name, "ok", f"{len(schema)} keys present with the right types ({layout})")]
    if not data["authors"] or not all(isinstance(a, str) and a.strip() for a in data["authors"]):
        checks.append(Check(name, "warn", f"{path}: 'authors' is empty or holds non-text entries",
                            "list your AIcrowd user names as strings"))
    if not data["description"].strip():
        checks.append(Check(name, "warn", f"{path}: 'description' is empty", "describe the submission"))
    return checks


# -- weights -----------------------------------------------------------------------------------
def is_lfs_pointer(path: str | Path) -> bool:
    """Whether ``path`` is a git-lfs pointer file instead of the real content."""
    try:
        with open(path, "rb") as stream:
            return stream.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_weight_file(path: str | Path) -> bool:
    """Whether the file name matches one of :data:`WEIGHT_PATTERNS`."""
    name = Path(path).name
    return any(fnmatch.fnmatch(name, pattern) for pattern in WEIGHT_PATTERNS)


def walk_files(repo: str | Path, under: str | Path | None = None):
    """Files below ``repo`` (or ``repo/under``), skipping :data:`SKIP_DIRS`; yields absolute paths."""
    root = Path(repo) / under if under else Path(repo)
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for file in sorted(files):
            yield Path(folder) / file


def find_manifests(repo: str | Path) -> list[Path]:
    """Every ``manifest.json`` under :data:`MANIFEST_ROOTS` of ``repo``."""
    return [p for root in MANIFEST_ROOTS for p in walk_files(repo, root) if p.name == "manifest.json"]


def manifest_entries(manifest: str | Path) -> list[dict]:
    """The weight files a manifest lists: ``[{"path": Path, "sha256": str, "size": int | None}]``.

    Raises:
        ValueError: unreadable JSON, or an entry without a sha256 (message names the manifest).
    """
    manifest = Path(manifest)
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{manifest}: not valid JSON ({exc})") from None
    table = data.get("weights", data.get("files")) if isinstance(data, dict) else data
    if isinstance(table, dict):
        items = [dict(entry, path=entry.get("path", name)) if isinstance(entry, dict) else {"path": name}
                 for name, entry in table.items()]
    elif isinstance(table, list):
        items = [entry if isinstance(entry, dict) else {"path": entry} for entry in table]
    else:
        raise ValueError(f"{manifest}: no 'weights' table "
                         "(expected {\"weights\": {FILE: {\"sha256\": ...}}})")
    entries = []
    for item in items:
        rel = item.get("path") or item.get("file")
        if not isinstance(rel, str) or not isinstance(item.get("sha256"), str):
            raise ValueError(f"{manifest}: entry {json.dumps(item)[:120]} has no file name and sha256")
        entries.append({"path": manifest.parent / rel, "sha256": item["sha256"].lower(),
                        "size": item.get("size") if isinstance(item.get("size"), int) else None})
    return entries


def check_weight_file(path: Path, sha256: str, size: int | None, repo: Path, manifest: Path) -> Check:
    """One listed weight file: exists, is not an lfs pointer, has the listed size and sha256."""
    rel = _rel(path, repo)
    where = _rel(manifest, repo)
    if not path.is_file():
        return Check(f"weights {rel}", "fail", f"{rel}: listed in {where} but does not exist",
                     "copy the trained weights there (or remove the entry from the manifest)")
    if is_lfs_pointer(path):
        return Check(f"weights {rel}", "fail",
                     f"{rel}: is a git-lfs pointer ({path.stat().st_size} bytes), not the weights",
                     "run `git lfs install && git lfs pull` (install git-lfs first), then check again")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return Check(f"weights {rel}", "fail",
                     f"{rel}: {actual_size} bytes, {where} lists {size} bytes",
                     "the file was changed or truncated: restore it, or re-ship it "
                     "(python -m models.manifest)")
    digest = sha256_file(path)
    if digest != sha256:
        return Check(f"weights {rel}", "fail",
                     f"{rel}: sha256 {digest[:12]}... does not match {where} ({sha256[:12]}...)",
                     "restore the shipped file, or re-ship it so the manifest records the new sha256 "
                     "(python -m models.manifest RUN/best.pth NAME)")
    return Check(f"weights {rel}", "ok", f"{rel}: {human_size(actual_size)}, sha256 matches {where}")


def check_weights(repo: str | Path) -> list[Check]:
    """Every file listed in every manifest, plus any weight file in the repo that is an lfs pointer."""
    repo = Path(repo)
    checks, listed = [], set()
    manifests = find_manifests(repo)
    for manifest in manifests:
        try:
            entries = manifest_entries(manifest)
        except ValueError as exc:
            checks.append(Check(f"manifest {_rel(manifest, repo)}", "fail", str(exc),
                                "fix the manifest (python -m models.manifest writes it)"))
            continue
        for entry in entries:
            listed.add(entry["path"].resolve())
            checks.append(check_weight_file(entry["path"], entry["sha256"], entry["size"], repo, manifest))
    for path in walk_files(repo):
        if path.resolve() in listed or not is_weight_file(path):
            continue
        if is_lfs_pointer(path):
            checks.append(Check(f"weights {_rel(path, repo)}", "fail",
                                f"{_rel(path, repo)}: is a git-lfs pointer, not the weights",
                                "run `git lfs install && git lfs pull`"))
    if not manifests:
        checks.append(Check("weights", "ok", "no manifest.json under " + " or ".join(MANIFEST_ROOTS)
                            + ": nothing to verify"))
    return checks


def _rel(path: Path, repo: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(repo).resolve()))
    except ValueError:
        return str(path)


def human_size(nbytes: int) -> str:
    """``1536`` -> ``"1.5 KB"``."""
    size = float(nbytes)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
