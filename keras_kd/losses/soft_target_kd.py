"""Hinton soft-target knowledge-distillation loss."""

import keras
from keras import ops

from keras_kd.utils.validation import check_positive


def soft_target_kd(teacher_logits, student_logits, temperature):
    """Per-example `T² · KL(softmax(t/T) ‖ softmax(s/T))`, from logits.

    Both distributions are formed with `log_softmax`, so the value stays
    finite for logits of any magnitude (a class with probability 0 in the
    teacher contributes `0 · finite = 0`).

    Args:
        teacher_logits: Tensor `(..., num_classes)`.
        student_logits: Tensor `(..., num_classes)`.
        temperature: Python float or scalar tensor/variable, `T > 0`.

    Returns:
        Tensor of shape `(...)`: one value per example.
    """
    teacher_logits = ops.cast(teacher_logits, "float32")
    student_logits = ops.cast(student_logits, "float32")
    temperature = ops.cast(temperature, "float32")
    log_p_teacher = ops.log_softmax(teacher_logits / temperature, axis=-1)
    log_p_student = ops.log_softmax(student_logits / temperature, axis=-1)
    kl = ops.sum(
        ops.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1
    )
    return kl * ops.square(temperature)


@keras.saving.register_keras_serializable(package="keras_kd")
class SoftTargetKD(keras.losses.Loss):
    """Soft-target distillation loss of Hinton et al. (2015).

    For teacher logits `t` and student logits `s`:

    ```
    loss = T² · KL(softmax(t / T) ‖ softmax(s / T))
         = T² · Σ_c p_t,c · (log p_t,c − log p_s,c)
    ```

    averaged over the batch. The `T²` factor keeps the gradient magnitude of
    the soft targets roughly independent of `T`, as the paper recommends when
    soft and hard targets are mixed. Both log-probabilities come from
    `log_softmax` (never `log(softmax)`), so the loss is finite even for
    logits of ±1e4. Unlike `keras.losses.KLDivergence`, this loss takes
    *logits*, not probabilities.

    Reference: Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
    Network", 2015 (arXiv:1503.02531).

    Args:
        temperature: Softening temperature `T > 0`. Defaults to `3.0`.
        reduction: Keras loss reduction. Defaults to
            `"sum_over_batch_size"` (the batch mean).
        name: Name of the loss instance.
        dtype: Dtype of the loss computation. Defaults to `None` (the
            Keras float type).

    Example:

    ```python
    import numpy as np
    import keras_kd

    loss = keras_kd.losses.SoftTargetKD(temperature=4.0)
    teacher_logits = np.array([[2.0, 0.5, -1.0]])
    student_logits = np.array([[1.0, 1.0, 0.0]])
    value = loss(teacher_logits, student_logits)
    ```
    """

    def __init__(
        self,
        temperature=3.0,
        reduction="sum_over_batch_size",
        name="soft_target_kd",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = check_positive("temperature", temperature)

    def call(self, y_true, y_pred):
        return soft_target_kd(y_true, y_pred, self.temperature)

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature})
        return config
