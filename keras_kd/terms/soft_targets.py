"""Hinton's soft targets as a distillation term."""

import math

import keras
from keras import ops

from keras_kd.losses.logits_divergence import LogitsDivergence
from keras_kd.losses.soft_target_kd import SoftTargetKD
from keras_kd.terms.loss_term import LossTerm
from keras_kd.terms.loss_term import as_loss
from keras_kd.terms.pair_term import masked
from keras_kd.top_k_targets import expand_top_k
from keras_kd.top_k_targets import is_top_k
from keras_kd.utils import compat
from keras_kd.utils.validation import check_non_negative
from keras_kd.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_kd")
class SoftTargetTerm(LossTerm):
    """Soft targets: `loss_fn(teacher logits, student logits)` at `T`.

    The temperature lives in one place, this term's non-trainable variable
    `temperature`, which a `TemperatureScheduler` assigns between epochs.
    A `keras_kd.losses.LogitsDivergence` loss (the default `SoftTargetKD`,
    a subclass, or one with another reduction: it is called as given)
    receives logits and reads that same variable, so its value is
    `T² · KL(softmax(t/T) ‖ softmax(s/T))`; a loss given here or to
    `Distiller.compile` with its own temperature sets the variable. Any
    other loss (a `keras.losses.Loss`, a function or a name such as
    `"kl_divergence"`) receives the softened *probabilities* and its value
    is multiplied by `T²`, so `keras.losses.KLDivergence()` gives the
    default's value.

    With several teachers the soft targets are the weighted average
    `Σ_i w_i softmax(t_i/T)`, passed to the loss as the logits
    `T · log Σ_i w_i softmax(t_i/T)`. Top-k targets stored by `precompute`
    are expanded at the current temperature.

    The term is scaled by `1 − alpha` beside the Distiller's hard-label
    loss (`mixes_with_labels`).

    Reference: Hinton, Vinyals & Dean, "Distilling the Knowledge in a
    Neural Network", 2015.

    Args:
        temperature: `T > 0`; defaults to the temperature of a
            `LogitsDivergence` given as `loss_fn`, else 3.
        loss_fn: see above; defaults to `SoftTargetKD`.
        teacher_weights: optional weights of several teachers (normalised
            to sum 1; equal by default).
        weight: the term's weight (default 1).
        name: defaults to `"distillation"`.

    Example:

    ```python
    term = keras_kd.terms.SoftTargetTerm(temperature=4.0)
    distiller = keras_kd.Distiller(teacher, student, terms=[term])
    distiller.compile(optimizer="adam")  # term.temperature stays 4.0
    ```
    """

    mixes_with_labels = True

    def __init__(self, temperature=None, loss_fn=None, teacher_weights=None,
                 weight=None, name="distillation", **kwargs):
        if temperature is not None:
            temperature = check_positive("temperature", temperature)
        self._given_temperature = temperature
        super().__init__(loss_fn=loss_fn, weight=weight, name=name, **kwargs)
        self.teacher_weights = normalized_weights(teacher_weights)

    def default_loss(self):
        return SoftTargetKD(self._given_temperature or 3.0)

    def set_loss(self, loss, argument="loss_fn"):
        loss = as_loss(loss, argument)
        own = None
        if isinstance(loss, LogitsDivergence):
            own = float(ops.convert_to_numpy(loss.temperature))
        if "temperature" not in vars(self):  # constructing
            given = self._given_temperature
            if given is not None and own is not None and own != given:
                raise ValueError(
                    f"The loss given as `{argument}` has temperature={own}, "
                    f"but the term received temperature={given}. Give one "
                    "of them, or make them agree.")
            value = given if given is not None else own or 3.0
            self.temperature = self.add_weight(
                name="temperature", shape=(), trainable=False,
                dtype="float32",
                initializer=keras.initializers.Constant(value))
        elif own is not None and loss.temperature is not self.temperature:
            self.temperature.assign(own)
        if isinstance(loss, LogitsDivergence):
            loss.temperature = self.temperature  # one variable governs
        self.loss_fn = loss

    def compute_loss(self, teacher, student, sample_weight=None):
        # Sequence logits keep their mask of valid tokens (see
        # `keras_kd.labels.token_mask`): the loss is a mean over them.
        mask = compat.get_keras_mask(student.logits)
        student_logits = masked(ops.cast(student.logits, "float32"), mask)
        classes = student_logits.shape[-1]
        temperature = ops.cast(self.temperature, "float32")
        teacher_logits = self.soft_target_logits(
            [expand_top_k(t, classes, temperature) if is_top_k(t) else t
             for t in teacher.logits], temperature)
        if teacher_logits.shape[-1] != classes:
            raise ValueError(
                "Teacher and student must output logits for the same number "
                f"of classes. Received: teacher logits of shape "
                f"{tuple(teacher_logits.shape)} and student logits of shape "
                f"{tuple(student_logits.shape)}")
        if isinstance(self.loss_fn, LogitsDivergence):
            return self.loss_fn(teacher_logits, student_logits,
                                sample_weight=sample_weight)
        return self.loss_fn(
            ops.softmax(teacher_logits / temperature, axis=-1),
            masked(ops.softmax(student_logits / temperature, axis=-1), mask),
            sample_weight=sample_weight) * ops.square(temperature)

    def soft_target_logits(self, teacher_logits, temperature):
        """Logits whose `softmax(·/T)` are the (averaged) soft targets."""
        if len(teacher_logits) == 1:
            return ops.cast(teacher_logits[0], "float32")
        weights = self.teacher_weights or [1.0 / len(teacher_logits)] * len(
            teacher_logits)
        if len(weights) != len(teacher_logits):
            raise ValueError(
                f"The soft-target term has {len(weights)} teacher weights "
                f"but received logits of {len(teacher_logits)} teachers.")
        log_probs = [
            ops.log_softmax(ops.cast(t, "float32") / temperature, axis=-1)
            + (math.log(w) if w > 0 else -math.inf)
            for t, w in zip(teacher_logits, weights)
        ]
        return temperature * ops.logsumexp(ops.stack(log_probs), axis=0)

    def get_config(self):
        config = super().get_config()
        config.update({
            "temperature": float(ops.convert_to_numpy(self.temperature)),
            "teacher_weights": self.teacher_weights,
        })
        return config


def normalized_weights(weights, count=None):
    """Teacher weights normalised to sum 1 (`None` stays `None`)."""
    if weights is None:
        return None
    if not isinstance(weights, (list, tuple)) or (
            count is not None and len(weights) != count):
        raise ValueError(
            "Argument `teacher_weights` must list one weight per teacher"
            + (f" ({count})" if count is not None else "")
            + f". Received: teacher_weights={weights!r}")
    weights = [check_non_negative("teacher_weights entry", w)
               for w in weights]
    total = sum(weights)
    if total <= 0:
        raise ValueError(
            "Argument `teacher_weights` must have a positive sum. Received: "
            f"teacher_weights={weights!r}")
    return [w / total for w in weights]
