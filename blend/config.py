"""The ensemble config: members, λ (optionally per band), Wiener settings, STFT, runtime, enhancers.

YAML layout (``blend/configs/default.yaml``)::

    targets: [bass, drums, other, vocals]
    members:                       # checkpoint paths are relative to this file
      - {name: umx, checkpoint: ../../models/weights/umx.pth}
      - {name: fnn, checkpoint: ../../models/weights/fnn.pth}
    weights:                       # λ: one row per member, one column per target (normalised per target)
      umx: [0.5, 0.6, 0.5, 0.7]
      fnn: [0.5, 0.4, 0.5, 0.3]
    bands:                         # optional per-band λ (STFT domain); replaces `weights`
      edges_hz: [500, 4000]
      weights: [{umx: [...], fnn: [...]}, {...}, {...}]
    wiener: {iterations: 1, softmask: false, residual: false, residual_to: other, win_len: 300}
    stft: {n_fft: 4096, n_hop: 1024}
    runtime: {chunk_seconds: 60, context_seconds: 1}
    enhancer: {}                   # optional per target, e.g. {vocals: {checkpoint: ...}}

``wiener: null`` switches the post-filter off. A weight row may also be a mapping ``{target: w}``;
a missing ``weights`` means equal weights. Every problem raises :class:`ConfigError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from blend.members import MemberSpec, MemberSpecError, relative_path
from blend.render import StftSettings
from blend.weights import BlendWeights, WeightsError, equal_weights, make_weights
from blend.wiener import WienerError, WienerSettings
from core.constants import SAMPLE_RATE, TARGETS
from core.errors import StemBlendError
from core.files import write_text

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.yaml"
_KEYS = {"targets", "sample_rate", "members", "weights", "bands", "wiener", "stft", "runtime", "enhancer"}


class ConfigError(StemBlendError, ValueError):
    """An ensemble config file is unusable: ``"<path>: <problem>"``."""


@dataclass(frozen=True)
class Runtime:
    """How the predictor walks through a song: members run on chunks of ``chunk_seconds`` (plus
    ``context_seconds`` of real audio on each side, cropped after), so memory does not grow with the
    song. ``chunk_seconds: 0`` runs each member on the whole song."""

    chunk_seconds: float = 60.0
    context_seconds: float = 1.0


@dataclass(frozen=True)
class EnsembleConfig:
    """A parsed, validated ensemble config (see the module docstring for the YAML)."""

    members: tuple[MemberSpec, ...]
    weights: BlendWeights
    wiener: WienerSettings | None = WienerSettings()
    residual_to: str | None = "other"
    targets: tuple[str, ...] = TARGETS
    sample_rate: int = SAMPLE_RATE
    stft: StftSettings = StftSettings()
    runtime: Runtime = Runtime()
    enhancer: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def member_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    def with_weights(self, weights: BlendWeights) -> EnsembleConfig:
        return replace(self, weights=weights)

    def with_wiener(self, wiener: WienerSettings | None) -> EnsembleConfig:
        return replace(self, wiener=wiener)

    def without_unused(self) -> EnsembleConfig:
        """The same ensemble without the members whose λ is zero for every target and band (they
        would run for nothing). At least one member always remains (the weights sum to one)."""
        return self.only([m.name for i, m in enumerate(self.members) if self.weights.values[:, i, :].any()])

    def only(self, names) -> EnsembleConfig:
        """The ensemble restricted to the members ``names`` (λ renormalised per target)."""
        unknown = set(names) - set(self.member_names)
        if unknown:
            raise ConfigError(f"no member named {sorted(unknown)} (members: {list(self.member_names)})")
        keep = [i for i, m in enumerate(self.members) if m.name in set(names)]
        if len(keep) == len(self.members):
            return self
        if not keep:
            raise ConfigError("an ensemble needs at least one member")
        weights = make_weights(self.weights.values[:, keep, :], [self.members[m].name for m in keep],
                               self.targets, self.weights.edges_hz, sample_rate=self.sample_rate)
        return replace(self, members=tuple(self.members[m] for m in keep), weights=weights)

    def to_dict(self, base_dir: Path | None = None) -> dict:
        """Plain structure for YAML; checkpoint paths relative to ``base_dir``."""
        d = {
            "targets": list(self.targets),
            "sample_rate": self.sample_rate,
            "members": [m.to_dict(base_dir) for m in self.members],
        }
        d.update(self.weights.to_dict())
        if self.wiener is None:
            d["wiener"] = None
        else:
            d["wiener"] = dict(self.wiener.to_dict(), residual_to=self.residual_to)
        d["stft"] = {"n_fft": self.stft.n_fft, "n_hop": self.stft.n_hop}
        d["runtime"] = {
            "chunk_seconds": self.runtime.chunk_seconds,
            "context_seconds": self.runtime.context_seconds,
        }
        d["enhancer"] = {t: _enhancer_paths(spec, lambda p: relative_path(p, base_dir))
                         for t, spec in self.enhancer.items()}
        return d


def config_from_dict(d: dict, base_dir: Path | str = ".", where: str = "<config>") -> EnsembleConfig:
    """Build and validate a config from its plain structure.

    Args:
        d: the parsed YAML.
        base_dir: folder relative checkpoint paths start from.
        where: name used in error messages (the file path).

    Raises:
        ConfigError: ``"<where>: <problem>"``.
    """
    try:
        return _parse(d, Path(base_dir))
    except (WeightsError, WienerError, MemberSpecError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: {exc}") from None


def _parse(d, base_dir: Path) -> EnsembleConfig:
    if not isinstance(d, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(d).__name__}")
    unknown = set(d) - _KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    targets = tuple(d.get("targets") or TARGETS)
    if len(set(targets)) != len(targets):
        raise ValueError(f"duplicate targets in {list(targets)}")
    rate = int(d.get("sample_rate", SAMPLE_RATE))
    entries = d.get("members")
    if not entries or not isinstance(entries, list):
        raise ValueError("'members' must be a non-empty list of member entries")
    members = tuple(MemberSpec.from_dict(e, base_dir) for e in entries)
    names = [m.name for m in members]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate member names {duplicates}")
    if d.get("bands"):
        bands = d["bands"]
        if not isinstance(bands, dict) or set(bands) != {"edges_hz", "weights"}:
            raise ValueError("'bands' must be a mapping with 'edges_hz' and 'weights' (one table per band)")
        if not isinstance(bands["weights"], list):
            raise ValueError("'bands.weights' must be a list of weight tables, one per band")
        tables = [_table(t, names, targets, f"bands.weights[{i}]") for i, t in enumerate(bands["weights"])]
        weights = make_weights(
            np.stack(tables) if tables else np.zeros((0, len(names), len(targets))),
            names,
            targets,
            bands["edges_hz"] or (),
            sample_rate=rate,
        )
    elif d.get("weights") is not None:
        table = _table(d["weights"], names, targets, "weights")
        weights = make_weights(table, names, targets, sample_rate=rate)
    else:
        weights = equal_weights(names, targets)
    wiener, residual_to = _wiener(d.get("wiener", {}), targets)
    stft = StftSettings(**_section(d, "stft", StftSettings))
    runtime = Runtime(**_section(d, "runtime", Runtime))
    if runtime.chunk_seconds < 0 or runtime.context_seconds < 0:
        raise ValueError(f"runtime seconds must be >= 0, got {runtime}")
    base = Path(base_dir)
    enhancer = {t: _enhancer_paths(spec, lambda p: str(p if Path(p).is_absolute() else (base / p).resolve()))
                for t, spec in dict(d.get("enhancer") or {}).items()}
    unknown_targets = set(enhancer) - set(targets)
    if unknown_targets:
        raise ValueError(f"enhancer for unknown targets {sorted(unknown_targets)}; targets: {list(targets)}")
    return EnsembleConfig(members, weights, wiener, residual_to, targets, rate, stft, runtime, enhancer)


def _table(table, members, targets, where) -> np.ndarray:
    """``{member: [w per target] | {target: w}}`` -> ``(nb_members, nb_targets)``."""
    if not isinstance(table, dict):
        raise ValueError(f"'{where}' must map member names to weights, got {type(table).__name__}")
    missing, extra = [m for m in members if m not in table], [m for m in table if m not in members]
    if missing or extra:
        problem = (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else "")
        raise ValueError(f"'{where}' rows must be the members {list(members)}{problem}")
    rows = []
    for m in members:
        row = table[m]
        if isinstance(row, dict):
            unknown = set(row) - set(targets)
            if unknown:
                raise ValueError(f"'{where}.{m}': unknown targets {sorted(unknown)}")
            row = [row.get(t, 0.0) for t in targets]
        if not isinstance(row, list | tuple) or len(row) != len(targets):
            raise ValueError(f"'{where}.{m}' must give one weight per target {list(targets)}, got {row!r}")
        rows.append(row)
    return np.array(rows, dtype=np.float64)


def _wiener(section, targets) -> tuple[WienerSettings | None, str | None]:
    if section is None or section is False:
        return None, "other" if "other" in targets else None
    section = dict(section)
    residual_to = section.pop("residual_to", "other" if "other" in targets else None)
    if residual_to is not None and residual_to not in targets:
        raise ValueError(f"wiener.residual_to must be a target {list(targets)} or null, got {residual_to!r}")
    return WienerSettings.from_dict(section), residual_to


def _section(d: dict, key: str, cls) -> dict:
    section = d.get(key) or {}
    unknown = set(section) - set(cls.__dataclass_fields__)
    if unknown:
        known = sorted(cls.__dataclass_fields__)
        raise ValueError(f"'{key}': unknown keys {sorted(unknown)}; known: {known}")
    return section


def load_config(path: str | Path = DEFAULT_CONFIG) -> EnsembleConfig:
    """Read and validate an ensemble config file.

    Raises:
        ConfigError: missing file, invalid YAML, or invalid content (``"<path>: <problem>"``).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: ensemble config does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return replace(config_from_dict(data, path.parent, str(path)), path=path)


#: keys of an enhancer spec that are file paths (relative to the config file in YAML)
_ENHANCER_PATHS = ("base", "adapter")


def _enhancer_paths(spec, fn):
    """``spec`` with ``fn`` applied to its path values (other values, and non-mappings, as they are)."""
    if not isinstance(spec, dict):
        return spec
    return {k: fn(v) if k in _ENHANCER_PATHS and isinstance(v, (str, Path)) else v for k, v in spec.items()}


def save_config(config: EnsembleConfig, path: str | Path, header: str = "") -> Path:
    """Write a config atomically as YAML (checkpoint paths relative to the file's folder).

    Args:
        header: comment lines written at the top (e.g. how the config was tuned).
    """
    path = Path(path)
    text = yaml.safe_dump(config.to_dict(path.parent), sort_keys=False, default_flow_style=None, width=100)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return write_text(path, comment + text)
