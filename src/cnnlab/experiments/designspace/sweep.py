"""A design-space sweep on disk: its samples, and one or more trainings of them through the job runner.

A sweep folder holds::

    sweep.json          the space, seed, MAC range and image scale the samples were drawn with
    samples.jsonl       one sampled network per line (key, the space's parameters, the AnyNet, MACs)
    runs-LABEL/         one training of the samples: phase.json (its settings), results.jsonl (the
                        job runner's record, a line per finished trial) and a run folder per trial

Every network of a training ("phase") gets the same short recipe (the paper's "partial metrics"),
so a sweep is resumable and can be trained twice, short and long, for the rank check. The error of a
network is its *validation* error (1 - best validation accuracy on images carved from the training
split); the test error is kept for the report and never used to choose or rank.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError, OutputPathError
from cnnlab.experiments.designspace.sampling import Sample, sample_space
from cnnlab.experiments.designspace.spaces import ImageScale, config_to_dict, get_space
from cnnlab.experiments.jobs import Job, JobResult, read_record, run_jobs
from cnnlab.files import write_json_atomic, write_jsonl_atomic

__all__ = [
    "SWEEP_RECIPE",
    "TrainPlan",
    "Trial",
    "create_sweep",
    "list_phases",
    "load_samples",
    "load_sweep",
    "phase_dir",
    "run_sweep",
    "sweep_jobs",
]

SWEEP_FILE = "sweep.json"
SAMPLES_FILE = "samples.jsonl"
PHASE_FILE = "phase.json"
RECORD = "results.jsonl"

# One short recipe for every sampled network. SGD with momentum 0.9, a half-period cosine schedule and
# weight decay 5e-5 as the paper's sweeps; no augmentation, no label smoothing: nothing that favours
# one architecture. The peak rate and batch size are ours (CPU-sized), set before any sweep was run.
SWEEP_RECIPE: dict[str, Any] = {
    "optimizer": "sgd",
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 5e-5,
    "schedule": "cosine",
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "quiet": True,
    "tensorboard": False,
}


@dataclass(frozen=True)
class TrainPlan:
    """How every network of a sweep is trained: epochs, data (and subset), batch, rate, seed, device."""

    epochs: int = 2
    data: str = "fashion-mnist"
    data_dir: str | None = None
    subset: int | None = None  # training images used (None: the whole training split less `val`)
    val: int = 5000  # validation images carved from the training split; the errors are measured on them
    batch_size: int = 128
    lr: float = 0.1
    seed: int = 0
    device: str = "auto"
    download: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)  # any other TrainConfig fields

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.val < 1:
            raise ConfigError(f"a sweep needs epochs >= 1 and validation images >= 1 (its errors are validation "
                              f"errors), got epochs={self.epochs}, val={self.val}")
        if self.subset is not None and self.subset < 1:
            raise ConfigError(f"--subset must be 1 or more training images, got {self.subset}")

    @property
    def label(self) -> str:
        """The default name of this training's folder: ``e2``, ``e2-n10000``."""
        return f"e{self.epochs}" + (f"-n{self.subset}" if self.subset else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "settings": dict(self.settings)}


@dataclass(frozen=True)
class Trial:
    """A sampled network and how its training in one phase went (status "ok", "failed" or "pending")."""

    sample: Sample
    status: str
    error: float | None  # validation error, a fraction
    test_error: float | None  # for the report only
    seconds: float | None


def create_sweep(out: str | Path, space: str, n: int, macs: tuple[int, int] | None = None, seed: int = 0,
                 scale: ImageScale | None = None) -> list[Sample]:
    """Sample ``n`` networks of ``space`` into the folder ``out``; an existing identical sweep is reused."""
    out = Path(out)
    scale = scale or ImageScale()
    space_obj = get_space(space)
    macs = tuple(macs) if macs else scale.paper_regime()
    meta = {"space": space_obj.name, "title": space_obj.title, "n": n, "macs": list(macs), "seed": seed,
            "scale": scale.to_dict()}
    if (out / SWEEP_FILE).is_file():
        existing = json.loads((out / SWEEP_FILE).read_text())
        if existing != meta:
            raise OutputPathError(f"{out} holds another sweep ({existing['space']}, n={existing['n']}, seed "
                                  f"{existing['seed']}); pick another --out")
        return load_samples(out)[1]
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{out} is a file; a sweep needs a folder")
    samples = sample_space(space_obj, n, macs, seed, scale)
    write_jsonl_atomic(out / SAMPLES_FILE, [s.to_dict() for s in samples])
    write_json_atomic(out / SWEEP_FILE, meta)  # last: its presence means the samples are complete
    return samples


