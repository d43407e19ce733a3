"""Epoch schedules for the Distiller's temperature and loss weights.

The Distiller keeps `temperature`, `alpha`, `attention_weight` and
`hint_weight` in
non-trainable variables, so assigning them between epochs takes effect in
compiled (`jit_compile=True`) steps without retracing.
"""

import keras


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

    def on_epoch_begin(self, epoch, logs=None):
        for name, schedule in self.schedules.items():
            variable = getattr(self.model, name, None)
            if not isinstance(variable, keras.Variable):
                raise ValueError(
                    f"{type(self).__name__} schedules `{name}`, but the model "
                    f"'{self.model.name}' has no such Distiller variable.")
            value = _scheduled_value(schedule, epoch, name)
            if name == "temperature" and not value > 0:
                raise ValueError(f"The schedule gave temperature={value} at "
                                 f"epoch {epoch}; it must be > 0.")
            if name == "alpha" and not 0 <= value <= 1:
                raise ValueError(f"The schedule gave alpha={value} at epoch "
                                 f"{epoch}; it must be in [0, 1].")
            if name.endswith("_weight") and not value >= 0:
                raise ValueError(f"The schedule gave {name}={value} at epoch "
                                 f"{epoch}; it must be >= 0.")
            variable.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name in self.schedules:
                logs[name] = float(getattr(self.model, name).numpy())


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
    """Sets `alpha`, `attention_weight`, `hint_weight` from epoch functions.

    Args:
        alpha: optional function `epoch -> alpha in [0, 1]`.
        attention_weight: optional function `epoch -> weight >= 0`.
        hint_weight: optional function `epoch -> weight >= 0`.

    Example:

    ```python
    warmup = keras_kd.callbacks.LossWeightScheduler(
        attention_weight=lambda epoch: 500.0 * min(1.0, (epoch + 1) / 3))
    ```
    """

    def __init__(self, alpha=None, attention_weight=None, hint_weight=None):
        schedules = {name: fn for name, fn in (
            ("alpha", alpha), ("attention_weight", attention_weight),
            ("hint_weight", hint_weight))
            if fn is not None}
        if not schedules:
            raise ValueError("LossWeightScheduler needs at least one of "
                             "`alpha`, `attention_weight` or `hint_weight`. "
                             "Received none.")
        super().__init__(schedules)
