"""The skew KL divergences of DistiLLM."""

import keras

from keras_kd.losses.generalized_jsd import _check_open_unit_interval
from keras_kd.losses.logits_divergence import LogitsDivergence
from keras_kd.losses.logits_divergence import kl
from keras_kd.losses.logits_divergence import log_mixture


@keras.saving.register_keras_serializable(package="keras_kd")
class SkewKL(LogitsDivergence):
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
        temperature: `T > 0` (default 1).
        reduction: Keras loss reduction (the batch mean by default).
        name: name of the loss.
        dtype: dtype of the loss computation.

    Example:

    ```python
    import numpy as np
    import keras_kd

    loss = keras_kd.losses.SkewKL(alpha=0.1)
    value = loss(np.array([[2.0, 0.5, -1.0]]), np.array([[1.0, 1.0, 0.0]]))
    ```
    """

    def __init__(self, alpha=0.1, temperature=1.0,
                 reduction="sum_over_batch_size", name="skew_kl",
                 dtype=None):
        super().__init__(temperature=temperature, reduction=reduction,
                         name=name, dtype=dtype)
        self.alpha = _check_open_unit_interval("alpha", alpha)

    def divergence(self, log_p, log_q):
        return kl(log_p, log_mixture(log_p, log_q, self.alpha))

    def get_config(self):
        config = super().get_config()
        config.update({"alpha": self.alpha})
        return config


@keras.saving.register_keras_serializable(package="keras_kd")
class SkewReverseKL(SkewKL):
    """Skew reverse KL: the student against a mixture leaning on it.

    ```
    loss = T² · KL(q ‖ α·q + (1 − α)·p)
    ```

    with `p` the teacher's and `q` the student's softened distribution;
    `α → 0` is reverse KL (`ReverseKL`).

    Reference: Ko et al., "DistiLLM", ICML 2024.

    Args:
        alpha: `0 < α < 1` (default 0.1).
        temperature: `T > 0` (default 1).
        reduction: Keras loss reduction (the batch mean by default).
        name: name of the loss.
        dtype: dtype of the loss computation.

    Example:

    ```python
    import numpy as np
    import keras_kd

    loss = keras_kd.losses.SkewReverseKL(alpha=0.1)
    value = loss(np.array([[2.0, 0.5, -1.0]]), np.array([[1.0, 1.0, 0.0]]))
    ```
    """

    def __init__(self, alpha=0.1, temperature=1.0,
                 reduction="sum_over_batch_size", name="skew_reverse_kl",
                 dtype=None):
        super().__init__(alpha=alpha, temperature=temperature,
                         reduction=reduction, name=name, dtype=dtype)

    def divergence(self, log_p, log_q):
        return kl(log_q, log_mixture(log_q, log_p, self.alpha))
