"""Pruning, quantization and TFLite export of Keras 3 students.

TF-MOT works only on tf_keras models, so students are rebuilt as tf_keras
"twins" (`to_tf_keras`) before pruning (`prune`) and quantization-aware
training (`quantize`); `export_tflite` writes `.tflite` files and
`evaluate_tflite` measures them with LiteRT. `compress` does it all in one
call. TF-MOT is imported only when used, and without leaking
`TF_USE_LEGACY_KERAS` into the process.

Install with `pip install 'keras_kd[compress]'`.
"""

from keras_kd.compression.fine_tune import FineTuning
from keras_kd.compression.pipeline import compress
from keras_kd.compression.pruning import prune
from keras_kd.compression.pruning import weight_sparsity
from keras_kd.compression.quantization import quantize
from keras_kd.compression.schedules import ConstantSparsity
from keras_kd.compression.schedules import PolynomialRamp
from keras_kd.compression.structures import BlockSparsity
from keras_kd.compression.structures import MByNSparsity
from keras_kd.compression.tflite_eval import evaluate_tflite
from keras_kd.compression.tflite_export import export_tflite
from keras_kd.compression.twin import to_tf_keras

__all__ = [
    "BlockSparsity",
    "ConstantSparsity",
    "FineTuning",
    "MByNSparsity",
    "PolynomialRamp",
    "compress",
    "evaluate_tflite",
    "export_tflite",
    "prune",
    "quantize",
    "to_tf_keras",
    "weight_sparsity",
]
