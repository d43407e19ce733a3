"""Quantization-aware training of Keras 3 (or tf_keras) students."""

from keras_kd.compression._imports import tf_keras
from keras_kd.compression._imports import tfmot
from keras_kd.compression.fine_tune import FineTuning
from keras_kd.compression.fine_tune import check_fine_tuning
from keras_kd.compression.fine_tune import fine_tune
from keras_kd.compression.pruning import fresh_tf_keras_copy
from keras_kd.compression.pruning import weight_sparsity
from keras_kd.utils.validation import check_one_of

# Below this fraction of zero weights a model is treated as dense.
_SPARSE_ENOUGH = 0.3
_SCHEMES = ("auto", "default_8bit", "prune_preserve")


def quantize(
    model,
    train_data,
    *,
    teacher=None,
    scheme="auto",
    fine_tuning=None,
    verbose=1,
):
    """Quantization-aware training (QAT) for int8, distilling if asked.

    Layers TF-MOT's default 8-bit registry supports are annotated and
    wrapped with fake-quantization; the model is then fine-tuned so that it
    learns to live with int8 rounding. Export the result with
    `export_tflite(..., quantization="int8")`. (Post-training quantization
    needs no training: `export_tflite` does it from representative data.)

    Reference: Jacob et al., "Quantization and Training of Neural Networks
    for Efficient Integer-Arithmetic-Only Inference", CVPR 2018.

    Args:
        model: a Keras 3 Functional/Sequential model or a tf_keras model.
        train_data: `tf.data.Dataset` of `(x, y)` batches.
        teacher: optional Keras 3 teacher (logits) for distillation-aware QAT.
        scheme: `"auto"` (sparsity-preserving when at least 30% of the
            kernels are zeros, e.g. after `prune`, else the default 8-bit
            scheme), `"default_8bit"`, `"prune_preserve"` (TF-MOT's
            `Default8BitPrunePreserveQuantizeScheme`: pruned zeros stay
            zero), or any TF-MOT `QuantizeScheme` object.
        fine_tuning: a `FineTuning`; default `FineTuning(epochs=1,
            learning_rate=5e-4)`.
        verbose: show a progress bar.

    Returns:
        The quantization-aware tf_keras model.

    Example:

    ```python
    qat = keras_kd.compression.quantize(pruned, train_ds, teacher=teacher)
    keras_kd.compression.export_tflite(
        qat, "student_int8.tflite", quantization="int8",
        representative_data=train_ds,
    )
    ```
    """
    mot = tfmot()
    qk = mot.quantization.keras
    if isinstance(scheme, str):
        check_one_of("scheme", scheme, _SCHEMES)
    elif not isinstance(scheme, qk.QuantizeScheme):
        raise TypeError(
            f"Argument `scheme` must be one of {_SCHEMES} or a TF-MOT "
            f"QuantizeScheme. Received: scheme={scheme!r} of type "
            f"{type(scheme).__name__}")
    fine_tuning = check_fine_tuning(
        fine_tuning, FineTuning(epochs=1, learning_rate=5e-4))
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (  # noqa: E501
        default_8bit_quantize_registry,
    )

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    twin = fresh_tf_keras_copy(model)

    def annotate(layer):
        if registry.supports(layer):
            return qk.quantize_annotate_layer(layer)
        return layer

    annotated = qk.quantize_annotate_model(
        tf_keras().models.clone_model(twin, clone_function=annotate)
    )
    if scheme == "auto":
        sparse = weight_sparsity(twin) >= _SPARSE_ENOUGH
        scheme = "prune_preserve" if sparse else "default_8bit"
    description = "quantize (QAT)"
    if scheme == "prune_preserve":
        scheme = mot.experimental.combine \
            .Default8BitPrunePreserveQuantizeScheme()
        description = "quantize (QAT, sparsity-preserving)"
    elif scheme == "default_8bit":
        scheme = qk.default_8bit.Default8BitQuantizeScheme()
    with qk.quantize_scope():
        quantized = qk.quantize_apply(annotated, scheme)
    fine_tune(
        quantized,
        train_data,
        teacher=teacher,
        fine_tuning=fine_tuning,
        description=description,
        verbose=verbose,
    )
    return quantized