def load_samples(sweep: str | Path) -> tuple[dict[str, Any], list[Sample]]:
    """A sweep folder's settings and samples."""
    sweep = Path(sweep)
    if not (sweep / SWEEP_FILE).is_file() or not (sweep / SAMPLES_FILE).is_file():
        raise ConfigError(f"{sweep} is not a design-space sweep (no {SWEEP_FILE}); make one with "
                          f"`cnnlab designspace sample --out {sweep}`")
    meta = json.loads((sweep / SWEEP_FILE).read_text())
    samples = [Sample.from_dict(json.loads(line)) for line in (sweep / SAMPLES_FILE).read_text().splitlines()
               if line.strip()]
    return meta, samples


def phase_dir(sweep: str | Path, label: str) -> Path:
    """The folder of one training of a sweep."""
    if not label or "/" in label or label.startswith("."):
        raise ConfigError(f"a training label is a folder name, got {label!r}")
    return Path(sweep) / f"runs-{label}"


def _scale(meta: Mapping[str, Any]) -> ImageScale:
    return ImageScale(**meta["scale"])


def _data_settings(sweep: Path, plan: TrainPlan, scale: ImageScale) -> dict[str, Any]:
    """Where every trial reads its images (the data set fetched once here, not by several workers at once) and,
    with a subset, which ones: N + `val` training images, the same share of every class, drawn with the
    sweep's seed (the trainer's --train-subset), of which the trainer carves the `val` validation images."""
    from cnnlab.data.sources import canonical_dataset_name, load_arrays

    key = canonical_dataset_name(plan.data)
    if key is None:
        if plan.subset:
            raise ConfigError("--subset works with the named data sets (fashion-mnist, mnist, cifar10, cifar100)")
        return {"data": plan.data, "data_dir": plan.data_dir, "download": False}
    train = load_arrays(key, plan.data_dir, plan.download)["train"]
    chans, height, _ = train.image_shape
    if (chans, height, len(train.classes)) != (scale.in_chans, scale.image_size, scale.num_classes):
        raise ConfigError(
            f"the sweep was sampled for {scale.in_chans}x{scale.image_size}x{scale.image_size} images of "
            f"{scale.num_classes} classes, {key} has {chans}x{height}x{height} of {len(train.classes)}: sample "
            f"with --image-size {height} --in-chans {chans} --num-classes {len(train.classes)}")
    settings = {"data": key, "data_dir": plan.data_dir, "download": False}
    if not plan.subset:
        return settings
    if plan.subset + plan.val > len(train):
        raise ConfigError(f"--subset {plan.subset} plus --val {plan.val} images does not fit in the "
                          f"{len(train)} training images of {key}")
    return {**settings, "train_subset": plan.subset + plan.val, "split_seed": plan.seed}


def sweep_jobs(sweep: str | Path, plan: TrainPlan, keys: Sequence[str] | None = None,
               data: Mapping[str, Any] | None = None) -> list[Job]:
    """One job per sample (or per key in ``keys``): the ``anynet`` builder with the sample's stages."""
    meta, samples = load_samples(sweep)
    scale = _scale(meta)
    if keys is not None:
        missing = sorted(set(keys) - {s.key for s in samples})
        if missing:
            raise ConfigError(f"{sweep} has no samples {', '.join(missing[:5])}")
        samples = [s for s in samples if s.key in set(keys)]
    data = dict(data) if data is not None else {"data": plan.data, "data_dir": plan.data_dir, "download": False}
    base = {**SWEEP_RECIPE, **data, "epochs": plan.epochs, "batch_size": plan.batch_size, "lr": plan.lr,
            "val_split": plan.val, "seed": plan.seed, "device": plan.device, "model": "anynet",
            "image_size": scale.image_size, **dict(plan.settings)}
    _check_settings(base)
    # The trainer passes the data's classes and channels to the builder, which the sample was drawn for.
    return [Job(s.key, {**base, "model_args": config_to_dict(s.config)}, s.to_dict()) for s in samples]


