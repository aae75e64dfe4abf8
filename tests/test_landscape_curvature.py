"""Curvature: Lanczos and power iteration against the explicit Hessian (torch.func.hessian + eigvalsh), and the
convexity read off a grid on surfaces whose curvature is known."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from cnnlab.errors import ConfigError
from cnnlab.experiments.landscape.curvature import (
    extreme_eigenvalues,
    hessian_vector_product,
    lanczos,
    nonconvex_fraction,
    power_iteration,
    principal_curvatures,
)


def _small_model() -> nn.Module:
    """Conv -> BN (eval, non-trivial statistics) -> ReLU -> linear: 183 parameters, float64."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 3)).double()
    with torch.no_grad():
        model[1].running_mean.normal_()
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def problem():
    model = _small_model()
    x = torch.randn(24, 1, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (24,))
    params = {k: p.detach() for k, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    names, shapes = list(params), [p.shape for p in params.values()]
    sizes = [p.numel() for p in params.values()]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        p = {k: t.view(s) for k, t, s in zip(names, flat.split(sizes), shapes)}
        return F.cross_entropy(functional_call(model, {**p, **buffers}, (x,)), y)

    flat = torch.cat([p.reshape(-1) for p in params.values()])
    with warnings.catch_warnings():  # torch's forward-mode AD loads jit decompositions (a FutureWarning)
        warnings.simplefilter("ignore", FutureWarning)
        hessian = torch.func.hessian(loss)(flat)
    return model, [(x[:10], y[:10]), (x[10:], y[10:])], hessian, torch.linalg.eigvalsh(hessian)


def test_hessian_vector_product_is_the_explicit_hessian_times_the_vector(problem):
    model, batches, hessian, _ = problem
    hvp, n = hessian_vector_product(model, batches)
    v = torch.randn(n, dtype=torch.float64)
    torch.testing.assert_close(hvp(v), hessian @ v, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("method, iterations", [("lanczos", 200), ("power", 2000)])
def test_extreme_eigenvalues_match_eigvalsh_of_the_explicit_hessian(problem, method, iterations):
    model, batches, _, eigenvalues = problem
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spectrum = extreme_eigenvalues(model, batches, iterations=iterations, method=method, tol=1e-12)
    assert eigenvalues[0] < 0 < eigenvalues[-1]  # a saddle: both ends are tested
    assert spectrum.lambda_max == pytest.approx(float(eigenvalues[-1]), rel=1e-4)
    assert spectrum.lambda_min == pytest.approx(float(eigenvalues[0]), rel=1e-4)
    assert spectrum.ratio == pytest.approx(abs(float(eigenvalues[0] / eigenvalues[-1])), rel=1e-3)
    assert spectrum.points == 24 and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_few_lanczos_steps_already_bracket_the_ends(problem):
    """Lanczos's Ritz values lie inside the spectrum and approach its ends quickly."""
    model, batches, _, eigenvalues = problem
    hvp, n = hessian_vector_product(model, batches)
    ritz = lanczos(hvp, n, 30, dtype=torch.float64)
    assert eigenvalues[0] - 1e-9 <= ritz[0] and ritz[-1] <= eigenvalues[-1] + 1e-9
    assert float(ritz[-1]) == pytest.approx(float(eigenvalues[-1]), rel=1e-3)


def test_power_iteration_on_a_known_matrix():
    a = torch.diag(torch.tensor([5.0, -2.0, 1.0, 0.5], dtype=torch.float64))
    top, _ = power_iteration(lambda v: a @ v, 4, 500, tol=1e-14, dtype=torch.float64)
    low, _ = power_iteration(lambda v: a @ v, 4, 500, tol=1e-14, shift=top, dtype=torch.float64)
    assert top == pytest.approx(5.0) and low == pytest.approx(-2.0)
    assert lanczos(lambda v: a @ v, 4, 10, dtype=torch.float64).tolist() == pytest.approx([-2.0, 0.5, 1.0, 5.0])


def test_bad_hessian_settings():
    model = _small_model()
    batch = [(torch.randn(2, 1, 6, 6, dtype=torch.float64), torch.tensor([0, 1]))]
    with pytest.raises(ConfigError, match="lanczos"):
        extreme_eigenvalues(model, batch, method="arnoldi")
    with pytest.raises(ConfigError, match="iterations"):
        extreme_eigenvalues(model, batch, iterations=0)


def _grid(fn, n: int = 21) -> tuple[np.ndarray, list[np.ndarray]]:
    x = np.linspace(-1, 1, n)
    y = np.linspace(-1, 1, n + 4)  # not square: x along the columns, y along the rows
    return fn(*np.meshgrid(x, y)), [x, y]


@pytest.mark.parametrize("fn, fraction", [
    (lambda x, y: x**2 + 3 * y**2, 0.0),  # a bowl
    (lambda x, y: x**2 - y**2, 1.0),  # a saddle everywhere
    (lambda x, y: -(x**2) - y**2, 1.0),  # a cap
    (lambda x, y: (x + y) ** 2, 0.0),  # a valley: one curvature is zero, none negative
    (lambda x, y: 0 * x + 2.0, 0.0),  # flat ground is not counted
])
def test_nonconvex_fraction_of_known_surfaces(fn, fraction):
    z, axes = _grid(fn)
    assert nonconvex_fraction(z, axes) == pytest.approx(fraction)


def test_principal_curvatures_are_exact_on_a_quadratic():
    z, axes = _grid(lambda x, y: 2 * x**2 + x * y + y**2)  # Hessian [[4, 1], [1, 2]]
    low, high = principal_curvatures(z, axes)
    want = np.linalg.eigvalsh([[4.0, 1.0], [1.0, 2.0]])
    assert np.allclose(low, want[0]) and np.allclose(high, want[1])
    ripples, axes = _grid(lambda x, y: np.sin(6 * x) + np.sin(6 * y), n=41)
    assert 0.3 < nonconvex_fraction(ripples, axes) < 0.9
    line = np.linspace(-1, 1, 11)
    assert nonconvex_fraction(np.cos(3 * line), [line]) == pytest.approx(5 / 9)  # cos bends down for |x| < pi/6
