"""Distillation of transformer attention probabilities (MiniLM, TinyBERT)."""

import keras

from keras_kd.capture import ATTENTION_PROBABILITIES
from keras_kd.losses.attention_map_kd import AttentionMapKD
from keras_kd.losses.attention_map_kd import check_same_lengths
from keras_kd.terms.pair_term import PairTerm


@keras.saving.register_keras_serializable(package="keras_kd")
class AttentionMapTerm(PairTerm):
    """Matches the attention probabilities of `MultiHeadAttention` layers.

    Each path names a `keras.layers.MultiHeadAttention` (or a subclass, such
    as the self-attention inside keras-hub's `TransformerEncoder`:
    `"backbone/transformer_layer_3/self_attention_layer"`). The Distiller
    reads its softmax probabilities `(batch, heads, query, key)` in the same
    pass, without changing what the layer returns. For each pair,
    `loss_fn(teacher_probs, student_probs)`, by default
    `keras_kd.losses.AttentionMapKD("kl")` (MiniLM); `"mse"` is TinyBERT's.
    Head counts may differ (see `AttentionMapKD`); query and key lengths
    must agree.

    Padding: keys masked by the layer have probability 0 on both sides;
    padded queries (rows with no visible key, or in self-attention a query
    whose own position is masked, as keras-hub's padding masks give) are
    left out of the average, which runs over valid (example, head, query)
    rows.

    References: Wang et al., "MiniLM", NeurIPS 2020; Jiao et al.,
    "TinyBERT", Findings of EMNLP 2020.

    Args:
        pairs: `(teacher_layer, student_layer[, weight])` of
            MultiHeadAttention layers.
        loss_fn: defaults to `AttentionMapKD(mode="kl")`.
        weight: the term's weight.
        name: defaults to `"attention_map"`.

    Example:

    ```python
    term = keras_kd.terms.AttentionMapTerm([
        ("bert/transformer_layer_11/self_attention_layer",
         "bert/transformer_layer_3/self_attention_layer")])
    ```
    """

    tap_kind = ATTENTION_PROBABILITIES

    def __init__(self, pairs, loss_fn=None, weight=None,
                 name="attention_map", **kwargs):
        super().__init__(pairs, loss_fn=loss_fn, weight=weight, name=name,
                         **kwargs)

    def default_loss(self):
        return AttentionMapKD(mode="kl")

    def build(self, teacher_shapes, student_shapes):
        for pair, teacher_path in zip(self.pairs, self.teacher_taps()):
            teacher_shape = tuple(teacher_shapes[teacher_path])
            student_shape = tuple(student_shapes[pair.student_layer])
            for path, shape in ((teacher_path, teacher_shape),
                                (pair.student_layer, student_shape)):
                if len(shape) != 4:
                    raise ValueError(
                        "Attention-map distillation supports "
                        "MultiHeadAttention over one sequence axis, with "
                        "probabilities (batch, heads, query, key). Received: "
                        f"layer '{path}' with probabilities of shape {shape}")
            check_same_lengths(
                teacher_shape, student_shape,
                where=f" (pair '{teacher_path}', '{pair.student_layer}')")
