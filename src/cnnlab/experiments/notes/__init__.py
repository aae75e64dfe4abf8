"""The catalogue of the notes' claims: importing this package registers every experiment, in --list order."""

import cnnlab.experiments.notes.degradation  # noqa: F401  (registers the experiment)
import cnnlab.experiments.notes.skip_connections  # noqa: F401  (registers the experiment)
