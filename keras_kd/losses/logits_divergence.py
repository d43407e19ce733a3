"""The base of divergences between teacher and student logits."""

import math

import keras
from keras import ops

from keras_kd.utils.validation import check_open_unit_interval
from keras_kd.utils.validation import check_positive


class LogitsDivergence(keras.losses.Loss):
    """A divergence of softened teacher and student distributions.

    `loss(teacher_logits, student_logits)` forms `log p = log_softmax(t/T)`
    and `log q = log_softmax(s/T)` (never `log(softmax)`), computes the
    subclass's `divergence(log_p, log_q)` over the last axis in float32 and
    multiplies it by `T²`, which keeps the gradient scale of soft targets
    about independent of `T` (Hinton et al., 2015).

    The temperature is a float, or a `keras.Variable` that a term owns:
    `keras_kd.terms.SoftTargetTerm` binds its own `temperature` variable
    here, so one variable governs both and a scheduler that assigns it is
    seen inside compiled steps.

    Args:
        temperature: `T > 0` (or a scalar `keras.Variable`).
        reduction: Keras loss reduction (the batch mean by default).
        name: name of the loss.
        dtype: dtype of the loss computation.
    """

    def __init__(self, temperature=1.0, reduction="sum_over_batch_size",
                 name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not isinstance(temperature, keras.Variable):
            temperature = check_positive("temperature", temperature)
        self.temperature = temperature

    def divergence(self, log_p, log_q):
        """Per-row divergence of teacher `log_p` and student `log_q`."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `divergence`.")

    def call(self, y_true, y_pred):
        temperature = ops.cast(self.temperature, "float32")
        log_p = ops.log_softmax(ops.cast(y_true, "float32") / temperature,
                                axis=-1)
        log_q = ops.log_softmax(ops.cast(y_pred, "float32") / temperature,
                                axis=-1)
        return self.divergence(log_p, log_q) * ops.square(temperature)

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": float(ops.convert_to_numpy(
            self.temperature))})
        return config


class MixtureDivergence(LogitsDivergence):
    """A `LogitsDivergence` with one mixture coefficient in (0, 1), kept
    as the attribute and config key `coefficient_name` (`"beta"`,
    `"alpha"`)."""

    coefficient_name = "coefficient"

    def __init__(self, coefficient, temperature=1.0,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(temperature=temperature, reduction=reduction,
                         name=name, dtype=dtype)
        setattr(self, self.coefficient_name, check_open_unit_interval(
            self.coefficient_name, coefficient))

    def get_config(self):
        config = super().get_config()
        config[self.coefficient_name] = getattr(self, self.coefficient_name)
        return config


#: Log-probabilities are clamped here: `exp` of it is exactly 0 in float32.
_LOG_FLOOR = -1e30


def kl(log_a, log_b):
    """`KL(a ‖ b) = Σ a (log a − log b)` over the last axis, from
    log-probabilities. Both are clamped at −1e30, so a class with `a = 0`
    (`log a = −inf`) adds exactly 0 in value and gradient, never NaN (and
    one with `b = 0 < a`, an infinite divergence, a huge finite one)."""
    log_a = ops.maximum(log_a, _LOG_FLOOR)
    log_b = ops.maximum(log_b, _LOG_FLOOR)
    return ops.sum(ops.exp(log_a) * (log_a - log_b), axis=-1)


def log_mixture(log_a, log_b, weight):
    """`log(weight · a + (1 − weight) · b)`, from log-probabilities, for
    `0 < weight < 1`."""
    return ops.logaddexp(log_a + math.log(weight),
                         log_b + math.log(1.0 - weight))
