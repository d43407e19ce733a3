"""Terms that compute their loss with a `keras.losses.Loss` object."""

import keras

from keras_kd.terms.term import Term


class LossTerm(Term):
    """A term whose math is a loss object, `loss_fn`, which `compile` may
    replace (`term.set_loss(loss)`). Subclasses give `default_loss()`.

    Args:
        loss_fn: a `keras.losses.Loss`, a loss name or a function
            `fn(y_true, y_pred)`; defaults to `default_loss()`.
        weight: the term's weight.
        name: the term's name.
    """

    def __init__(self, loss_fn=None, weight=None, name=None, **kwargs):
        super().__init__(weight=weight, name=name, **kwargs)
        self.set_loss(loss_fn or self.default_loss())

    def default_loss(self):
        raise NotImplementedError(
            f"{type(self).__name__} must implement `default_loss`.")

    def set_loss(self, loss, argument="loss_fn"):
        """Replaces the term's loss; `argument` names it in errors."""
        self.loss_fn = as_loss(loss, argument)

    def get_config(self):
        config = super().get_config()
        config["loss_fn"] = keras.saving.serialize_keras_object(self.loss_fn)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss_fn"] = keras.saving.deserialize_keras_object(
            config["loss_fn"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_kd")
class FunctionLoss(keras.losses.Loss):
    """Wraps a plain `fn(y_true, y_pred)` so it takes `sample_weight`."""

    def __init__(self, fn, name=None, reduction="sum_over_batch_size",
                 dtype=None):
        if isinstance(fn, str):
            fn = keras.losses.get(fn)
        super().__init__(name=name or getattr(fn, "__name__", "loss"),
                         reduction=reduction, dtype=dtype)
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)

    def get_config(self):
        config = super().get_config()
        config.update({"fn": keras.saving.serialize_keras_object(self.fn)})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["fn"] = keras.saving.deserialize_keras_object(config["fn"])
        return cls(**config)


def as_loss(loss, argument):
    """A `keras.losses.Loss` from a loss object, a name or a function."""
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError as e:
            raise ValueError(
                f"Unknown loss for `{argument}`. Received: {argument}={loss!r}"
            ) from e
    if isinstance(loss, keras.losses.Loss):
        return loss
    if callable(loss):
        return FunctionLoss(loss)
    raise TypeError(
        f"Argument `{argument}` must be a `keras.losses.Loss`, a loss name or "
        f"a callable. Received: {argument}={loss!r}"
    )
