"""Optimizers (SGD with momentum/Nesterov, AdamW), weight-decay groups, and an EMA of the weights."""

from __future__ import annotations

import copy

import torch
from torch import nn

from cnnlab.errors import ConfigError

__all__ = ["ModelEma", "build_optimizer", "param_groups"]


def param_groups(model: nn.Module, weight_decay: float, norm_bias_decay: bool = True) -> list[dict]:
    """Trainable parameters in one group, or two when norm weights and biases (1-D tensors) skip decay."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters (is everything frozen?)")
    if norm_bias_decay:
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    # 1-D parameters are exactly the biases and the norm layers' scales and shifts.
    decay = [p for _, p in params if p.ndim > 1]
    no_decay = [p for _, p in params if p.ndim <= 1]
    return [
        g
        for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
        if g["params"]
    ]


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    norm_bias_decay: bool = True,
) -> torch.optim.Optimizer:
    """SGD or AdamW over the model's trainable parameters."""
    groups = param_groups(model, weight_decay, norm_bias_decay)
    if name == "sgd":
        if nesterov and momentum <= 0:
            raise ConfigError("Nesterov momentum needs --momentum above 0")
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, foreach=True)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), foreach=True)
    raise ConfigError(f"unknown optimizer {name!r}; choose sgd or adamw")


class ModelEma:
    """Exponential moving average of a model's weights (Polyak averaging); buffers are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # Ramp the decay up early so the average is not dominated by the random initialization.
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_params = [p for p in self.module.parameters()]
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for ema_buf, buf in zip(self.module.buffers(), model.buffers()):
            ema_buf.copy_(buf)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
