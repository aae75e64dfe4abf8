"""One ``TrainConfig`` for every training run: defaults < recipe < config file < command-line flags.

Each field's ``help`` is its documentation (unit and meaning) and becomes its command-line help: every
field is a flag (``batch_size`` -> ``--batch-size``), generated from the dataclass so they cannot drift.
"""

from __future__ import annotations

import argparse
import difflib
import json
import types
import typing
from collections.abc import Collection
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cnnlab.data import canonical_dataset_name
from cnnlab.errors import ConfigError, UnknownNameError
from cnnlab.options import parse_options

__all__ = [
    "RECIPES",
    "RECIPE_DATA_SETTINGS",
    "RESUME_OVERRIDABLE",
    "ConfigFileNotFoundError",
    "TrainConfig",
    "UnknownRecipeError",
    "add_config_arguments",
    "config_from_args",
    "config_overrides",
    "load_config_file",
    "resolve_config",
    "resume_config",
]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "multistep", "plateau", "cosine", "onecycle")
AMP_MODES = ("auto", "bf16", "fp16", "off")
RECIPE_NAMES = ("fast", "paper", "alexnet")
# Settings a resumed run may change: they alter how long or how verbosely it runs, not what it computes.
RESUME_OVERRIDABLE = frozenset(
    {"epochs", "time_budget", "quiet", "log_every", "checkpoint_every", "checkpoint_seconds", "tensorboard",
     "threads", "eval_batch_size", "workers", "data_dir"}
)


class UnknownRecipeError(UnknownNameError, ValueError):
    """A recipe name that is not in ``RECIPES`` (a ValueError too, like every other bad setting)."""


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
    """A --config file that does not exist (a FileNotFoundError too, as Python callers expect)."""


