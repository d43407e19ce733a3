"""Quantization-aware training of Keras 3 (or tf_keras) students."""

from keras_kd.compression._imports import tf_keras
from keras_kd.compression._imports import tfmot
from keras_kd.compression.fine_tune import fine_tune
from keras_kd.compression.pruning import fresh_tf_keras_copy
from keras_kd.compression.pruning import weight_sparsity
from keras_kd.utils.validation import check_one_of

# Below this fraction of zero weights a model is treated as dense.
_SPARSE_ENOUGH = 0.3


def quantize(
    model,
    train_data,
    *,
    teacher=None,
    method="qat",
    preserve_sparsity=True,
    epochs=1,
    learning_rate=5e-4,
    alpha=0.1,
    temperature=3.0,
    verbose=1,
):
    """Quantization-aware training (QAT) for int8, distilling if asked.

    Layers TF-MOT's default 8-bit registry supports are annotated and
    wrapped with fake-quantization; the model is then fine-tuned so that it
    learns to live with int8 rounding. When the model is sparse (at least
    30% zero kernels, e.g. from `prune`) and `preserve_sparsity=True`, the
    pruning-preserving scheme keeps the zeros at zero (Default8Bit
    PrunePreserveQuantizeScheme). Export the result with
    `export_tflite(..., quantization="int8")`.

    Reference: Jacob et al., "Quantization and Training of Neural Networks
    for Efficient Integer-Arithmetic-Only Inference", CVPR 2018.

    Args:
        model: a Keras 3 Functional/Sequential model or a tf_keras model.
        train_data: `tf.data.Dataset` of `(x, y)` batches.
        teacher: optional Keras 3 teacher (logits) for distillation-aware QAT.
        method: `"qat"` (quantization-aware training).
        preserve_sparsity: keep pruned zeros at zero during QAT.
        epochs: fine-tuning epochs.
        learning_rate: Adam learning rate of the fine-tuning.
        alpha, temperature: distillation weights, as in `Distiller.compile`.
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
    check_one_of("method", method, ("qat",))
    mot = tfmot()
    qk = mot.quantization.keras
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
    sparse = preserve_sparsity and weight_sparsity(twin) >= _SPARSE_ENOUGH
    if sparse:
        combine = mot.experimental.combine
        scheme = combine.Default8BitPrunePreserveQuantizeScheme()
    else:
        scheme = qk.default_8bit.Default8BitQuantizeScheme()
    with qk.quantize_scope():
        quantized = qk.quantize_apply(annotated, scheme)
    fine_tune(
        quantized,
        train_data,
        teacher=teacher,
        epochs=epochs,
        learning_rate=learning_rate,
        alpha=alpha,
        temperature=temperature,
        description="quantize (QAT" + (", sparsity-preserving)" if sparse
                                       else ")"),
        verbose=verbose,
    )
    return quantized
