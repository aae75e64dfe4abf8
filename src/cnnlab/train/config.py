"""One ``TrainConfig`` for every training run: defaults < recipe < config file < command-line flags.

Each field's ``help`` is its documentation (unit and meaning) and becomes its command-line help: every
field is a flag (``batch_size`` -> ``--batch-size``), generated from the dataclass so they cannot drift.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError, UnknownNameError

__all__ = [
    "RECIPES",
    "RESUME_OVERRIDABLE",
    "ConfigFileNotFoundError",
    "TrainConfig",
    "UnknownRecipeError",
    "add_config_arguments",
    "config_from_args",
    "load_config_file",
    "resolve_config",
    "resume_config",
]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "multistep", "plateau", "cosine", "onecycle")
AMP_MODES = ("auto", "bf16", "fp16", "off")
RECIPE_NAMES = ("fast", "paper")
# Settings a resumed run may change: they alter how long or how verbosely it runs, not what it computes.
RESUME_OVERRIDABLE = frozenset(
    {"epochs", "time_budget", "quiet", "log_every", "checkpoint_every", "tensorboard", "threads",
     "eval_batch_size", "workers", "data_dir"}
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
    val_split: float = _f(
        5000,
        "validation images carved from the training set: a fraction below 1 or a "
        "count; 0 trains on all and selects the last epoch",
    )
    split_seed: int = _f(0, "seed of the validation carve-out and of --train-subset (kept apart from --seed)")
    classes: list[int] = _f(
        [],
        "train and test on these classes only (indices into the data set's classes), relabelled 0..k-1 in "
        "the order given; empty: all classes",
    )
    train_subset: float | None = _f(
        None,
        "keep only this many training images (a count, or a fraction below 1), the same share of every "
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
    drop_rate: float | None = _f(None, "dropout rate passed to models that take one (default: the model's)")
    grad_clip: float | None = _f(None, "clip the gradient norm to this value (default: no clipping)")
    ema_decay: float | None = _f(
        None,
        "keep an exponential moving average of the weights with this decay "
        "(e.g. 0.999) and evaluate it; default: off",
    )
    tta_flip: bool = _f(False, "evaluate on each image and its mirror image, averaging the predictions")
    # -- augmentation (per batch, on the device)
    crop_padding: int = _f(0, "random crop after zero-padding by this many pixels (0 = off)")
    hflip: bool = _f(False, "random horizontal flips")
    random_erasing: float = _f(0.0, "probability of erasing a random rectangle per image (0 = off)")
    mixup: float = _f(0.0, "mixup Beta(alpha, alpha) parameter (0 = off)")
    cutmix: float = _f(
        0.0, "CutMix Beta(alpha, alpha) parameter (0 = off); with mixup on, each takes half the batches"
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
        "fast (CPU laptop), paper (ResNet paper: SGD 0.1, /10 on plateau)",
        choices=RECIPE_NAMES,
    )
    checkpoint_every: int = _f(0, "also checkpoint every N steps within an epoch (0 = at epoch ends only)")
    keep_epochs: bool = _f(
        False,
        "also keep the weights before training and after every epoch as RUN/epochs/epoch-NNN.pt (plain "
        "state_dicts), e.g. for the trajectory of `cnnlab landscape --trajectory RUN`",
    )
    log_every: int = _f(20, "steps between progress-bar updates (each one syncs the device)")
    time_budget: float | None = _f(
        None,
        "finish within this many seconds, evaluations included: the schedule is fitted to it once a "
        "tenth of the first epoch is timed (it may then end mid-epoch) and revised at epoch ends",
    )
    quiet: bool = _f(False, "no progress bar: one log line per epoch")
    tensorboard: bool = _f(True, "also log to TensorBoard when the tensorboard package is installed")
    init: str | None = _f(
        None,
        "start from these weights: a cnnlab checkpoint or a torchvision state_dict "
        "file (classifier layers of another class count are re-initialized)",
    )
    freeze_backbone: bool = _f(False, "with --init: train only the classifier")

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
            between("lr", 0, inf, lo_open=True),
            between("val_split", 0, inf),
            between("train_subset", 0, inf, lo_open=True),
            (len(set(self.classes)) == len(self.classes), "classes must not repeat an index"),
            (all(c >= 0 for c in self.classes), "classes are indices, 0 or more"),
            between("label_smoothing", 0, 1),
            between("random_erasing", 0, 1, hi_open=False),
            between("mixup", 0, inf),
            between("cutmix", 0, inf),
            between("crop_padding", 0, inf),
            between("ema_decay", 0, 1, lo_open=True),
            between("grad_clip", 0, inf, lo_open=True),
            between("drop_rate", 0, 1),
            between("warmup_epochs", 0, inf),
            between("onecycle_peak", 0, 1, lo_open=True),
            between("log_every", 1, inf),
            between("checkpoint_every", 0, inf),
            between("time_budget", 0, inf, lo_open=True),
            between("threads", 1, inf),
            between("workers", 0, inf),
            (not self.freeze_backbone or self.init, "freeze_backbone needs --init weights to keep"),
            (self.schedule != "multistep" or self.milestones, "the multistep schedule needs --milestones"),
            (
                self.schedule != "plateau" or self.val_split > 0,
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
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what checkpoints and config.json hold)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a plain dict such as ``to_dict()`` gave (unknown keys are an error)."""
        _check_keys(values, "the stored config")
        return cls(**{k: _coerce(k, v) for k, v in values.items()})


