"""keras_kd: knowledge distillation for Keras 3, on every Keras backend.

One teacher pass and one student pass per step; soft targets, hard labels,
attention and hint terms; then pruning, int8 quantization and TFLite
(`keras_kd.compression`, TensorFlow).
"""

from keras_kd import callbacks
from keras_kd import lm
from keras_kd import losses
from keras_kd import terms
from keras_kd.distiller import Distiller
from keras_kd.precompute import precompute_teacher
from keras_kd.teacher_store import open_teacher_store

__version__ = "0.2.0"

__all__ = [
    "Distiller",
    "callbacks",
    "lm",
    "losses",
    "open_teacher_store",
    "precompute_teacher",
    "terms",
    "__version__",
]
