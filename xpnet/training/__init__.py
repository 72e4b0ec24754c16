"""Training: the loop behind ``Sequential.fit``, its callbacks, checkpoints and checks.

* :mod:`~xpnet.training.loop`: :func:`fit`;
* :mod:`~xpnet.training.callbacks`: :class:`Callback`, :class:`EarlyStopping`, the progress bar;
* :mod:`~xpnet.training.blas`: :class:`BlasThreads`, the BLAS thread count (``fit(threads=)``);
* :mod:`~xpnet.training.checkpoint`: :class:`ModelCheckpoint`, starting and resuming runs;
* :mod:`~xpnet.training.inputs`: checking and moving ``X``/``y``;
* :mod:`~xpnet.training.nonfinite`: :class:`NonFiniteError`, clipping, diagnosis;
* :mod:`~xpnet.training.signals`: :class:`TrainingInterrupted` on Ctrl-C/SIGTERM;
* :mod:`~xpnet.training.state` and :mod:`~xpnet.training.history`: the run's state, History.
"""

from .blas import BlasThreads
from .callbacks import Callback, EarlyStopping
from .checkpoint import ModelCheckpoint
from .history import History
from .inputs import check_batch_size, prepare_inputs, prepare_targets
from .loop import fit
from .nonfinite import NonFiniteError
from .signals import TrainingInterrupted
from .state import TrainState

__all__ = [
    "BlasThreads",
    "Callback",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "NonFiniteError",
    "TrainState",
    "TrainingInterrupted",
    "check_batch_size",
    "fit",
    "prepare_inputs",
    "prepare_targets",
]
