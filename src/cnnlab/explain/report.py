"""Explain a trained checkpoint: run chosen methods on chosen images, write each figure beside its arrays.

This is the one call behind ``cnnlab explain``. The model and its data transform come from the checkpoint
(``cnnlab.train.load_trained_model``); the images are files (decoded and resized as ``cnnlab predict``
does) or the first images of the run's test split; data-set-wide methods (feature space, top patches)
read the test split, up to ``max_images`` of it. Every figure shows what a person should see: the images
before normalization, aligned pixel for pixel with the model input. Files are written atomically: for
each method ``<method>.png`` and ``<method>.npz`` (see docs/explain.md), plus ``inputs.npz`` and
``summary.json`` listing everything.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from cnnlab.errors import CheckpointError, ConfigError, DataError, OutputPathError, UnknownNameError
from cnnlab.explain.activations import activations, conv_filters, crop_patches, top_patches
from cnnlab.explain.class_model import AscentSettings, class_images
from cnnlab.explain.embedding import knn_purity, nearest_neighbours, pca, penultimate_features, tsne
from cnnlab.explain.gradcam import grad_cam, guided_grad_cam
from cnnlab.explain.gradients import deconvnet, guided_backprop, saliency
from cnnlab.explain.occlusion import occlusion
from cnnlab.explain.sanity import sanity_check
from cnnlab.files import save_figure_atomic, write_bytes_atomic
from cnnlab.train.config import TrainConfig
from cnnlab.train.inputs import DataMeta

__all__ = ["GROUPS", "METHODS", "ExplainSettings", "explain_checkpoint", "resolve_methods"]

METHODS: dict[str, str] = {
    "saliency": "gradient of the class score, max |.| over channels (Simonyan 2014)",
    "smoothgrad": "saliency averaged over noisy copies (Smilkov 2017)",
    "deconvnet": "backward pass with rectified signals (Zeiler & Fergus 2014)",
    "guided-backprop": "guided backpropagation (Springenberg 2015)",
    "gradcam": "Grad-CAM of a layer, default the last stage (Selvaraju 2017)",
    "guided-gradcam": "guided backprop times Grad-CAM (Selvaraju 2017)",
    "occlusion": "class probability under a sliding grey square (Zeiler & Fergus 2014)",
    "filters": "the first convolution's kernels (Krizhevsky 2012)",
    "activations": "activation maps of a layer, default the first stage",
    "top-patches": "test-set patches that excite a channel most (Zeiler & Fergus 2014, Girshick 2014)",
    "class-images": "gradient ascent to an image per class (Simonyan 2014, Yosinski 2015)",
    "tsne": "t-SNE of the penultimate features of the test set (van der Maaten 2008)",
    "pca": "PCA of the penultimate features of the test set",
    "neighbours": "nearest test images in feature space and in pixel space (Krizhevsky 2012)",
    "sanity": "cascading randomization of the weights (Adebayo 2018)",
}
GROUPS: dict[str, list[str]] = {
    "all": list(METHODS),
    "attributions": ["saliency", "smoothgrad", "deconvnet", "guided-backprop", "gradcam", "guided-gradcam",
                     "occlusion"],
    "features": ["tsne", "pca", "neighbours"],
}
# Methods that need no chosen images (they read the model alone or the test split).
_DATASET_ONLY = {"filters", "class-images", "tsne", "pca", "top-patches"}


@dataclass
class ExplainSettings:
    """Options of :func:`explain_checkpoint`; every field is a flag of ``cnnlab explain``."""

    target: str | int | None = None  # class index or name, "label" (each test image's own class); None: predicted
    layer: str | None = None  # layer of gradcam, guided-gradcam, activations, top-patches (a stage or module name)
    filter_layer: str | None = None  # convolution whose kernels 'filters' shows (default: the first)
    window: int | None = None  # occlusion square side in pixels (default: a seventh of the image side)
    stride: int | None = None  # occlusion step (default: half the window)
    samples: int = 25  # SmoothGrad noisy copies per image
    channels: tuple[int, ...] | None = None  # channels for top-patches (default: the first 8)
    k: int = 9  # top-patches per channel
    neighbours: int = 5  # nearest neighbours per query image
    steps: int = 200  # class-image gradient-ascent steps
    sanity_methods: tuple[str, ...] = ("saliency", "deconvnet", "guided-backprop", "gradcam", "guided-gradcam")
    sanity_steps: int | None = 16  # randomization depths computed (spread over the layers); None: every layer
    max_images: int | None = None  # test images for data-set-wide methods (default: 10000; 2000 for image folders)
    batch_size: int = 64
    seed: int = 0
    threads: int = 2  # t-SNE threads
    device: str = "auto"
    data_dir: str | None = None  # folder holding the data set, if not where training found it
    progress: bool = True  # progress bars on stderr for the long methods


def resolve_methods(names: Sequence[str]) -> list[str]:
    """Method names in a fixed order, groups (``all``, ``attributions``, ``features``) expanded; an error names
    close matches of an unknown one."""
    chosen: list[str] = []
    for name in names:
        for part in str(name).split(","):
            part = part.strip()
            if not part:
                continue
            if part in GROUPS:
                chosen += GROUPS[part]
            elif part in METHODS:
                chosen.append(part)
            else:
                close = difflib.get_close_matches(part, [*METHODS, *GROUPS], n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UnknownNameError(f"unknown explanation method {part!r}{hint} Methods: {', '.join(METHODS)}; "
                                       f"groups: {', '.join(GROUPS)}")
    if not chosen:
        raise ConfigError(f"name at least one method: {', '.join(METHODS)} (or all)")
    return [m for m in METHODS if m in chosen]


@dataclass
class _Pool:
    """Test-split images for the data-set-wide methods: uint8 as shown, labels, features when asked."""

    shown: torch.Tensor  # (M, c, H, W) uint8, aligned with the model input
    labels: torch.Tensor  # (M,)
    features: torch.Tensor | None = None


@dataclass
class _Run:
    """Everything one ``explain_checkpoint`` call shares between methods."""

    model: torch.nn.Module
    meta: DataMeta
    config: TrainConfig
    device: torch.device
    settings: ExplainSettings
    out: Path
    classes: list[str]
    from_test: bool = False
    x: torch.Tensor | None = None  # (N, C, H, W) model input of the chosen images
    shown: torch.Tensor | None = None  # (N, c, H, W) uint8 as shown
    labels: torch.Tensor | None = None  # (N,) true class, -1 where unknown
    names: list[str] = field(default_factory=list)
    probs: torch.Tensor | None = None  # (N, K)
    targets: torch.Tensor | None = None  # (N,)
    pool: _Pool | None = None
    files: list[Path] = field(default_factory=list)

    def model_input(self, shown_u8: torch.Tensor) -> torch.Tensor:
        """Normalized model input from uint8 images as shown (the checkpoint's evaluation transform)."""
        from cnnlab.train.inputs import augment_from_meta

        return augment_from_meta(self.meta).eval(shown_u8.to(self.device))


def explain_checkpoint(checkpoint: str | Path, methods: Sequence[str], out: str | Path,
                       images: Sequence[str | Path] | None = None, from_test: int | None = None,
                       settings: ExplainSettings | None = None) -> dict:
    """Run ``methods`` on a trained checkpoint (file or run directory) and write their figures and arrays to
    ``out``; returns the summary also written as ``summary.json``."""
    from cnnlab.files import write_json_atomic

    settings = settings or ExplainSettings()
    chosen = resolve_methods(methods)
    if "sanity" in chosen:
        _check_sanity_methods(settings.sanity_methods)
    out = _out_dir(out)
    run = _load(checkpoint, settings, out)
    needs_images = [m for m in chosen if m not in _DATASET_ONLY]
    if images and from_test:
        raise ConfigError("give either image files (--images) or a number of test images (--from-test), not both")
    if images:
        _use_files(run, images)
    elif from_test:
        _use_test_images(run, from_test)
    elif needs_images:
        raise ConfigError(f"{', '.join(needs_images)} explain chosen images: give --images FILE ... or --from-test N")
    if run.x is not None:
        _predict(run)
        run.files.append(_save_npz(out / "inputs.npz", images=run.shown.numpy(), labels=run.labels.numpy(),
                                   probabilities=run.probs.numpy(), targets=run.targets.numpy(),
                                   names=np.array(run.names)))
    for method in chosen:
        _RUNNERS[method](run)
    summary = {
        "checkpoint": str(checkpoint),
        "model": run.config.model,
        "data": run.meta.dataset,
        "classes": run.classes,
        "methods": chosen,
        "images": run.names,
        "targets": [run.classes[int(t)] for t in run.targets] if run.targets is not None else [],
        "files": [str(p.relative_to(out)) for p in run.files],
    }
    write_json_atomic(out / "summary.json", summary)
    return summary


def _check_sanity_methods(names: Sequence[str]) -> None:
    from cnnlab.explain.attribution import ATTRIBUTION_METHODS

    unknown = [n for n in names if n not in ATTRIBUTION_METHODS]
    if unknown or not names:
        raise UnknownNameError(f"the sanity check takes attribution methods, not {', '.join(unknown) or 'none'}; "
                               f"choose from {', '.join(ATTRIBUTION_METHODS)}")


def _out_dir(out: str | Path) -> Path:
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"--out {path} is a file; give a folder for the figures")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(f"cannot create the output folder {path}: {err.strerror or err}") from err
    return path


