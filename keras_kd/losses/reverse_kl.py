"""Reverse KL divergence of MiniLLM."""

import keras

from keras_kd.losses.logits_divergence import LogitsDivergence
from keras_kd.losses.logits_divergence import kl


@keras.saving.register_keras_serializable(package="keras_kd")
class ReverseKL(LogitsDivergence):
    """Reverse KL: the student's distribution against the teacher's.

    With `p = softmax(t / T)` the teacher's and `q = softmax(s / T)` the
    student's distribution,

    ```
    loss = T² · KL(q ‖ p) = T² · Σ_c q_c (log q_c − log p_c)
    ```

    averaged over the batch (over valid positions when `y_pred` carries a
    Keras mask). Forward KL makes the student cover every mode of the
    teacher; reverse KL is mode-seeking: the student puts its mass where
    the teacher's is, which suits generation by a student too small to
    cover everything. Computed from `log_softmax` in float32.

    Reference: Gu et al., "MiniLLM: Knowledge Distillation of Large
    Language Models", ICLR 2024 (their policy-gradient objective optimises
    this sequence-level reverse KL; this is its token-level form, as in
    their and GKD's code).

    Args:
        temperature, reduction, name, dtype: as `LogitsDivergence`
            (`T = 1` by default).

    Example:

    ```python
    import numpy as np
    import keras_kd

    loss = keras_kd.losses.ReverseKL()
    value = loss(np.array([[2.0, 0.5, -1.0]]), np.array([[1.0, 1.0, 0.0]]))
    ```
    """

    def __init__(self, temperature=1.0, reduction="sum_over_batch_size",
                 name="reverse_kl", dtype=None):
        super().__init__(temperature=temperature, reduction=reduction,
                         name=name, dtype=dtype)

    def divergence(self, log_p, log_q):
        return kl(log_q, log_p)
