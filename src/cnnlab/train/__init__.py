"""Training: one config dataclass, schedules, the loop, checkpoints, evaluation and distributed set-up."""

from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.config import (
    RECIPES,
    TrainConfig,
    add_config_arguments,
    config_from_args,
    load_config_file,
    resolve_config,
)
from cnnlab.train.evaluate import (
    ensemble_checkpoints,
    evaluate,
    evaluate_checkpoint,
    load_trained_model,
    predict_files,
    predict_logits,
)
from cnnlab.train.loop import RESUME_OVERRIDABLE, TrainingDivergedError, TrainState, resume_training, train
from cnnlab.train.schedules import Plateau, lr_at

__all__ = [
    "RECIPES",
    "RESUME_OVERRIDABLE",
    "Plateau",
    "TrainConfig",
    "TrainState",
    "TrainingDivergedError",
    "add_config_arguments",
    "config_from_args",
    "ensemble_checkpoints",
    "evaluate",
    "evaluate_checkpoint",
    "load_checkpoint",
    "load_config_file",
    "load_trained_model",
    "lr_at",
    "predict_files",
    "predict_logits",
    "resolve_config",
    "resume_training",
    "train",
]