def _f(default: Any, help: str, **kw: Any) -> Any:  # noqa: A002  (the argparse word)
    """A dataclass field whose help text documents it and becomes its command-line help."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved resolved as ``config.json`` in the run directory."""

    # -- what to train on
    model: str = _f("", "registered model name (`cnnlab models` lists them)")
    model_args: dict[str, Any] = _f(
        {}, "builder options of the model as KEY=VALUE,... (Python literals), e.g. width_mult=0.25,hidden=256"
    )
    data: str = _f(
        "fashion-mnist",
        "data set: fashion-mnist, mnist, cifar10, cifar100, or an image-folder "
        "path with train/ and test/ (or val/) class subfolders",
    )
    data_dir: str | None = _f(None, "folder holding the data files (else $CNNLAB_DATA, then the system's)")
    download: bool = _f(True, "download a missing named data set with torchvision when the network allows")
    val_split: float | None = _f(
        None,
        "validation images carved from the training set: a fraction below 1 (0.1 = 10%) or a count of 2 or "
        "more (1 is refused as ambiguous); 0 trains on all and selects the last epoch; default: 5000 images "
        "of a named data set; for an image folder its val/ subfolder when it has test/ too, else a tenth of "
        "train/",
    )
    split_seed: int = _f(0, "seed of the validation carve-out and of --train-subset (kept apart from --seed)")
    classes: list[int] = _f(
        [],
        "train and test on these classes only (indices into the data set's classes), relabelled 0..k-1 in "
        "the order given; empty: all classes",
    )
    train_subset: float | None = _f(
        None,
        "keep only this many training images (a count of 2 or more, or a fraction below 1), the same share of every "
        "class, drawn with --split-seed before the validation carve-out; default: all",
    )
    image_size: int | None = _f(
        None,
        "model input side in pixels; default: the data's own size, padded or "
        "resized up to the model's minimum (image folders: its standard size)",
    )
    in_chans: int | None = _f(
        None,
        "model input channels; default: the data's. 3 on grayscale data repeats "
        "the channel (for torchvision weights)",
    )
    workers: int | None = _f(None, "DataLoader worker processes for image folders; default: free cores - 1")
    # -- optimization
    epochs: int = _f(10, "passes over the training split")
    batch_size: int = _f(128, "images per optimizer step, over all processes together")
    eval_batch_size: int = _f(1024, "images per evaluation batch (per process)")
    optimizer: str = _f("sgd", "sgd or adamw", choices=OPTIMIZERS)
    lr: float = _f(0.05, "peak learning rate (reached after warmup)")
    momentum: float = _f(0.9, "SGD momentum")
    nesterov: bool = _f(False, "Nesterov momentum for SGD")
    weight_decay: float = _f(5e-4, "L2 weight decay (decoupled for AdamW)")
    norm_bias_decay: bool = _f(
        True,
        "weight decay on normalization weights and biases too (--no-norm-bias-decay "
        "exempts these 1-D parameters)",
    )
    betas: list[float] = _f([0.9, 0.999], "AdamW beta1 beta2", nargs=2)
    schedule: str = _f("cosine", "learning-rate schedule: " + ", ".join(SCHEDULES), choices=SCHEDULES)
    warmup_epochs: float = _f(0.0, "linear warmup from 0 to --lr over this many epochs (fractions allowed)")
    step_epochs: int = _f(30, "step schedule: multiply by --gamma every this many epochs")
    milestones: list[int] = _f([], "multistep schedule: epochs at which the rate is multiplied by --gamma")
    gamma: float = _f(0.1, "decay factor of the step, multistep and plateau schedules")
    plateau_patience: int = _f(3, "plateau schedule: epochs without validation-accuracy gain before decaying")
    plateau_threshold: float = _f(1e-3, "plateau schedule: smallest validation-accuracy gain that counts")
    min_lr: float = _f(0.0, "floor of the learning rate (cosine end, plateau lower bound)")
    onecycle_peak: float = _f(0.25, "one-cycle schedule: fraction of the run spent rising to --lr")
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy loss (0 = off)")
    class_weights: list[float] = _f(
        [], "segmentation: weight of each class in the per-pixel cross-entropy, in class order; empty: all 1"
    )
    dice_loss: float = _f(0.0, "segmentation: weight of the soft Dice loss added to the cross-entropy (0 = off)")
    ignore_index: int = _f(255, "segmentation: mask value of pixels left out of the loss and the metrics")
    drop_rate: float | None = _f(None, "dropout rate passed to models that take one (default: the model's)")
    grad_clip: float | None = _f(None, "clip the gradient norm to this value (default: no clipping)")
    ema_decay: float | None = _f(
        None,
        "keep an exponential moving average of the weights with this decay "
        "(e.g. 0.999) and evaluate it; default: off",
    )
    tta_flip: bool = _f(False, "evaluate on each image and its mirror image, averaging the predictions")
    topk: int = _f(
        5,
        "also report top-k accuracy (the label among the k highest scores) for validation and test; "
        "ImageNet's top-5 by default (with k >= the classes every label counts)",
    )
    # -- augmentation (per batch, on the device)
    crop_padding: int = _f(0, "random crop after zero-padding by this many pixels (0 = off)")
    hflip: bool = _f(False, "random horizontal flips")
    crop_scale: list[float] = _f(
        [1.0, 1.0],
        "segmentation: random crops of this share of the image side (MIN MAX, at most 1), resized back; "
        "image and mask alike",
        nargs=2,
    )
    train_crop: int | None = _f(
        None,
        "segmentation: train on a random S x S window of each image and its mask (evaluation sees whole "
        "images: the network is fully convolutional); fewer pixels per step, so more steps in a time budget",
    )
    random_erasing: float = _f(0.0, "probability of erasing a random rectangle per image (0 = off)")
    mixup: float = _f(0.0, "mixup Beta(alpha, alpha) parameter (0 = off)")
    cutmix: float = _f(
        0.0, "CutMix Beta(alpha, alpha) parameter (0 = off); with mixup on, each takes half the batches"
    )
    pca_lighting: float = _f(
        0.0,
        "fancy PCA colour noise (Krizhevsky et al. 2012): shift each training image along the training set's "
        "RGB principal axes by alpha_i x eigenvalue_i, alpha_i ~ N(0, this); 0.1 in the paper, 0 = off; "
        "skipped on grayscale data",
    )
    scale_jitter: str | None = _f(
        None,
        "image folders: resize each training image's shorter side to S drawn from [A, B] (A:B) or to A, then "
        "take a random --image-size crop (VGG's 256:512, AlexNet's 256); evaluation resizes to (A+B)/2",
    )
    ten_crop: bool = _f(
        False,
        "test the final weights on ten crops per image (four corners, centre, and their mirror images), "
        "averaging the softmax outputs (Krizhevsky et al. 2012); image folders crop --image-size out of the "
        "evaluation resize, tensor data the image zero-padded by --crop-padding",
    )
    # -- speed
    device: str = _f("auto", "cpu, cuda, cuda:N, mps, or auto (CUDA when available)")
    amp: str = _f(
        "auto",
        "mixed precision: auto (bf16/fp16 on CUDA, bf16 on CPUs with fast bf16), bf16, fp16, off",
        choices=AMP_MODES,
    )
    channels_last: bool | None = _f(
        None,
        "NHWC memory layout; default: on for CPU and CUDA, whose convolution libraries run it faster "
        "(1.2-1.8x measured on CPU for ResNet/DenseNet/NiN; neutral for LeNet-5), off elsewhere",
    )
    compile: bool = _f(False, "torch.compile the model (slower start, faster steps)")
    threads: int | None = _f(None, "CPU threads for PyTorch; default: the cores not busy (per process)")
    sync_bn: bool = _f(False, "synchronize batch-norm statistics across processes (distributed runs)")
    # -- reproducibility
    seed: int = _f(0, "seed of weights, data order and augmentation")
    deterministic: bool = _f(False, "deterministic algorithms only: bit-identical reruns and resumes")
    # -- the run
    out: str | None = _f(None, "run directory; default: runs/<model>-<data>-<time>")
    recipe: str | None = _f(
        None,
        "named preset applied before the config file and flags: "
        "fast (CPU laptop), paper (ResNet paper: SGD 0.1, /10 on plateau), alexnet (AlexNet paper: SGD 0.01, "
        "/10 on plateau, dropout 0.5, crops, flips, PCA lighting, ten-crop test)",
        choices=RECIPE_NAMES,
    )
    checkpoint_seconds: float = _f(
        60.0,
        "also checkpoint once this many seconds of wall time have passed since the last checkpoint (checked "
        "every --log-every steps), so a kill loses at most about that much training; 0 = off",
    )
    checkpoint_every: int = _f(0, "also checkpoint every N steps within an epoch (0 = off)")
    keep_epochs: bool = _f(
        False,
        "also keep the weights before training and after every epoch as RUN/epochs/epoch-NNN.pt (plain "
        "state_dicts), e.g. for the trajectory of `cnnlab landscape --trajectory RUN`",
    )
    log_every: int = _f(20, "steps between progress-bar updates (each one syncs the device)")
    time_budget: float | None = _f(
        None,
        "finish within this many seconds of wall time from the command's start (data loading, model "
        "building, evaluations and the final test included): the schedule is fitted to it once a "
        "tenth of the first epoch is timed (it may then end mid-epoch) and revised at epoch ends",
    )
    test: bool = _f(
        True,
        "evaluate the final model on the test split (--no-test leaves the test set unread: for runs that choose "
        "settings on the validation split)",
    )
    quiet: bool = _f(False, "no progress bar: one log line per epoch")
    tensorboard: bool = _f(True, "also log to TensorBoard when the tensorboard package is installed")
    init: str | None = _f(
        None,
        "start from these weights: a cnnlab checkpoint or a torchvision state_dict "
        "file (classifier layers of another class count are re-initialized)",
    )
    pretrained: bool = _f(
        False,
        "start from torchvision's published ImageNet weights of the model (downloaded once to torch's hub "
        "cache); a classifier for another class count is new, 1-channel data gets the RGB filters summed",
    )
    freeze_backbone: bool = _f(
        False,
        "with --init or --pretrained: train only the classifier; the backbone's batch norm keeps its running "
        "statistics",
    )
    new_head: bool = _f(
        False,
        "with --init or --pretrained: start the classifier afresh even when its class count matches the "
        "weights' (fine-tuning on other classes of as many)",
    )
    backbone_lr_mult: float = _f(
        1.0,
        "learning rate of everything but the classifier, as a multiple of --lr (e.g. 0.1 when fine-tuning "
        "a new head on --pretrained or --init weights); the schedule scales both",
    )

    def validate(self) -> TrainConfig:
        """Raise one clear ``ConfigError`` (a ValueError) for an impossible setting; return self."""

        def between(name: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = True) -> tuple:
            v = getattr(self, name)
            ok = v is None or ((v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi))
            interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
            return ok, f"{name} must be in {interval}, got {v}"

        inf = float("inf")
        checks = [
            (bool(self.model), "no model given; name one, e.g. `cnnlab train lenet5` (`cnnlab models`)"),
            between("epochs", 1, inf),
            between("batch_size", 1, inf),
            between("eval_batch_size", 1, inf),
            between("topk", 1, inf),
            between("lr", 0, inf, lo_open=True),
            between("val_split", 0, inf),
            between("train_subset", 0, inf, lo_open=True),
            (len(set(self.classes)) == len(self.classes), "classes must not repeat an index"),
            (all(c >= 0 for c in self.classes), "classes are indices, 0 or more"),
            (len(self.classes) != 1, "classes: name two or more (with one, every prediction is right)"),
            _share_or_count("val_split", self.val_split),
            _share_or_count("train_subset", self.train_subset),
            between("label_smoothing", 0, 1),
            between("dice_loss", 0, inf),
            between("ignore_index", 0, 255, hi_open=False),
            (all(w >= 0 for w in self.class_weights), "class_weights must be 0 or more"),
            (
                len(self.crop_scale) == 2 and 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1,
                f"crop_scale is MIN MAX with 0 < MIN <= MAX <= 1, got {self.crop_scale}",
            ),
            between("train_crop", 1, inf, hi_open=False),
            between("random_erasing", 0, 1, hi_open=False),
            between("mixup", 0, inf),
            between("cutmix", 0, inf),
            between("crop_padding", 0, inf),
            between("pca_lighting", 0, inf),
            between("ema_decay", 0, 1, lo_open=True),
            between("grad_clip", 0, inf, lo_open=True),
            between("drop_rate", 0, 1),
            between("warmup_epochs", 0, inf),
            between("onecycle_peak", 0, 1, lo_open=True),
            between("log_every", 1, inf),
            between("checkpoint_every", 0, inf),
            between("checkpoint_seconds", 0, inf),
            between("time_budget", 0, inf, lo_open=True),
            between("threads", 1, inf),
            between("workers", 0, inf),
            (
                not self.freeze_backbone or self.init or self.pretrained,
                "freeze_backbone needs --init or --pretrained weights to keep",
            ),
            (not self.new_head or self.init or self.pretrained,
             "new_head needs --init or --pretrained weights to start the rest from"),
            (not (self.init and self.pretrained), "give --init or --pretrained, not both"),
            between("backbone_lr_mult", 0, inf, lo_open=True),
            (
                not (self.freeze_backbone and self.backbone_lr_mult != 1),
                "a frozen backbone does not learn: leave out --backbone-lr-mult or --freeze-backbone",
            ),
            (self.schedule != "multistep" or self.milestones, "the multistep schedule needs --milestones"),
            (
                self.schedule != "plateau" or self.val_split != 0,
                "the plateau schedule watches validation accuracy: give a --val-split above 0",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for name in ("optimizer", "schedule", "amp"):
            allowed = _field_meta(name).get("choices")
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.recipe is not None:
            recipe_settings(self.recipe)
        if self.scale_jitter is not None:
            parse_scale_jitter(self.scale_jitter)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what checkpoints and config.json hold)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a plain dict such as ``to_dict()`` gave (unknown keys are an error)."""
        _check_keys(values, "the stored config")
        return cls(**{k: _coerce(k, v) for k, v in values.items()})


def _share_or_count(name: str, value: float | None) -> tuple[bool, str]:
    """(ok, message): a value below 1 is a fraction, a whole number from 2 on a count; 1 is either."""
    flag = "--" + name.replace("_", "-")
    if value == 1:
        return False, (f"{flag} 1 is ambiguous: a fraction is below 1 (0.1 = 10%) and a count is 2 or more "
                       f"images; give e.g. 0.1 or 5000")
    ok = value is None or value < 1 or float(value).is_integer()
    return ok, f"{flag} {value} is neither a fraction (below 1) nor a whole number of images"


# Named presets: only the fields they set; applied before the config file and the command-line flags.
RECIPES: dict[str, dict[str, Any]] = {
    # A CPU laptop and a few minutes (give them with --time-budget): one-cycle SGD with Nesterov momentum,
    # label smoothing, mirror images in training and testing, every training image used (no validation
    # carve-out). Batch 128 gives twice the steps of 256 at the same speed on a CPU. No random crops: a
    # run of a few epochs underfits. Chosen on a validation split by benchmarks/tune_fast_recipe.py; measured by
    # benchmarks/time_to_accuracy.py (docs/benchmarks.md: 94.00% in 5 min, 94.52% in 15 min on 2 cores, with
    # mirror TTA; 93.76% and 94.29% without).
    "fast": {
        "epochs": 5,
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "norm_bias_decay": False,
        "schedule": "onecycle",
        "onecycle_peak": 0.2,
        "label_smoothing": 0.1,
        "crop_padding": 0,
        "hflip": True,
        "tta_flip": True,
        "val_split": 0,
    },
    # He et al. 2016 (ResNet) Sec. 3.4: SGD, batch 256, lr 0.1 divided by 10 when the error plateaus,
    # weight decay 1e-4, momentum 0.9; AlexNet (Krizhevsky et al. 2012) used the same /10 rule.
    "paper": {
        "epochs": 90,
        "batch_size": 256,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 1e-4,
        "norm_bias_decay": True,
        "schedule": "plateau",
        "gamma": 0.1,
        "plateau_patience": 5,
        "hflip": True,
        "label_smoothing": 0.0,
    },
    # Krizhevsky et al. 2012 (AlexNet) Sec. 5: SGD, batch 128, momentum 0.9, weight decay 5e-4, lr 0.01
    # divided by 10 when the validation error stopped improving, about 90 passes; Sec. 4.2: dropout 0.5;
    # Sec. 4.1: random crops and their mirror images, PCA lighting with alpha ~ N(0, 0.1), and ten-crop
    # testing. The crops depend on the data: see RECIPE_DATA_SETTINGS.
    "alexnet": {
        "epochs": 90,
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 5e-4,
        "norm_bias_decay": True,
        "schedule": "plateau",
        "gamma": 0.1,
        "plateau_patience": 5,
        "drop_rate": 0.5,
        "hflip": True,
        "pca_lighting": 0.1,
        "ten_crop": True,
        "label_smoothing": 0.0,
    },
}

# A recipe's settings that depend on the kind of data: image folders (decoded per image, ImageNet-sized)
# or the named data sets (small images held whole on the device, 28x28 or 32x32).
RECIPE_DATA_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "alexnet": {
        # Sec. 2 and 4.1: images rescaled to a shorter side of 256, random 227x227 crops (the paper's text says
        # 224; its first layer's arithmetic needs 227), tested on ten 227 crops of the 256 image.
        "folder": {"image_size": 227, "scale_jitter": "256"},
        # 28 or 32 pixel images: random crops of the image zero-padded by 4 on each side (He et al. 2016's
        # CIFAR crops), a margin near AlexNet's 29 of 256; the ten test crops come from the same padding.
        "tensor": {"crop_padding": 4},
    },
}


def parse_scale_jitter(text: str) -> tuple[int, int]:
    """(S_min, S_max) of a --scale-jitter value: ``A:B`` or ``A`` (a fixed scale) in pixels."""
    parts = str(text).split(":")
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, -1)
    except ValueError:
        lo, hi = 0, -1
    if not 0 < lo <= hi:
        raise ConfigError(f"scale_jitter is A:B (pixels, A <= B) or A, e.g. 256:512 or 256, got {text!r}")
    return lo, hi


def recipe_settings(name: str, data: str | None = None) -> dict[str, Any]:
    """The settings of recipe ``name`` for data set ``data``; an unknown name lists the recipes there are."""
    if name not in RECIPES:
        close = difflib.get_close_matches(str(name), list(RECIPES), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UnknownRecipeError(f"unknown recipe {name!r}; {hint}choose one of {', '.join(RECIPES)}")
    kind = "folder" if data is not None and canonical_dataset_name(data) is None else "tensor"
    return {**RECIPES[name], **RECIPE_DATA_SETTINGS.get(name, {}).get(kind, {})}


def _field_meta(name: str) -> dict:
    return next(f.metadata for f in fields(TrainConfig) if f.name == name)


_HINTS: dict[str, Any] = {}


def _hints() -> dict[str, Any]:
    if not _HINTS:
        _HINTS.update(typing.get_type_hints(TrainConfig))
    return _HINTS


def _base_type(hint: Any) -> tuple[type, bool, bool]:
    """(scalar type, optional?, list?) of a field's annotation."""
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0], optional, True
    return hint, optional, False


