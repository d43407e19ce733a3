"""keras_kd: knowledge distillation for Keras 3 on TensorFlow.

One teacher pass and one student pass per step; soft targets, hard labels
and attention-map matching; then pruning, int8 quantization and TFLite.
"""

import keras

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "keras_kd needs the TensorFlow backend of Keras 3, but Keras is "
        f"using the '{keras.backend.backend()}' backend. Set "
        "KERAS_BACKEND=tensorflow before importing keras (or keras_kd)."
    )

from keras_kd import losses  # noqa: E402
from keras_kd.distiller import Distiller  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Distiller", "losses", "__version__"]
