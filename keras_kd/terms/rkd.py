"""Relational knowledge distillation: distances and angles among examples."""

import keras
from keras import ops

from keras_kd.terms.feature_relation import FeatureRelationTerm
from keras_kd.terms.feature_relation import l2_normalize
from keras_kd.terms.feature_relation import pairwise_distances
from keras_kd.terms.feature_relation import smooth_l1
from keras_kd.utils.validation import check_non_negative


@keras.saving.register_keras_serializable(package="keras_kd")
class RKD(FeatureRelationTerm):
    """Relational KD: the student keeps the teacher's distances between
    examples and angles between triples of examples.

    With `t_i` the flattened teacher features of example `i`,
    `ψ_D(i, j) = ‖t_i − t_j‖₂ / μ` (`μ` the mean non-zero distance of the
    batch) and `ψ_A(i, j, k) = ⟨e_ij, e_kj⟩`, `e_ij = (t_i − t_j) /
    ‖t_i − t_j‖₂`; the same for the student. The loss is

    `distance_weight · Huber(ψ_D^s, ψ_D^t) + angle_weight · Huber(ψ_A^s,
    ψ_A^t)`,

    Huber (smooth L1, δ = 1) averaged over all `n²` pairs and `n³`
    triples, as torchdistill's `RKDLoss` computes it (the same value for
    the same tensors). Batch-relational: `sample_weight` does not enter.

    Reference: Park, Kim, Lu & Cho, "Relational Knowledge Distillation",
    CVPR 2019 (λ_D = 25, λ_A = 50 for classification, §4.3).

    Args:
        teacher_layer, student_layer: the layers compared (any shapes).
        distance_weight: `λ_D ≥ 0`.
        angle_weight: `λ_A ≥ 0`.
        weight, name: as for every term (name `"rkd"`).

    Example:

    ```python
    term = keras_kd.terms.RKD("pool", "pool")
    distiller = keras_kd.Distiller(teacher, student, terms=[term])
    ```
    """

    def __init__(self, teacher_layer, student_layer, distance_weight=25.0,
                 angle_weight=50.0, weight=None, name="rkd", **kwargs):
        super().__init__(teacher_layer, student_layer, weight=weight,
                         name=name, **kwargs)
        self.distance_weight = check_non_negative("distance_weight",
                                                  distance_weight)
        self.angle_weight = check_non_negative("angle_weight", angle_weight)

    def relation_loss(self, teacher, student):
        teacher = ops.stop_gradient(teacher)
        total = ops.zeros((), "float32")
        if self.distance_weight:
            total += self.distance_weight * smooth_l1(
                _normalized_distances(student),
                _normalized_distances(teacher))
        if self.angle_weight:
            total += self.angle_weight * smooth_l1(_angles(student),
                                                   _angles(teacher))
        return total

    def get_config(self):
        config = super().get_config()
        config.update({"distance_weight": self.distance_weight,
                       "angle_weight": self.angle_weight})
        return config


def _normalized_distances(features):
    distances = pairwise_distances(features)
    positive = ops.cast(distances > 0, "float32")
    mean = ops.sum(distances) / ops.maximum(ops.sum(positive), 1.0)
    return distances / mean


def _angles(features):
    differences = l2_normalize(features[None, :, :] - features[:, None, :])
    return ops.reshape(ops.matmul(differences,
                                  ops.transpose(differences, (0, 2, 1))),
                       (-1,))
