"""The one interface every INR family implements, and the registry that finds them by name.

A model exposes its parameters as ordered *units* (one packet each) and its training as ordered
*stages*; the training loop, the quantizer and the bitstream are written once against that. The same
interface takes a received bitstream back into a torch model (:meth:`INR.load_bitstream`,
:func:`received_model`), so perturbation experiments run on exactly what a receiver holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast, overload

import torch
from torch import nn

from codec.errors import BitstreamError, ConfigError

if TYPE_CHECKING:
    from codec.bitstream import Bitstream

M = TypeVar("M", bound=nn.Module)


class Layers(nn.ModuleList, Generic[M]):
    """An ``nn.ModuleList`` that says what it holds (torch types its items as plain Modules)."""

    def __init__(self, modules: Iterable[M] = ()) -> None:
        super().__init__(modules)

    def __iter__(self) -> Iterator[M]:
        return cast(Iterator[M], super().__iter__())

    @overload
    def __getitem__(self, idx: slice) -> Layers[M]: ...

    @overload
    def __getitem__(self, idx: int) -> M: ...

    def __getitem__(self, idx: int | slice) -> M | Layers[M]:
        return cast("M | Layers[M]", super().__getitem__(idx))


@dataclass
class TrainingStage:
    """One phase of training: which parameters learn, and which prefix depth the loss looks at."""

    name: str
    params: list[nn.Parameter]
    depth: int | None
    weight: float = 1.0
    """Share of the total step budget, relative to the other stages."""
    on_start: Callable[[], None] | None = None
    """Called just before the stage trains (e.g. to initialise a new head from the previous one)."""
    pass_through: Callable[[], None] | None = None
    """Sets the stage's parameters so the prefix decodes exactly the previous stage's picture; the
    trainer starts its 'best weights' there, so a stage can never leave the picture worse."""
    lr_scale: float = 1.0
    """Multiplies the run's learning rate for this stage."""
    exits: tuple[tuple[int, float], ...] = ()
    """(depth, weight) pairs: the loss is the weighted geometric mean of those prefixes' losses instead
    of ``depth``'s alone (a joint phase that must keep every prefix decoding)."""
    prefix: Callable[[torch.Tensor], torch.Tensor] | None = None
    """The part of ``depth``'s forward pass no parameter of this stage touches (SPINR's frozen layers,
    FourierNet's fixed encoding): coordinates -> the activation the rest starts from. It is the same
    at every step, so the trainer computes it once per stage (``TrainConfig.prefix_cache``)."""
    rest: Callable[[torch.Tensor], torch.Tensor] | None = None
    """The remainder of the forward pass: ``rest(prefix(x))`` is ``model(x, depth)``, op for op."""
    anchored: bool = False
    """The stage fine-tunes from a shared θ0 whose residual is sent (``--init meta``): the trainer adds
    ``TrainConfig.residual_penalty`` on how far its parameters move from where the stage starts."""


