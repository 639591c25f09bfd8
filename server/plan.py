"""A job's plan, decided when it is uploaded: the network, the target, pixel batches and a width cap.

The codec plans every encode the same way (``codec.rate.plan_encode``: the size model's network, the
byte target, ``codec.memory``'s pixel batches within the memory limit); the server adds its own
limits. Its width cap (``Settings.option_caps``) bounds the width the size model may pick, and its
memory per job (``spinr serve --max-job-memory``) replaces the machine's default. What the worker
must run exactly so is written into the job's options (a capped network is pinned, the memory limit
travels with it), so the worker plans the same encode; the plan itself is stored with the job and
shown by the API (docs/API.md, "Plan"), the training-time estimate added by the worker (``codec.timing``).
"""

from __future__ import annotations

from typing import Any

from codec.config import EncodeConfig
from codec.memory import GIB
from codec.rate import plan_encode

LIMIT_HINT = "spinr serve --max-job-memory"


def plan_job(
    cfg: EncodeConfig, options: dict[str, Any], width: int, height: int, limit: int, max_width: int | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's options as the worker must run them, and its plan (JSON); ConfigError (a
    ``codec.memory.MemoryTooLarge`` naming the numbers) when it cannot fit ``limit`` bytes."""
    cfg = cfg.replace(**{"train.max_memory": limit / GIB})
    rate = plan_encode(cfg, width, height, max_width=max_width, limit_hint=LIMIT_HINT)
    out = {**options, "max_memory": limit / GIB}
    if rate.cfg.train.batch_pixels != cfg.train.batch_pixels:
        out["batch_pixels"] = rate.cfg.train.batch_pixels
    if rate.sized is not None and rate.uncapped_width is not None:
        # The size model planned within the cap: pin that network so the worker trains it as planned.
        model = rate.cfg.model
        out.pop("bpp", None)
        out.update(width=model.width, depth=model.hidden_layers, bytes=rate.target_bytes)
        # The planned network's options (a θ0's when ``--init meta`` snapped to one), not the size model's.
        out.update({k: model.options.get(k, v) for k, v in rate.sized.options.items() if k not in out})
    return out, rate.to_json(width, height)
