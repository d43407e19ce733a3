"""Quantization-aware training of Keras 3 (or tf_keras) students: TF-MOT
on a tf_keras twin where it can, Keras-native fake quantization otherwise."""

from keras_kd.compression._imports import tf_keras
from keras_kd.compression._imports import tfmot
from keras_kd.compression.fine_tune import FineTuning
from keras_kd.compression.fine_tune import check_fine_tuning
from keras_kd.compression.fine_tune import fine_tune
from keras_kd.compression.native.fake_quant import fake_quantize
from keras_kd.compression.native.masks import MagnitudeMasks
from keras_kd.compression.native.masks import PruningStep
from keras_kd.compression.native.weights import copy_model
from keras_kd.compression.pruning import PATHS
from keras_kd.compression.pruning import _check_keep_dense
from keras_kd.compression.pruning import _mark
from keras_kd.compression.pruning import choose_path
from keras_kd.compression.pruning import fresh_tf_keras_copy
from keras_kd.compression.pruning import weight_sparsity
from keras_kd.utils import compat
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
    path="auto",
    keep_dense=(),
    verbose=1,
):
    """Quantization-aware training (QAT) for int8, distilling if asked.

    The model is fine-tuned with its int8 rounding simulated, so that it
    learns to live with it; export the result with `export_tflite(...,
    quantization="int8", representative_data=...)`. (Post-training
    quantization needs no training: `export_tflite` does it from
    representative data.) Two paths, chosen by `path="auto"` (the choice is
    in the returned model's `compression_path`):

    - `"tfmot"`, for tf_keras models and Keras 3 models whose tf_keras twin
      TF-MOT's QAT accepts: the layers of TF-MOT's default 8-bit registry
      are annotated and wrapped.
    - `"keras"`, for every other Keras 3 model (keras-hub transformers,
      `MultiHeadAttention`, MobileNetV3's operator layers):
      `keras_kd.compression.native.fake_quant.fake_quantize` rounds the
      kernels of `Dense`, `EinsumDense`, `Conv*` and `Embedding` layers at
      any depth and their outputs; ranges start from a calibration pass
      over 10 batches of `train_data`. TensorFlow backend.

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
    keep_dense = tuple((keep_dense,) if isinstance(keep_dense, str)
                       else keep_dense or ())
    check_one_of("path", path, PATHS)
    if path == "auto" and not isinstance(model, tf_keras().Model):
        path = "tfmot" if tfmot_qat_failure(model) is None else "keras"
    path = choose_path(model, path)
    if path == "keras":
        if not isinstance(scheme, str):
            raise ValueError(
                "A TF-MOT QuantizeScheme needs path='tfmot'. Received: "
                f"scheme={scheme!r} with path='keras'")
        return _mark(_quantize_keras(model, train_data, teacher, scheme,
                                     fine_tuning, keep_dense, verbose),
                     "keras")
    if keep_dense:
        raise ValueError(
            "`keep_dense` is for the Keras-native path; TF-MOT quantizes "
            f"the layers its registry supports. Received: keep_dense="
            f"{keep_dense!r} with path='tfmot'")
    return _mark(_quantize_tfmot(model, train_data, teacher, scheme,
                                 fine_tuning, verbose), "tfmot")


def tfmot_qat_failure(model):
    """`None` when TF-MOT's QAT can wrap `model`'s tf_keras twin, else why
    not (`"TypeError: ..."`): no twin, or a layer its registry lacks."""
    from keras_kd.compression.pruning import twin_failure

    reason = twin_failure(model)
    if reason is not None:
        return reason
    try:
        _annotated_apply(fresh_tf_keras_copy(model), "default_8bit")
    except Exception as e:  # TF-MOT refuses a layer: the Keras path
        return f"{type(e).__name__}: {e}"
    return None


def _quantize_keras(model, train_data, teacher, scheme, fine_tuning,
                    keep_dense, verbose):
    keep_dense = _check_keep_dense(model, keep_dense, deep=True)
    student = copy_model(model)
    if scheme == "auto":
        sparse = weight_sparsity(student) >= _SPARSE_ENOUGH
        scheme = "prune_preserve" if sparse else "default_8bit"
    qat = fake_quantize(student, keep_dense=keep_dense,
                        calibration_data=train_data)
    layer = qat.get_layer("fake_quantization")
    callbacks = []
    description = "quantize (Keras-native QAT)"
    if scheme == "prune_preserve":
        callbacks.append(PruningStep(MagnitudeMasks.of_zeros(layer.sites)))
        description = "quantize (Keras-native QAT, sparsity-preserving)"
    fine_tune(qat, train_data, teacher=teacher, fine_tuning=fine_tuning,
              callbacks=callbacks, description=description, verbose=verbose)
    layer.refresh_weight_ranges()
    return qat


def _annotated_apply(twin, scheme):
    qk = tfmot().quantization.keras
    registry = compat.tfmot_default_8bit_registry()

    def annotate(layer):
        if registry.supports(layer):
            return qk.quantize_annotate_layer(layer)
        return layer

    annotated = qk.quantize_annotate_model(
        tf_keras().models.clone_model(twin, clone_function=annotate))
    if scheme == "prune_preserve":
        scheme = tfmot().experimental.combine \
            .Default8BitPrunePreserveQuantizeScheme()
    elif scheme == "default_8bit":
        scheme = qk.default_8bit.Default8BitQuantizeScheme()
    with qk.quantize_scope():
        return qk.quantize_apply(annotated, scheme)


def _quantize_tfmot(model, train_data, teacher, scheme, fine_tuning,
                    verbose):
    twin = fresh_tf_keras_copy(model)
    if scheme == "auto":
        sparse = weight_sparsity(twin) >= _SPARSE_ENOUGH
        scheme = "prune_preserve" if sparse else "default_8bit"
    description = "quantize (QAT)"
    if scheme == "prune_preserve":
        description = "quantize (QAT, sparsity-preserving)"
    quantized = _annotated_apply(twin, scheme)
    fine_tune(
        quantized,
        train_data,
        teacher=teacher,
        fine_tuning=fine_tuning,
        description=description,
        verbose=verbose,
    )
    return quantized