def _coerce(name: str, value: Any) -> Any:
    """A config-file or flag value converted to the field's type, or a ``ConfigError`` naming the field."""
    if typing.get_origin(_hints()[name]) is dict:
        return parse_options(value)
    scalar, optional, is_list = _base_type(_hints()[name])
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"{name} cannot be empty (null)")
    if is_list:
        items = value if isinstance(value, list | tuple) else [value]
        return [_coerce_scalar(name, scalar, v) for v in items]
    return _coerce_scalar(name, scalar, value)


def _coerce_scalar(name: str, scalar: type, value: Any) -> Any:
    if scalar is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    try:
        if scalar is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return scalar(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {scalar.__name__}, got {value!r}") from None


def _check_keys(keys: typing.Iterable[str], origin: str) -> None:
    known = [f.name for f in fields(TrainConfig)]
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown setting {key!r} in {origin}{hint}")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a YAML or JSON file (a flat mapping of field names, dashes or underscores)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigFileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as err:  # noqa: BLE001  (yaml and json raise different types)
        raise ConfigError(f"cannot parse config file {path}: {' '.join(str(err).split())}") from err
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(data).__name__}")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    _check_keys(data, str(path))
    return data


def resolve_config(
    overrides: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    base: TrainConfig | None = None,
) -> TrainConfig:
    """Defaults (or ``base``) < recipe < config file < ``overrides``; values are type-checked."""
    overrides = dict(overrides or {})
    _check_keys(overrides, "the overrides")
    file_values = load_config_file(config_file) if config_file else {}
    recipe = overrides.get("recipe", file_values.get("recipe"))
    cfg = base or TrainConfig()
    layers: list[dict[str, Any]] = []
    if recipe is not None:
        layers.append(recipe_settings(recipe, overrides.get("data", file_values.get("data", cfg.data))))
    layers += [file_values, overrides]
    for layer in layers:
        cfg = replace(cfg, **{k: _coerce(k, v) for k, v in layer.items()})
    return cfg


