"""Packet drops: independent (Bernoulli) and bursty (Gilbert-Elliott two-state Markov chain)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from netsim.datagram import Delivery
from netsim.errors import ChannelConfigError
from netsim.stage import Stage, StageRun, UniformStage
from netsim.validate import number, probability


class IndependentLoss(UniformStage):
    """Drop each datagram independently with probability ``rate``."""

    name = "loss"

    def __init__(self, rate: float) -> None:
        self.rate = probability("loss rate", rate)

    def process(self, deliveries: Sequence[Delivery], u: np.ndarray) -> list[Delivery]:
        keep = u[:, 0] >= self.rate
        return [d for d, k in zip(deliveries, keep, strict=True) if k]


class GilbertElliott(Stage):
    """Bursty loss: a Good/Bad Markov chain, one step per datagram, a loss probability per state.

    Transitions after each datagram: Good -> Bad with ``p_gb``, Bad -> Good with ``p_bg``. The chain
    starts in its stationary distribution, so the first datagrams are not special.

    With ``loss_good = 0`` and ``loss_bad = 1`` (the Gilbert model, what :meth:`from_mean` builds):

    - stationary share of Bad steps ``pi_B = p_gb / (p_gb + p_bg)`` is the loss rate;
    - a run of consecutive losses is a stay in Bad, geometric with mean ``1 / p_bg``.

    So a target loss rate ``L`` and mean burst ``B`` give ``p_bg = 1 / B`` and
    ``p_gb = L * p_bg / (1 - L) = L / ((1 - L) * B)``; ``p_gb <= 1`` requires ``B >= L / (1 - L)``.
    """

    name = "loss"  # same stream key as IndependentLoss: a loss model is one slot in the pipeline

    def __init__(self, p_gb: float, p_bg: float, loss_good: float = 0.0, loss_bad: float = 1.0) -> None:
        self.p_gb = probability("p_gb", p_gb)
        self.p_bg = probability("p_bg", p_bg)
        self.loss_good = probability("loss_good", loss_good)
        self.loss_bad = probability("loss_bad", loss_bad)
        if self.p_gb + self.p_bg == 0:
            raise ChannelConfigError(
                "p_gb and p_bg are both 0: the chain never moves; allowed p_gb + p_bg > 0"
            )

    @classmethod
    def from_mean(cls, loss_rate: float, mean_burst: float) -> GilbertElliott:
        """The Gilbert chain whose stationary loss rate is ``loss_rate`` and mean loss run ``mean_burst``."""
        loss = number("loss rate", loss_rate, 0.0, 1.0)
        burst = number("mean burst", mean_burst, 1.0)
        if loss >= 1.0:
            raise ChannelConfigError(
                "loss rate 1.0 has no bursts; allowed [0, 1) for a Gilbert-Elliott chain"
            )
        p_bg = 1.0 / burst
        p_gb = loss * p_bg / (1.0 - loss)
        if p_gb > 1.0:
            raise ChannelConfigError(
                f"mean burst {mean_burst:g} is too short for loss rate {loss_rate:g}; "
                f"allowed mean burst >= loss/(1-loss) = {loss / (1 - loss):g}"
            )
        return cls(p_gb, p_bg)

    @property
    def stationary_loss(self) -> float:
        """Long-run fraction of datagrams lost."""
        pi_bad = self.p_gb / (self.p_gb + self.p_bg)
        return pi_bad * self.loss_bad + (1 - pi_bad) * self.loss_good

    def open(self, rng: np.random.Generator) -> StageRun:
        return _GilbertRun(self, rng)


class _GilbertRun(StageRun):
    def __init__(self, model: GilbertElliott, rng: np.random.Generator) -> None:
        self.model, self.rng = model, rng
        self.bad: bool | None = None  # drawn on first use so an unused run consumes nothing

    def push(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        if not deliveries:
            return []
        m = self.model
        if self.bad is None:
            self.bad = bool(self.rng.random() < m.p_gb / (m.p_gb + m.p_bg))
        u = self.rng.random((len(deliveries), 2))  # column 0: loss draw, column 1: transition draw
        bad, out = self.bad, []
        for d, (u_loss, u_move) in zip(deliveries, u.tolist(), strict=True):
            if u_loss >= (m.loss_bad if bad else m.loss_good):
                out.append(d)
            bad = u_move >= m.p_bg if bad else u_move < m.p_gb
        self.bad = bad
        return out
