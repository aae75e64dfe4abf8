"""How fast cnnlab's explanations are beside captum's (and pytorch-grad-cam's Grad-CAM), and t-SNE of 10,000 vectors.

For each network and method: the median time of ``--repeat`` runs on one batch, cnnlab's beside each other
library's, and the ratio other / cnnlab (above 1: cnnlab is faster). The goal in issue 11: never slower,
and occlusion at least 2x faster, because cnnlab sends all occluded copies of all images through the
network in large batches where captum evaluates one window position per forward pass (its default
``perturbations_per_eval=1``). The column ``max|diff|`` is the largest difference of the two maps (after
the same reduction), showing both compute the same thing; captum's guided backprop and deconvnet only
see ``nn.ReLU`` modules, so a network that calls ``F.relu`` in ``forward`` shows a difference there.

Then t-SNE of 10,000 penultimate feature vectors: ResNet-20's 64-d features of random 28x28 images
(or of a run's test set with ``--checkpoint``) by openTSNE, and by scikit-learn with ``--tsne-libs``.

    python benchmarks/explain_speed.py                 # ResNet-18/50 at 224, ResNet-20 at 28, batch 16, 2 threads
    python benchmarks/explain_speed.py --quick         # ResNet-20 only, batch 4, smaller t-SNE: a smoke test
    python benchmarks/explain_speed.py --tsne-libs opentsne sklearn --tsne-dims 64 256

Needs captum and pytorch-grad-cam (``pip install captum grad-cam``); a missing one leaves its columns empty.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

import cnnlab
from cnnlab import explain

# (model, input side, input channels)
FULL_MODELS = [("resnet18", 224, 3), ("resnet50", 224, 3), ("resnet20", 28, 1)]
QUICK_MODELS = [("resnet20", 28, 1)]


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: first-call allocations and lazy imports out of the timing
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _as_map(result: object) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(result)) if not isinstance(result, torch.Tensor) else result.detach()
    return t.abs().amax(1) if t.dim() == 4 else t


def _max_diff(a: object, b: object) -> float:
    x, y = _as_map(a).float(), _as_map(b).float()
    return float((x - y).abs().max()) if x.shape == y.shape else float("nan")


def _occlusion_window(side: int) -> tuple[int, int]:
    window = max(2, side // 4)
    return window, max(1, window // 2)


def cnnlab_methods(layer: str, side: int) -> dict[str, Callable]:
    window, stride = _occlusion_window(side)
    return {
        "saliency": lambda m, x, t: explain.input_gradient(m, x, t).abs(),
        "smoothgrad (10)": lambda m, x, t: explain.smooth_gradient(m, x, t, samples=10, batch_size=160),
        "guided-backprop": lambda m, x, t: explain.guided_backprop(m, x, t),
        "deconvnet": lambda m, x, t: explain.deconvnet(m, x, t),
        "gradcam": lambda m, x, t: explain.grad_cam(m, x, t, layer),
        "guided-gradcam": lambda m, x, t: explain.guided_grad_cam(m, x, t, layer),
        "occlusion": lambda m, x, t: explain.occlusion(m, x, t, window, stride).attribution,
    }


def captum_methods(model: torch.nn.Module, layer: str, side: int) -> dict[str, Callable]:
    try:
        from captum import attr
    except ImportError:
        return {}
    module = dict(model.named_modules())[layer]
    window, stride = _occlusion_window(side)

    def occlusion(m, x, t):
        shapes = (x.shape[1], window, window)
        out = attr.Occlusion(lambda z: m(z).softmax(1)).attribute(x, sliding_window_shapes=shapes, target=t,
                                                                  strides=(x.shape[1], stride, stride), baselines=0.0)
        return out[:, 0]

    def gradcam(m, x, t):
        cam = attr.LayerGradCam(m, module).attribute(x, target=t, relu_attributions=True)
        return attr.LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")[:, 0]

    return {
        "saliency": lambda m, x, t: attr.Saliency(m).attribute(x, target=t, abs=True),
        "smoothgrad (10)": lambda m, x, t: attr.NoiseTunnel(attr.Saliency(m)).attribute(
            x, nt_type="smoothgrad", nt_samples=10, nt_samples_batch_size=10, stdevs=0.15, target=t, abs=True),
        "guided-backprop": lambda m, x, t: attr.GuidedBackprop(m).attribute(x, target=t),
        "deconvnet": lambda m, x, t: attr.Deconvolution(m).attribute(x, target=t),
        "gradcam": gradcam,
        "guided-gradcam": lambda m, x, t: attr.GuidedGradCam(m, module).attribute(x, target=t,
                                                                                  interpolate_mode="bilinear"),
        "occlusion": occlusion,
    }


def gradcam_library_methods(model: torch.nn.Module, layer: str) -> dict[str, Callable]:
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        return {}
    module = dict(model.named_modules())[layer]

    def gradcam(m, x, t):
        with GradCAM(model=m, target_layers=[module]) as cam:
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in t])

    return {"gradcam": gradcam}


def bench_model(name: str, side: int, chans: int, batch: int, repeat: int) -> list[dict]:
    torch.manual_seed(0)
    model = cnnlab.create_model(name, num_classes=10, in_chans=chans).eval()
    x = torch.randn(batch, chans, side, side)
    with torch.no_grad():
        t = model(x).argmax(1)
    layer = model.feature_info[-1].module
    ours = cnnlab_methods(layer, side)
    others = {"captum": captum_methods(model, layer, side), "pytorch-grad-cam": gradcam_library_methods(model, layer)}
    rows = []
    for method, fn in ours.items():
        mine = fn(model, x, t)
        seconds = median_seconds(lambda fn=fn: fn(model, x, t), repeat)
        row = {"model": f"{name} @{side}", "method": method, "cnnlab": seconds}
        for lib, methods in others.items():
            if method in methods:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    theirs = methods[method](model, x.clone(), t)
                    row[lib] = median_seconds(lambda m=methods[method]: m(model, x.clone(), t), repeat)
                # pytorch-grad-cam scales each map to [0, 1]: compare after the same scaling
                row[f"{lib} diff"] = _max_diff(_unit(mine), _unit(theirs)) if lib == "pytorch-grad-cam" \
                    else _max_diff(mine, theirs)
        rows.append(row)
        print(_format(row), flush=True)
    return rows


def _unit(maps: object) -> torch.Tensor:
    m = _as_map(maps).float()
    lo, hi = m.flatten(1).amin(1).view(-1, 1, 1), m.flatten(1).amax(1).view(-1, 1, 1)
    return (m - lo) / (hi - lo).clamp_min(1e-12)


def _format(row: dict) -> str:
    parts = [f"{row['model']:14s} {row['method']:16s} cnnlab {row['cnnlab']:8.3f}s"]
    for lib in ("captum", "pytorch-grad-cam"):
        if lib in row:
            ratio = row[lib] / row["cnnlab"]
            parts.append(f"{lib} {row[lib]:8.3f}s (x{ratio:5.2f}, max|diff| {row[f'{lib} diff']:.1e})")
    return "   ".join(parts)


def tsne_features(count: int, checkpoint: str | None) -> np.ndarray:
    """``count`` penultimate feature vectors: of a run's test images, else of ResNet-20 on random 28x28 input."""
    if checkpoint:
        from cnnlab.train import load_trained_model
        from cnnlab.train.inputs import augment_from_meta, load_eval_source

        model, ckpt = load_trained_model(checkpoint)
        source = load_eval_source(ckpt["data"], "test", 500, torch.device("cpu"), ckpt["config"].get("data_dir"),
                                  download=False)
        augment = augment_from_meta(ckpt["data"])
        batches = (augment.eval(x) for x, _ in source.batches(0))
        return explain.penultimate_features(model, batches)[:count].numpy()
    torch.manual_seed(0)
    model = cnnlab.create_model("resnet20", num_classes=10, in_chans=1).eval()
    return explain.penultimate_features(model, torch.randn(count, 1, 28, 28)).numpy()


