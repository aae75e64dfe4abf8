"""The landscape of a trained checkpoint, end to end: the one call behind ``cnnlab landscape``.

``landscape_checkpoint(checkpoint, out, settings)`` rebuilds the network from a checkpoint that ``cnnlab
train`` wrote, takes a fixed, class-balanced subset of the run's own training split (and of the test split on
request), makes the directions (random with filter normalization, the line to ``settings.to``, or the PCA
plane of ``settings.trajectory``), fills the grid resumably (split over the processes of a torchrun job),
optionally measures the Hessian's extreme eigenvalues at the centre and over a coarse grid, and draws the
figures. Files in ``out`` (see docs/landscape.md): ``landscape.npz`` + ``landscape.json`` (the grid),
``directions.pt``, ``curvature.npz`` + ``curvature.json`` (with ``curvature_grid``), the figures and
``summary.json``.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from cnnlab.data import (
    ArrayDataset,
    FolderDataset,
    canonical_dataset_name,
    find_folder_splits,
    load_arrays,
    select_classes,
    split_indices,
    stratified_subset,
    train_val_split,
)
from cnnlab.errors import CheckpointError, ConfigError, DataError
from cnnlab.experiments.landscape.curvature import (
    HESSIAN_METHODS,
    extreme_eigenvalues,
    nonconvex_fraction,
)
from cnnlab.experiments.landscape.directions import (
    IGNORE_CHOICES,
    NORM_CHOICES,
    Direction,
    direction_digest,
    interpolation_direction,
    orthogonalize,
    random_directions,
    trajectory_plane,
)
from cnnlab.experiments.landscape.grid import Grid, GridStore, fill_grid, parse_axes
from cnnlab.experiments.landscape.surface import BN_MODES, SurfaceEvaluator
from cnnlab.files import save_torch_atomic, write_bytes_atomic, write_json_atomic
from cnnlab.train.checkpoint import RunCheckpoint, load_checkpoint
from cnnlab.train.distributed import DistEnv, cleanup_distributed, env_from_torchrun, init_distributed
from cnnlab.train.evaluate import load_trained_model
from cnnlab.train.inputs import augment_from_meta
from cnnlab.train.runtime import select_device, set_threads

__all__ = ["LandscapeResult", "LandscapeSettings", "balanced_indices", "landscape_checkpoint", "load_landscape",
           "training_subset"]


@dataclass
class LandscapeSettings:
    """Options of :func:`landscape_checkpoint`; every field is a flag of ``cnnlab landscape``."""

    dims: int = 2  # 1: a line, 2: a plane
    grid: str | int = 21  # points per axis: 21, or 21x15 (x by y)
    range: str | None = None  # -1:1 (every axis) or -1:1,-0.5:0.5; default -1:1, -0.5:1.5 with `to`, the path's
    seed: int = 0  # seed of the random directions
    norm: str = "filter"  # filter (Li et al.), layer, none
    ignore: str = "biasbn"  # biasbn: zero biases and BN parameters in the directions; none: keep them
    orthogonal: bool = False  # make the second random direction exactly orthogonal to the first
    to: str | None = None  # another checkpoint: the line from this one to it (Goodfellow et al. 2015)
    trajectory: str | None = None  # a run trained with --keep-epochs (or its epochs/ folder): its PCA plane
    points: int = 2000  # training images the loss averages over (a fixed, class-balanced subset)
    subset_seed: int = 0  # seed of that subset
    test: bool = False  # also the test loss and accuracy (on as many test images)
    bn: str = "eval"  # eval: the checkpoint's running statistics; recompute: recomputed at every point
    batch_size: int | None = None  # images per forward (default 128 on a CPU, 1024 on a GPU)
    fold_bn: bool = True  # fold eval-mode batch norms into their convolutions
    channels_last: bool | None = None  # NHWC layout (default: on for CPU and CUDA)
    fuse: bool = True  # on CPUs: convolution, residual addition and ReLU as one oneDNN primitive
    compile: bool = False  # torch.compile the network (pays on big grids)
    hessian: bool = False  # the extreme Hessian eigenvalues at the centre
    hessian_method: str = "lanczos"  # lanczos or power
    hessian_iters: int = 20  # Hessian-vector products (Lanczos) or power iterations per eigenvalue
    hessian_points: int = 1000  # images of the subset the Hessian's loss averages over
    curvature_grid: int = 0  # points per axis of a coarse grid of |lambda_min / lambda_max| (0: none)
    levels: int = 20  # contour levels of the figures
    device: str = "auto"
    threads: int | None = None  # CPU threads per process (default: the free cores)
    data_dir: str | None = None  # where the data set is, if not where training found it
    progress: bool = True  # a progress bar on stderr

    def validate(self) -> LandscapeSettings:
        checks = [
            (self.dims in (1, 2), f"dims must be 1 or 2, got {self.dims}"),
            (self.norm in NORM_CHOICES, f"norm must be one of {', '.join(NORM_CHOICES)}, got {self.norm!r}"),
            (self.ignore in IGNORE_CHOICES, f"ignore must be one of {', '.join(IGNORE_CHOICES)}, got {self.ignore!r}"),
            (self.bn in BN_MODES, f"bn must be one of {', '.join(BN_MODES)}, got {self.bn!r}"),
            (self.hessian_method in HESSIAN_METHODS,
             f"the Hessian method is one of {', '.join(HESSIAN_METHODS)}, got {self.hessian_method!r}"),
            (self.points >= 1, f"points must be 1 or more, got {self.points}"),
            (self.hessian_points >= 1 and self.hessian_iters >= 1, "Hessian points and iterations must be 1 or more"),
            (self.curvature_grid == 0 or self.curvature_grid >= 3,
             f"a curvature grid needs 3 points per axis or more (or 0 for none), got {self.curvature_grid}"),
            (self.levels >= 2, f"levels must be 2 or more, got {self.levels}"),
            (not (self.to and self.trajectory), "--to and --trajectory choose different directions; give one"),
            (not (self.to and self.dims != 1), "--to draws the 1-D line between two checkpoints: use --dims 1"),
            (not (self.trajectory and self.dims != 2), "--trajectory draws the 2-D PCA plane: use --dims 2"),
            (self.batch_size is None or self.batch_size >= 1, f"batch size must be 1 or more, got {self.batch_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self


@dataclass
class LandscapeResult:
    """A computed landscape read back from its folder: coordinates, arrays, metadata."""

    x: np.ndarray
    y: np.ndarray | None
    values: dict[str, np.ndarray]  # quantity -> (nx,) or (ny, nx)
    done: np.ndarray
    identity: dict[str, Any]
    extra: dict[str, Any]
    curvature: dict[str, np.ndarray] | None = None  # "x", "y", "ratio", "lambda_min", "lambda_max"

    @property
    def axes(self) -> list[np.ndarray]:
        return [self.x] if self.y is None else [self.x, self.y]


def load_landscape(folder: str | Path, name: str = "landscape") -> LandscapeResult:
    """A landscape folder written by :func:`landscape_checkpoint` (or :class:`GridStore`), as arrays."""
    import json

    folder = Path(folder)
    try:
        meta = json.loads((folder / f"{name}.json").read_text())
        with np.load(folder / f"{name}.npz") as arrays:
            data = {k: arrays[k] for k in arrays.files}
    except (OSError, ValueError) as err:
        raise DataError(f"{folder} holds no readable landscape ({err}); run `cnnlab landscape` first") from err
    values = {q: data[q] for q in meta["quantities"]}
    result = LandscapeResult(data["x"], data.get("y"), values, data["done"].astype(bool), meta["identity"],
                             meta.get("extra", {}))
    if name == "landscape" and (folder / "curvature.json").exists():
        curv = load_landscape(folder, "curvature")
        result.curvature = {"x": curv.x, "y": curv.y, **curv.values}
    return result


# ------------------------------------------------------------------------------------------------- data


def _digest_arrays(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def training_subset(ckpt: RunCheckpoint, points: int, seed: int = 0, split: str = "train",
                    data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, C, H, W), labels) of a class-balanced, seeded subset of the run's own training split
    (the images it trained on: its classes, --train-subset and validation carve-out) or of its test split."""
    cfg, meta = ckpt.config, ckpt.data
    if canonical_dataset_name(meta.dataset) is None:
        return _folder_subset(ckpt, points, seed, split)
    arrays = {k: select_classes(v, meta.class_subset)
              for k, v in load_arrays(meta.dataset, data_dir or cfg.data_dir, cfg.download).items()}
    if split == "train":
        pool = stratified_subset(arrays["train"], cfg.train_subset, cfg.split_seed) if cfg.train_subset \
            else arrays["train"]
        data: ArrayDataset = train_val_split(pool, cfg.val_split, cfg.split_seed)[0]
    else:
        data = arrays["test"]
    if data.classes != meta.classes:
        raise DataError(f"the checkpoint's classes {meta.classes} differ from {meta.dataset}'s {data.classes}; "
                        "use the data set it was trained on")
    if points < len(data):
        data = data.subset(balanced_indices(data.labels, len(data.classes), points, seed))
    return data.images, data.labels


