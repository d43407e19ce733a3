"""Similarity-preserving KD: the batch's Gram matrix of activations."""

import keras
from keras import ops

from keras_kd.terms.feature_relation import FeatureRelationTerm
from keras_kd.terms.feature_relation import l1_normalize
from keras_kd.terms.feature_relation import l2_normalize


@keras.saving.register_keras_serializable(package="keras_kd")
class SimilarityPreserving(FeatureRelationTerm):
    """Similarity-preserving KD: examples similar for the teacher are
    similar for the student.

    With `A` the `(b, features)` flattened activations, `G = A Aᵀ` and `G̃`
    its rows divided by their L2 norm (the paper's Eq. 2), the loss is
    `(1/b²) ‖G̃_t − G̃_s‖²_F`. `mode="code"` divides the rows by their L1
    norm instead, as torchdistill's `SPKDLoss` does
    (`F.normalize(G, 1)`), and then gives torchdistill's value.
    Batch-relational: `sample_weight` does not enter.

    Reference: Tung & Mori, "Similarity-Preserving Knowledge
    Distillation", ICCV 2019 (γ = 3000 on CIFAR-10: the term's default
    weight).

    Args:
        teacher_layer, student_layer: the layers compared (any shapes).
        mode: `"paper"` (L2 rows) or `"code"` (L1 rows, torchdistill).
        weight, name: as for every term (weight 3000, name
            `"similarity_preserving"`).

    Example:

    ```python
    term = keras_kd.terms.SimilarityPreserving("block3", "block3")
    ```
    """

    MODES = ("paper", "code")
    default_weight = 3000.0

    def __init__(self, teacher_layer, student_layer, mode="paper",
                 weight=None, name="similarity_preserving", **kwargs):
        super().__init__(teacher_layer, student_layer, mode=mode,
                         weight=weight, name=name, **kwargs)

    def relation_loss(self, teacher, student):
        normalize = l2_normalize if self.mode == "paper" else l1_normalize
        difference = (normalize(_gram(ops.stop_gradient(teacher)))
                      - normalize(_gram(student)))
        size = ops.cast(ops.shape(teacher)[0], "float32")
        return ops.sum(ops.square(difference)) / ops.square(size)


def _gram(features):
    return ops.matmul(features, ops.transpose(features))