# Named presets: only the fields they set; applied before the config file and the command-line flags.
RECIPES: dict[str, dict[str, Any]] = {
    # A CPU laptop and a few minutes (give them with --time-budget): one-cycle SGD with Nesterov momentum,
    # label smoothing, mirror images in training and testing, every training image used (no validation
    # carve-out). Batch 128 gives twice the steps of 256 at the same speed on a CPU. No random crops: a
    # run of a few epochs underfits. benchmarks/time_to_accuracy.py measures it (README: 93.35% in 5 min,
    # 94.53% in 15 min on 2 cores); add `--set crop_padding=2 batch_size=256` there to see the crops cost.
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
}


def recipe_settings(name: str) -> dict[str, Any]:
    """The settings of recipe ``name``; an unknown name lists the recipes there are."""
    if name not in RECIPES:
        close = difflib.get_close_matches(str(name), list(RECIPES), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UnknownRecipeError(f"unknown recipe {name!r}; {hint}choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


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


def _split_outside_brackets(text: str) -> list[str]:
    """``text`` cut at the commas that are not inside brackets: list values keep their commas."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def parse_model_args(value: Any) -> dict[str, Any]:
    """Builder options from a dict or from ``"key=value,key=value"`` text (values as Python literals)."""
    if isinstance(value, dict):
        return dict(value)
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in _split_outside_brackets(str(value)))):
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"model_args look like key=value,key=value (e.g. width_mult=0.25), got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = text.strip()
    return out


def _coerce(name: str, value: Any) -> Any:
    """A config-file or flag value converted to the field's type, or a ``ConfigError`` naming the field."""
    if typing.get_origin(_hints()[name]) is dict:
        return parse_model_args(value)
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
    layers: list[dict[str, Any]] = []
    if recipe is not None:
        layers.append(recipe_settings(recipe))
    layers += [file_values, overrides]
    cfg = base or TrainConfig()
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


def add_config_arguments(parser: argparse.ArgumentParser, positional_model: bool = True) -> None:
    """One flag per ``TrainConfig`` field; flags left out stay absent from the parsed namespace."""
    group = parser.add_argument_group("training settings (each also a config-file key)")
    for f in fields(TrainConfig):
        if f.name == "model" and positional_model:
            parser.add_argument("model", nargs="?", default=argparse.SUPPRESS, help=f.metadata["help"])
            continue
        scalar, optional, is_list = _base_type(_hints()[f.name])
        if typing.get_origin(scalar) is dict:
            scalar = str  # parsed by _coerce from key=value text
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": _flag_help(f)}
        if scalar is bool and not optional:
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
    default = f.default if f.default is not MISSING else f.default_factory()
    return f"{f.metadata['help']} (default: {default})"


def config_from_args(args: argparse.Namespace, config_file: str | Path | None = None) -> TrainConfig:
    """The config given by parsed flags (only those typed on the command line) over a file and recipe."""
    names = {f.name for f in fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    return resolve_config(overrides, config_file)
