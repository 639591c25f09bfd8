"""Sequential quantization's shortcuts change no byte (issue 10 item 5: seqquant was ~45 % of a quick
encode). SPINR's ``outputs_changing`` reuses what a changed weight does not reach (sensitivity probes,
fine-tuning the later units), and ``seqquant._Units`` remembers each tensor's codes, estimate and exact
size per multiplier: each is checked against the plain path it replaces, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.bitstream import units_bytes
from codec.config import TrainConfig
from codec.models import build_model
from codec.models.base import INR
from codec.seqquant import _Units, estimate_bytes, quantize_to_bytes
from codec.stepalloc import steps_for
from codec.stepquant import all_depths, model_sensitivity, model_tensors, probe_data
from codec.train import fit


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[60:252:3, 140:396:3])  # 86 x 64


def trained(crop: np.ndarray, options: dict) -> INR:
    torch.manual_seed(0)
    model = build_model("spinr", 16, 3, {"pe_frequencies": 4, **options})
    fit(model, crop, TrainConfig(steps=40, lr=2e-3, device="cpu"))
    return model.eval()


def plain(model: INR) -> INR:
    """``model`` with the plain (recompute everything) ``outputs_changing`` of the base class."""
    model.outputs_changing = lambda coords, depths: INR.outputs_changing(model, coords, depths)  # type: ignore[method-assign]
    return model


@pytest.mark.parametrize("options", [{"joint": 0.5}, {"head": "shared"}, {"residual": False}])
def test_spinr_outputs_with_a_changed_weight_are_the_full_pass(crop: np.ndarray, options: dict) -> None:
    model = trained(crop, options)
    x, _ = probe_data(crop, torch.device("cpu"))
    depths = all_depths(model)
    outputs = model.outputs_changing(x, depths)
    for t in model_tensors(model):
        saved = t.detach().clone()
        with torch.no_grad():
            t.add_(torch.randn_like(t) * 0.01)
            fast = outputs([t])
            full = model.forward_exits(x, list(range(model.depths)))
            t.copy_(saved)
        assert all(torch.equal(a, b) for a, b in zip(fast, full, strict=True))
    with torch.no_grad():
        full = model.forward_exits(x, depths)
        assert all(torch.equal(a, b) for a, b in zip(outputs([]), full, strict=True))
        # A tensor that is not one of the model's weights: everything is recomputed.
        assert all(torch.equal(a, b) for a, b in zip(outputs([torch.zeros(1)]), full, strict=True))


def test_fine_tuning_the_later_units_gets_the_full_passs_gradients(crop: np.ndarray) -> None:
    model = trained(crop, {"joint": 0.5})
    x, y = probe_data(crop, torch.device("cpu"))
    later = [t for _, ts in model.units()[2:] for _, t in ts]
    for p in model.parameters():
        p.requires_grad_(False)
    for t in later:
        t.requires_grad_(True)
    grads = []
    for outs in (model.outputs_changing(x, all_depths(model))(later), model.forward_exits(x, [0, 1, 2, 3])):
        loss = torch.exp(torch.stack([torch.log(torch.mean((o - y) ** 2)) for o in outs]).mean())
        grads.append(torch.autograd.grad(loss, later))
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


def test_sensitivities_and_sequential_quantization_are_those_of_the_plain_path(crop: np.ndarray) -> None:
    model = trained(crop, {"joint": 0.5})
    copy = trained(crop, {"joint": 0.5})
    assert model_sensitivity(model, crop) == model_sensitivity(plain(copy), crop)
    budget = 900
    fast = quantize_to_bytes(model, crop, budget, finetune_steps=6)
    slow = quantize_to_bytes(copy, crop, budget, finetune_steps=6)
    assert fast.steps == slow.steps and fast.bytes == slow.bytes == units_bytes(fast.units) <= budget
    assert [units_bytes([u]) for u in fast.units] == [units_bytes([u]) for u in slow.units]
    for a, b in zip(model.parameters(), copy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_remembered_codes_estimates_and_sizes_are_the_computed_ones(crop: np.ndarray) -> None:
    model = trained(crop, {"joint": 0.5})
    sens = model_sensitivity(model, crop)
    us = _Units(model, sens)
    for u in range(us.count):
        mine = us.members(u)
        for m in (1e-4, 3e-3, 0.05, 1e-4):  # the last one is remembered
            unit, steps = us.unit(u, m)
            assert steps == steps_for([us.values[i] for i in mine], [sens[i] for i in mine], m)
            assert us.unit_estimate(u, m) == estimate_bytes(unit)
            assert us.unit_bytes(u, m) == units_bytes([unit])
    assert us.estimate(1, 3e-3, 0.9) == 0.9 * sum(
        estimate_bytes(us.unit(u, 3e-3)[0]) for u in range(1, us.count)
    )
