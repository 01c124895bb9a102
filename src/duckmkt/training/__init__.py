"""Training of the customer model; the only part of duckmkt that imports TensorFlow.

``train(con, ...)`` fits the four-head network on out-of-time rows, compares
it with RFM baselines, exports it to ONNX and saves a model folder.
"""

from __future__ import annotations

import logging
import os

# TensorFlow's C++ runtime logs INFO lines (grappler sessions, CPU features)
# to stderr while exporting; they drown the progress output. A value set by
# the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up lines sent to /dev/null.

    TensorFlow 2.21 prints its oneDNN notice through absl before
    TF_CPP_MIN_LOG_LEVEL is read, so only redirecting file descriptor 2
    hides it. Import errors still surface as Python exceptions, and with
    duckmkt's debug logging on nothing is hidden.
    """
    if logging.getLogger("duckmkt").isEnabledFor(logging.DEBUG):
        import tensorflow  # noqa: F401

        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()

from duckmkt.training.dataset import TrainingWindow, resolve_window
from duckmkt.training.trainer import CustomerModelTrainer, EpochProgress, TrainingResult, train

__all__ = ["CustomerModelTrainer", "EpochProgress", "TrainingResult", "TrainingWindow", "resolve_window", "train"]
