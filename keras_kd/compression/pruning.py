"""Magnitude pruning of Keras 3 (or tf_keras) students: with TF-MOT on
a tf_keras twin where one exists, Keras-native otherwise."""

import keras
import numpy as np

from keras_kd.compression import schedules
from keras_kd.compression._imports import tf_keras
from keras_kd.compression._imports import tfmot
from keras_kd.compression.fine_tune import FineTuning
from keras_kd.compression.fine_tune import check_fine_tuning
from keras_kd.compression.fine_tune import count_batches
from keras_kd.compression.fine_tune import fine_tune
from keras_kd.compression.native import masks as native_masks
from keras_kd.compression.native.weights import copy_model
from keras_kd.compression.native.weights import layer_names
from keras_kd.compression.native.weights import weight_sites
from keras_kd.compression.structures import structure_arguments
from keras_kd.compression.twin import to_tf_keras
from keras_kd.utils import compat
from keras_kd.utils.validation import check_one_of
from keras_kd.utils.validation import check_open_unit_interval

PATHS = ("auto", "tfmot", "keras")


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


def twin_failure(model):
    """`None` when `model` has a tf_keras twin TF-MOT can wrap (or is a
    tf_keras model), else why not, as `"TypeError: ..."`."""
    from keras_kd.compression import twin

    if isinstance(model, tf_keras().Model):
        return None
    try:
        twin.to_tf_keras(model)
    except Exception as e:  # any failure of the twin means no TF-MOT path
        return f"{type(e).__name__}: {e}"
    return None


def choose_path(model, path):
    """`"tfmot"` or `"keras"` for `path="auto"`: TF-MOT on the tf_keras
    twin where the twin exists, Keras-native otherwise. A forced path is
    checked against the model."""
    check_one_of("path", path, PATHS)
    is_tf_keras = isinstance(model, tf_keras().Model)
    if path == "keras" and is_tf_keras:
        raise ValueError(
            "Keras-native pruning and QAT take Keras 3 models; this is a "
            f"tf_keras model ('{model.name}'). Received: path='keras'")
    if path != "auto":
        return path
    return "tfmot" if twin_failure(model) is None else "keras"


def _mark(model, path):
    """Records on the returned model which path made it."""
    object.__setattr__(model, "compression_path", path)
    return model


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
    path="auto",
    verbose=1,
):
    """Prunes `model` to `target_sparsity` while fine-tuning, then strips it.

    Two paths, chosen by `path="auto"` (the choice is in the returned
    model's `compression_path`):

    - `"tfmot"`, where the model has a tf_keras twin (`to_tf_keras`): every
      Conv/Dense-like layer TF-MOT supports is wrapped with
      `prune_low_magnitude`; other layers are kept dense; a tf_keras model
      comes back.
    - `"keras"`, for any other Keras 3 model (keras-hub transformers, custom
      layers): the kernels of every `Dense`, `EinsumDense`, `Conv*` and
      `Embedding` layer at any depth (so the projections inside
      `MultiHeadAttention`) are masked by magnitude, layer by layer, and a
      Keras 3 model of the same class comes back.
 By default the sparsity ramps up along a polynomial over the
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
        keep_dense: names of layers to leave dense (on the Keras path, at
            any depth). A stem convolution on a one-channel image has only
            9 weights per filter: pruning it costs far more accuracy than
            the few bytes it saves.
        fine_tuning: a `FineTuning`; default `FineTuning(epochs=2,
            learning_rate=3e-3)`. On a 24k-parameter Fashion-MNIST student
            (75%, 400 pruning + 200 QAT steps), 3e-3 here and 5e-4 in
            `quantize` ended 1.8 pt above 1e-3 and 2e-4.
        path: `"auto"`, `"tfmot"` or `"keras"` (see above).
        verbose: show a progress bar.

    Returns:
        The pruned, stripped model (tf_keras on the TF-MOT path, Keras 3 on
        the Keras path), ready for `quantize` or `export_tflite`; its
        `compression_path` attribute says which path made it.

    Example:

    ```python
    pruned = keras_kd.compression.prune(
        distiller.student, train_ds, teacher=teacher, target_sparsity=0.75
    )
    ```
    """
    structure_arguments(structure)  # a clear error before any work
    target_sparsity = _target_sparsity(target_sparsity, structure)
    path = choose_path(model, path)
    keep_dense = _check_keep_dense(model, keep_dense, deep=path == "keras")
    fine_tuning = check_fine_tuning(
        fine_tuning, FineTuning(epochs=2, learning_rate=3e-3))
    steps = count_batches(train_data) * fine_tuning.epochs
    if path == "keras":
        pruned = copy_model(model)
        masks = native_masks.MagnitudeMasks(
            weight_sites(pruned, keep_dense), structure)
        step = native_masks.PruningStep(masks, schedules.native_schedule(
            schedule, target_sparsity, steps))
        fine_tune(pruned, train_data, teacher=teacher,
                  fine_tuning=fine_tuning, callbacks=[step],
                  description="prune (Keras-native)", verbose=verbose)
        return _mark(pruned, "keras")
    mot = tfmot()
    sparsity = mot.sparsity.keras
    pruning_schedule = schedules.pruning_schedule(schedule, target_sparsity,
                                                  steps)

    registry = compat.tfmot_prune_registry()

    def wrap(layer):
        if layer.name in keep_dense:
            return layer
        if registry.supports(layer) and layer.weights:
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
    return _mark(sparsity.strip_pruning(wrapped), "tfmot")


def _check_keep_dense(model, keep_dense, deep=False):
    if isinstance(keep_dense, str):
        keep_dense = (keep_dense,)
    keep_dense = tuple(keep_dense or ())
    names = (layer_names(model) if deep and isinstance(model, keras.Model)
             else {layer.name for layer in model.layers})
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
    target_sparsity = check_open_unit_interval("target_sparsity",
                                               target_sparsity)
    if fixed is not None and abs(target_sparsity - fixed) > 1e-9:
        raise ValueError(
            f"`structure={structure!r}` fixes the sparsity at {fixed:g}, so "
            f"`target_sparsity` must be {fixed:g} or left out. Received: "
            f"target_sparsity={target_sparsity!r}")
    return target_sparsity