def _load(checkpoint: str | Path, settings: ExplainSettings, out: Path) -> _Run:
    from cnnlab.train import load_trained_model
    from cnnlab.train.runtime import select_device

    device = select_device(settings.device)
    try:
        model, ckpt = load_trained_model(checkpoint, device)
    except FileNotFoundError as err:
        raise CheckpointError(f"{err}; give a run directory or a .pt checkpoint written by cnnlab train") from err
    except ValueError as err:
        if isinstance(err, (ConfigError, DataError)):
            raise
        raise CheckpointError(str(err)) from err
    return _Run(model, ckpt.data, ckpt.config, device, settings, out, list(ckpt.data.classes))


def _use_files(run: _Run, paths: Sequence[str | Path]) -> None:
    from PIL import Image

    from cnnlab.data import fit_to_size, load_image

    chans, height, width = run.meta.image_shape
    shown = []
    for p in paths:
        if not Path(p).is_file():
            raise DataError(f"image {p} does not exist")
        img = load_image(p, chans)
        if img.size != (width, height):  # as cnnlab predict: the whole image, resized to the training shape
            img = img.resize((width, height), Image.BILINEAR)
        data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        shown.append(data.view(height, width, chans).permute(2, 0, 1))
    batch = torch.stack(shown)
    if run.meta.kind == "tensor":
        batch = fit_to_size(batch, run.meta.input_size)
    run.shown, run.labels = batch, torch.full((len(batch),), -1)
    run.names = [Path(p).name for p in paths]
    run.x = run.model_input(batch)


