"""Hinton soft-target knowledge-distillation loss."""

import keras

from keras_kd.losses.logits_divergence import LogitsDivergence
from keras_kd.losses.logits_divergence import kl


@keras.saving.register_keras_serializable(package="keras_kd")
class SoftTargetKD(LogitsDivergence):
    """Soft-target distillation loss of Hinton et al. (2015).

    For teacher logits `t` and student logits `s`:

    ```
    loss = T² · KL(softmax(t / T) ‖ softmax(s / T))
         = T² · Σ_c p_t,c · (log p_t,c − log p_s,c)
    ```

    averaged over the batch (over valid positions when `y_pred` carries a
    Keras mask). The `T²` factor keeps the gradient magnitude of the soft
    targets roughly independent of `T`, as the paper recommends when soft
    and hard targets are mixed. Both log-probabilities come from
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

    def __init__(self, temperature=3.0, reduction="sum_over_batch_size",
                 name="soft_target_kd", dtype=None):
        super().__init__(temperature=temperature, reduction=reduction,
                         name=name, dtype=dtype)

    def divergence(self, log_p, log_q):
        return kl(log_p, log_q)
