"""Activation-based attention transfer (Zagoruyko & Komodakis, 2017)."""

import keras
from keras import ops

from keras_kd.utils import compat
from keras_kd.utils.resize import match_to_smaller
from keras_kd.utils.validation import check_one_of
from keras_kd.utils.validation import check_positive

_EPSILON = 1e-12


def attention_map(features, p=2.0):
    """Spatial attention map: the channel mean of `|A|^p`.

    Args:
        features: channels-last activations, `(B, H, W, C)` or `(B, T, C)`.
        p: exponent of the activation magnitudes.

    Returns:
        `(B, H, W)` or `(B, T)` float32 map (not yet normalised).
    """
    features = ops.cast(features, "float32")
    if p == 2.0:
        powered = ops.square(features)
    else:
        powered = ops.power(ops.abs(features), p)
    return ops.mean(powered, axis=-1)


def match_spatial_size(teacher_map, student_map):
    """Brings two attention maps to the smaller of their spatial sizes.

    The larger map is resized with area interpolation: when the sizes divide,
    that is exactly average pooling (14×14 → 7×7 averages 2×2 blocks); when
    they don't (14×14 → 6×6), every output cell is the area-weighted mean of
    the input cells it overlaps. Because the channel mean and the spatial
    averaging are both linear, this equals average-pooling `|A|^p` before
    taking the channel mean.

    Args:
        teacher_map: `(B, H1, W1)` or `(B, T1)`.
        student_map: `(B, H2, W2)` or `(B, T2)` of the same rank.

    Returns:
        The pair `(teacher_map, student_map)` with equal spatial sizes.
    """
    return match_to_smaller(teacher_map, student_map, channels=False)


def _l2_normalize(flat):
    # Like torch.nn.functional.normalize: divide by max(‖x‖, eps). Written
    # with rsqrt of a clamped square norm so that an all-zero map has a
    # finite (zero) gradient.
    squared_norm = ops.sum(ops.square(flat), axis=-1, keepdims=True)
    return flat * ops.rsqrt(ops.maximum(squared_norm, _EPSILON**2))


@keras.saving.register_keras_serializable(package="keras_kd")
class AttentionTransfer(keras.losses.Loss):
    """Activation-based attention-transfer loss.

    For an activation tensor `A` of shape `(B, H, W, C)` (or `(B, T, C)`):

    ```
    Q = vec(mean_c |A_c|^p) / ‖vec(mean_c |A_c|^p)‖₂
    ```

    and, between teacher map `Q_t` and student map `Q_s`:

    - `mode="code"` (default): `mean over batch and positions of
      (Q_s − Q_t)²` — the authors' `at_loss` in their released code, which
      the paper's β=1000 (our `attention_weight=500` = β/2) was tuned for.
    - `mode="paper"`: `batch mean of ‖Q_s − Q_t‖₂` — Eq. (2) of the paper
      (a norm, not squared, and not averaged over positions). The two modes
      differ by orders of magnitude; pick the weight accordingly.

    Masked sequences: when `y_pred` carries a Keras mask `(B, T)`, each map
    is normalised over the example's valid positions and the squared
    differences are averaged over valid (example, position) pairs (mode
    "code" only); teacher and student must then have the same length.

    Teacher and student may have different channel counts (the channel
    mean removes them). When the spatial sizes differ, the larger map is
    resized to the smaller one with area interpolation: average pooling when
    the sizes divide (14×14 → 7×7), area-weighted averaging otherwise
    (14×14 → 6×6). See `match_spatial_size`.

    Reference: Zagoruyko & Komodakis, "Paying More Attention to Attention:
    Improving the Performance of Convolutional Neural Networks via Attention
    Transfer", ICLR 2017 (arXiv:1612.03928).

    Args:
        p: exponent applied to activation magnitudes. Defaults to `2`.
        mode: `"code"` or `"paper"`, see above. Defaults to `"code"`.
        reduction: Keras loss reduction. Defaults to `"sum_over_batch_size"`.
        name: Name of the loss instance.
        dtype: Dtype of the loss computation. Defaults to `None` (the
            Keras float type).

    Example:

    ```python
    import numpy as np
    import keras_kd

    loss = keras_kd.losses.AttentionTransfer(p=2, mode="code")
    teacher_map = np.random.rand(8, 14, 14, 64).astype("float32")
    student_map = np.random.rand(8, 7, 7, 16).astype("float32")
    value = loss(teacher_map, student_map)
    ```
    """

    def __init__(
        self,
        p=2,
        mode="code",
        reduction="sum_over_batch_size",
        name="attention_transfer",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.p = check_positive("p", p)
        self.mode = check_one_of("mode", mode, ("code", "paper"))

    def call(self, y_true, y_pred):
        teacher_features, student_features = y_true, y_pred
        mask = compat.get_keras_mask(y_pred)
        for argument, tensor in (
            ("teacher_map", teacher_features),
            ("student_map", student_features),
        ):
            if len(tensor.shape) not in (3, 4):
                raise ValueError(
                    f"`AttentionTransfer` expects channels-last maps of rank "
                    f"4 (B, H, W, C) or 3 (B, T, C). Received: {argument} "
                    f"of shape {tuple(tensor.shape)}"
                )
        if len(teacher_features.shape) != len(student_features.shape):
            raise ValueError(
                "`AttentionTransfer` needs teacher and student maps of the "
                f"same rank. Received: teacher_map of shape "
                f"{tuple(teacher_features.shape)} and student_map of shape "
                f"{tuple(student_features.shape)}"
            )
        teacher_attention = attention_map(teacher_features, self.p)
        student_attention = attention_map(student_features, self.p)
        if mask is not None:
            return self._masked(teacher_attention, student_attention, mask)
        teacher_attention, student_attention = match_spatial_size(
            teacher_attention, student_attention)
        batch = ops.shape(teacher_attention)[0]
        q_teacher = _l2_normalize(ops.reshape(teacher_attention, (batch, -1)))
        q_student = _l2_normalize(ops.reshape(student_attention, (batch, -1)))
        squared = ops.square(q_student - q_teacher)
        if self.mode == "code":
            return ops.mean(squared, axis=-1)
        # ‖·‖₂, clamped so identical maps have a finite (zero) gradient.
        return ops.sqrt(ops.maximum(ops.sum(squared, axis=-1), _EPSILON**2))

    def _masked(self, teacher_attention, student_attention, mask):
        """Masked sequences: `(B, T)` squared differences of maps normalised
        over valid positions; Keras then averages over valid positions."""
        if len(teacher_attention.shape) != 2 or (
                teacher_attention.shape[1] != student_attention.shape[1]):
            raise ValueError(
                "`AttentionTransfer` with a mask needs sequence features "
                "(B, T, C) of the same length T in teacher and student. "
                f"Received maps of shape {tuple(teacher_attention.shape)} "
                f"and {tuple(student_attention.shape)}")
        if self.mode != "code":
            raise ValueError(
                "`AttentionTransfer(mode='paper')` is a per-example norm and "
                "does not support masked sequences; use mode='code'. "
                f"Received: mode={self.mode!r} with a masked student feature")
        valid = ops.cast(mask, "float32")
        q_teacher = _l2_normalize(teacher_attention * valid)
        q_student = _l2_normalize(student_attention * valid)
        return ops.square(q_student - q_teacher)

    def get_config(self):
        config = super().get_config()
        config.update({"p": self.p, "mode": self.mode})
        return config
