"""FitNets hints: features matched through trainable connectors."""

import keras
from keras import ops

from keras_kd.losses.hint_mse import HintMSE
from keras_kd.terms.connectors import check_hint_shapes
from keras_kd.terms.connectors import make_connector
from keras_kd.terms.connectors import match_feature_size
from keras_kd.terms.pair_term import PairTerm
from keras_kd.terms.pair_term import masked
from keras_kd.terms.pair_term import position_weights


@keras.saving.register_keras_serializable(package="keras_kd")
class HintTerm(PairTerm):
    """FitNets hints: `loss_fn(teacher feature, connector(student feature))`.

    The connector (1×1 `Conv2D` for maps, `Dense` for vectors and
    sequences, float32) is built from the tapped shapes and trains with the
    student, but lives in this term: the student keeps its parameter count
    and saves without it. Spatial sizes are matched by area resizing.

    Masked sequences: the default `HintMSE` averages over valid (example,
    position) pairs and all channels, so padding changes no loss.

    Reference: Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR
    2015.

    Args:
        pairs: `(teacher_layer, student_layer[, weight])` of features of the
            same rank: `(B, C)`, `(B, T, C)` or `(B, H, W, C)`.
        loss_fn: defaults to `HintMSE()`.
        weight: the term's weight.
        name: defaults to `"hint"`.

    Example:

    ```python
    term = keras_kd.terms.HintTerm([("block5_out", "block1_out")],
                                   weight=0.1)
    ```
    """

    def __init__(self, pairs, loss_fn=None, weight=None, name="hint",
                 **kwargs):
        super().__init__(pairs, loss_fn=loss_fn, weight=weight, name=name,
                         **kwargs)
        self.connectors = []

    def default_loss(self):
        return HintMSE()

    def build(self, teacher_shapes, student_shapes):
        connectors = []
        for position, (pair, teacher_path) in enumerate(
                zip(self.pairs, self.teacher_taps())):
            teacher_shape = tuple(teacher_shapes[teacher_path])
            student_shape = tuple(student_shapes[pair.student_layer])
            check_hint_shapes(teacher_shape, student_shape, teacher_path,
                              pair.student_layer)
            connectors.append(make_connector(
                teacher_shape, student_shape,
                name=f"{self.name}_connector_{position}"))
        self.connectors = connectors

    def pair_loss(self, position, teacher_value, student_value, mask,
                  sample_weight):
        connector = self.connectors[position]
        teacher_value, projected = match_feature_size(
            ops.cast(teacher_value, "float32"),
            connector(ops.cast(student_value, "float32")))
        return self.loss_fn(teacher_value, masked(projected, mask),
                            sample_weight=position_weights(sample_weight,
                                                           mask))
