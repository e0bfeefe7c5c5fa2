"""The ``umx`` member: one ``openunmix.model.OpenUnmix`` per target, run through openunmix's
``Separator`` with ``niter=0`` (magnitude estimates with the mixture phase; Wiener filtering is the
blend's job).

:meth:`UMX.from_umx_dir` loads official Open-Unmix weights (umxhq, umxl or a model trained with
openunmix's ``train.py``) from a local folder holding ``<target>.pth`` (or ``<target>-<sha>.pth``)
state dicts with ``<target>.json`` (training arguments) and optionally ``separator.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from openunmix.model import OpenUnmix, Separator
from torch import Tensor

from core.constants import SAMPLE_RATE, TARGETS
from core.errors import CheckpointError
from models.base import Member
from models.registry import register
from models.spectral import bandwidth_to_bin


@register("umx")
class UMX(Member):
    """Open-Unmix, one BLSTM per target.

    Args:
        targets, sample_rate, nb_channels: see :class:`models.base.Member`.
        n_fft, n_hop: STFT of the Separator.
        hidden_size: width of every layer (umxhq: 512).
        nb_layers: BLSTM layers.
        bandwidth: input bandwidth in Hz (umxhq: 16000); ignored when ``max_bin`` is given.
        max_bin: input bins (overrides ``bandwidth``).
        unidirectional: causal LSTM.
    """

    default_segment = 30.0
    default_overlap = 0.05

    def __init__(
        self,
        targets=TARGETS,
        sample_rate: int = SAMPLE_RATE,
        nb_channels: int = 2,
        n_fft: int = 4096,
        n_hop: int = 1024,
        hidden_size: int = 512,
        nb_layers: int = 3,
        bandwidth: float | None = 16000.0,
        max_bin: int | None = None,
        unidirectional: bool = False,
    ):
        super().__init__(targets, sample_rate, nb_channels)
        max_bin = max_bin or bandwidth_to_bin(bandwidth, n_fft, sample_rate)
        models = {
            target: OpenUnmix(
                nb_bins=n_fft // 2 + 1,
                nb_channels=nb_channels,
                hidden_size=hidden_size,
                nb_layers=nb_layers,
                unidirectional=unidirectional,
                max_bin=max_bin,
            )
            for target in self.targets
        }
        self.separator = Separator(
            models, niter=0, sample_rate=float(sample_rate), n_fft=n_fft, n_hop=n_hop, nb_channels=nb_channels
        )
        self.alignment = n_hop
        self.context = sample_rate  # the BLSTM sees the whole chunk; one second of context each side

    def forward(self, mix: Tensor) -> Tensor:
        """``(B, C, T)`` -> ``(B, S, C, T)`` through ``Separator`` (``niter=0``)."""
        return self.separator(mix)

    def _magnitude(self, audio: Tensor) -> Tensor:
        """``(..., C, T)`` -> magnitude ``(..., C, F, N)`` with the Separator's STFT."""
        shape = audio.shape
        spec = self.separator.stft(audio.reshape((-1,) + shape[-2:]))
        magnitude = self.separator.complexnorm(spec)
        return magnitude.reshape(shape[:-1] + magnitude.shape[-2:])

    def loss(self, mix: Tensor, stems: Tensor) -> Tensor:
        """Sum over targets of the magnitude MSE (Open-Unmix's loss, one model per target)."""
        mix_mag = self._magnitude(mix)
        ref_mag = self._magnitude(stems)
        losses = [
            torch.nn.functional.mse_loss(model(mix_mag), ref_mag[:, j])
            for j, model in enumerate(self.separator.target_models.values())
        ]
        return torch.stack(losses).sum()

    @torch.no_grad()
    def prepare(self, batches) -> None:
        """Input mean and scale per bin from the mixture magnitudes, as openunmix's ``train.py``;
        output masks start at ``1 / nb_targets``."""
        mags = [self._magnitude(mix) for mix, _ in batches]
        if not mags:
            return
        any_model = next(iter(self.separator.target_models.values()))
        max_bin = any_model.nb_bins
        x = torch.cat([m[..., :max_bin, :].transpose(-1, -2).reshape(-1, max_bin) for m in mags])
        for model in self.separator.target_models.values():
            model.input_mean.copy_(-x.mean(0))
            model.input_scale.copy_(1.0 / x.std(0).clamp_min(1e-4))
            # start near mixture / nb_targets (masks 1/S, small spread) rather than masks around 1,
            # so that a short CPU training does not spend its first epochs unlearning a 4x mixture
            model.output_mean.fill_(1.0 / self.nb_targets)
            model.output_scale.fill_(0.1)

    @classmethod
    def from_umx_dir(cls, path: str | Path, targets=None) -> UMX:
        """Load official Open-Unmix weights from a local folder.

        Args:
            path: folder with ``<target>.pth`` (or ``<target>-<hash>.pth``) and ``<target>.json``.
            targets: targets to load (default: every target of :data:`TARGETS` found there).

        Raises:
            CheckpointError: folder, file or argument missing, pickled code, or shapes that disagree.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise CheckpointError(f"{folder}: Open-Unmix model folder does not exist")
        if targets is None:
            targets = [t for t in TARGETS if (folder / f"{t}.json").is_file()]
            if not targets:
                raise CheckpointError(f"{folder}: no <target>.json for any of {', '.join(TARGETS)}")
        separator_conf = (
            _read_json(folder / "separator.json") if (folder / "separator.json").is_file() else {}
        )
        states, configs = {}, {}
        for target in targets:
            args = _read_json(folder / f"{target}.json").get("args", {})
            states[target] = _load_state_dict(_find_weights(folder, target))
            configs[target] = _umx_config(args, states[target], separator_conf, folder / f"{target}.json")
        if len({json.dumps(c, sort_keys=True) for c in configs.values()}) > 1:
            raise CheckpointError(
                f"{folder}: the targets' models differ in shape ({configs}); load them apart"
            )
        member = cls(targets=targets, **configs[targets[0]])
        for target in targets:
            model = member.separator.target_models[target]
            missing, _ = model.load_state_dict(states[target], strict=False)
            if missing:
                raise CheckpointError(
                    f"{_find_weights(folder, target)}: missing weights {', '.join(missing)}"
                )
        return member


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: file does not exist")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc


def _find_weights(folder: Path, target: str) -> Path:
    exact = folder / f"{target}.pth"
    if exact.is_file():
        return exact
    hashed = sorted(folder.glob(f"{target}-*.pth"))
    if not hashed:
        raise CheckpointError(f"{folder}: no {target}.pth (or {target}-<hash>.pth) weights")
    return hashed[0]


def _load_state_dict(path: Path) -> dict:
    from models.checkpoint import safe_load

    state = safe_load(path)
    if not isinstance(state, dict) or "fc1.weight" not in state or "input_mean" not in state:
        raise CheckpointError(f"{path}: not an Open-Unmix state dict (no fc1.weight / input_mean)")
    return {k: v.float() if torch.is_floating_point(v) else v for k, v in state.items()}


def _umx_config(args: dict, state: dict, separator_conf: dict, json_path: Path) -> dict:
    """Constructor arguments of :class:`UMX` from openunmix's JSON and the state dict's shapes."""
    layers = sum(1 for k in state if k.startswith("lstm.weight_ih_l") and not k.endswith("_reverse"))
    try:
        n_fft = int(separator_conf.get("nfft", args.get("nfft", 4096)))
        return {
            "sample_rate": int(separator_conf.get("sample_rate", args.get("sample_rate", SAMPLE_RATE))),
            "nb_channels": int(separator_conf.get("nb_channels", args.get("nb_channels", 2))),
            "n_fft": n_fft,
            "n_hop": int(separator_conf.get("nhop", args.get("nhop", 1024))),
            "hidden_size": int(state["fc1.weight"].shape[0]),
            "nb_layers": layers,
            "max_bin": int(state["input_mean"].shape[0]),
            "bandwidth": None,
            "unidirectional": "lstm.weight_ih_l0_reverse" not in state,
        }
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{json_path}: unusable arguments ({exc})") from exc