def _check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse unknown or impossible training settings here, once, rather than in every trial."""
    from cnnlab.train import resolve_config

    try:
        resolve_config(dict(settings)).validate()
    except ValueError as err:
        raise ConfigError(f"training settings of the sweep: {err}") from err


def run_sweep(
    sweep: str | Path,
    plan: TrainPlan,
    *,
    label: str | None = None,
    keys: Sequence[str] | None = None,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    on_event: Callable[[str, Job, JobResult | None], None] | None = None,
) -> list[JobResult]:
    """Train the sweep's samples (or ``keys``) with ``plan`` into ``runs-LABEL``; resumes what is missing."""
    sweep = Path(sweep)
    meta, _ = load_samples(sweep)
    out = phase_dir(sweep, label or plan.label)
    stored = out / PHASE_FILE
    if stored.is_file() and json.loads(stored.read_text()) != _comparable(plan):
        raise ConfigError(f"{out} was trained with other settings ({stored.read_text().strip()}); give another "
                          f"--label to keep both")
    data = _data_settings(sweep, plan, _scale(meta))
    jobs = sweep_jobs(sweep, plan, keys, data)
    write_json_atomic(stored, _comparable(plan))
    return run_jobs(jobs, out, executor=executor, workers=workers, address=address, record=RECORD,
                    on_event=on_event)


def _comparable(plan: TrainPlan) -> dict[str, Any]:
    # JSON round trip so tuples and lists compare alike; whether a download was allowed changes nothing.
    return json.loads(json.dumps({k: v for k, v in plan.to_dict().items() if k != "download"}, default=str))


def list_phases(sweep: str | Path) -> list[dict[str, Any]]:
    """The trainings of a sweep: label, epochs, trials finished, sorted by epochs (the short one first)."""
    phases = []
    for folder in sorted(Path(sweep).glob("runs-*")):
        if (folder / PHASE_FILE).is_file():
            plan = json.loads((folder / PHASE_FILE).read_text())
            phases.append({"label": folder.name[len("runs-"):], "epochs": plan["epochs"], "plan": plan,
                           "finished": len(read_record(folder / RECORD))})
    return sorted(phases, key=lambda p: (p["epochs"], p["label"]))


def load_sweep(sweep: str | Path, label: str | None = None) -> tuple[dict[str, Any], list[Trial]]:
    """A sweep's settings and its trials in one training (default: the shortest one)."""
    meta, samples = load_samples(sweep)
    phases = list_phases(sweep)
    if not phases:
        raise ConfigError(f"{sweep} is not trained yet; run `cnnlab designspace run {sweep}`")
    if label is None:
        label = phases[0]["label"]
    elif label not in {p["label"] for p in phases}:
        raise ConfigError(f"{sweep} has no training {label!r}; it has {', '.join(p['label'] for p in phases)}")
    records = {r.key: r for r in read_record(phase_dir(sweep, label) / RECORD)}
    trials = [_trial(s, records.get(s.key)) for s in samples]
    return {**meta, "label": label}, trials


def _trial(sample: Sample, record: JobResult | None) -> Trial:
    if record is None:
        return Trial(sample, "pending", None, None, None)
    if record.status != "ok" or record.result.get("best_val_accuracy") is None:
        return Trial(sample, "failed", None, None, record.seconds)
    result = record.result
    return Trial(sample, "ok", 1.0 - float(result["best_val_accuracy"]), 1.0 - float(result["test_accuracy"]),
                 record.seconds)
