"""Probabilistic knowledge transfer: conditional probabilities among
examples."""

import keras
from keras import ops

from keras_kd.terms.feature_relation import FeatureRelationTerm
from keras_kd.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_kd")
class PKT(FeatureRelationTerm):
    """Probabilistic knowledge transfer: the student matches the teacher's
    distribution of cosine similarities between examples.

    Features are L2-normalised; `K_ij = (cos(f_i, f_j) + 1) / 2`;
    `p_{j|i} = K_ij / Σ_j K_ij` for the teacher, `q_{j|i}` for the student;
    the loss is `mean_{i,j} p_{j|i} log((p_{j|i} + ε) / (q_{j|i} + ε))`.
    The paper writes the sum over `i, j`; the mean (what torchdistill's
    `PKTLoss` computes, giving the same value) is that sum divided by
    `n²`, a constant the term's weight absorbs. Batch-relational:
    `sample_weight` does not enter.

    Reference: Passalis & Tefas, "Learning Deep Representations with
    Probabilistic Knowledge Transfer", ECCV 2018.

    Args:
        teacher_layer, student_layer: the layers compared (any shapes).
        eps: `ε > 0` (1e-7).
        weight, name: as for every term (name `"pkt"`).

    Example:

    ```python
    term = keras_kd.terms.PKT("pool", "pool", weight=1.0)
    ```
    """

    def __init__(self, teacher_layer, student_layer, eps=1e-7, weight=None,
                 name="pkt", **kwargs):
        super().__init__(teacher_layer, student_layer, weight=weight,
                         name=name, **kwargs)
        self.eps = check_positive("eps", eps)

    def relation_loss(self, teacher, student):
        p = _conditional(ops.stop_gradient(teacher), self.eps)
        q = _conditional(student, self.eps)
        return ops.mean(p * ops.log((p + self.eps) / (q + self.eps)))

    def get_config(self):
        config = super().get_config()
        config["eps"] = self.eps
        return config


def _conditional(features, eps):
    # The floor keeps the gradient finite for an all-zero row (ReLU).
    norm = ops.sqrt(ops.maximum(
        ops.sum(ops.square(features), axis=1, keepdims=True), 1e-30))
    unit = features / (norm + eps)
    similarity = (ops.matmul(unit, ops.transpose(unit)) + 1.0) / 2.0
    return similarity / ops.sum(similarity, axis=1, keepdims=True)
