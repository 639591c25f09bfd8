"""A plain PyTorch SIREN training loop written like COIN's reference trainer (Dupont et al. 2021,
github.com/EmilienDupont/coin, ``training.py``), the reference ``spinr bench train`` measures spinr's
own loop against.

As COIN's ``Trainer.train``: Adam over every parameter, the full batch of pixels every step, MSE
loss, the loss read back (``loss.item()``) and a clamped PSNR computed every step, and the model with
the best PSNR seen in the second half of training kept. The targets are spinr's ([-1, 1]; COIN's
are [0, 1]) so both loops fit the same function with the same network, steps and learning rate.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn


def clamped_psnr(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR (dB) of the prediction clamped to the targets' range [-1, 1] (COIN's ``get_clamped_psnr``)."""
    mse = torch.mean((predicted.detach().clamp(-1.0, 1.0) - target) ** 2).item()
    return math.inf if mse <= 0 else 10.0 * math.log10(4.0 / mse)


def coin_train(model: nn.Module, coords: torch.Tensor, target: torch.Tensor, steps: int, lr: float) -> float:
    """Fit ``model`` for ``steps`` Adam steps; returns the best PSNR seen (its weights are loaded)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_func = nn.MSELoss()
    best_vals = {"psnr": 0.0, "loss": 1e8}
    logs: dict[str, list[float]] = {"psnr": [], "loss": []}
    best_model = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    for i in range(steps):
        optimizer.zero_grad()
        predicted = model(coords)
        loss = loss_func(predicted, target)
        loss.backward()
        optimizer.step()
        psnr = clamped_psnr(predicted, target)
        logs["loss"].append(loss.item())
        logs["psnr"].append(psnr)
        if loss.item() < best_vals["loss"]:
            best_vals["loss"] = loss.item()
        if psnr > best_vals["psnr"]:
            best_vals["psnr"] = psnr
            if i > int(steps / 2.0):
                for k, v in model.state_dict().items():
                    best_model[k].copy_(v)
    model.load_state_dict(best_model)
    return best_vals["psnr"]
