"""Curvature: the extreme Hessian eigenvalues by Hessian-vector products, and convexity read off a computed grid.

Li et al. 2018 (Visualizing the Loss Landscape of Neural Nets, section 6) check what the pictures suggest with
the Hessian: at a convex point every eigenvalue is >= 0, and |lambda_min / lambda_max| measures how far from
convex a point is. The Hessian of a network has as many rows as parameters, so it is never formed: a
Hessian-vector product costs about two gradient passes (Pearlmutter 1994: the gradient of the gradient's dot
product with the vector; double backward measured a little faster on a CPU than ``torch.func``'s forward-over-
reverse ``jvp(grad(f))``), and

- Lanczos iteration (Lanczos 1950, with full reorthogonalization) builds a small tridiagonal matrix whose
  extreme eigenvalues converge to the Hessian's, both ends at once (the default);
- power iteration (the reference code's way) finds the eigenvalue of largest magnitude, then the other end
  by iterating on ``H - lambda_max I``.

Batch norm runs in eval mode (running statistics), so the loss is one smooth function of the weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from cnnlab.errors import ConfigError
from cnnlab.train.build import split_outputs

__all__ = [
    "HESSIAN_METHODS",
    "HessianSpectrum",
    "extreme_eigenvalues",
    "hessian_vector_product",
    "lanczos",
    "nonconvex_fraction",
    "power_iteration",
    "principal_curvatures",
    "spectrum_from_dict",
]

HESSIAN_METHODS = ("lanczos", "power")
MatVec = Callable[[torch.Tensor], torch.Tensor]


def _cross_entropy_sum(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # Half-precision logits are summed in float32; float64 models keep their precision.
    return F.cross_entropy(outputs if outputs.dtype == torch.float64 else outputs.float(), targets, reduction="sum")


def hessian_vector_product(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                           loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                           ) -> tuple[MatVec, int]:
    """``(hvp, n)``: ``hvp(v)`` is the Hessian of the mean loss over ``batches`` with respect to the model's
    trainable parameters (flattened, ``n`` of them) times ``v``, at the weights the model holds now.

    ``loss_fn(outputs, targets)`` returns the summed loss of a batch (default: cross-entropy). The model is
    used through ``functional_call`` and not modified; put it in eval mode first.
    """
    loss_fn = loss_fn or _cross_entropy_sum
    params = {k: p.detach().clone().requires_grad_(True) for k, p in model.named_parameters() if p.requires_grad}
    buffers = {k: b.detach() for k, b in model.named_buffers()}
    leaves = list(params.values())
    sizes = [p.numel() for p in leaves]
    count = sum(len(y) for _, y in batches)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        tangent = [t.reshape(p.shape).to(p.dtype) for t, p in zip(v.split(sizes), leaves)]
        total = torch.zeros_like(v)
        with torch.enable_grad():
            for x, y in batches:
                loss = loss_fn(split_outputs(functional_call(model, {**params, **buffers}, (x,)))[0], y)
                # allow_unused / materialize_grads: a parameter the loss does not reach has zero curvature.
                grads = torch.autograd.grad(loss, leaves, create_graph=True, materialize_grads=True)
                hv = torch.autograd.grad(grads, leaves, grad_outputs=tangent, materialize_grads=True)
                total += torch.cat([h.reshape(-1) for h in hv]).to(v.dtype)
        return total / count

    return hvp, sum(sizes)


def _start_vector(n: int, seed: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    v = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device, dtype)
    return v / v.norm()


def lanczos(matvec: MatVec, n: int, iterations: int, seed: int = 0, dtype: torch.dtype = torch.float32,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """The eigenvalues (ascending) of the Lanczos tridiagonal matrix after at most ``iterations`` products:
    its extreme ones approximate the operator's extreme eigenvalues (exactly after ``n`` steps)."""
    q = _start_vector(n, seed, dtype, torch.device(device))
    basis: list[torch.Tensor] = []
    alphas: list[float] = []
    betas: list[float] = []
    previous, beta = torch.zeros_like(q), 0.0
    for step in range(min(iterations, n)):
        basis.append(q)
        w = matvec(q)
        alpha = float(torch.dot(w, q))
        w = w - alpha * q - beta * previous
        stacked = torch.stack(basis)  # (j, n): full reorthogonalization, twice ("twice is enough")
        for _ in range(2):
            w = w - stacked.T @ (stacked @ w)
        alphas.append(alpha)
        beta = float(w.norm())
        if step == min(iterations, n) - 1 or beta <= 1e-10 * max(abs(a) for a in alphas):
            break  # the Krylov space is invariant: its eigenvalues are exact
        betas.append(beta)
        previous, q = q, w / beta
    k = len(alphas)
    tri = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if k > 1:
        off = torch.tensor(betas[: k - 1], dtype=torch.float64)
        tri += torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigvalsh(tri)