class INR(nn.Module):
    """Base class: ``forward(coords, depth)`` maps (N, 2) coordinates in [-1, 1] to (N, 3) in [-1, 1]."""

    kind: ClassVar[str] = ""
    default_lr: ClassVar[float] = 1e-4
    """The learning rate the model's authors recommend (documented per model)."""
    Options: ClassVar[type] = type(None)
    """Dataclass of model-specific options with documented defaults."""
    progressive: ClassVar[bool] = False
    """Whether every prefix of units decodes (SPINR) or all units are needed."""
    seed_options: ClassVar[frozenset[str]] = frozenset()
    """Options that only seed a fixed buffer (FourierNet's ``b_seed``): fits that differ in them still
    train as one batch (``codec.batched``), each with its own buffer."""
    needs_image_size: ClassVar[bool] = False
    """Whether :meth:`set_image_size` shapes the model (DINER's per-pixel table); informational, the
    encoder and :meth:`load_bitstream` call it for every model."""

    def __init__(self, width: int, hidden_layers: int, options: Any) -> None:
        super().__init__()
        self.width = width
        self.hidden_layers = hidden_layers
        self.options = options
        self.from_init = False
        """Set when the weights are a meta-learned θ0 (codec/meta): training then fine-tunes every
        layer at once (one stage) instead of growing the network stage by stage."""

    # -- what a subclass provides ---------------------------------------------------------------
    def units(self) -> list[tuple[str, list[tuple[str, torch.Tensor]]]]:
        """Ordered (unit name, [(tensor name, tensor)]) groups: one packet each, FORMAT.md order."""
        raise NotImplementedError

    def arch(self) -> dict[str, Any]:
        """Everything the numpy decoder needs to rebuild the forward pass, for the header."""
        raise NotImplementedError

    def stages(self) -> list[TrainingStage]:
        """Training stages in order; a plain model has one stage training everything."""
        return [TrainingStage("all", list(self.parameters()), None, anchored=self.from_init)]

    def set_image_size(self, width: int, height: int) -> None:
        """Told the image size before training or loading; only a model whose parameters depend on it
        (``needs_image_size``) does anything."""

    @property
    def depths(self) -> int:
        """How many prefix depths decode a picture (1 for a non-progressive model)."""
        return 1

    def can_trim(self) -> bool:
        """Whether :meth:`prefix` applies (a progressive model whose prefixes are whole networks)."""
        return False

    def prefix(self, hidden_layers: int) -> INR:
        """A copy of this network's first ``hidden_layers`` stages, its units this one's first units
        (``--trim`` sends it when the later stages do not pay at the rate target)."""
        raise ValueError(f"a {type(self).__name__} has no prefixes to trim to")

    def forward_exits(self, coords: torch.Tensor, depths: list[int]) -> list[torch.Tensor]:
        """The outputs of several prefix depths; a progressive model overrides this to share the trunk."""
        return [self(coords, d) for d in depths]

    def outputs_changing(
        self, coords: torch.Tensor, depths: Sequence[int | None]
    ) -> Callable[[Sequence[torch.Tensor]], list[torch.Tensor]]:
        """``outputs(changed)``: the outputs at ``depths`` (None among them: the full output alone)
        when only the ``changed`` weights differ from what they are now, for sensitivity probes
        (one tensor changed at a time and put back) and fine-tuning some tensors with the others
        frozen (codec/stepquant.py, codec/seqquant.py). Here everything is recomputed; a model
        whose outputs do not all reach every weight reuses what the changed ones do not reach from
        the pass at this call, the same tensors, so the same values bit for bit (SPINR)."""

        def outputs(changed: Sequence[torch.Tensor]) -> list[torch.Tensor]:
            if any(d is None for d in depths):
                return [self(coords)]
            return self.forward_exits(coords, [d for d in depths if d is not None])

        return outputs

    # -- shared ---------------------------------------------------------------------------------
    def num_params(self) -> int:
        return sum(t.numel() for _, tensors in self.units() for _, t in tensors)

    def load_bitstream(self, bs: Bitstream) -> INR:
        """Set every unit to the bitstream's dequantized tensors (what a receiver holds); returns self.

        The bitstream must be of this model's kind and shape and hold every unit."""
        h = bs.header
        if h.model != self.kind:
            raise BitstreamError(f"bitstream holds a {h.model!r} model, not {self.kind!r}")
        if bs.missing():
            raise BitstreamError(f"bitstream lacks unit(s) {bs.missing()}: a torch model needs every unit")
        self.set_image_size(h.width, h.height)
        units = self.units()
        if len(units) != h.num_units:
            raise BitstreamError(f"bitstream has {h.num_units} units, the {self.kind!r} model {len(units)}")
        base = None
        if h.init is not None:  # a residual stream: the units hold θ − θ0 (codec/meta)
            from codec.meta import store

            base = store.find(h.init).weights
        with torch.no_grad():
            for index, (name, tensors) in enumerate(units):
                received = {t.name: t for t in bs.units[index].tensors}
                for tname, t in tensors:
                    q = received.get(tname)
                    if q is None or tuple(q.shape) != tuple(t.shape):
                        got = "nothing" if q is None else f"shape {list(q.shape)}"
                        raise BitstreamError(
                            f"unit {index} ({name}) tensor {tname!r}: the model needs shape"
                            f" {list(t.shape)}, the bitstream has {got}"
                        )
                    w = q.dequantize() if base is None else base[index][tname] + q.dequantize()
                    t.copy_(torch.from_numpy(w))
        return self

    @classmethod
    def options_from_arch(cls, arch: dict[str, Any]) -> dict[str, Any]:
        """The model options a header's ``arch`` records (what the forward pass needs; options that only
        steer training, such as SPINR's ``joint``, are not in it and keep their defaults)."""
        if cls.Options is type(None):
            return {}
        known = {f.name for f in dataclasses.fields(cls.Options)}
        return {k: v for k, v in arch.items() if k in known}

    @classmethod
    def parse_options(cls, options: dict[str, Any]) -> Any:
        """Build the Options dataclass, rejecting unknown keys by name."""
        if cls.Options is type(None):
            if options:
                raise ConfigError(f"model {cls.kind!r} takes no options, got {sorted(options)}")
            return None
        known = {f.name for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown} for model {cls.kind!r}; allowed: {sorted(known)}")
        return cls.Options(**options)


MODELS: dict[str, type[INR]] = {}


def register_model(name: str) -> Callable[[type[INR]], type[INR]]:
    def wrap(cls: type[INR]) -> type[INR]:
        cls.kind = name
        MODELS[name] = cls
        return cls

    return wrap


def model_class(name: str) -> type[INR]:
    """The registered class of ``name`` (importing ``codec.models``, which any import of this module
    does first, registers every family)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return MODELS[name]


def build_model(name: str, width: int, hidden_layers: int, options: dict[str, Any] | None = None) -> INR:
    cls = model_class(name)
    return cls(width, hidden_layers, cls.parse_options(dict(options or {})))


def received_model(bs: Bitstream, options: dict[str, Any] | None = None, device: str = "cpu") -> INR:
    """The torch model a receiver of ``bs`` holds: built from the header (``options`` add to those the
    arch records), set to the dequantized tensors, on ``device``, in eval mode."""
    from codec.arch.base import arch_field
    from codec.device import resolve_device

    h = bs.header
    cls = model_class(h.model)
    width = arch_field(h.arch, "width", int, 1, 4096)
    hidden = arch_field(h.arch, "hidden_layers", int, 0, 256)
    model = build_model(h.model, width, hidden, {**cls.options_from_arch(h.arch), **(options or {})})
    return model.load_bitstream(bs).to(resolve_device(device)).eval()
