"""K models of one architecture as stacked (K, ...) tensors, and Adam over the stack.

:class:`ParamStack` stacks every parameter and buffer of K same-shaped models and makes each model's
own tensors views of its slice: whatever edits a model in place (a stage's ``on_start``, a
pass-through, the quantizer) edits the stack, and whatever the trainer writes into the stack is the
model's. :class:`StackedAdam` is ``torch.optim.Adam`` (its single-tensor arithmetic, op for op) with
a learning rate, a step count and a restart per model: Adam is elementwise, so each slice moves
exactly as that model would move alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from codec.errors import ConfigError

PREFIX = "model."
"""The stacked tensors' names: those of the wrapper module that holds model 0 as ``model``."""


def per_model(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (K,) tensor shaped to broadcast over a (K, ...) one."""
    return mask.reshape(mask.shape[0], *([1] * (like.ndim - 1)))


class ParamStack:
    """The parameters of ``models`` as one (K, N) tensor on ``device``, laid out stage by stage so each
    stage trains one contiguous column range; buffers stacked as (K, ...). Every model's tensors alias
    its row."""

    def __init__(
        self, models: Sequence[nn.Module], device: torch.device, stages: Sequence[Sequence[nn.Parameter]]
    ) -> None:
        self.models = list(models)
        named = [dict(m.named_parameters()) for m in self.models]
        name_of = {id(p): name for name, p in named[0].items()}
        order: list[str] = []
        for params in [*stages, list(named[0].values())]:
            order += [name_of[id(p)] for p in params if name_of[id(p)] not in order]
        self.layout: dict[str, tuple[int, torch.Size]] = {}
        offset = 0
        for name in order:
            shapes = {tuple(n[name].shape) if name in n else None for n in named}
            if len(shapes) != 1:
                raise ConfigError(f"models differ in parameter {name!r}: shapes {sorted(map(str, shapes))}")
            self.layout[name] = (offset, named[0][name].shape)
            offset += named[0][name].numel()
        self.flat = torch.empty(len(self.models), offset, device=device)
        for k, n in enumerate(named):
            for name, (at, shape) in self.layout.items():
                row = self.flat[k, at : at + shape.numel()]
                row.copy_(n[name].detach().reshape(-1))
                n[name].data = row.view(shape)
        self.buffers: dict[str, torch.Tensor] = {}
        buffers = [dict(m.named_buffers()) for m in self.models]
        for name in buffers[0]:
            stacked = torch.stack([b[name].detach() for b in buffers]).to(device)
            self.buffers[PREFIX + name] = stacked
            for k, b in enumerate(buffers):
                b[name].data = stacked[k]
        self._name_of = name_of
        self._names = [{id(p): name for name, p in n.items()} for n in named]

    def span(self, params_of_first: Sequence[torch.Tensor]) -> tuple[int, int]:
        """The column range of model 0's ``params`` (a stage's); they must fill it exactly."""
        spans = sorted(
            (self.layout[self._name_of[id(p)]][0], self.layout[self._name_of[id(p)]][1].numel())
            for p in params_of_first
        )
        start, end = spans[0][0], spans[0][0]
        for at, size in spans:
            if at != end:
                raise ConfigError(
                    "a stage's parameters are not one contiguous block; this model cannot be batched"
                )
            end = at + size
        return start, end

    def named(self, trained: torch.Tensor | None = None, start: int = 0) -> dict[str, torch.Tensor]:
        """Every parameter as a (K, ...) view for ``functional_call``: those in ``trained`` (columns from
        ``start``, the stage's leaf) carry its gradient, the rest view the frozen stack."""
        end = start if trained is None else start + trained.shape[1]
        out = {}
        for name, (at, shape) in self.layout.items():
            n = shape.numel()
            src, col = (trained, at - start) if trained is not None and start <= at < end else (self.flat, at)
            out[PREFIX + name] = src[:, col : col + n].view(src.shape[0], *shape)
        return out

    def unflatten(
        self, rows: torch.Tensor, start: int, params_of_model: Sequence[torch.Tensor], k: int
    ) -> list[torch.Tensor]:
        """Model ``k``'s tensors inside ``rows`` (a stage's (K, n) columns from ``start``), shaped as
        ``params_of_model`` (that model's own tensors of the stage)."""
        out = []
        for p in params_of_model:
            at, shape = self.layout[self._names[k][id(p)]]
            out.append(rows[k, at - start : at - start + shape.numel()].view(shape))
        return out

    def release(self) -> None:
        """Give every model its own copy of its row again (the stack can then be freed)."""
        for m in self.models:
            for t in [*m.parameters(), *m.buffers()]:
                t.data = t.data.clone()


class StackedAdam:
    """Adam over stacked parameters, per model: learning rate, step count, which models step, restarts."""

    def __init__(
        self, params: Sequence[torch.Tensor], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        self.params = list(params)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        k = self.params[0].shape[0]
        self.steps = torch.zeros(k, dtype=torch.float64, device=self.params[0].device)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: torch.Tensor, mask: torch.Tensor) -> None:
        """One Adam step of the models where ``mask`` (K,) is set, each at its ``lr`` (K,) (float64)."""
        self.steps += mask
        # torch.optim.Adam computes these in double on the host; so do we, per model, on the device.
        bc1 = 1 - self.beta1**self.steps
        bc2_sqrt = (1 - self.beta2**self.steps).sqrt()
        neg_step = (-lr / bc1).float()
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            on = per_model(mask, p)
            m_new = m.lerp(g, 1 - self.beta1)
            v_new = v.mul(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (v_new.sqrt() / per_model(bc2_sqrt.float(), p)).add_(self.eps)
            moved = p + per_model(neg_step, p) * m_new / denom  # addcdiv's order of operations
            torch.where(on, m_new, m, out=m)
            torch.where(on, v_new, v, out=v)
            torch.where(on, moved, p, out=p)

    @torch.no_grad()
    def reset(self, mask: torch.Tensor) -> None:
        """Forget the state of the models where ``mask`` is set (a fresh optimiser after a restart)."""
        self.steps.masked_fill_(mask, 0)
        for m, v in zip(self.exp_avg, self.exp_avg_sq, strict=True):
            m.masked_fill_(per_model(mask, m), 0)
            v.masked_fill_(per_model(mask, v), 0)
