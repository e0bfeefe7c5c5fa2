"""Per-target LoRA adapters on the base enhancer, through ``peft``.

``peft`` (0.21, the pinned version) can put LoRA on ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d``,
``nn.Conv3d``, ``nn.Embedding`` and ``nn.MultiheadAttention``. For a convolution it adds ``A``: a
convolution with the base's kernel, stride and padding down to ``r`` channels, and ``B``: a 1x1
convolution back up (dilation is not carried over, which is why the enhancer has no dilated
layers). ``B`` starts at zero (``init_lora_weights=True``), so a fresh adapter is the identity on
the base: the zero-convolution idea.

:class:`AdaptedEnhancer` holds one base and any number of named adapters (``inject_adapter_in_model``
once per name) and switches between them at run time with :meth:`AdaptedEnhancer.use`; ``None``
switches every adapter off (the base alone). Adapters are saved apart from the base
(:func:`enhancer.checkpoint.save_adapter`) and must stay within :data:`MAX_ADAPTER_FRACTION` of the
base's parameters.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, fields

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import Tensor, nn

from enhancer.model import PhaseEnhancer, count_parameters

#: An adapter may hold at most this fraction of the base's parameters.
MAX_ADAPTER_FRACTION = 0.02
#: Layers of :class:`PhaseEnhancer` adapted by default: the bottleneck (two 3x3 convolutions and the
#: band-mixing ``Linear``), the decoder convolutions and the zero-initialised output convolution.
DEFAULT_MODULES = ("mid1", "freq_mix", "mid2", "dec1", "dec0", "out")


@dataclass(frozen=True)
class AdapterSpec:
    """What an adapter adapts and how (stored in every adapter file).

    Attributes:
        rank: LoRA rank ``r``.
        alpha: LoRA ``alpha``; the update is scaled by ``alpha / rank``.
        modules: names of the base's ``Linear``/``Conv2d`` layers to adapt.
        dropout: dropout on the adapter's input while training.
    """

    rank: int = 2
    alpha: float = 2.0
    modules: tuple[str, ...] = field(default=DEFAULT_MODULES)
    dropout: float = 0.0

    def lora_config(self) -> LoraConfig:
        """The ``peft`` configuration (``B`` zero-initialised: the adapter starts as the identity)."""
        return LoraConfig(r=self.rank, lora_alpha=self.alpha, target_modules=list(self.modules),
                          lora_dropout=self.dropout, bias="none", init_lora_weights=True)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["modules"] = list(self.modules)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> AdapterSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown adapter spec keys {unknown} (known: {sorted(known)})")
        data = dict(data)
        if "modules" in data:
            data["modules"] = tuple(data["modules"])
        return cls(**data)


class AdaptedEnhancer(nn.Module):
    """A base :class:`PhaseEnhancer` with named LoRA adapters, at most one active at a time.

    Args:
        base: the base enhancer; adapters are injected into it in place (its ``Linear``/``Conv2d``
            layers become ``peft`` LoRA layers that wrap the original ones).
    """

    def __init__(self, base: PhaseEnhancer):
        super().__init__()
        self.base = base
        self.base_parameters = count_parameters(base)
        self.specs: dict[str, AdapterSpec] = {}
        self.active: str | None = None

    @property
    def config(self):
        return self.base.config

    @property
    def receptive_frames(self) -> int:
        return self.base.receptive_frames

    @property
    def adapters(self) -> list[str]:
        return list(self.specs)

    def _lora_layers(self) -> list[BaseTunerLayer]:
        return [m for m in self.base.modules() if isinstance(m, BaseTunerLayer)]

    def add_adapter(self, name: str, spec: AdapterSpec | None = None) -> int:
        """Inject a fresh adapter (the identity until trained) and make it active.

        Returns:
            The adapter's parameter count.

        Raises:
            ValueError: the name is taken, a module does not exist, or the adapter is too large.
        """
        spec = spec or AdapterSpec()
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"adapter name {name!r}: use letters, digits, '-' and '_'")
        if name in self.specs:
            raise ValueError(f"adapter '{name}' already exists")
        names = {n for n, _ in self.base.named_modules()}
        missing = [m for m in spec.modules if m not in names]
        if missing:
            raise ValueError(f"adapter '{name}': the base has no layers {missing}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*multiple adapters.*")
            inject_adapter_in_model(spec.lora_config(), self.base, adapter_name=name)
        self.specs[name] = spec
        size = self.adapter_parameters(name)
        limit = MAX_ADAPTER_FRACTION * self.base_parameters
        if size > limit:
            self.delete_adapter(name)
            raise ValueError(
                f"adapter '{name}' has {size} parameters, more than {MAX_ADAPTER_FRACTION:.0%} of the "
                f"base's {self.base_parameters} ({limit:.0f}); lower the rank or adapt fewer layers"
            )
        self.use(name)
        return size

    def delete_adapter(self, name: str) -> None:
        for layer in self._lora_layers():
            layer.delete_adapter(name)
        self.specs.pop(name, None)
        if self.active == name:
            self.use(None)

    def adapter_parameters(self, name: str) -> int:
        """Parameter count of one adapter."""
        return sum(t.numel() for t in self.adapter_state(name).values())

    def adapter_state(self, name: str) -> dict[str, Tensor]:
        """The adapter's weights, keyed without the adapter name (``peft``'s saving format)."""
        self._check(name)
        return get_peft_model_state_dict(self.base, adapter_name=name)

    def load_adapter_state(self, name: str, state: dict[str, Tensor]) -> None:
        """Load weights saved by :meth:`adapter_state` into the existing adapter ``name``.

        Raises:
            ValueError: missing or unexpected keys, or shapes that do not fit.
        """
        self._check(name)
        expected = self.adapter_state(name)
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
        if missing or extra or wrong:
            raise ValueError(f"adapter '{name}' does not fit: missing {missing}, unexpected {extra}, "
                             f"wrong shapes {wrong}")
        set_peft_model_state_dict(self.base, state, adapter_name=name)

    def use(self, name: str | None) -> None:
        """Switch to adapter ``name``, or to the base alone with ``None``."""
        if name is not None:
            self._check(name)
        for layer in self._lora_layers():
            if name is None:
                layer.enable_adapters(False)
            else:
                layer.set_adapter(name)
                layer.enable_adapters(True)
        self.active = name

    def trainable(self, name: str | None) -> list[nn.Parameter]:
        """Freeze everything but adapter ``name`` (``None``: train the base, no adapter); return the rest."""
        self.use(name)
        for param_name, param in self.base.named_parameters():
            if name is None:
                param.requires_grad_("lora_" not in param_name)
            else:
                param.requires_grad_(f".{name}." in param_name and "lora_" in param_name)
        return [p for p in self.base.parameters() if p.requires_grad]

    def base_state(self) -> dict[str, Tensor]:
        """The base's own weights with the original (un-wrapped) parameter names."""
        state = {}
        for key, value in self.base.state_dict().items():
            if "lora_" in key:
                continue
            state[key.replace(".base_layer.", ".")] = value
        return state

    def forward(self, estimate: Tensor, mixture: Tensor, scale: Tensor) -> Tensor:
        """:meth:`PhaseEnhancer.forward` with the active adapter."""
        return self.base(estimate, mixture, scale)

    def _check(self, name: str) -> None:
        if name not in self.specs:
            known = ", ".join(self.specs) or "none"
            raise KeyError(f"no adapter '{name}' (loaded: {known})")


@torch.no_grad()
def randomize_adapter(model: AdaptedEnhancer, name: str, std: float = 0.05, seed: int = 0) -> None:
    """Fill an adapter's ``A`` and ``B`` with random values (tests, benchmarks)."""
    generator = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=generator) * std for k, v in model.adapter_state(name).items()}
    model.load_adapter_state(name, state)
