"""Residual coding from a shared θ0, the encoder's side: which θ0 an encode starts from (the size
model's network snapped to the nearest shipped one), starting a model there, and θ0's tensors in
``model.units()`` order (the quantizers code θ − θ0 against them; a decoder adds them back)."""

from __future__ import annotations

from typing import Any

import numpy as np

from codec.config import EncodeConfig
from codec.errors import ConfigError
from codec.meta import store
from codec.meta.initfile import InitFile

META_MODELS = ("spinr", "siren")
SNAP_WARN_RATIO = 1.5
"""A snapped network with more than this ratio of parameters from the planned one earns a warning."""
FINETUNE_LR_RANGE = (1e-5, 0.1)
"""The fine-tune learning rates a θ0 file may carry (anything else in a file is ignored)."""
PENALTY_MAX = 1e6
"""The largest fine-tune residual penalty a θ0 file may carry (``TrainConfig.residual_penalty``'s range)."""
PENALTY_FULL_BITS = 4.0
PENALTY_ZERO_BITS = 7.0
"""θ0's penalty applies in full up to PENALTY_FULL_BITS coded bits per parameter of the target and
fades to none at PENALTY_ZERO_BITS. Measured on the two held-out sun80 photographs (SPINR 16 x 3,
1000 steps from the λ = 30 θ0, λ in 0 / 5 / 10 / 20 / 30; docs/SPINR.md, "Fifth pass"): λ = 20-30 was
best up to 4.5 bits per parameter, 10 at 5-5.75, 0-5 from 6.4 on."""


def finetune_lr(init: InitFile) -> float | None:
    """The learning rate an encode from ``init`` fine-tunes at when ``--lr`` is unset: the one it was
    meta-trained or tuned for (``meta["finetune"]["lr"]``; Meta-SGD's learned rate, one per network).
    Only the encoder reads it; the decoder and the content hash ignore it."""
    lr = init.meta.get("finetune", {}).get("lr") if isinstance(init.meta.get("finetune"), dict) else None
    if isinstance(lr, (int, float)) and FINETUNE_LR_RANGE[0] <= lr <= FINETUNE_LR_RANGE[1]:
        return float(lr)
    return None


def finetune_penalty(init: InitFile, bits_per_param: float | None = None) -> float:
    """The residual penalty λ an encode from ``init`` fine-tunes with when ``--residual-penalty`` is
    unset: the one its Reptile inner loop used (``meta["finetune"]["residual_penalty"]``; 0 when the
    file names none, or an out-of-range one), at full strength up to ``PENALTY_FULL_BITS`` coded bits
    per parameter and fading linearly to none at ``PENALTY_ZERO_BITS``: a small residual is what a
    low rate needs, a better fit what a high one needs."""
    tune = init.meta.get("finetune")
    lam = tune.get("residual_penalty") if isinstance(tune, dict) else None
    if not (isinstance(lam, (int, float)) and not isinstance(lam, bool) and 0 <= lam <= PENALTY_MAX):
        return 0.0
    if bits_per_param is None:
        return float(lam)
    share = (PENALTY_ZERO_BITS - bits_per_param) / (PENALTY_ZERO_BITS - PENALTY_FULL_BITS)
    return round(float(lam) * min(1.0, max(0.0, share)), 3)


def _matches(init: InitFile, cfg: EncodeConfig) -> bool:
    m = cfg.model
    return (
        init.model == m.name
        and init.arch["width"] == m.width
        and init.arch["hidden_layers"] == m.hidden_layers
        and init.arch.get("pe_frequencies", 0) == m.options.get("pe_frequencies", 0)
    )


def choose(
    cfg: EncodeConfig, sized: bool, planned_params: int, target: int | None = None
) -> tuple[EncodeConfig, InitFile, list[str]]:
    """The θ0 of a ``--init meta`` encode and the config snapped to its network. ``sized``: the size
    model chose the network (it is snapped to the shipped θ0 with the nearest parameter count); a
    network the user fixed must be one a θ0 ships for. ``target`` (bytes; None: ``--bits``) sets how
    much of θ0's residual penalty an unset ``residual_penalty`` takes (:func:`finetune_penalty`)."""
    m = cfg.model
    if m.name not in META_MODELS:
        raise ConfigError(f"--init meta applies to {', '.join(META_MODELS)}, not {m.name!r}")
    notes: list[str] = []
    if sized:
        init = store.nearest(m.name, planned_params, m.hidden_layers)
        have = store.param_count(init)
        if max(have, planned_params) / max(1, min(have, planned_params)) > SNAP_WARN_RATIO:
            notes.append(
                f"--init meta: the nearest shipped θ0 has {have} parameters where the size model planned"
                f" {planned_params}; the rate target is still met"
            )
    else:
        found = [i for i in store.shipped() if _matches(i, cfg)]
        if not found:
            ships = "; ".join(
                f"{i.model} {i.arch['width']}x{i.arch['hidden_layers']} L={i.arch.get('pe_frequencies', 0)}"
                for i in store.shipped()
            )
            raise ConfigError(
                f"--init meta: no θ0 ships for {m.name} {m.width} wide x {m.hidden_layers} hidden, L="
                f"{m.options.get('pe_frequencies', 0)} (shipped: {ships or 'none'}); leave --width/--depth unset"
            )
        init = found[0]
    cfg = cfg.replace()
    cfg.model.width, cfg.model.hidden_layers = init.arch["width"], init.arch["hidden_layers"]
    for key in ("pe_frequencies", "pe_scale", "first_omega_0", "hidden_omega_0", "head", "residual"):
        if key in init.arch:
            cfg.model.options[key] = init.arch[key]
    if cfg.train.lr is None:
        cfg.train.lr = finetune_lr(init)
    if cfg.train.residual_penalty is None:
        params = store.param_count(init)
        bits = cfg.quant.bits if target is None else 8 * target / max(1, params)
        cfg.train.residual_penalty = finetune_penalty(init, bits)
    store.register(init)
    return cfg.validate(), init, notes


def start_from(model: Any, init: InitFile) -> None:
    """Set ``model`` (torch) to θ0 and to fine-tuning (one stage training every layer)."""
    from codec.meta.reptile import load_weights

    load_weights(model, init)
    model.from_init = True


def base_tensors(model: Any, init: InitFile | None) -> list[np.ndarray] | None:
    """θ0's tensors in ``model.units()`` order (None without a θ0)."""
    if init is None:
        return None
    return [init.weights[u][n] for u, (_, tensors) in enumerate(model.units()) for n, _ in tensors]
