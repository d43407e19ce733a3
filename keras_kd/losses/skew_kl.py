"""The skew KL divergences of DistiLLM."""

import keras

from keras_kd.losses.logits_divergence import MixtureDivergence
from keras_kd.losses.logits_divergence import kl
from keras_kd.losses.logits_divergence import log_mixture


@keras.saving.register_keras_serializable(package="keras_kd")
class SkewKL(MixtureDivergence):
    """Skew KL: the teacher against a mixture leaning on it.

    With `p = softmax(t / T)` the teacher's and `q = softmax(s / T)` the
    student's distribution,

    ```
    loss = T² · KL(p ‖ α·p + (1 − α)·q)
    ```

    averaged over the batch (over valid positions with a Keras mask). The
    mixture keeps the divergence finite where the student puts no mass,
    which steadies training; `α → 0` is forward KL.

    Reference: Ko et al., "DistiLLM: Towards Streamlined Distillation for
    Large Language Models", ICML 2024.

    Args:
        alpha: `0 < α < 1` (default 0.1, the paper's).
        temperature, reduction, name, dtype: as `LogitsDivergence`
            (`T = 1` by default).

    Example:

    ```python
    import numpy as np
    import keras_kd

    loss = keras_kd.losses.SkewKL(alpha=0.1)
    value = loss(np.array([[2.0, 0.5, -1.0]]), np.array([[1.0, 1.0, 0.0]]))
    ```
    """

    coefficient_name = "alpha"

    def __init__(self, alpha=0.1, temperature=1.0,
                 reduction="sum_over_batch_size", name="skew_kl",
                 dtype=None):
        super().__init__(alpha, temperature, reduction, name, dtype)

    def divergence(self, log_p, log_q):
        return kl(log_p, log_mixture(log_p, log_q, self.alpha))


@keras.saving.register_keras_serializable(package="keras_kd")
class SkewReverseKL(SkewKL):
    """Skew reverse KL, `T² · KL(q ‖ α·q + (1 − α)·p)` with `p` the
    teacher's and `q` the student's softened distribution; `α → 0` is
    `ReverseKL`. Arguments as `SkewKL`.

    Reference: Ko et al., "DistiLLM", ICML 2024.

    Example:

    ```python
    loss = keras_kd.losses.SkewReverseKL(alpha=0.1)
    ```
    """

    def __init__(self, alpha=0.1, temperature=1.0,
                 reduction="sum_over_batch_size", name="skew_reverse_kl",
                 dtype=None):
        super().__init__(alpha, temperature, reduction, name, dtype)

    def divergence(self, log_p, log_q):
        return kl(log_q, log_mixture(log_q, log_p, self.alpha))