def balanced_indices(labels: torch.Tensor, num_classes: int, count: int, seed: int = 0) -> torch.Tensor:
    """Exactly ``count`` sorted indices, each class in its share (largest remainders), drawn with ``seed``."""
    sizes = torch.bincount(labels, minlength=num_classes).double()
    share = sizes * count / len(labels)
    quota = share.floor().long()
    extra = count - int(quota.sum())
    quota[torch.argsort(share - quota, descending=True, stable=True)[:extra]] += 1
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for label in range(num_classes):
        members = (labels == label).nonzero().squeeze(1)
        picked.append(members[torch.randperm(len(members), generator=generator)[: int(quota[label])]])
    return torch.cat(picked).sort().values


def _folder_subset(ckpt: RunCheckpoint, points: int, seed: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    cfg, meta = ckpt.config, ckpt.data
    folders = find_folder_splits(meta.dataset)
    root = folders["train"] if split == "train" else folders["test"]
    full = FolderDataset(root, meta.input_size, meta.in_chans, train=False, classes=meta.classes)
    indices = split_indices(len(full), cfg.val_split, cfg.split_seed)[0] if split == "train" \
        else torch.arange(len(full))
    if points < len(indices):
        indices = indices[balanced_indices(full.labels[indices], len(meta.classes), points, seed)]
    items = [full[int(i)] for i in indices]
    return torch.stack([img for img, _ in items]), torch.tensor([label for _, label in items])


# ------------------------------------------------------------------------------------------- directions


@dataclass
class _Plan:
    """The directions of one landscape and what identifies them."""

    directions: list[Direction]
    identity: dict[str, Any]
    default_range: str
    extra: dict[str, Any] = field(default_factory=dict)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checkpoint_file(path: str | Path) -> Path:
    path = Path(path)
    return path / "last.pt" if path.is_dir() else path


def _other_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of another checkpoint: a cnnlab checkpoint (EMA weights when it kept them) or a state_dict."""
    obj = load_checkpoint(path)
    if obj.get("format", "").startswith("cnnlab-checkpoint"):
        return (obj.get("ema") or {}).get("module") or obj["model"]
    if not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} is neither a cnnlab checkpoint nor a state_dict of tensors")
    return obj


def _trajectory_files(path: str | Path) -> list[Path]:
    path = Path(path)
    folder = path / "epochs" if (path / "epochs").is_dir() else path
    files = sorted(folder.glob("epoch-*.pt"))
    if not files:
        raise CheckpointError(f"no epochs/epoch-NNN.pt files in {path}; train with --keep-epochs to keep the "
                              "trajectory")
    return files


def _plan(model: torch.nn.Module, settings: LandscapeSettings) -> _Plan:
    centre = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if settings.to:
        direction = interpolation_direction(centre, _other_weights(settings.to))
        ident = {"kind": "interpolation", "to_sha256": _file_digest(_checkpoint_file(settings.to))}
        return _Plan([direction], ident, "-0.5:1.5", {"to": str(settings.to)})
    if settings.trajectory:
        files = _trajectory_files(settings.trajectory)
        names = [k for k, p in model.named_parameters() if p.requires_grad]
        plane = trajectory_plane([load_checkpoint(f) for f in files], centre, names, settings.ignore)
        path = plane.path.numpy()
        low, high = np.minimum(path.min(0), 0.0), np.maximum(path.max(0), 0.0)
        pad = 0.15 * np.maximum(high - low, 1e-3)
        span = ",".join(f"{lo:.6g}:{hi:.6g}" for lo, hi in zip(low - pad, high + pad))
        ident = {"kind": "trajectory", "files": [f.name for f in files], "ignore": settings.ignore,
                 "files_sha256": [_file_digest(f) for f in files]}
        extra = {"trajectory": {"path": path.tolist(), "explained": plane.explained,
                                "files": [f.name for f in files]}}
        return _Plan(plane.directions, ident, span, extra)
    directions = random_directions(model, settings.dims, settings.seed, settings.norm, settings.ignore)
    if settings.orthogonal and len(directions) == 2:
        directions[1] = orthogonalize(directions[0], directions[1])
    ident = {"kind": "random", "seed": settings.seed, "norm": settings.norm, "ignore": settings.ignore,
             "orthogonal": settings.orthogonal}
    return _Plan(directions, ident, "-1:1")


# -------------------------------------------------------------------------------------------------- run


def _progress(total: int, show: bool, what: str):
    if not show or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="point", leave=False)


def landscape_checkpoint(checkpoint: str | Path, out: str | Path,
                         settings: LandscapeSettings | None = None) -> dict[str, Any]:
    """Compute (or finish) the landscape of ``checkpoint`` into ``out``; returns the summary (summary.json)."""
    settings = (settings or LandscapeSettings()).validate()
    device = select_device(settings.device, env_from_torchrun().local_rank)
    owns_group = not (dist.is_available() and dist.is_initialized())
    env = init_distributed(device)
    try:
        return _landscape(Path(checkpoint), Path(out), settings, device, env)
    finally:
        if owns_group:
            cleanup_distributed()


def _landscape(checkpoint: Path, out: Path, settings: LandscapeSettings, device: torch.device,
               env: DistEnv) -> dict[str, Any]:
    start = time.perf_counter()
    threads = set_threads(settings.threads, env.local_world_size)
    model, ckpt = load_trained_model(checkpoint, device)
    plan = _plan(model, settings)
    grid = parse_axes(settings.dims, settings.grid, settings.range or plan.default_range)
    images, labels = training_subset(ckpt, settings.points, settings.subset_seed, "train", settings.data_dir)
    augment = augment_from_meta(ckpt.data)
    data = {"train": (augment.eval(images.to(device)), labels)}
    data_id = {"dataset": ckpt.data.dataset, "split": "train", "points": len(labels),
               "subset_seed": settings.subset_seed, "sha256": _digest_arrays(images, labels)}
    if settings.test:
        test_images, test_labels = training_subset(ckpt, settings.points, settings.subset_seed, "test",
                                                   settings.data_dir)
        data["test"] = (augment.eval(test_images.to(device)), test_labels)
        data_id["test_points"] = len(test_labels)
        data_id["test_sha256"] = _digest_arrays(test_images, test_labels)
    evaluator = SurfaceEvaluator(model, plan.directions, data, batch_size=settings.batch_size, bn=settings.bn,
                                 fold_bn=settings.fold_bn, channels_last=settings.channels_last,
                                 compile=settings.compile, fuse=settings.fuse)
    ckpt_file = _checkpoint_file(checkpoint)
    identity = {  # what the grid is a landscape of: a resumed run must match it (paths may move, contents not)
        "model": ckpt.config.model, "model_args": ckpt.config.model_args,
        "checkpoint_sha256": _file_digest(ckpt_file), "bn": settings.bn, "data": data_id,
        "directions": {**plan.identity, "sha256": direction_digest(plan.directions)},
    }
    store = GridStore(out, grid, identity, evaluator.quantities(), extra={**plan.extra, "checkpoint": str(ckpt_file)})
    if env.is_main:
        save_torch_atomic({"directions": plan.directions, "identity": identity["directions"]},
                          out / "directions.pt")
    _barrier(env)
    todo = len(store.missing())
    bar = _progress(todo, settings.progress and env.is_main, "landscape")
    computed = fill_grid(store, evaluator, env, on_point=bar.update if bar else None)
    if bar:
        bar.close()
    summary: dict[str, Any] = {
        "checkpoint": str(ckpt_file), "model": ckpt.config.model, "out": str(out), "points": grid.size,
        "computed_now": computed, "resumed": store.resumed, "directions": plan.identity,
        "data": data_id, "bn": settings.bn, "batch_norm_folding": evaluator.fold_note,
        "fusion": evaluator.fuse_note,
        "threads": threads, "processes": env.world_size, "device": str(device),
    }
    summary.update(_surface_numbers(store))
    if settings.hessian:
        summary["hessian"] = _centre_hessian(store, evaluator, settings, env)
    if settings.curvature_grid:
        summary["curvature_grid"] = _curvature_grid(out, grid, identity, evaluator, settings, env)
    summary["seconds"] = time.perf_counter() - start
    if env.is_main:
        summary["files"] = _write_figures(out, settings)
        write_json_atomic(out / "summary.json", summary)
    return summary


def _barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


def _surface_numbers(store: GridStore) -> dict[str, Any]:
    """The centre's loss, the lowest point and the non-convex fraction of the training loss."""
    loss = store.values["train_loss"]
    numbers: dict[str, Any] = {}
    centre = store.grid.centre_index()
    if centre is not None:
        numbers["centre"] = {q: float(v.reshape(-1)[centre]) for q, v in store.values.items()}
    if np.isfinite(loss).any():
        low = int(np.nanargmin(loss.reshape(-1)))
        numbers["lowest"] = {"coords": list(store.grid.coords(low)), "train_loss": float(loss.reshape(-1)[low])}
    axes = [a.values() for a in store.grid.axes]
    if all(len(a) >= 3 for a in axes):
        numbers["nonconvex_fraction"] = nonconvex_fraction(loss, axes)
    return numbers


def _hessian_batches(evaluator: SurfaceEvaluator, points: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    batches, taken = [], 0
    for x, y in evaluator.data[0].batches:
        if taken >= points:
            break
        batches.append((x[: points - taken], y[: points - taken]))
        taken += len(batches[-1][1])
    return batches


def _hessian_key(settings: LandscapeSettings) -> dict[str, Any]:
    return {"method": settings.hessian_method, "iterations": settings.hessian_iters,
            "points": settings.hessian_points}


def _centre_hessian(store: GridStore, evaluator: SurfaceEvaluator, settings: LandscapeSettings,
                    env: DistEnv) -> dict[str, Any] | None:
    """The extreme Hessian eigenvalues at the centre (rank 0; kept in the metadata and reused on a rerun)."""
    known = store.extra.get("hessian")
    if known and known.get("settings") == _hessian_key(settings):
        return known
    result = None
    if env.is_main:
        evaluator.move_to([0.0] * evaluator.dims)
        spectrum = extreme_eigenvalues(evaluator.work, _hessian_batches(evaluator, settings.hessian_points),
                                       settings.hessian_iters, settings.hessian_method)
        result = {**spectrum.to_dict(), "settings": _hessian_key(settings)}
        store.extra["hessian"] = result
        store.write()
    _barrier(env)
    return result


def _curvature_grid(out: Path, grid: Grid, identity: Mapping[str, Any], evaluator: SurfaceEvaluator,
                    settings: LandscapeSettings, env: DistEnv) -> dict[str, Any]:
    """|lambda_min / lambda_max| over a coarse grid with the same ranges (Li et al. 2018, figure 7)."""
    n = settings.curvature_grid
    coarse = Grid(tuple(type(a)(a.start, a.stop, n) for a in grid.axes))
    store = GridStore(out, coarse, {**identity, "hessian": _hessian_key(settings)},
                      ["lambda_min", "lambda_max", "ratio"], name="curvature")
    batches = _hessian_batches(evaluator, settings.hessian_points)

    def spectrum_at(coords: Sequence[float]) -> dict[str, float]:
        evaluator.move_to(coords)
        s = extreme_eigenvalues(evaluator.work, batches, settings.hessian_iters, settings.hessian_method)
        return {"lambda_min": s.lambda_min, "lambda_max": s.lambda_max, "ratio": s.ratio}

    _barrier(env)
    bar = _progress(len(store.missing()), settings.progress and env.is_main, "curvature")
    fill_grid(store, spectrum_at, env, on_point=bar.update if bar else None)
    if bar:
        bar.close()
    ratio = store.values["ratio"]
    return {"points": coarse.size, "median_ratio": float(np.nanmedian(ratio)),
            "max_ratio": float(np.nanmax(ratio))}


# ------------------------------------------------------------------------------------------------ figures


def _save_figure(path: Path, fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)
    write_bytes_atomic(path, buffer.getvalue())
    return path.name


def _write_figures(out: Path, settings: LandscapeSettings) -> list[str]:
    """The figures of a finished landscape folder: 1-D curves, or contours, surface (and trajectory, curvature)."""
    from cnnlab import plots

    result = load_landscape(out)
    title = f"{result.identity['model']} ({result.identity['directions']['kind']} directions)"
    files = ["landscape.npz", "landscape.json", "directions.pt"]
    if result.y is None:
        kind = result.identity["directions"]["kind"]
        xlabel = "interpolation coefficient α" if kind == "interpolation" else "distance along the direction"
        fig = plots.landscape_curves(result.x, result.values, xlabel=xlabel, title=title)
        return [*files, _save_figure(out / "landscape_1d.png", fig)]
    loss = {"train": result.values["train_loss"]}
    if "test_loss" in result.values:
        loss["test"] = result.values["test_loss"]
    files.append(_save_figure(out / "contour.png", plots.landscape_contours(
        {f"{title}: {split} loss": z for split, z in loss.items()}, result.x, result.y, levels=settings.levels)))
    files.append(_save_figure(out / "surface.png",
                              plots.landscape_surface(result.x, result.y, result.values["train_loss"], title=title)))
    trajectory = result.extra.get("trajectory")
    if trajectory:
        files.append(_save_figure(out / "trajectory.png", plots.landscape_trajectory(
            result.x, result.y, result.values["train_loss"], np.asarray(trajectory["path"]),
            trajectory["explained"], levels=settings.levels, title=title)))
    if result.curvature is not None:
        files += ["curvature.npz", "curvature.json"]
        files.append(_save_figure(out / "curvature.png", plots.curvature_map(
            result.curvature["x"], result.curvature["y"], result.curvature["ratio"], title=title)))
    return files
