"""Distillation-aware fine-tuning of students being pruned or quantized.

TF-MOT's wrappers live in tf_keras while the teacher is a Keras 3 model;
both run inside one `tf.function` and one `GradientTape`, so fine-tuning
after pruning or during quantization-aware training keeps distilling. The
Keras-native path trains Keras 3 students with the same loop.
"""

import math

import keras
import tensorflow as tf

from keras_kd.compression._imports import tf_keras
from keras_kd.labels import student_loss
from keras_kd.terms.soft_targets import SoftTargetTerm
from keras_kd.terms.term import TapValues
from keras_kd.utils.validation import check_positive
from keras_kd.utils.validation import check_unit_interval


class FineTuning:
    """How `prune` and `quantize` fine-tune: epochs, Adam learning rate, and
    the soft-target/hard-label mix used when a teacher is given (the
    Distiller's `alpha` and `temperature`).

    Args:
        epochs: passes over `train_data`, >= 1.
        learning_rate: Adam learning rate, > 0.
        alpha: weight of the hard-label loss, in [0, 1]; `1 − alpha` goes to
            the soft targets.
        temperature: softmax temperature of the soft targets, > 0.
        loss: the hard-label loss on the student's logits, as
            `Distiller.compile(loss=...)` takes it (a name or a
            `keras.losses.Loss` with `from_logits=True`); by default the
            cross-entropy that fits the labels: sparse for integer labels,
            categorical for one-hot or soft rows.

    Example:

    ```python
    from keras_kd.compression import FineTuning, prune

    pruned = prune(student, train_ds, teacher=teacher,
                   fine_tuning=FineTuning(epochs=3, learning_rate=1e-3))
    ```
    """

    def __init__(self, epochs=1, learning_rate=1e-4, alpha=0.1,
                 temperature=3.0, loss=None):
        if isinstance(epochs, bool) or not isinstance(epochs, int) or (
                epochs < 1):
            raise ValueError("Argument `epochs` must be an integer >= 1. "
                             f"Received: epochs={epochs!r}")
        self.epochs = epochs
        self.learning_rate = check_positive("learning_rate", learning_rate)
        self.alpha = check_unit_interval("alpha", alpha)
        self.temperature = check_positive("temperature", temperature)
        self.loss = None if loss is None else student_loss(loss)

    def get_config(self):
        return {"epochs": self.epochs, "learning_rate": self.learning_rate,
                "alpha": self.alpha, "temperature": self.temperature,
                "loss": None if self.loss is None else
                keras.saving.serialize_keras_object(self.loss)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("loss") is not None:
            config["loss"] = keras.saving.deserialize_keras_object(
                config["loss"])
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"FineTuning({args})"


def check_fine_tuning(fine_tuning, default):
    """`fine_tuning`, or `default` for `None`; a clear error otherwise."""
    if fine_tuning is None:
        return default
    if not isinstance(fine_tuning, FineTuning):
        raise TypeError(
            "Argument `fine_tuning` must be a "
            "keras_kd.compression.FineTuning. Received: "
            f"fine_tuning={fine_tuning!r} of type "
            f"{type(fine_tuning).__name__}")
    return fine_tuning


def count_batches(dataset, argument="train_data"):
    """Number of batches in `dataset`; iterates once when unknown."""
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"Argument `{argument}` must be a `tf.data.Dataset` of (x, y) "
            f"batches. Received: {argument} of type {type(dataset).__name__}"
        )
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            f"Argument `{argument}` is an infinite dataset; take a finite "
            "number of batches per epoch first."
        )
    if cardinality < 0:
        cardinality = sum(1 for _ in dataset)
    if cardinality == 0:
        raise ValueError(f"Argument `{argument}` is empty.")
    return cardinality


def fine_tune(
    model,
    train_data,
    *,
    teacher=None,
    fine_tuning=None,
    callbacks=(),
    description="fine-tune",
    verbose=1,
):
    """Trains a tf_keras or Keras 3 `model` on `(x, y)` or
    `(x, y, sample_weight)` batches (integer or one-hot labels), distilling
    if asked.

    Loss: `alpha · CE(y, s) + (1 − alpha) · T² KL(softmax(t/T) ‖
    softmax(s/T))` with a teacher, computed by the Distiller's own loss
    objects (`keras_kd.terms.SoftTargetTerm` and the sparse cross-entropy
    on logits); plain cross-entropy without one. `callbacks` are callbacks of
    the model's framework, driven as `fit` would drive them (TF-MOT's
    `UpdatePruningStep`, or Keras-native pruning's `PruningStep`).
    `fine_tuning` (a `FineTuning`) sets the epochs, learning rate, `alpha`
    and temperature.

    Returns:
        The list of mean losses per epoch.
    """
    fine_tuning = check_fine_tuning(fine_tuning, FineTuning())
    epochs, alpha = fine_tuning.epochs, fine_tuning.alpha
    steps = count_batches(train_data)
    # A Keras 3 student (Keras-native pruning and QAT) or a tf_keras one
    # (TF-MOT): each gets its own framework's optimizer and callbacks.
    framework = keras if isinstance(model, keras.Model) else tf_keras()
    optimizer = framework.optimizers.Adam(fine_tuning.learning_rate)
    callback_list = framework.callbacks.CallbackList(list(callbacks),
                                                     model=model)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    dense = keras.losses.CategoricalCrossentropy(from_logits=True)
    soft_targets = SoftTargetTerm(temperature=fine_tuning.temperature)

    @tf.function
    def train_step(x, y, sample_weight=None):
        teacher_logits = (
            None if teacher is None else teacher(x, training=False)
        )
        with tf.GradientTape() as tape:
            logits = tf.cast(model(x, training=True), tf.float32)
            # Integer labels, or one-hot / soft rows of class weights.
            hard_labels = fine_tuning.loss or (
                dense if y.shape.rank == logits.shape.rank else sparse)
            loss = hard_labels(y, logits, sample_weight=sample_weight)
            if teacher_logits is not None:
                kd = soft_targets.compute_loss(
                    TapValues({}, {}, [teacher_logits]),
                    TapValues({}, {}, logits), sample_weight=sample_weight)
                loss = alpha * loss + (1.0 - alpha) * kd
            total = loss + tf.add_n(model.losses) if model.losses else loss
        gradients = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    history = []
    callback_list.on_train_begin()
    for epoch in range(epochs):
        if verbose:
            print(f"{description}: epoch {epoch + 1}/{epochs}")
        progbar = keras.utils.Progbar(steps, verbose=verbose)
        total, seen = 0.0, 0
        for step, (x, y, *weights) in enumerate(train_data):
            callback_list.on_train_batch_begin(step)
            loss = float(train_step(x, y, *weights))
            callback_list.on_train_batch_end(step)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"{description}: the loss became {loss} at epoch "
                    f"{epoch + 1}, step {step + 1}; lower "
                    "`FineTuning.learning_rate`."
                )
            total, seen = total + loss, seen + 1
            progbar.update(step + 1, [("loss", loss)])
        callback_list.on_epoch_end(epoch)
        history.append(total / max(seen, 1))
    callback_list.on_train_end()
    return history
