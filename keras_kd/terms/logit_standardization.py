"""Logit standardization: soft targets from Z-scored logits."""

import keras
from keras import ops

from keras_kd.losses.logits_divergence import LogitsDivergence
from keras_kd.losses.soft_target_kd import SoftTargetKD
from keras_kd.terms.logit_term import LogitTerm
from keras_kd.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_kd")
class LogitStandardization(LogitTerm):
    """Logit standardization: each side's logits are Z-scored before the
    divergence, so the student matches the teacher's logit *relations*, not
    its logit range, and one temperature fits both.

    `z ↦ (z − mean(z)) / (ε + std(z))` over the classes (`std` with
    Bessel's correction, as PyTorch's `std` and the authors' code), then
    `divergence(teacher, student)`: any `keras_kd.losses.LogitsDivergence`
    (`SoftTargetKD`, `ReverseKL`, `GeneralizedJSD`, `SkewKL`, ...), which
    applies its temperature and `T²`. With the default `SoftTargetKD(2)`
    the value is `T²` times torchdistill's `LogitStdKDLoss` soft part
    (torchdistill multiplies by `T²` only when it also adds the hard
    loss). It takes the soft-target term's place beside the hard labels
    (scaled by `1 − alpha`). Per example: `sample_weight` is honoured.

    Reference: Sun, Ren, Li, Wang & Cao, "Logit Standardization in
    Knowledge Distillation", CVPR 2024.

    Args:
        divergence: a `LogitsDivergence` (default `SoftTargetKD(2.0)`).
        eps: `ε > 0` (1e-7).
        weight, name: as for every term (name `"logit_standardization"`).

    Example:

    ```python
    term = keras_kd.terms.LogitStandardization(
        keras_kd.losses.SoftTargetKD(temperature=2.0))
    distiller = keras_kd.Distiller(teacher, student, terms=[term])
    ```
    """

    mixes_with_labels = True

    def __init__(self, divergence=None, eps=1e-7, weight=None,
                 name="logit_standardization", **kwargs):
        super().__init__(weight=weight, name=name, **kwargs)
        if isinstance(divergence, dict):
            divergence = keras.saving.deserialize_keras_object(divergence)
        divergence = divergence if divergence is not None else (
            SoftTargetKD(2.0))
        if not isinstance(divergence, LogitsDivergence):
            raise TypeError(
                "Argument `divergence` must be a keras_kd.losses."
                "LogitsDivergence (it takes logits and its own "
                f"temperature). Received: divergence={divergence!r}")
        self.divergence = divergence
        self.eps = check_positive("eps", eps)

    def standardize(self, logits):
        mean = ops.mean(logits, axis=-1, keepdims=True)
        classes = logits.shape[-1]
        variance = ops.sum(ops.square(logits - mean), axis=-1,
                           keepdims=True) / (classes - 1)
        return (logits - mean) / (self.eps + ops.sqrt(variance))

    def logit_loss(self, teacher, student, labels):
        teacher = self.standardize(ops.stop_gradient(teacher))
        student = self.standardize(student)
        return self.divergence.call(teacher, student)

    def get_config(self):
        config = super().get_config()
        config.update({
            "divergence": keras.saving.serialize_keras_object(
                self.divergence),
            "eps": self.eps})
        return config
