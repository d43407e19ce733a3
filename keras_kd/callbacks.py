"""Epoch schedules for the Distiller's temperature and loss weights.

The Distiller keeps `temperature`, `alpha`, `attention_weight`,
`hint_weight` and the weight of each term in non-trainable variables, so
assigning them between epochs takes effect in compiled (`jit_compile=True`)
steps without retracing.
"""

import keras

from keras_kd.utils.validation import check_non_negative
from keras_kd.utils.validation import check_positive
from keras_kd.utils.validation import check_unit_interval


def _scheduled_value(schedule, epoch, argument):
    value = schedule(epoch)
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"`{argument}(epoch)` must return a number. Received: "
            f"{argument}({epoch})={value!r}") from e


class _VariableScheduler(keras.callbacks.Callback):
    """Assigns `schedule(epoch)` to Distiller variables at each epoch."""

    def __init__(self, schedules):
        super().__init__()
        for argument, schedule in schedules.items():
            if not callable(schedule):
                raise TypeError(
                    f"Argument `{argument}` must be a function epoch -> "
                    f"float. Received: {argument}={schedule!r}")
        self.schedules = schedules

    def _variable(self, name):
        variable = getattr(self.model, name, None)
        if isinstance(variable, keras.Variable):
            return variable
        for term in getattr(self.model, "terms", []):
            if term.name == name:
                return term.weight
        raise ValueError(
            f"{type(self).__name__} schedules `{name}`, but the model "
            f"'{self.model.name}' has no such Distiller variable or term. "
            "Terms: "
            f"{[t.name for t in getattr(self.model, 'terms', [])]}")

    def on_epoch_begin(self, epoch, logs=None):
        for name, schedule in self.schedules.items():
            variable = self._variable(name)
            value = _scheduled_value(schedule, epoch, name)
            check = {"temperature": check_positive,
                     "alpha": check_unit_interval}.get(name,
                                                       check_non_negative)
            try:
                check(name, value)
            except ValueError as e:
                raise ValueError(
                    f"The schedule gave an invalid value at epoch {epoch}: "
                    f"{e}") from e
            variable.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name in self.schedules:
                logs[name] = float(self._variable(name).numpy())


class TemperatureScheduler(_VariableScheduler):
    """Sets the distillation temperature from `schedule(epoch)` each epoch.

    Args:
        schedule: function `epoch (0-based) -> temperature > 0`.

    Example:

    ```python
    anneal = keras_kd.callbacks.TemperatureScheduler(
        lambda epoch: max(1.0, 8.0 * 0.8**epoch))
    distiller.fit(train, epochs=10, callbacks=[anneal])
    ```
    """

    def __init__(self, schedule):
        super().__init__({"temperature": schedule})


class LossWeightScheduler(_VariableScheduler):
    """Sets `alpha`, `attention_weight`, `hint_weight` and the weights of
    named terms from epoch functions.

    Args:
        alpha: optional function `epoch -> alpha in [0, 1]`.
        attention_weight: optional function `epoch -> weight >= 0`.
        hint_weight: optional function `epoch -> weight >= 0`.
        **term_weights: `term_name=function`, for the `weight` of a term of
            the Distiller (`rkd_distance=lambda epoch: 25.0`).

    Example:

    ```python
    warmup = keras_kd.callbacks.LossWeightScheduler(
        attention_weight=lambda epoch: 500.0 * min(1.0, (epoch + 1) / 3))
    ```
    """

    def __init__(self, alpha=None, attention_weight=None, hint_weight=None,
                 **term_weights):
        schedules = {name: fn for name, fn in (
            ("alpha", alpha), ("attention_weight", attention_weight),
            ("hint_weight", hint_weight), *term_weights.items())
            if fn is not None}
        if not schedules:
            raise ValueError("LossWeightScheduler needs at least one of "
                             "`alpha`, `attention_weight`, `hint_weight` or "
                             "a term name. Received none.")
        super().__init__(schedules)
