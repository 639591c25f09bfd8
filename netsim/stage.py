"""The stage interface: a channel is a pipeline of stages, each a pure function of deliveries + rng.

Every stage exposes two ways in. :meth:`Stage.apply` transforms a whole list at once. :meth:`Stage.open`
returns a :class:`StageRun` that keeps the stage's state (a Gilbert-Elliott state, a token bucket's
fill, packets held back for reordering) across :meth:`StageRun.push` calls; ``apply`` is exactly
``open`` + one ``push`` + ``flush``. Stages draw their random numbers per delivery in input order
(doubles only, or scalar calls per delivery), so pushing a list in one batch or one delivery at a
time consumes the generator identically: that is what makes a streaming session reproduce a batch
transmission packet for packet.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from netsim.datagram import Delivery


class StageRun(ABC):
    """A stage in use: carries its state between pushes."""

    @abstractmethod
    def push(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Feed deliveries in send order; return what leaves the stage now."""

    def flush(self) -> list[Delivery]:
        """End of input: release anything held back (reordering, queues)."""
        return []


class Stage(ABC):
    """One effect of the channel (loss, corruption, delay...)."""

    name: ClassVar[str]
    """Stable name; the channel derives the stage's random stream from it, so adding one stage does
    not change the random draws of the others."""

    @abstractmethod
    def open(self, rng: np.random.Generator) -> StageRun:
        """Start a run that draws from ``rng``."""

    def apply(self, deliveries: Sequence[Delivery], rng: np.random.Generator) -> list[Delivery]:
        """Transform a whole sequence; a pure function of ``deliveries`` and the state of ``rng``."""
        run = self.open(rng)
        return run.push(deliveries) + run.flush()


class UniformRun(StageRun):
    """Run of a stateless stage that needs ``draws`` uniform doubles per delivery."""

    def __init__(self, stage: UniformStage, rng: np.random.Generator) -> None:
        self.stage, self.rng = stage, rng

    def push(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        if not deliveries:
            return []
        # rng.random((n, k)) consumes the stream exactly like n calls of rng.random(k).
        u = self.rng.random((len(deliveries), self.stage.draws))
        return self.stage.process(deliveries, u)


class UniformStage(Stage):
    """A stateless stage deciding each delivery from a fixed number of uniform draws."""

    draws: ClassVar[int] = 1

    @abstractmethod
    def process(self, deliveries: Sequence[Delivery], u: np.ndarray) -> list[Delivery]:
        """``u`` has shape ``(len(deliveries), draws)``, uniform in [0, 1)."""

    def open(self, rng: np.random.Generator) -> StageRun:
        return UniformRun(self, rng)