def power_iteration(matvec: MatVec, n: int, iterations: int, tol: float = 1e-6, shift: float = 0.0, seed: int = 0,
                    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> tuple[float, int]:
    """(eigenvalue of ``matvec`` of largest magnitude after subtracting ``shift``, plus ``shift``; products used)."""
    v = _start_vector(n, seed, dtype, torch.device(device))
    value = 0.0
    for step in range(1, iterations + 1):
        w = matvec(v) - shift * v
        new = float(torch.dot(v, w))  # Rayleigh quotient of the unit vector v
        norm = float(w.norm())
        if norm == 0.0:
            return shift, step
        v = w / norm
        if abs(new - value) <= tol * abs(new):
            return new + shift, step
        value = new
    return value + shift, iterations


@dataclass
class HessianSpectrum:
    """The extreme Hessian eigenvalues at one point and what they cost."""

    lambda_max: float
    lambda_min: float
    method: str
    products: int  # Hessian-vector products computed
    points: int  # data points the loss averages over

    @property
    def ratio(self) -> float:
        """|lambda_min / lambda_max|: 0 at a convex point, large where negative curvature dominates."""
        return abs(self.lambda_min / self.lambda_max) if self.lambda_max != 0 else float("inf")

    def to_dict(self) -> dict[str, float | str | int]:
        return {**asdict(self), "ratio": self.ratio}


def extreme_eigenvalues(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                        iterations: int = 20, method: str = "lanczos", seed: int = 0,
                        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                        tol: float = 1e-6) -> HessianSpectrum:
    """The largest and smallest eigenvalues of the Hessian of the mean loss over ``batches`` at the model's
    weights (eval mode, on a private copy: the model is left as it was)."""
    if method not in HESSIAN_METHODS:
        raise ConfigError(f"the Hessian method is one of {', '.join(HESSIAN_METHODS)}, got {method!r}")
    if iterations < 1:
        raise ConfigError(f"Hessian iterations must be 1 or more, got {iterations}")
    work = copy.deepcopy(model).eval()
    hvp, n = hessian_vector_product(work, batches, loss_fn)
    first = next(p for p in work.parameters() if p.requires_grad)
    kw = {"seed": seed, "dtype": first.dtype, "device": first.device}
    points = sum(len(y) for _, y in batches)
    if method == "lanczos":
        values = lanczos(hvp, n, iterations, **kw)
        return HessianSpectrum(float(values[-1]), float(values[0]), method, min(iterations, n), points)
    top, used = power_iteration(hvp, n, iterations, tol, **kw)
    other, more = power_iteration(hvp, n, iterations, tol, shift=top, **kw)
    high, low = max(top, other), min(top, other)
    return HessianSpectrum(high, low, method, used + more, points)


def principal_curvatures(z: np.ndarray, axes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(smaller, larger) eigenvalue of the finite-difference Hessian of a grid at every interior point.

    ``z`` is (nx,) on one axis or (ny, nx) on two (x along columns); central differences of second order.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        h = float(axes[0][1] - axes[0][0])
        second = (z[2:] - 2 * z[1:-1] + z[:-2]) / h**2
        return second, second
    hx, hy = float(axes[0][1] - axes[0][0]), float(axes[1][1] - axes[1][0])
    zxx = (z[1:-1, 2:] - 2 * z[1:-1, 1:-1] + z[1:-1, :-2]) / hx**2
    zyy = (z[2:, 1:-1] - 2 * z[1:-1, 1:-1] + z[:-2, 1:-1]) / hy**2
    zxy = (z[2:, 2:] - z[2:, :-2] - z[:-2, 2:] + z[:-2, :-2]) / (4 * hx * hy)
    mean, radius = (zxx + zyy) / 2, np.sqrt(((zxx - zyy) / 2) ** 2 + zxy**2)
    return mean - radius, mean + radius


def nonconvex_fraction(z: np.ndarray, axes: Sequence[np.ndarray], rel_tol: float = 0.01,
                       mask: np.ndarray | None = None) -> float:
    """The fraction of interior grid points where the surface curves down: the smaller principal curvature is
    negative by more than ``rel_tol`` times the larger one's magnitude (float noise on flat ground is not
    counted). ``mask`` (shaped like ``z``) limits the count to chosen points, e.g. the region below a loss level."""
    low, high = principal_curvatures(z, axes)
    bent = low < -rel_tol * np.maximum(np.abs(high), np.finfo(np.float64).tiny)
    finite = np.isfinite(low) & np.isfinite(high)
    keep = finite if mask is None else finite & _interior(np.asarray(mask, dtype=bool))
    return float(bent[keep].mean()) if keep.any() else float("nan")


def _interior(mask: np.ndarray) -> np.ndarray:
    return mask[1:-1] if mask.ndim == 1 else mask[1:-1, 1:-1]


def spectrum_from_dict(values: Mapping[str, float]) -> HessianSpectrum:
    """A spectrum stored by ``HessianSpectrum.to_dict``."""
    return HessianSpectrum(float(values["lambda_max"]), float(values["lambda_min"]), str(values["method"]),
                           int(values["products"]), int(values["points"]))
