"""Distillation of transformer attention probabilities (MiniLM, TinyBERT)."""

import keras
from keras import ops

from keras_kd.utils.validation import check_one_of

_EPSILON = 1e-12


def match_heads(teacher_probs, student_probs):
    """Brings teacher and student attention probabilities to one head count.

    - Equal head counts: unchanged.
    - The teacher has `k` times the student's heads: each group of `k`
      consecutive teacher heads is averaged (teacher head `j` goes to student
      head `j // k`).
    - Otherwise (the counts do not divide that way, e.g. 6 vs 4 or a student
      with more heads than its teacher): both sides are averaged over all of
      their heads, leaving one head each.

    Averages of probability rows are probability rows, so KL stays defined.

    Args:
        teacher_probs: `(B, H_t, T_q, T_k)`.
        student_probs: `(B, H_s, T_q, T_k)`.

    Returns:
        The pair `(teacher_probs, student_probs)` with equal head counts.
    """
    teacher_heads = teacher_probs.shape[1]
    student_heads = student_probs.shape[1]
    if teacher_heads == student_heads:
        return teacher_probs, student_probs
    if teacher_heads % student_heads == 0:
        k = teacher_heads // student_heads
        shape = ops.shape(teacher_probs)
        grouped = ops.reshape(
            teacher_probs,
            (shape[0], student_heads, k, shape[2], shape[3]),
        )
        return ops.mean(grouped, axis=2), student_probs
    return (
        ops.mean(teacher_probs, axis=1, keepdims=True),
        ops.mean(student_probs, axis=1, keepdims=True),
    )


def attention_map_kd(teacher_probs, student_probs, mode="kl"):
    """Per-query attention-distillation loss, averaged over heads.

    Args:
        teacher_probs: `(B, H_t, T_q, T_k)` attention probabilities.
        student_probs: `(B, H_s, T_q, T_k)` attention probabilities.
        mode: `"kl"`: `Σ_k p_t log(p_t / p_s)`; `"mse"`: `mean_k (p_t − p_s)²`.

    Returns:
        `(B, T_q)` float32: the loss of each query row, averaged over heads
        (after `match_heads`).
    """
    teacher_probs = ops.cast(teacher_probs, "float32")
    student_probs = ops.cast(student_probs, "float32")
    teacher_probs, student_probs = match_heads(teacher_probs, student_probs)
    if mode == "kl":
        # A key the teacher gives probability 0 (padding) contributes 0.
        per_key = teacher_probs * (
            ops.log(ops.maximum(teacher_probs, _EPSILON))
            - ops.log(ops.maximum(student_probs, _EPSILON))
        )
        per_row = ops.sum(per_key, axis=-1)
    else:
        per_row = ops.mean(ops.square(teacher_probs - student_probs), axis=-1)
    return ops.mean(per_row, axis=1)


@keras.saving.register_keras_serializable(package="keras_kd")
class AttentionMapKD(keras.losses.Loss):
    """Matches a student's attention probabilities to its teacher's.

    `loss(teacher_probs, student_probs)` takes the softmax attention
    probabilities of a `keras.layers.MultiHeadAttention` layer, shape
    `(batch, heads, query, key)` — what the `Distiller` captures for
    attention pairs that name MultiHeadAttention layers.

    - `mode="kl"` (default, MiniLM): `KL(teacher ‖ student)` of each query's
      distribution over keys, summed over keys and averaged over batch,
      heads and queries.
    - `mode="mse"` (TinyBERT): mean squared error of the probabilities,
      averaged over batch, heads, queries and keys.

    Head counts may differ: when the teacher has `k` times the student's
    heads, consecutive groups of `k` teacher heads are averaged; when the
    counts do not divide, both sides are averaged over all heads (see
    `match_heads`). Query and key lengths must agree.

    Padding: keys masked out by the layer have probability 0 on both sides
    and add nothing. Padded *queries* are skipped when `student_probs`
    carries a Keras mask of shape `(batch, query)` (the `Distiller` attaches
    the student layer's query mask); the average then runs over valid
    queries only.

    References: Wang et al., "MiniLM: Deep Self-Attention Distillation for
    Task-Agnostic Compression of Pre-Trained Transformers", NeurIPS 2020;
    Jiao et al., "TinyBERT: Distilling BERT for Natural Language
    Understanding", Findings of EMNLP 2020.

    Args:
        mode: `"kl"` or `"mse"`.
        reduction: Keras loss reduction. Defaults to `"sum_over_batch_size"`.
        name: name of the loss instance.
        dtype: dtype of the loss computation.

    Example:

    ```python
    import numpy as np
    import keras_kd

    teacher = np.random.dirichlet(np.ones(16), size=(8, 4, 16))  # 4 heads
    student = np.random.dirichlet(np.ones(16), size=(8, 2, 16))  # 2 heads
    loss = keras_kd.losses.AttentionMapKD(mode="kl")
    value = loss(teacher.astype("float32"), student.astype("float32"))
    ```
    """

    def __init__(
        self,
        mode="kl",
        reduction="sum_over_batch_size",
        name="attention_map_kd",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.mode = check_one_of("mode", mode, ("kl", "mse"))

    def call(self, y_true, y_pred):
        for argument, tensor in (
            ("teacher_probs", y_true),
            ("student_probs", y_pred),
        ):
            if len(tensor.shape) != 4:
                raise ValueError(
                    "`AttentionMapKD` expects attention probabilities of "
                    "shape (batch, heads, query, key). Received: "
                    f"{argument} of shape {tuple(tensor.shape)}"
                )
        check_same_lengths(y_true.shape, y_pred.shape)
        return attention_map_kd(y_true, y_pred, self.mode)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config


def check_same_lengths(teacher_shape, student_shape, where=""):
    """Raises unless query and key lengths of two attention shapes agree."""
    teacher_lengths = tuple(teacher_shape[-2:])
    student_lengths = tuple(student_shape[-2:])
    if None in teacher_lengths + student_lengths:
        return
    if teacher_lengths != student_lengths:
        raise ValueError(
            "Attention-map distillation needs the same query and key lengths "
            f"in teacher and student{where}. Received: teacher "
            f"(query, key) = {teacher_lengths}, student (query, key) = "
            f"{student_lengths}. Give both models the same sequence length "
            "(or patch grid)."
        )
