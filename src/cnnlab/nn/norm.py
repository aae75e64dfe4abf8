"""Batch norm and layer norm written from their formulas, interchangeable with PyTorch's layers.

Batch norm (Ioffe & Szegedy 2015) normalizes each channel by statistics over the batch and the image,
``y = (x - mean_c) / sqrt(var_c + eps) * gamma_c + beta_c``, and keeps running estimates of the mean and
variance for evaluation. Layer norm (Ba et al. 2016) over (C, H, W) normalizes each example by its own
statistics, so it behaves the same in training and evaluation and does not depend on the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import ConfigError, InputSizeError

__all__ = ["BatchNorm2d", "LayerNorm"]

_PER_CHANNEL = (1, -1, 1, 1)  # a (C,) vector broadcast over (B, C, H, W)


class BatchNorm2d(nn.Module):
    """Batch norm: per channel (x - mean) / sqrt(var + eps) * weight + bias; batch stats, running in eval.

    Same constructor, parameters, buffers and state_dict keys as ``nn.BatchNorm2d``, so weights load both
    ways. Normalization uses the biased batch variance; the running variance is updated with the unbiased
    one, ``running <- (1 - momentum) * running + momentum * batch``, and ``momentum=None`` makes it the
    cumulative average over ``num_batches_tracked`` batches, all as PyTorch does.
    """

    is_norm_layer = True  # models.layers.init_kaiming initializes layers that carry this mark like BatchNorm

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ConfigError(f"num_features must be a positive int, got {num_features!r}")
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        # As nn.BatchNorm2d: batch statistics in training, and in eval too when no running stats are kept.
        if self.training or self.running_mean is None:
            mean = x.mean(dim=(0, 2, 3))  # (C,)
            centered = x - mean.view(_PER_CHANNEL)
            var = centered.square().mean(dim=(0, 2, 3))  # biased: divides by n = B * H * W
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, var, count=x.numel() // x.shape[1])
        else:
            centered = x - self.running_mean.view(_PER_CHANNEL)
            var = self.running_var
        y = centered * torch.rsqrt(var.view(_PER_CHANNEL) + self.eps)
        if self.affine:
            y = y * self.weight.view(_PER_CHANNEL) + self.bias.view(_PER_CHANNEL)
        return y

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise InputSizeError(f"BatchNorm2d expects a 4-D input (B, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise InputSizeError(f"BatchNorm2d was built for {self.num_features} channels, got {x.shape[1]}")
        if self.training and x.numel() // x.shape[1] < 2:
            raise InputSizeError(f"BatchNorm2d needs more than one value per channel in training, got input "
                             f"{tuple(x.shape)}; use a larger batch or switch to eval()")

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        """Move the running estimates toward this batch; the variance enters unbiased (n / (n - 1))."""
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased_var = var * (count / (count - 1))
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased_var, alpha=factor)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class LayerNorm(nn.Module):
    """Layer norm over (C, H, W): per example (x - mean) / sqrt(var + eps), then per-channel weight and bias.

    Takes the channel count like a norm layer factory (``norm_layer=LayerNorm``). Equal to
    ``nn.GroupNorm(1, C)`` (same state_dict keys), and to ``nn.LayerNorm([C, H, W])`` when that layer's
    elementwise weight and bias are constant over (H, W), i.e. our per-channel ones broadcast.
    """

    is_norm_layer = True  # models.layers.init_kaiming initializes layers that carry this mark like BatchNorm

    def __init__(
        self,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_channels, int) or num_channels < 1:
            raise ConfigError(f"num_channels must be a positive int, got {num_channels!r}")
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels, device=device, dtype=dtype))
            self.bias = nn.Parameter(torch.zeros(num_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise InputSizeError(f"LayerNorm expects an input (B, {self.num_channels}, ...), got shape "
                             f"{tuple(x.shape)}")
        dims = tuple(range(1, x.dim()))  # everything but the batch: (C, H, W) for images
        mean = x.mean(dim=dims, keepdim=True)  # (B, 1, 1, 1)
        centered = x - mean
        var = centered.square().mean(dim=dims, keepdim=True)  # biased, as in the formula
        y = centered * torch.rsqrt(var + self.eps)
        if self.affine:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, affine={self.affine}"
