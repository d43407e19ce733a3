"""The attention-transfer term (Zagoruyko & Komodakis, ICLR 2017)."""

import keras
from keras import ops

from keras_kd.losses.attention_transfer import AttentionTransfer
from keras_kd.losses.attention_transfer import attention_map
from keras_kd.terms.pair_term import PairTerm


def compact_signature(p):
    """The precompute signature of `compact_attention_map(·, p)`."""
    return f"attention_map(p={float(p)})"


def compact_attention_map(features, p):
    """`(mean_c |A|^p)^(1/p)` with one channel: `AttentionTransfer(p)` gives
    the same loss on it as on the full activation `A`, at 1/C of the size.
    """
    return ops.expand_dims(
        ops.power(attention_map(features, p), 1.0 / p), -1)


@keras.saving.register_keras_serializable(package="keras_kd")
class AttentionTransferTerm(PairTerm):
    """Attention transfer between channels-last feature maps.

    For each pair, `loss_fn(teacher_features, student_features)`, by default
    `keras_kd.losses.AttentionTransfer(p=2, mode="code")`: the squared
    difference of the L2-normalised maps `mean_c |A|^p`. Channel counts may
    differ; spatial sizes are matched by area resizing.

    Masked sequences `(B, T, C)` (an `Embedding(mask_zero=True)` upstream):
    each map is normalised over the example's valid positions only, and the
    squared differences are averaged over valid (example, position) pairs,
    so padding a batch with more zeros changes no loss.

    With the default loss the teacher side is stored offline as the one-
    channel map `(mean_c |A|^p)^(1/p)`, which gives the same loss.

    Reference: Zagoruyko & Komodakis, "Paying More Attention to Attention",
    ICLR 2017.

    Args:
        pairs: `(teacher_layer, student_layer[, weight])` of layers whose
            outputs are `(B, H, W, C)` or `(B, T, C)`.
        loss_fn: defaults to `AttentionTransfer()`.
        weight: the term's weight; the default 500 is β/2 of the paper's
            β = 1000 for `AttentionTransfer(mode="code")`.
        name: defaults to `"attention"`.

    Example:

    ```python
    term = keras_kd.terms.AttentionTransferTerm(
        [("backbone/block2_out", "block1_out")], weight=500.0)
    distiller = keras_kd.Distiller(teacher, student, terms=[term])
    ```
    """

    default_weight = 500.0

    def __init__(self, pairs, loss_fn=None, weight=None, name="attention",
                 **kwargs):
        super().__init__(pairs, loss_fn=loss_fn, weight=weight, name=name,
                         **kwargs)

    def default_loss(self):
        return AttentionTransfer()

    def build(self, teacher_shapes, student_shapes):
        for pair, teacher_path in zip(self.pairs, self.teacher_taps()):
            for side, path, shape in (
                    ("teacher", teacher_path, teacher_shapes[teacher_path]),
                    ("student", pair.student_layer,
                     student_shapes[pair.student_layer])):
                if len(shape) not in (3, 4):
                    raise ValueError(
                        "Attention transfer needs layers whose output is a "
                        "channels-last map of rank 4 (B, H, W, C) or rank 3 "
                        f"(B, T, C). Received: {side} layer '{path}' with "
                        f"output shape {tuple(shape)}")

    def _compact(self):
        return isinstance(self.loss_fn, AttentionTransfer)

    def teacher_signature(self, path):
        if self._compact():
            return compact_signature(self.loss_fn.p)
        return "output"

    def prepare_teacher(self, path, value):
        if self._compact():
            return compact_attention_map(value, self.loss_fn.p)
        return value
