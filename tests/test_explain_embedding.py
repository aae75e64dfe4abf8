"""Penultimate features, PCA, nearest neighbours, class purity and t-SNE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from _tiny import TinyNet
from cnnlab.errors import ConfigError
from cnnlab.explain import knn_purity, nearest_neighbours, pca, penultimate_features, tsne


def test_features_of_a_zoo_model_are_what_its_classifier_reads():
    torch.manual_seed(0)
    model = TinyNet(num_classes=4).eval()
    x = torch.randn(7, 1, 8, 8)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model.head.fc(expected)
    got = penultimate_features(model, x, batch_size=3)
    assert got.shape == (7, 16) and torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(logits, model(x), atol=1e-6)


def test_features_of_any_module_are_the_input_of_its_last_linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 36, 5), nn.ReLU(),
                          nn.Linear(5, 2)).eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        expected = model[:5](x)
    assert torch.allclose(penultimate_features(model, x), expected, atol=1e-6)
    with pytest.raises(ConfigError, match="no nn.Linear"):
        penultimate_features(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), x)


def test_pca_matches_an_eigendecomposition_of_the_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    points, ratio = pca(x, 2)
    centred = x - x.mean(0)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(values)[::-1][:2]
    assert np.allclose(ratio, values[order] / values.sum(), atol=1e-10)
    expected = centred @ vectors[:, order]
    assert np.allclose(np.abs(points), np.abs(expected), atol=1e-8)  # up to the sign of each axis
    loadings = vectors[:, order] * np.sign((points * expected).sum(0))
    assert (np.abs(loadings).argmax(0) == np.argmax(loadings, 0)).all()  # largest loading positive


def test_nearest_neighbours_and_purity():
    points = np.array([[0.0, 0], [0, 1], [0, 3], [10, 0], [10, 1], [10, 3]])
    idx = nearest_neighbours(points, points, 2, exclude=np.arange(6))
    assert idx.tolist() == [[1, 2], [0, 2], [1, 0], [4, 5], [3, 5], [4, 3]]
    assert knn_purity(points, [0, 0, 0, 1, 1, 1], k=2) == 1.0
    assert knn_purity(points, [0, 1, 0, 1, 0, 1], k=2) == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match="k must be 1 to 5"):
        nearest_neighbours(points, points, 6, exclude=np.arange(6))


def test_tsne_separates_separated_clusters():
    pytest.importorskip("openTSNE", reason="openTSNE is an optional dependency (cnnlab[explain])")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    x = rng.normal(size=(4, 20))[labels] * 4 + rng.normal(size=(300, 20))
    y = tsne(x, perplexity=20, seed=0, threads=1)
    assert y.shape == (300, 2) and np.isfinite(y).all()
    assert knn_purity(y, labels, 10) > 0.95  # chance is about 0.25
    assert np.allclose(y, tsne(x, perplexity=20, seed=0, threads=1))  # seeded