def _max_pool_images(run: _Run) -> int:
    if run.settings.max_images is not None:
        return run.settings.max_images
    return 10000 if run.meta.kind == "tensor" else 2000


def _read_test(run: _Run, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` test images (uint8, aligned with the model input) and their labels, on the CPU."""
    from cnnlab.data import fit_to_size
    from cnnlab.train.inputs import load_eval_source

    cfg = replace(run.config, download=False)  # explaining never downloads: the run's data is on disk
    source = load_eval_source(run.meta, "test", 256, torch.device("cpu"), cfg, run.settings.data_dir)
    shown, labels, count = [], [], 0
    for x_u8, y in source.batches(0):
        if run.meta.kind == "tensor":
            x_u8 = fit_to_size(x_u8, run.meta.input_size)
        shown.append(x_u8.cpu())
        labels.append(y.cpu())
        count += len(y)
        if count >= limit:
            break
    if not shown:
        raise DataError("the run's test split holds no images")
    return torch.cat(shown)[:limit], torch.cat(labels)[:limit]


def _use_test_images(run: _Run, count: int) -> None:
    if count < 1:
        raise ConfigError(f"--from-test needs a number of images of at least 1, got {count}")
    shown, labels = _read_test(run, count)
    run.shown, run.labels, run.from_test = shown, labels, True
    run.names = [f"test #{i}" for i in range(len(shown))]
    run.x = run.model_input(shown)


def _pool(run: _Run) -> _Pool:
    if run.pool is None:
        # the chosen test images are the first of the pool, so neighbours can leave each query itself out
        shown, labels = _read_test(run, max(_max_pool_images(run), len(run.names) if run.from_test else 0))
        run.pool = _Pool(shown, labels)
    return run.pool


def _pool_batches(run: _Run) -> Iterator[torch.Tensor]:
    pool = _pool(run)
    for start in range(0, len(pool.shown), run.settings.batch_size * 4):
        yield run.model_input(pool.shown[start : start + run.settings.batch_size * 4])


def _pool_features(run: _Run) -> torch.Tensor:
    pool = _pool(run)
    if pool.features is None:
        pool.features = penultimate_features(run.model, _pool_batches(run), progress=run.settings.progress)
    return pool.features


def _predict(run: _Run) -> None:
    from cnnlab.explain._core import explaining, logits_of

    with explaining(run.model), torch.no_grad():
        run.probs = torch.cat([logits_of(run.model(run.x[i : i + 256])).float().softmax(1).cpu()
                               for i in range(0, len(run.x), 256)])
    run.targets = _targets(run)


def _targets(run: _Run) -> torch.Tensor:
    t = run.settings.target
    n = len(run.probs)
    if t is None:
        return run.probs.argmax(1)
    if str(t).lower() == "label":
        if (run.labels < 0).any():
            raise ConfigError("--target label needs test images (--from-test); image files carry no label")
        return run.labels.clone()
    return torch.full((n,), _class_index(run.classes, t))


def _class_index(classes: list[str], target: str | int) -> int:
    text = str(target).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(classes):
            raise ConfigError(f"target class {index} is out of range: the model has {len(classes)} classes "
                              f"(0-{len(classes) - 1})")
        return index
    lowered = [c.lower() for c in classes]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    close = difflib.get_close_matches(text, classes, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownNameError(f"no class {text!r}{hint} Classes: {', '.join(classes)}")


def _captions(run: _Run) -> list[str]:
    out = []
    for i, name in enumerate(run.names):
        pred, target = int(run.probs[i].argmax()), int(run.targets[i])
        lines = [name]
        if int(run.labels[i]) >= 0:
            lines.append(f"label {run.classes[int(run.labels[i])]}")
        lines.append(f"pred {run.classes[pred]} {run.probs[i, pred]:.2f}")
        lines.append(f"target {run.classes[target]} {run.probs[i, target]:.2f}")
        out.append("\n".join(lines))
    return out


def _save_npz(path: Path, **arrays: object) -> Path:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return write_bytes_atomic(path, buffer.getvalue())


def _save_figure(run: _Run, name: str, fig) -> None:
    run.files.append(save_figure_atomic(fig, run.out / name))


def _note(run: _Run, name: str, **arrays: object) -> None:
    run.files.append(_save_npz(run.out / name, **arrays))


def _shown_float(u8: torch.Tensor) -> np.ndarray:
    return (u8.float() / 255.0).numpy()


# ---- the methods -------------------------------------------------------------------------------------------

_TITLES = {
    "saliency": "Saliency (Simonyan et al. 2014): |d class score / d pixel|, max over channels",
    "smoothgrad": "SmoothGrad (Smilkov et al. 2017): saliency averaged over noisy copies",
    "deconvnet": "Deconvnet (Zeiler & Fergus 2014): the class score projected back to pixels",
    "guided-backprop": "Guided backpropagation (Springenberg et al. 2015)",
    "gradcam": "Grad-CAM (Selvaraju et al. 2017) of layer {layer}",
    "guided-gradcam": "Guided Grad-CAM (Selvaraju et al. 2017) of layer {layer}",
}


def _attribution(name: str, compute: Callable[[_Run], torch.Tensor], style: str) -> Callable[[_Run], None]:
    def run_method(run: _Run) -> None:
        from cnnlab.plots.explain import attribution_grid

        maps = compute(run).detach().cpu()
        layer = run.settings.layer or _default_layer_name(run)
        title = _TITLES[name].format(layer=layer)
        fig = attribution_grid(run.shown.numpy(), maps.numpy(), _captions(run), title, style)
        _save_figure(run, f"{name}.png", fig)
        _note(run, f"{name}.npz", maps=maps.numpy(), targets=run.targets.numpy(), probabilities=run.probs.numpy())

    return run_method


def _default_layer_name(run: _Run) -> str:
    from cnnlab.explain._core import default_layer, explaining

    with explaining(run.model):
        return default_layer(run.model, run.x)


def _saliency(run: _Run) -> torch.Tensor:
    return saliency(run.model, run.x, run.targets, batch_size=run.settings.batch_size)


def _smoothgrad(run: _Run) -> torch.Tensor:
    s = run.settings
    return saliency(run.model, run.x, run.targets, samples=s.samples, batch_size=s.batch_size, seed=s.seed)


def _deconvnet(run: _Run) -> torch.Tensor:
    return deconvnet(run.model, run.x, run.targets, run.settings.batch_size)


def _guided(run: _Run) -> torch.Tensor:
    return guided_backprop(run.model, run.x, run.targets, run.settings.batch_size)


def _gradcam(run: _Run) -> torch.Tensor:
    return grad_cam(run.model, run.x, run.targets, run.settings.layer, run.settings.batch_size)


def _guided_gradcam(run: _Run) -> torch.Tensor:
    return guided_grad_cam(run.model, run.x, run.targets, run.settings.layer, run.settings.batch_size)


def _occlusion_window(run: _Run) -> tuple[int, int]:
    side = min(run.x.shape[-2:])
    window = run.settings.window or max(2, round(side / 7))
    return window, run.settings.stride or max(1, window // 2)


def _occlusion(run: _Run) -> None:
    from cnnlab.plots.explain import occlusion_grid

    window, stride = _occlusion_window(run)
    # occlusion sizes its own batches to the image (about 130,000 pixels): faster on a CPU than bigger ones
    result = occlusion(run.model, run.x, run.targets, window, stride, progress=run.settings.progress)
    title = (f"Occlusion (Zeiler & Fergus 2014): {window}x{window} square of the mean pixel, stride {stride}")
    fig = occlusion_grid(run.shown.numpy(), result.scores.numpy(), result.attribution.numpy(), _captions(run), title)
    _save_figure(run, "occlusion.png", fig)
    _note(run, "occlusion.npz", attribution=result.attribution.numpy(), scores=result.scores.numpy(),
          base=result.base.numpy(), targets=result.targets.numpy(), window=window, stride=stride)


def _filters(run: _Run) -> None:
    from cnnlab.plots.explain import filter_grid

    weights = conv_filters(run.model, run.settings.filter_layer)
    layer = run.settings.filter_layer or "the first convolution"
    _save_figure(run, "filters.png", filter_grid(weights.numpy(), f"Filters of {layer} ({tuple(weights.shape)})"))
    _note(run, "filters.npz", weights=weights.numpy())


def _activations(run: _Run) -> None:
    from cnnlab.explain.activations import first_layer
    from cnnlab.plots.explain import activation_grid

    layer = run.settings.layer or first_layer(run.model)
    maps = activations(run.model, run.x, layer, run.settings.batch_size).cpu()
    for i in range(min(4, len(maps))):
        title = f"Activations of {layer} for {run.names[i]}"
        _save_figure(run, f"activations-{i}.png", activation_grid(run.shown[i].numpy(), maps[i].numpy(), title))
    _note(run, "activations.npz", maps=maps.numpy(), layer=layer)


def _top_patches(run: _Run) -> None:
    from cnnlab.plots.explain import patch_grid

    s = run.settings
    result = top_patches(run.model, _pool_batches(run), s.layer, s.channels, s.k, progress=s.progress)
    patches = crop_patches(_pool(run).shown, result, fill=0.0) / 255.0
    size = int(result.boxes[0, 0, 1] - result.boxes[0, 0, 0]) + 1
    labels = [f"channel {c}" for c in result.channels]
    title = (f"Strongest {result.values.shape[1]} test images per channel of {result.layer}, cut to the "
             f"unit's {size}-pixel receptive field")
    _save_figure(run, "top-patches.png", patch_grid(patches.numpy(), labels, title))
    _note(run, "top-patches.npz", values=result.values.numpy(), image_index=result.image_index.numpy(),
          units=result.units.numpy(), boxes=result.boxes.numpy(), channels=np.array(result.channels),
          patches=patches.numpy(), layer=result.layer)


def _class_images(run: _Run) -> None:
    from cnnlab.explain._core import explaining, logits_of
    from cnnlab.plots.explain import image_grid

    s = run.settings
    if s.target is not None and str(s.target).lower() != "label":
        classes = [_class_index(run.classes, s.target)]
    else:
        classes = list(range(min(len(run.classes), 20)))
    chans, size = run.meta.in_chans, _input_side(run)
    # one statistic for grey data a 3-channel model reads (its channels are copies): expand to the model's
    mean = torch.tensor(run.meta.mean, dtype=torch.float32).expand(chans)
    std = torch.tensor(run.meta.std, dtype=torch.float32).expand(chans)
    bounds = ((0 - mean) / std, (1 - mean) / std)
    x = class_images(run.model, classes, (chans, size, size), bounds, AscentSettings(steps=s.steps, seed=s.seed),
                     progress=s.progress)
    with explaining(run.model), torch.no_grad():
        probs = logits_of(run.model(x)).float().softmax(1).cpu()
    shown = (x.cpu() * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)).clamp(0, 1)
    captions = [f"{run.classes[c]}\np = {probs[i, c]:.2f}" for i, c in enumerate(classes)]
    title = "Class images (Simonyan et al. 2014; Yosinski et al. 2015 regularizers): gradient ascent on the input"
    _save_figure(run, "class-images.png", image_grid(shown.numpy(), captions, title))
    _note(run, "class-images.npz", inputs=x.cpu().numpy(), images=shown.numpy(), classes=np.array(classes),
          probabilities=probs.numpy())


def _input_side(run: _Run) -> int:
    return int(run.meta.input_size)


def _embedding(kind: str) -> Callable[[_Run], None]:
    def run_method(run: _Run) -> None:
        from cnnlab.plots.explain import embedding_scatter

        features = _pool_features(run)
        labels = _pool(run).labels.numpy()
        extra: dict = {}
        if kind == "tsne":
            points = tsne(features.numpy(), seed=run.settings.seed, threads=run.settings.threads,
                          progress=run.settings.progress)
            what = "t-SNE (van der Maaten & Hinton 2008)"
        else:
            points, ratio = pca(features.numpy())
            extra["explained_variance_ratio"] = ratio
            what = f"PCA (explained variance {100 * ratio[0]:.0f}% + {100 * ratio[1]:.0f}%)"
        purity = knn_purity(points, labels, 10) if len(points) > 10 else float("nan")
        chance = float(np.sum(np.bincount(labels, minlength=len(run.classes)) ** 2) / len(labels) ** 2)
        note = f"10-NN class purity {purity:.2f} (chance {chance:.2f}); {len(points)} test images"
        title = f"{what} of the penultimate features ({features.shape[1]}-d) of {run.config.model}"
        _save_figure(run, f"{kind}.png", embedding_scatter(points, labels, run.classes, title, note))
        _note(run, f"{kind}.npz", points=points, labels=labels, purity=purity, chance=chance, **extra)

    return run_method


def _neighbours(run: _Run) -> None:
    from cnnlab.plots.explain import neighbour_grid

    pool = _pool(run)
    k = run.settings.neighbours
    features = _pool_features(run)
    queries = penultimate_features(run.model, run.x)
    exclude = np.arange(len(run.x)) if run.from_test else None
    by_feature = nearest_neighbours(features, queries, k, exclude)
    by_pixel = nearest_neighbours(pool.shown.float().flatten(1), run.shown.float().flatten(1), k, exclude)
    fig = neighbour_grid(run.shown.numpy(), pool.shown[torch.as_tensor(by_feature)].numpy(),
                         pool.shown[torch.as_tensor(by_pixel)].numpy(),
                         f"Nearest test images of each query: by penultimate features ({features.shape[1]}-d) and "
                         f"by pixels (Krizhevsky et al. 2012)", run.names)
    _save_figure(run, "neighbours.png", fig)
    _note(run, "neighbours.npz", feature_neighbours=by_feature, pixel_neighbours=by_pixel,
          neighbour_labels=pool.labels[torch.as_tensor(by_feature)].numpy())


def _sanity(run: _Run) -> None:
    from cnnlab.plots.explain import sanity_curves, sanity_maps

    s = run.settings
    curves, maps, arrays = {}, {}, {}
    for method in s.sanity_methods:
        check = sanity_check(run.model, run.x, method, run.targets, s.layer, s.sanity_steps, s.seed, s.batch_size,
                             s.progress)
        labels = ["trained", *check.layers]
        curves[method] = (labels, check.rank_correlation, check.ssim)
        maps[method] = check.maps[:, 0]
        arrays.update({f"{method}/rank_correlation": check.rank_correlation_per_image,
                       f"{method}/ssim": check.ssim_per_image, f"{method}/layers": np.array(labels)})
    model = run.config.model
    title = f"Sanity check (Adebayo et al. 2018) of {model}: cascading randomization from the top"
    _save_figure(run, "sanity.png", sanity_curves(curves, title))
    labels = next(iter(curves.values()))[0]
    _save_figure(run, "sanity-maps.png", sanity_maps(run.shown[0].numpy(), maps, labels,
                                                     f"Maps of {run.names[0]} as the layers are re-initialized"))
    _note(run, "sanity.npz", **arrays)


_RUNNERS: dict[str, Callable[[_Run], None]] = {
    "saliency": _attribution("saliency", _saliency, "heat"),
    "smoothgrad": _attribution("smoothgrad", _smoothgrad, "heat"),
    "deconvnet": _attribution("deconvnet", _deconvnet, "signed"),
    "guided-backprop": _attribution("guided-backprop", _guided, "signed"),
    "gradcam": _attribution("gradcam", _gradcam, "heat"),
    "guided-gradcam": _attribution("guided-gradcam", _guided_gradcam, "signed"),
    "occlusion": _occlusion,
    "filters": _filters,
    "activations": _activations,
    "top-patches": _top_patches,
    "class-images": _class_images,
    "tsne": _embedding("tsne"),
    "pca": _embedding("pca"),
    "neighbours": _neighbours,
    "sanity": _sanity,
}
