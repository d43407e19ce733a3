"""Magnitude pruning of Keras 3 (or tf_keras) students with TF-MOT."""

import numpy as np

from keras_kd.compression import schedules
from keras_kd.compression._imports import tf_keras
from keras_kd.compression._imports import tfmot
from keras_kd.compression.fine_tune import FineTuning
from keras_kd.compression.fine_tune import check_fine_tuning
from keras_kd.compression.fine_tune import count_batches
from keras_kd.compression.fine_tune import fine_tune
from keras_kd.compression.structures import structure_arguments
from keras_kd.compression.twin import to_tf_keras


def fresh_tf_keras_copy(model):
    """A tf_keras model TF-MOT may wrap: a new twin, or a weight-copied clone.

    TF-MOT's wrappers wrap the very layers of the model they receive, so
    every pruning or QAT call gets a copy of its own.
    """
    tfk = tf_keras()
    if isinstance(model, tfk.Model):
        clone = tfk.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone
    return to_tf_keras(model)


def _check_sparsity(value, argument):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        0.0 < value < 1.0
    ):
        raise ValueError(
            f"Argument `{argument}` must be in (0, 1). "
            f"Received: {argument}={value!r}"
        )
    return float(value)


def prune(
    model,
    train_data,
    *,
    teacher=None,
    target_sparsity=None,
    schedule="polynomial",
    structure=None,
    keep_dense=(),
    fine_tuning=None,
    verbose=1,
):
    """Prunes `model` to `target_sparsity` while fine-tuning, then strips it.

    Every Conv/Dense-like layer TF-MOT supports is wrapped with
    `prune_low_magnitude`; other layers (normalisation, attention) are kept
    dense. By default the sparsity ramps up along a polynomial over the
    first 70% of the fine-tuning steps (`PolynomialRamp()`), and the
    `UpdatePruningStep` bookkeeping is done here. With a `teacher`, the
    fine-tuning distils (soft targets + hard labels), which recovers most
    of the accuracy pruning costs. `strip_pruning` is the inverse of the
    wrapping: what comes back is a plain tf_keras model with zeros in it.

    Load or train the weights before you prune: pruning removes the smallest
    weights of the model as it is.

    Reference: Zhu & Gupta, "To prune, or not to prune", 2017
    (arXiv:1710.01878).

    Args:
        model: a Keras 3 Functional/Sequential model (converted with
            `to_tf_keras`) or a tf_keras model (copied).
        train_data: `tf.data.Dataset` of `(x, y)` or `(x, y, sample_weight)`
            batches; integer or one-hot labels (see `FineTuning(loss=...)`).
        teacher: optional Keras 3 teacher that outputs logits.
        target_sparsity: final fraction of zero weights, in (0, 1); 0.75
            by default, or the sparsity an `MByNSparsity` structure fixes
            (any other value with it is an error).
        schedule: `PolynomialRamp()` (or `"polynomial"`),
            `ConstantSparsity()` (or `"constant"`), or a TF-MOT
            `PruningSchedule` used as it is (its own final sparsity then
            governs).
        structure: `None` (weight by weight), `BlockSparsity(rows, cols)`
            or `MByNSparsity(m, n)` (the latter fixes the sparsity).
        keep_dense: names of layers to leave dense. A stem convolution on a
            one-channel image has only 9 weights per filter: pruning it
            costs far more accuracy than the few bytes it saves.
        fine_tuning: a `FineTuning`; default `FineTuning(epochs=2,
            learning_rate=3e-3)`. On a 24k-parameter Fashion-MNIST student
            (75%, 400 pruning + 200 QAT steps), 3e-3 here and 5e-4 in
            `quantize` ended 1.8 pt above 1e-3 and 2e-4.
        verbose: show a progress bar.

    Returns:
        The pruned, stripped tf_keras model, ready for `quantize` or
        `export_tflite`.

    Example:

    ```python
    pruned = keras_kd.compression.prune(
        distiller.student, train_ds, teacher=teacher, target_sparsity=0.75
    )
    ```
    """
    structure_arguments(structure)  # a clear error before any work
    target_sparsity = _target_sparsity(target_sparsity, structure)
    keep_dense = _check_keep_dense(model, keep_dense)
    fine_tuning = check_fine_tuning(
        fine_tuning, FineTuning(epochs=2, learning_rate=3e-3))
    mot = tfmot()
    sparsity = mot.sparsity.keras
    steps = count_batches(train_data) * fine_tuning.epochs
    pruning_schedule = schedules.pruning_schedule(schedule, target_sparsity,
                                                  steps)

    from tensorflow_model_optimization.python.core.sparsity.keras import (
        prune_registry,
    )

    def wrap(layer):
        if layer.name in keep_dense:
            return layer
        if prune_registry.PruneRegistry.supports(layer) and layer.weights:
            return sparsity.prune_low_magnitude(
                layer, pruning_schedule=pruning_schedule,
                **structure_arguments(structure, layer))
        return layer

    twin = fresh_tf_keras_copy(model)
    wrapped = tf_keras().models.clone_model(twin, clone_function=wrap)
    fine_tune(
        wrapped,
        train_data,
        teacher=teacher,
        fine_tuning=fine_tuning,
        callbacks=[sparsity.UpdatePruningStep()],
        description="prune",
        verbose=verbose,
    )
    return sparsity.strip_pruning(wrapped)


def _check_keep_dense(model, keep_dense):
    if isinstance(keep_dense, str):
        keep_dense = (keep_dense,)
    keep_dense = tuple(keep_dense or ())
    names = {layer.name for layer in model.layers}
    unknown = [name for name in keep_dense if name not in names]
    if unknown:
        raise ValueError(
            "Argument `keep_dense` names layers the model does not have: "
            f"{unknown}. Received: keep_dense={keep_dense!r}; the model's "
            f"layers are {sorted(names)}"
        )
    return keep_dense


def weight_sparsity(model):
    """Fraction of zeros among the kernels (rank >= 2 weights) of `model`."""
    kernels = [w for w in model.get_weights() if np.ndim(w) >= 2]
    total = sum(w.size for w in kernels)
    zeros = sum(int(np.sum(w == 0)) for w in kernels)
    return zeros / total if total else 0.0


def _target_sparsity(target_sparsity, structure):
    """`target_sparsity` checked against a structure that fixes it
    (`MByNSparsity`); 0.75, or the structure's, when left out."""
    fixed = getattr(structure, "fixed_sparsity", None)
    if target_sparsity is None:
        return 0.75 if fixed is None else fixed
    target_sparsity = _check_sparsity(target_sparsity, "target_sparsity")
    if fixed is not None and abs(target_sparsity - fixed) > 1e-9:
        raise ValueError(
            f"`structure={structure!r}` fixes the sparsity at {fixed:g}, so "
            f"`target_sparsity` must be {fixed:g} or left out. Received: "
            f"target_sparsity={target_sparsity!r}")
    return target_sparsity