def resume_config(stored: TrainConfig, overrides: dict[str, Any], run_dir: str | Path) -> TrainConfig:
    """The config of a resumed run: ``stored`` with the ``RESUME_OVERRIDABLE`` settings of ``overrides``."""
    # Naming the run's own model or directory again is harmless; anything else must be resumable.
    overrides = {k: v for k, v in overrides.items() if not (k in ("model", "out") and v == getattr(stored, k))}
    changed = sorted(set(overrides) - RESUME_OVERRIDABLE)
    if changed:
        raise ConfigError(
            f"cannot change {', '.join(changed)} when resuming (the run would not continue the same way); "
            f"start a new run with --init {Path(run_dir) / 'last.pt'} instead"
        )
    return replace(resolve_config(overrides, base=stored), out=str(run_dir))


def add_config_arguments(parser: argparse.ArgumentParser, positional_model: bool = True,
                         exclude: Collection[str] = (),
                         title: str = "training settings (each also a config-file key)") -> None:
    """One flag per ``TrainConfig`` field (but ``exclude``); flags left out stay absent from the parsed namespace."""
    group = parser.add_argument_group(title)
    for f in fields(TrainConfig):
        if f.name in exclude:
            continue
        if f.name == "model" and positional_model:
            parser.add_argument("model", nargs="?", default=argparse.SUPPRESS, help=f.metadata["help"])
            continue
        scalar, optional, is_list = _base_type(_hints()[f.name])
        if typing.get_origin(scalar) is dict:
            scalar = str  # parsed by _coerce from key=value text
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": _flag_help(f)}
        if scalar is bool:  # a switch, --name / --no-name, also when None means "decide for me"
            kw["action"] = argparse.BooleanOptionalAction
        elif is_list:
            kw.update(nargs=f.metadata.get("nargs", "*"), type=scalar, metavar=scalar.__name__.upper())
        else:
            kw.update(type=_flag_type(f.name), metavar=scalar.__name__.upper())
            if "choices" in f.metadata:
                kw.update(choices=f.metadata["choices"], metavar=None)
        group.add_argument(flag, **kw)


def _flag_type(name: str):
    def convert(text: str) -> Any:
        try:
            return _coerce(name, text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = _base_type(_hints()[name])[0].__name__
    return convert


def _flag_help(f) -> str:
    """The field's help, with its default unless the text already says what the default is."""
    text = f.metadata["help"]
    if f.name == "recipe":
        text += "; " + "; ".join(f"{name} sets {_settings_text(values)}" for name, values in RECIPES.items())
    if "default" in text:
        return text.replace("%", "%%")
    default = f.default if f.default is not MISSING else f.default_factory()
    shown = "off" if default is False else "on" if default is True else "none" if default is None else default
    return f"{text} (default: {shown})".replace("%", "%%")


def _settings_text(values: dict[str, Any]) -> str:
    """A recipe's settings as the flags a user would type: ``--epochs 5 --no-nesterov ...``."""
    words = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        else:
            words.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(words)


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig settings typed on the command line (flags left out are absent from ``args``)."""
    names = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in names}


def config_from_args(args: argparse.Namespace, config_file: str | Path | None = None) -> TrainConfig:
    """The config given by parsed flags (only those typed on the command line) over a file and recipe."""
    return resolve_config(config_overrides(args), config_file)
