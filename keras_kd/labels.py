"""The hard-label loss of a Distiller and the check of its labels.

The student outputs logits (the Distiller checks it), so the hard-label
loss reads logits: `None` gives `SparseCategoricalCrossentropy(
from_logits=True)` for integer labels, and the names
`"sparse_categorical_crossentropy"`, `"categorical_crossentropy"` and
`"binary_crossentropy"` mean their `from_logits=True` classes. One-hot,
label-smoothed and mixup/cutmix labels take
`keras.losses.CategoricalCrossentropy(from_logits=True,
label_smoothing=...)`; any other Keras loss or function works as given.

Labels are checked against the loss before training, with the form they
have: integer class indices `(batch, ...)`, or per-class rows
`(batch, ..., classes)` that are non-negative and sum to 1 (one-hot or
soft).

Example:

```python
distiller.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(
    from_logits=True, label_smoothing=0.1))
distiller.fit(x, keras.utils.to_categorical(y, 10))
```
"""

import keras
import numpy as np

from keras_kd import model_checks
from keras_kd import precompute as teacher_values
from keras_kd.terms.loss_term import as_loss
from keras_kd.utils import compat

_FROM_LOGITS = {
    "sparse_categorical_crossentropy":
        keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
}
_SPARSE = (keras.losses.SparseCategoricalCrossentropy,)
_DENSE = (keras.losses.CategoricalCrossentropy,
          keras.losses.CategoricalFocalCrossentropy,
          keras.losses.KLDivergence)


def student_loss(loss, student_loss_fn=None):
    """The hard-label loss for `compile(loss=...)` (see the module);
    `student_loss_fn` is its alias."""
    if loss is not None and student_loss_fn is not None:
        raise ValueError(
            "`compile` takes the hard-label loss once: `loss` or its alias "
            f"`student_loss_fn`. Received: loss={loss!r} and "
            f"student_loss_fn={student_loss_fn!r}")
    argument = "loss" if student_loss_fn is None else "student_loss_fn"
    loss = loss if student_loss_fn is None else student_loss_fn
    if loss is None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if isinstance(loss, str) and loss in _FROM_LOGITS:
        return _FROM_LOGITS[loss](from_logits=True)
    loss = as_loss(loss, argument)
    if loss.get_config().get("from_logits") is False:
        raise ValueError(
            f"Argument `{argument}` expects probabilities "
            f"(from_logits=False), but the student outputs logits. Pass "
            f"{type(loss).__name__}(from_logits=True). Received: "
            f"{argument}={loss!r}")
    return loss


def check_labels(labels, classes, loss, argument):
    """Raises before training for labels the loss cannot take.

    Args:
        labels: a NumPy array (values are checked) or a `tf.TensorSpec`-
            like object with `.shape` and `.dtype` (only its form).
        classes: the student's number of classes, or `None`.
        loss: the hard-label loss.
        argument: how errors name the labels (`"y"`).
    """
    shape = tuple(labels.shape)
    if classes is None or not shape:
        return
    dtype = np.dtype(getattr(labels.dtype, "as_numpy_dtype", labels.dtype))
    dense = shape[-1] == classes and len(shape) >= 2 and (
        not np.issubdtype(dtype, np.integer) or _rows_sum_to_one(labels))
    if isinstance(loss, _SPARSE) and dense:
        raise ValueError(
            f"Argument `{argument}` holds one-hot or soft labels of shape "
            f"{shape} (one row of {classes} class weights per example), but "
            "the hard-label loss takes integer class indices. Pass "
            "`loss=keras.losses.CategoricalCrossentropy(from_logits=True)` "
            "(with `label_smoothing=` if you like) to `compile`.")
    if isinstance(loss, _DENSE) and not dense:
        raise ValueError(
            f"Argument `{argument}` holds integer class labels of shape "
            f"{shape}, but the hard-label loss {type(loss).__name__} takes "
            f"rows of {classes} class weights. Leave `loss` out (integer "
            "labels) or pass one-hot labels.")
    if not isinstance(labels, np.ndarray) or labels.size == 0:
        return
    if dense:
        if labels.min() < 0 or not _rows_sum_to_one(labels):
            raise ValueError(
                f"Argument `{argument}` must hold rows of non-negative class "
                "weights that sum to 1 (one-hot or soft labels). Received "
                f"values from {labels.min()} to {labels.max()}, row sums "
                f"from {labels.sum(-1).min():.4g} to "
                f"{labels.sum(-1).max():.4g}.")
    elif np.issubdtype(dtype, np.integer) and (
            labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"Argument `{argument}` must hold integer class labels in "
            f"[0, {classes}) for a student with {classes} classes. "
            f"Received labels from {labels.min()} to {labels.max()}.")


def token_mask(x, logits):
    """The `(batch, steps)` mask of valid positions of sequence logits
    `(batch, steps, classes)`: their Keras mask, else the `padding_mask`
    of keras-hub inputs (`{"token_ids", "padding_mask"}`); `None` for
    per-example logits or inputs without one.

    With it the hard-label loss and the soft targets are means over valid
    tokens: what padded positions hold changes no loss.
    """
    if len(logits.shape) != 3:
        return None
    mask = compat.get_keras_mask(logits)
    if mask is None and isinstance(x, dict) and "padding_mask" in x:
        mask = x["padding_mask"]
    if mask is None or len(mask.shape) != 2:
        return None
    return keras.ops.cast(mask, "bool")


def check_fit_data(distiller, x, y, argument):
    """Checks the labels of `fit`/`evaluate` data (arrays, or a
    `tf.data.Dataset`'s spec) and any precomputed teacher values in them
    against what `distiller` needs."""
    if not isinstance(y, (np.ndarray, list, dict)):
        y = compat.dataset_label_spec(x)
    labels, _ = teacher_values.split_example_index(y)  # CRD's indices
    if isinstance(labels, list):
        labels = np.asarray(labels)
    if teacher_values.is_stored(labels):
        teacher_values.check_stored(
            labels, distiller.plan.teacher_requests, len(distiller.teachers),
            model_checks.logits_rank(distiller.student))
        labels = labels[teacher_values.LABELS]
    if labels is not None and distiller.student_loss_fn is not None:
        classes = (model_checks.num_classes(distiller.student)
                   or model_checks.num_classes(distiller.teacher))
        check_labels(labels, classes, distiller.student_loss_fn, argument)


def _rows_sum_to_one(labels):
    if not isinstance(labels, np.ndarray):
        return True  # a spec: the form alone decides
    return bool(np.allclose(labels.sum(-1), 1.0, atol=1e-3))
