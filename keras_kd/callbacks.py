"""Epoch schedules for the Distiller's temperature and loss weights.

Each value lives in one non-trainable variable, owned by the term that
uses it (the Distiller owns `alpha`), so assigning it between epochs takes
effect in compiled (`jit_compile=True`) steps without retracing. A
schedule names `"alpha"`, `"temperature"`, `"attention_weight"`,
`"hint_weight"`, a term's name (its weight) or `"term_name.variable"`
(`keras_kd.terms.shorthands.resolve_variables`); a name no term uses is an
error before training starts.

`DistillationTensorBoard` (`keras_kd.tensorboard_view`) writes each term's
loss and attention maps to TensorBoard.
"""

import keras

from keras_kd.tensorboard_view import DistillationTensorBoard  # noqa: F401
from keras_kd.terms.shorthands import resolve_variables


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

    def on_train_begin(self, logs=None):
        for name in self.schedules:  # an unknown name fails before training
            resolve_variables(self.model, name)

    def on_epoch_begin(self, epoch, logs=None):
        for name, schedule in self.schedules.items():
            variables, check = resolve_variables(self.model, name)
            value = _scheduled_value(schedule, epoch, name)
            try:
                check(name, value)
            except ValueError as e:
                raise ValueError(
                    f"The schedule gave an invalid value at epoch {epoch}: "
                    f"{e}") from e
            for variable in variables:
                variable.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name in self.schedules:
                variable = resolve_variables(self.model, name)[0][0]
                logs[name] = float(keras.ops.convert_to_numpy(variable))


class TemperatureScheduler(_VariableScheduler):
    """Sets the distillation temperature from `schedule(epoch)` each epoch.

    Args:
        schedule: function `epoch (0-based) -> temperature > 0`.
        term: the name of the term whose temperature to set; by default
            every soft-target term's.

    Example:

    ```python
    anneal = keras_kd.callbacks.TemperatureScheduler(
        lambda epoch: max(1.0, 8.0 * 0.8**epoch))
    distiller.fit(train, epochs=10, callbacks=[anneal])
    ```
    """

    def __init__(self, schedule, term=None):
        name = "temperature" if term is None else f"{term}.temperature"
        super().__init__({name: schedule})


class LossWeightScheduler(_VariableScheduler):
    """Sets `alpha`, `attention_weight`, `hint_weight` and the weights (or
    other variables) of named terms from epoch functions.

    Args:
        alpha: optional function `epoch -> alpha in [0, 1]`.
        attention_weight: optional function `epoch -> weight >= 0`.
        hint_weight: optional function `epoch -> weight >= 0`.
        **term_weights: `term_name=function`, for the `weight` of a term of
            the Distiller (`rkd_distance=lambda epoch: 25.0`); pass
            `**{"term_name.variable": function}` for another variable.

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
