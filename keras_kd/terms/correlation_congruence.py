"""Correlation congruence: the correlations between examples' embeddings."""

import math

import keras
from keras import ops

from keras_kd.terms.feature_relation import FeatureRelationTerm
from keras_kd.terms.feature_relation import l2_normalize
from keras_kd.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_kd")
class CorrelationCongruence(FeatureRelationTerm):
    """Correlation congruence KD (CCKD): the student keeps the teacher's
    correlations between the embeddings of the examples of a batch.

    Embeddings are L2-normalised and their correlation is the Gaussian RBF
    kernel approximated by its Taylor series (the paper's Eq. 10):
    `k(x, y) ≈ Σ_{p=0}^{P} e^{−2γ} (2γ)^p / p! · (xᵀy)^p`. The loss is
    `(1/n²) ‖K_t − K_s‖²_F`. `mode="code"` is torchdistill's `CCKDLoss`
    with its defaults: the bilinear kernel `xᵀy` on raw (unnormalised)
    embeddings and the unsquared norm `‖K_t − K_s‖_F / n²`, the same
    value as torchdistill.

    Reference: Peng et al., "Correlation Congruence for Knowledge
    Distillation", ICCV 2019 (P = 2, γ = 0.4).

    Args:
        teacher_layer, student_layer: the embeddings compared.
        mode: `"paper"` or `"code"` (see above).
        gamma: `γ > 0` of the kernel (paper mode).
        order: `P ≥ 0`, the order of the Taylor series (paper mode).
        weight, name: as for every term (name `"correlation_congruence"`).

    Example:

    ```python
    term = keras_kd.terms.CorrelationCongruence("embedding", "embedding")
    ```
    """

    MODES = ("paper", "code")

    def __init__(self, teacher_layer, student_layer, mode="paper",
                 gamma=0.4, order=2, weight=None,
                 name="correlation_congruence", **kwargs):
        super().__init__(teacher_layer, student_layer, mode=mode,
                         weight=weight, name=name, **kwargs)
        self.gamma = check_positive("gamma", gamma)
        if isinstance(order, bool) or not isinstance(order, int) or order < 0:
            raise ValueError("Argument `order` must be an integer >= 0. "
                             f"Received: order={order!r}")
        self.order = order

    def relation_loss(self, teacher, student):
        teacher = ops.stop_gradient(teacher)
        size = ops.cast(ops.shape(teacher)[0], "float32")
        if self.mode == "code":
            difference = _bilinear(teacher) - _bilinear(student)
            return ops.sqrt(ops.sum(ops.square(difference))) / ops.square(
                size)
        difference = self._kernel(teacher) - self._kernel(student)
        return ops.sum(ops.square(difference)) / ops.square(size)

    def _kernel(self, features):
        inner = _bilinear(l2_normalize(features))
        total = ops.zeros_like(inner)
        for p in range(self.order + 1):
            coefficient = (math.exp(-2 * self.gamma) * (2 * self.gamma) ** p
                           / math.factorial(p))
            total += coefficient * inner ** p
        return total

    def get_config(self):
        config = super().get_config()
        config.update({"gamma": self.gamma, "order": self.order})
        return config


def _bilinear(features):
    return ops.matmul(features, ops.transpose(features))
