"""Variational information distillation: a Gaussian on the teacher's
features given the student's."""

import math

import keras
from keras import ops

from keras_kd.terms.connectors import match_feature_size
from keras_kd.terms.connectors import pair_shapes
from keras_kd.terms.layer_pair_term import LayerPairTerm
from keras_kd.utils.validation import check_positive


def variational_nll(teacher, mean, variance):
    """`0.5 ((t − μ)² / σ² + log σ²)`, elementwise (the constant dropped)."""
    return 0.5 * (ops.square(mean - teacher) / variance + ops.log(variance))


@keras.saving.register_keras_serializable(package="keras_kd")
class VID(LayerPairTerm):
    """VID: the student maximises a variational lower bound of the mutual
    information between its features and the teacher's.

    The teacher feature `t` is modelled as a Gaussian `N(μ(s), σ²)` given
    the student feature `s`: `μ` is a small network of 1×1 convolutions
    (`Dense` layers for vectors and sequences; width `hidden`, ReLU between
    them) and `σ² = softplus(α_c) + ε` one learned variance per teacher
    channel, initialised to `initial_variance`. The loss is the negative
    log-likelihood `0.5 ((t − μ)² / σ² + log σ²)` averaged over positions
    and channels, what torchdistill's `VIDLoss` computes (the same value
    for the same `μ`, `σ²`). Like hint connectors, `μ` and `α` are built
    from the tapped shapes and train with the student but live in this
    term: the student keeps its parameter count. Per example:
    `sample_weight` and sequence masks are honoured.

    Reference: Ahn, Hu, Damianou, Lawrence & Dai, "Variational Information
    Distillation for Knowledge Transfer", CVPR 2019.

    Args:
        teacher_layer, student_layer: features of the same rank (maps are
            resized to the smaller of the two, as hints are).
        hidden: width of `μ`'s hidden layers (default: the teacher's
            channels).
        initial_variance: `σ²` at the start, > 0 (5.0, as the authors).
        eps: `ε > 0` (1e-5).
        weight, name: as for every term (name `"vid"`).

    Example:

    ```python
    term = keras_kd.terms.VID("block2", "block2")
    ```
    """

    def __init__(self, teacher_layer, student_layer, hidden=None,
                 initial_variance=5.0, eps=1e-5, weight=None, name="vid",
                 **kwargs):
        super().__init__(teacher_layer, student_layer, weight=weight,
                         name=name, **kwargs)
        if hidden is not None and (isinstance(hidden, bool) or not isinstance(
                hidden, int) or hidden < 1):
            raise ValueError("Argument `hidden` must be a positive integer "
                             f"or None. Received: hidden={hidden!r}")
        self.hidden = hidden
        self.initial_variance = check_positive("initial_variance",
                                               initial_variance)
        self.eps = check_positive("eps", eps)
        self.regressor = None

    def build(self, teacher_shapes, student_shapes):
        teacher_shape, student_shape = pair_shapes(
            teacher_shapes, student_shapes, self.teacher_layer,
            self.student_layer)
        channels = teacher_shape[-1]
        hidden = self.hidden or channels

        def layer(units, activation, index):
            name = f"{self.name}_mean_{index}"
            if len(student_shape) == 4:
                return keras.layers.Conv2D(units, 1, activation=activation,
                                           name=name, dtype="float32")
            return keras.layers.Dense(units, activation=activation,
                                      name=name, dtype="float32")

        self.regressor = keras.Sequential(
            [layer(hidden, "relu", 0), layer(hidden, "relu", 1),
             layer(channels, None, 2)], name=f"{self.name}_mean")
        self.regressor.build(student_shape)
        start = math.log(math.expm1(self.initial_variance - self.eps))
        self.variance_logit = self.add_weight(
            name="variance_logit", shape=(channels,), dtype="float32",
            initializer=keras.initializers.Constant(start))

    def variance(self):
        return ops.softplus(self.variance_logit) + self.eps

    def compute_loss(self, teacher, student, sample_weight=None):
        teacher_value, mean = match_feature_size(
            ops.stop_gradient(ops.cast(teacher[self.teacher_layer],
                                       "float32")),
            self.regressor(ops.cast(student[self.student_layer], "float32")))
        nll = variational_nll(teacher_value, mean, self.variance())
        mask = student.mask(self.student_layer)
        if mask is None:
            mask = teacher.mask(self.teacher_layer)
        axes = tuple(range(1, len(nll.shape)))
        if mask is not None and len(nll.shape) == 3:
            weights = ops.cast(mask, "float32")[:, :, None]
            return ops.sum(nll * weights, axis=axes) / ops.maximum(
                ops.sum(weights, axis=axes) * nll.shape[-1], 1.0)
        return ops.mean(nll, axis=axes)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden": self.hidden,
                       "initial_variance": self.initial_variance,
                       "eps": self.eps})
        return config
