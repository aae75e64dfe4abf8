"""The catalogue of the notes' claims: importing this package registers every experiment, in --list order."""

from cnnlab.experiments.notes import (  # noqa: F401, I001  (imported to register them, in catalogue order)
    batchnorm_learning_rate,
    batchnorm_batch_size,
    small_kernels,
    bottlenecks,
    ensembles,
    fine_tuning,
    augmentation,
    degradation,
    skip_connections,
)
