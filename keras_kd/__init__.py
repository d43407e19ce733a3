"""keras_kd: knowledge distillation for Keras 3 on TensorFlow.

One teacher pass and one student pass per step; soft targets, hard labels
and attention-map matching; then pruning, int8 quantization and TFLite.
"""

import os


def _backend_error(backend):
    return ImportError(
        "keras_kd needs the TensorFlow backend of Keras 3, but Keras is set "
        f"to the '{backend}' backend. Set KERAS_BACKEND=tensorflow before "
        "importing keras (or keras_kd)."
    )


# Checked before `import keras`: importing Keras with another backend can
# itself fail (e.g. a missing jax) with a less helpful message.
if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
    raise _backend_error(os.environ["KERAS_BACKEND"])

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":  # e.g. set in ~/.keras/keras.json
    raise _backend_error(keras.backend.backend())

from keras_kd import callbacks  # noqa: E402
from keras_kd import losses  # noqa: E402
from keras_kd import terms  # noqa: E402
from keras_kd.distiller import Distiller  # noqa: E402
from keras_kd.precompute import precompute_teacher  # noqa: E402
from keras_kd.teacher_store import open_teacher_store  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Distiller",
    "callbacks",
    "losses",
    "open_teacher_store",
    "precompute_teacher",
    "terms",
    "__version__",
]