def bench_tsne(features: np.ndarray, libs: list[str], dims: list[int], threads: int) -> None:
    rng = np.random.default_rng(0)
    for d in dims:
        x = features if d == features.shape[1] else features @ rng.normal(size=(features.shape[1], d))
        for lib in libs:
            start = time.perf_counter()
            if lib == "opentsne":
                explain.tsne(x, seed=0, threads=threads)
            else:
                from sklearn.manifold import TSNE

                TSNE(2, perplexity=30, init="pca", random_state=0, n_jobs=threads).fit_transform(x)
            seconds = time.perf_counter() - start
            print(f"t-SNE {lib:9s} {len(x):6d} points x {d:4d}-d, {threads} threads: {seconds:6.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ResNet-20 only, batch 4, one repeat, 2,000 t-SNE points")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tsne-points", type=int, default=10_000)
    parser.add_argument("--tsne-libs", nargs="+", default=["opentsne"], choices=["opentsne", "sklearn"])
    parser.add_argument("--tsne-dims", nargs="+", type=int, default=[64], help="feature widths (projected)")
    parser.add_argument("--checkpoint", help="take t-SNE features from this run's test set")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = QUICK_MODELS if args.quick else FULL_MODELS
    batch, repeat, points = (4, 1, 2000) if args.quick else (args.batch, args.repeat, args.tsne_points)
    print(f"batch {batch}, {args.threads} threads, median of {repeat}; ratio = other library's time / cnnlab's")
    for name, side, chans in models:
        bench_model(name, side, chans, batch, repeat)
    bench_tsne(tsne_features(points, args.checkpoint), args.tsne_libs, args.tsne_dims, args.threads)


if __name__ == "__main__":
    main()
