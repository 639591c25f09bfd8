"""SPINR, the study's Streamable Progressive INR: a SIREN trained in stages so every prefix decodes.

Stage 0 trains input -> readout. Stage k freezes everything trained before and trains hidden layer k
(and, with the per-stage head, its own 3-channel readout) so that input -> hidden 1..k -> readout
reconstructs the image. Losing later layers then costs quality, not the picture.

Two heads:
- ``shared`` (the study's variant): one output layer, trained in stage 0 and frozen after; every
  hidden layer must learn to speak to it.
- ``per_stage``: each stage's packet carries its hidden layer plus its own readout (195 extra
  parameters per stage at width 64), so a new layer is free to change the representation.
See docs/SPINR.md for the measured comparison that picks the default.

Two training options on top (both off by default, both measured in docs/SPINR.md):
- ``joint``: a last phase trains every layer and head together on the geometric mean of all
  prefixes' losses, so every prefix still decodes while the deep ones catch up with a jointly trained
  SIREN. Worth ~6 dB at 4 hidden layers, harmful at 16 (the staged trunk is already good there).
- ``dropout``: whole hidden neurons are silenced at random while training, for robustness to lost
  neurons (the study's Table 3).
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from codec.model_options import SpinrOptions
from codec.models.base import INR, Layers, TrainingStage, register_model
from codec.models.siren import CoordEncoder, SineLayer, hidden_units, init_readout, linear_tensors

TensorFn = Callable[[torch.Tensor], torch.Tensor]


@register_model("spinr")
class Spinr(INR):
    Options = SpinrOptions
    # Each stage trains one layer for a short budget; SIREN's 1e-4 is too slow for that (docs/SPINR.md).
    default_lr = 1e-3
    progressive = True

    def __init__(self, width: int, hidden_layers: int, options: SpinrOptions) -> None:
        super().__init__(width, hidden_layers, options)
        self.encoder = CoordEncoder(options.pe_frequencies, options.pe_scale)
        self.input = SineLayer(self.encoder.dim, width, options.first_omega_0, first=True)
        self.hidden = Layers(
            SineLayer(width, width, options.hidden_omega_0, first=False) for _ in range(hidden_layers)
        )
        n_heads = hidden_layers + 1 if options.head == "per_stage" else 1
        self.heads = Layers(init_readout(nn.Linear(width, 3), options.hidden_omega_0) for _ in range(n_heads))

    @property
    def depths(self) -> int:
        return self.hidden_layers + 1

    def head(self, depth: int) -> nn.Linear:
        return self.heads[depth] if self.options.head == "per_stage" else self.heads[0]

    def _drop(self, h: torch.Tensor) -> torch.Tensor:
        # One mask per step over neurons, shared by all pixels: a lost neuron is lost everywhere.
        if not (self.training and self.options.dropout > 0):
            return h
        keep = torch.rand(h.shape[-1], device=h.device) >= self.options.dropout
        return h * keep.to(h.dtype)

    def _layer(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """h_k from h_{k-1}: hidden layer k, added to its input in a residual trunk."""
        update = self._drop(self.hidden[k - 1](h))
        return h + update if self.options.residual else update

    def _trunk(self, coords: torch.Tensor, depth: int) -> Iterator[tuple[int, torch.Tensor]]:
        """Yields (k, h_k) for k = 0..depth: the activation each head k reads."""
        h = self._drop(self.input(self.encoder(coords)))
        yield 0, h
        for k in range(1, depth + 1):
            h = self._layer(k, h)
            yield k, h

    def forward(self, coords: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        depth = self.hidden_layers if depth is None else depth
        ((_, h),) = deque(self._trunk(coords, depth), maxlen=1)  # the last activation only
        return self.head(depth)(h)

    def forward_exits(self, coords: torch.Tensor, depths: list[int]) -> list[torch.Tensor]:
        at = {k: h for k, h in self._trunk(coords, max(depths))}
        return [self.head(d)(at[d]) for d in depths]

    def outputs_changing(
        self, coords: torch.Tensor, depths: Sequence[int | None]
    ) -> Callable[[Sequence[torch.Tensor]], list[torch.Tensor]]:
        """:meth:`INR.outputs_changing` reusing the pass at build time: changed weights of hidden layer
        k recompute h_k.. and every head reading them, a changed head d recomputes output d alone, and
        the input encoding is never recomputed (a sensitivity probe of a 16 x 3 net: 3.4x faster)."""
        exits = [d for d in depths if d is not None]
        if len(exits) < len(depths) or self.options.dropout > 0:
            return super().outputs_changing(coords, depths)
        top = max(exits)
        with torch.no_grad():
            encoded = self.encoder(coords)

        def trunk(start: int, at: list[torch.Tensor]) -> list[torch.Tensor]:
            # As _trunk, from h_start on, reading h_<start from ``at``.
            out = at[:start]
            for k in range(start, top + 1):
                out.append(self._drop(self.input(encoded)) if k == 0 else self._layer(k, out[k - 1]))
            return out

        with torch.no_grad():
            base = trunk(0, [])
            base_out = [self.head(d)(base[d]) for d in exits]
        first = {id(p): 0 for p in self.input.parameters()}
        first.update({id(p): k for k, layer in enumerate(self.hidden, 1) for p in layer.parameters()})
        heads: dict[int, set[int]] = {}
        for d in range(self.depths):
            for p in self.head(d).parameters():
                heads.setdefault(id(p), set()).add(d)

        def outputs(changed: Sequence[torch.Tensor]) -> list[torch.Tensor]:
            keys = [id(t) for t in changed]
            if any(k not in first and k not in heads for k in keys):  # not this model's: recompute all
                return self.forward_exits(coords, exits)
            start = min((first[k] for k in keys if k in first), default=top + 1)
            at = trunk(start, base) if start <= top else base
            mine = {d for k in keys for d in heads.get(k, ())}
            return [
                self.head(d)(at[d]) if d >= start or d in mine else o
                for d, o in zip(exits, base_out, strict=True)
            ]

        return outputs

    def stages(self) -> list[TrainingStage]:
        if self.from_init:
            # From a meta-learned θ0 every stage already decodes: fine-tune all layers and heads on
            # every prefix's loss, the loss θ0 was meta-trained on (codec/meta/reptile.py).
            every = tuple((d, 1.0) for d in range(self.depths))
            return [TrainingStage("finetune", list(self.parameters()), None, exits=every, anchored=True)]
        first = [*self.input.parameters(), *self.head(0).parameters()]
        stages = [TrainingStage("stage.0", first, 0, self.options.stage0_weight)]
        for k, layer in enumerate(self.hidden, start=1):
            params = list(layer.parameters())
            if self.options.head == "per_stage":
                params += list(self.head(k).parameters())
            prefix, rest = self._split(k)
            stages.append(
                TrainingStage(
                    f"stage.{k}",
                    params,
                    k,
                    on_start=self._stage_start(k),
                    pass_through=self._pass_through(k),
                    prefix=prefix,
                    rest=rest,
                )
            )
        if self.options.joint > 0:
            # Its weight relative to the others gives it ``joint`` of the whole budget.
            staged = sum(s.weight for s in stages)
            weight = staged * self.options.joint / (1.0 - self.options.joint)
            exits = tuple((d, 1.0) for d in range(self.depths))
            stages.append(
                TrainingStage(
                    "joint",
                    list(self.parameters()),
                    None,
                    weight,
                    lr_scale=self.options.joint_lr,
                    exits=exits,
                )
            )
        return stages

    def _split(self, k: int) -> tuple[TensorFn | None, TensorFn | None]:
        """Stage k's forward as the frozen trunk up to h_{k-1} and the rest (layer k and head k).

        Not with dropout: the frozen layers' outputs then change from step to step."""
        if self.options.dropout > 0:
            return None, None

        def prefix(coords: torch.Tensor) -> torch.Tensor:
            ((_, h),) = deque(self._trunk(coords, k - 1), maxlen=1)
            return h

        def rest(h: torch.Tensor) -> torch.Tensor:
            return self.head(k)(self._layer(k, h))

        return prefix, rest

    def _stage_start(self, k: int) -> Callable[[], None]:
        def start() -> None:
            # With a residual trunk, starting head k as a copy of head k-1 (and the new layer near
            # zero) makes stage k begin exactly at stage k-1's picture.
            if self.options.residual:
                with torch.no_grad():
                    self.hidden[k - 1].linear.weight.mul_(self.options.residual_init)
                    self.hidden[k - 1].linear.bias.zero_()
                    if self.options.head == "per_stage":
                        self.heads[k].load_state_dict(self.heads[k - 1].state_dict())

        return start

    def _pass_through(self, k: int) -> Callable[[], None] | None:
        if not self.options.residual:
            return None  # a plain chain has no identity layer

        def identity() -> None:
            # sin(0) = 0: the residual layer adds nothing, and head k reads what head k-1 read.
            with torch.no_grad():
                self.hidden[k - 1].linear.weight.zero_()
                self.hidden[k - 1].linear.bias.zero_()
                if self.options.head == "per_stage":
                    self.heads[k].load_state_dict(self.heads[k - 1].state_dict())

        return identity

    def can_trim(self) -> bool:
        """Whether :meth:`prefix` applies: per-stage heads make every prefix a whole, smaller network."""
        return self.options.head == "per_stage" and self.hidden_layers > 0

    def prefix(self, hidden_layers: int) -> Spinr:
        if not self.can_trim() or not 0 <= hidden_layers <= self.hidden_layers:
            raise ValueError(
                f"no {hidden_layers}-stage prefix of a {self.hidden_layers}-stage {self.options.head} SPINR"
            )
        out = copy.deepcopy(self)
        out.hidden = Layers(list(out.hidden)[:hidden_layers])
        out.heads = Layers(list(out.heads)[: hidden_layers + 1])
        out.hidden_layers = hidden_layers
        return out

    def units(self) -> list[tuple[str, list[tuple[str, torch.Tensor]]]]:
        if self.options.head == "shared":
            ends = [("input", linear_tensors(self.input.linear)), ("output", linear_tensors(self.heads[0]))]
            return ends + hidden_units(layer.linear for layer in self.hidden)
        units = [
            ("stage.0", linear_tensors(self.input.linear, "in_") + linear_tensors(self.heads[0], "head_"))
        ]
        units += [
            (f"stage.{k}", linear_tensors(layer.linear) + linear_tensors(self.heads[k], "head_"))
            for k, layer in enumerate(self.hidden, start=1)
        ]
        return units

    def arch(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "hidden_layers": self.hidden_layers,
            "first_omega_0": float(self.options.first_omega_0),
            "hidden_omega_0": float(self.options.hidden_omega_0),
            "head": self.options.head,
            "residual": bool(self.options.residual),
            **self.encoder.arch(),
        }
