"""The last layer's feature space: penultimate features, PCA, t-SNE, nearest neighbours, class purity.

- Nearest neighbours in feature space versus pixel space: A. Krizhevsky, I. Sutskever, G. Hinton,
  "ImageNet Classification with Deep Convolutional Neural Networks", NeurIPS 2012, section 6.1 and
  figure 4: images whose last hidden layer vectors are close look alike to the network even when their
  pixels are far apart.
- t-SNE: L. van der Maaten, G. Hinton, "Visualizing Data using t-SNE", JMLR 9, 2008. Computed with
  openTSNE (P. Policar, M. Strazar, B. Zupan, "openTSNE: a modular Python library for t-SNE
  dimensionality reduction and embedding", JSS 2024; FFT-accelerated interpolation of G. Linderman et al.,
  Nature Methods 2019), chosen over scikit-learn's Barnes-Hut t-SNE by measurement: see docs/explain.md.
- PCA: the top principal components by a singular value decomposition of the centred features.

The features are what the classifier layer reads: ``forward_head(forward_features(x), pre_logits=True)``
for zoo networks, the input of the last ``nn.Linear`` called for any other module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.explain._core import batches_of, capture_output, chunks, explaining, progress_bar

__all__ = ["knn_purity", "nearest_neighbours", "pca", "penultimate_features", "tsne"]


def penultimate_features(model: nn.Module, images: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 256,
                         progress: bool = False) -> torch.Tensor:
    """(N, D) on the CPU: the vector each image gives the final classifier layer.

    ``images`` is a batch (N, C, H, W) of model input or an iterable of such batches (a data set streamed).
    """
    out = []
    read = None
    with explaining(model), torch.no_grad():
        for batch in progress_bar(batches_of(images, batch_size), progress, "features"):
            read = read or _feature_reader(model, batch[:1])
            out.append(read(batch).flatten(1).float().cpu())
    if not out:
        raise ConfigError("no images to compute features of")
    return torch.cat(out)


def _feature_reader(model: nn.Module, probe: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    if callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None)):
        return lambda x: model.forward_head(model.forward_features(x), pre_logits=True)
    called: list[nn.Linear] = []
    handles = [m.register_forward_hook(lambda mod, a, o: called.append(mod))
               for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        model(probe)
    finally:
        for h in handles:
            h.remove()
    if not called:
        raise ConfigError("the model has no nn.Linear classifier and no forward_features/forward_head; "
                          "its penultimate features are not defined")
    last = called[-1]

    def read(x: torch.Tensor) -> torch.Tensor:
        with capture_output(last, keep_input=True) as box:
            model(x)
        return box["value"]

    return read


def pca(features: torch.Tensor | np.ndarray, dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, dims), explained-variance ratio (dims,)): the features on their top principal components.

    Signs follow scikit-learn's convention (the largest loading of each component is positive), so the
    picture does not flip between runs.
    """
    x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    if x.dim() != 2 or len(x) < 2:
        raise ConfigError(f"PCA needs at least two feature vectors (N, D), got shape {tuple(x.shape)}")
    dims = min(dims, *x.shape)
    x = x - x.mean(0)
    _, s, vt = torch.linalg.svd(x, full_matrices=False)
    vt = vt[:dims]
    signs = torch.sign(vt.gather(1, vt.abs().argmax(1, keepdim=True)))
    vt = vt * signs
    var = s**2
    return (x @ vt.T).numpy(), (var[:dims] / var.sum()).numpy()


def tsne(features: torch.Tensor | np.ndarray, perplexity: float = 30.0, seed: int = 0, threads: int = 2,
         progress: bool = False) -> np.ndarray:
    """(N, 2) t-SNE embedding (van der Maaten & Hinton 2008) by openTSNE, PCA-initialized."""
    try:
        from openTSNE import TSNE
    except ImportError as err:
        raise ConfigError("t-SNE needs openTSNE: pip install 'cnnlab[explain]' (or pip install openTSNE)") from err
    x = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
    if x.ndim != 2 or len(x) < 4:
        raise ConfigError(f"t-SNE needs at least four feature vectors (N, D), got shape {x.shape}")
    perplexity = min(perplexity, (len(x) - 1) / 3)  # openTSNE's own limit, stated here to avoid its warning
    bar, callback = _tsne_progress(progress)
    try:
        embedding = TSNE(n_components=2, perplexity=perplexity, initialization="pca", random_state=seed,
                         n_jobs=threads, callbacks=callback, callbacks_every_iters=25, verbose=False).fit(x)
    finally:
        if bar is not None:
            bar.close()
    return np.asarray(embedding, dtype=np.float32)


def _tsne_progress(show: bool):
    if not show:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=750, desc="t-SNE", unit="iter", leave=False)  # openTSNE: 250 exaggerated + 500 iterations

    def callback(iteration: int, error: float, embedding: np.ndarray) -> bool:
        bar.update(25)
        return False

    return bar, callback


def nearest_neighbours(points: torch.Tensor | np.ndarray, queries: torch.Tensor | np.ndarray, k: int = 5,
                       exclude: torch.Tensor | np.ndarray | None = None, chunk: int = 1024) -> np.ndarray:
    """(Q, k) indices into ``points`` of each query's k nearest (Euclidean); ``exclude[q]`` is never returned.

    ``exclude`` is typically each query's own index, when the queries are themselves among the points.
    """
    p = torch.as_tensor(np.asarray(points), dtype=torch.float32).flatten(1)
    q = torch.as_tensor(np.asarray(queries), dtype=torch.float32).flatten(1)
    if p.shape[1] != q.shape[1]:
        raise ConfigError(f"queries have {q.shape[1]} dimensions, the points {p.shape[1]}")
    extra = 1 if exclude is not None else 0
    if not 1 <= k <= len(p) - extra:
        raise ConfigError(f"k must be 1 to {len(p) - extra} for {len(p)} points, got {k}")
    skip = None if exclude is None else torch.as_tensor(np.asarray(exclude), dtype=torch.long).view(-1)
    out = []
    for part in chunks(len(q), chunk):
        d = torch.cdist(q[part], p)  # (c, N)
        if skip is not None:
            d[torch.arange(len(d)), skip[part]] = float("inf")
        out.append(d.topk(k, dim=1, largest=False).indices)
    return torch.cat(out).numpy()


def knn_purity(points: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, k: int = 10) -> float:
    """The mean fraction of each point's ``k`` nearest other points that share its label (chance: sum of p_c^2)."""
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long).view(-1)
    idx = nearest_neighbours(points, points, k, exclude=np.arange(len(y)))
    return float((y[torch.as_tensor(idx)] == y.view(-1, 1)).double().mean())
