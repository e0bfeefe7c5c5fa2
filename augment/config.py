"""Build a :class:`augment.pipeline.Pipeline` from the ``augmentations:`` section of a YAML config.

Format (every key optional; see ``configs/augment/*.yaml`` for the presets)::

    augmentations:
      targets: [bass, drums, other, vocals]   # default core.constants.TARGETS
      sample_rate: 44100
      chunking:                                # loading time, see augment.chunking
        independent_offsets: 1.0               # P(one chunk offset per source)
        mix_songs: 0.0                         # P(a source comes from another song), per source
      example:                                 # per example, in a DataLoader worker, in order
        - {name: channel_swap, p: 1.0}
        - {name: gain, p: 1.0, min: 0.25, max: 1.25}
        - {name: pitch_shift, p: 0.2, cents: {choices: [-200, -100, 100, 200]}}
        - {name: formant_shift, p: 0.5, sources: [vocals], cents: {uniform: [-150, 150]}}
      batch:                                   # on the collated batch, in the training loop
        - {name: remix, p: 1.0, group_size: 4}

Every transform takes ``p`` (probability per example), ``sources`` (target names, default all) and
``same`` (one draw for all selected sources); the rest are its own parameters (its docstring).
"""

from __future__ import annotations

from pathlib import Path

from augment import base
from augment.pipeline import Pipeline
from core.errors import StemBlendError

#: Folder of the shipped presets (``configs/augment/<name>.yaml``).
PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "augment"

_SECTION_KEYS = {"targets", "sample_rate", "chunking", "example", "batch"}
_CHUNKING_KEYS = {"independent_offsets", "mix_songs"}
#: transforms that only make sense on a batch
_BATCH_ONLY = {"remix"}


class AugmentConfigError(StemBlendError, ValueError):
    """An augmentation config is unreadable or wrong; the message reads ``"<where>: <problem>"``."""

    def __init__(self, where: str | Path, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{where}: {problem}")


def presets() -> list[str]:
    """Names of the shipped presets (``load_config(name)`` accepts them)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _ensure_registered() -> None:
    # Importing the modules registers their transforms.
    from augment import batch, rubberband, simple  # noqa: F401


def _read(path_or_dict) -> tuple[dict, str]:
    """The ``augmentations`` section and a name for error messages."""
    if isinstance(path_or_dict, dict):
        data, where = path_or_dict, "augmentations config"
    else:
        path = Path(path_or_dict)
        if not path.suffix and not path.exists() and (PRESET_DIR / f"{path}.yaml").is_file():
            path = PRESET_DIR / f"{path}.yaml"
        if not path.is_file():
            raise AugmentConfigError(path, f"no such config file (presets: {', '.join(presets())})")
        import yaml

        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise AugmentConfigError(path, f"invalid YAML ({exc})") from exc
        where = str(path)
        if not isinstance(data, dict):
            raise AugmentConfigError(path, "expected a mapping with an 'augmentations:' section")
    if "augmentations" in data:
        data = data["augmentations"]
    return data or {}, where


def _build(entry, index: int, section: str, where: str, targets, rate) -> base.Transform:
    label = f"{section}[{index}]"
    if not isinstance(entry, dict) or "name" not in entry:
        raise AugmentConfigError(where, f"{label}: expected a mapping with a 'name', got {entry!r}")
    params = dict(entry)
    name = params.pop("name")
    if name not in base.REGISTRY:
        raise AugmentConfigError(where, f"{label}: unknown transform '{name}' "
                                        f"(known: {', '.join(sorted(base.REGISTRY))})")
    if section == "example" and name in _BATCH_ONLY:
        raise AugmentConfigError(where, f"{label}: '{name}' mixes songs and belongs in the 'batch' section")
    try:
        return base.REGISTRY[name](targets=targets, sample_rate=rate, **params)
    except (TypeError, ValueError) as exc:
        raise AugmentConfigError(where, f"{label} ({name}): {exc}") from exc


def load_config(path_or_dict, targets=None, sample_rate: int | None = None) -> Pipeline:
    """A :class:`Pipeline` from a YAML file, a preset name or a dict.

    Args:
        path_or_dict: a YAML path (its ``augmentations:`` section), a preset name (``"defossez2021"``,
            see :func:`presets`), a dict with an ``augmentations`` key, or the section itself.
            An empty or missing section gives the identity pipeline.
        targets: override the config's targets (default: config, else ``core.constants.TARGETS``).
        sample_rate: override the config's rate (default: config, else 44100).

    Raises:
        AugmentConfigError: naming the file (or "augmentations config") and the problem.
    """
    _ensure_registered()
    from core.constants import SAMPLE_RATE, TARGETS

    section, where = _read(path_or_dict)
    if not isinstance(section, dict):
        raise AugmentConfigError(where, f"'augmentations' must be a mapping, got {type(section).__name__}")
    unknown = set(section) - _SECTION_KEYS
    if unknown:
        raise AugmentConfigError(where, f"unknown keys {sorted(unknown)} in 'augmentations' "
                                        f"(known: {sorted(_SECTION_KEYS)})")
    targets = tuple(targets or section.get("targets") or TARGETS)
    rate = int(sample_rate or section.get("sample_rate") or SAMPLE_RATE)
    chunking = section.get("chunking") or {}
    if not isinstance(chunking, dict) or set(chunking) - _CHUNKING_KEYS:
        raise AugmentConfigError(where, f"'chunking' takes only {sorted(_CHUNKING_KEYS)}, got {chunking!r}")
    lists = {}
    for key in ("example", "batch"):
        entries = section.get(key) or []
        if not isinstance(entries, list):
            raise AugmentConfigError(where, f"'{key}' must be a list of transforms")
        lists[key] = [_build(e, i, key, where, targets, rate) for i, e in enumerate(entries)]
    try:
        return Pipeline(lists["example"], lists["batch"], targets, rate,
                        independent_offsets=float(chunking.get("independent_offsets", 0.0)),
                        mix_songs=float(chunking.get("mix_songs", 0.0)))
    except ValueError as exc:
        raise AugmentConfigError(where, str(exc)) from exc
