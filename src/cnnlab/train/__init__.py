"""Training: one config dataclass, schedules, the loop, checkpoints, evaluation and distributed set-up."""

from cnnlab.train.checkpoint import (
    BestCheckpoint,
    RunCheckpoint,
    TrainingCheckpoint,
    load_checkpoint,
    load_run_checkpoint,
)
from cnnlab.train.config import (
    RECIPES,
    RESUME_OVERRIDABLE,
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
from cnnlab.train.inputs import DataMeta
from cnnlab.train.loop import TrainingDivergedError, resume_training, train
from cnnlab.train.schedules import Plateau, lr_at
from cnnlab.train.segment import evaluate_segmentation, predict_segmentation
from cnnlab.train.state import EpochTotals, TrainState

__all__ = [
    "RECIPES",
    "RESUME_OVERRIDABLE",
    "BestCheckpoint",
    "DataMeta",
    "EpochTotals",
    "Plateau",
    "RunCheckpoint",
    "TrainConfig",
    "TrainState",
    "TrainingCheckpoint",
    "TrainingDivergedError",
    "add_config_arguments",
    "config_from_args",
    "ensemble_checkpoints",
    "evaluate",
    "evaluate_checkpoint",
    "evaluate_segmentation",
    "load_checkpoint",
    "load_config_file",
    "load_run_checkpoint",
    "load_trained_model",
    "lr_at",
    "predict_files",
    "predict_logits",
    "predict_segmentation",
    "resolve_config",
    "resume_training",
    "train",
]
