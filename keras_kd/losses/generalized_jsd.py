"""The generalized Jensen-Shannon divergence of GKD."""

import keras

from keras_kd.losses.logits_divergence import MixtureDivergence
from keras_kd.losses.logits_divergence import kl
from keras_kd.losses.logits_divergence import log_mixture


@keras.saving.register_keras_serializable(package="keras_kd")
class GeneralizedJSD(MixtureDivergence):
    """Generalized Jensen-Shannon divergence between teacher and student.

    With `p = softmax(t / T)` the teacher's and `q = softmax(s / T)` the
    student's distribution and `m = β·p + (1 − β)·q`,

    ```
    loss = T² · (β · KL(p ‖ m) + (1 − β) · KL(q ‖ m))
    ```

    averaged over the batch (over valid positions with a Keras mask). It
    is bounded and symmetric at `β = 0.5` (the Jensen-Shannon divergence);
    `log m` is formed with `logaddexp` of log-probabilities, so exact zeros
    in `p` or `q` give no NaN.

    Reference: Agarwal et al., "On-Policy Distillation of Language Models:
    Learning from Self-Generated Mistakes" (GKD), ICLR 2024. Warning: the
    paper's and TRL's `beta` name the weight of the mixture differently
    (TRL's `generalized_jsd_loss` mixes `beta · q + (1 − beta) · p`); here
    `beta` weighs the teacher, as written above.

    Args:
        beta: `0 < β < 1` (default 0.5).
        temperature, reduction, name, dtype: as `LogitsDivergence`
            (`T = 1` by default).

    Example:

    ```python
    import numpy as np
    import keras_kd

    loss = keras_kd.losses.GeneralizedJSD(beta=0.5)
    value = loss(np.array([[2.0, 0.5, -1.0]]), np.array([[1.0, 1.0, 0.0]]))
    ```
    """

    coefficient_name = "beta"

    def __init__(self, beta=0.5, temperature=1.0,
                 reduction="sum_over_batch_size", name="generalized_jsd",
                 dtype=None):
        super().__init__(beta, temperature, reduction, name, dtype)

    def divergence(self, log_p, log_q):
        log_m = log_mixture(log_p, log_q, self.beta)
        return self.beta * kl(log_p, log_m) + (1.0 - self.beta) * kl(
            log_q, log_m)
