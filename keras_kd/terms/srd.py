"""SRD: the student's features through the teacher's own classifier."""

import keras
from keras import ops

from keras_kd.terms.connectors import pair_shapes
from keras_kd.terms.layer_pair_term import LayerPairTerm
from keras_kd.utils.validation import check_non_negative


def teacher_head(teacher, layer):
    """The part of a Functional `teacher` after `layer`: a frozen model from
    that layer's output to the teacher's logits (SRD's classifier).

    Raises:
        ValueError: when the logits depend on more than that layer's output.
    """
    try:
        feature = teacher.get_layer(layer).output
    except ValueError as e:
        raise ValueError(
            f"Argument `layer` names no layer of teacher '{teacher.name}'. "
            f"Received: layer={layer!r}") from e
    try:
        head = keras.Model(feature, teacher.output,
                           name=f"{teacher.name}_head")
    except ValueError as e:
        raise ValueError(
            f"The logits of teacher '{teacher.name}' do not follow from the "
            f"output of '{layer}' alone, so it has no classifier head there. "
            f"Received: layer={layer!r}") from e
    head.trainable = False
    return head


@keras.saving.register_keras_serializable(package="keras_kd")
class SRD(LayerPairTerm):
    """Softmax regression representation learning (SRD, also SRRL): the
    student's features, mapped to the teacher's width, must work with the
    teacher's own frozen classifier.

    A connector `r` (a 1×1 convolution for maps, a `Dense` layer for
    vectors, without bias, then ReLU) maps the student feature `s` to the
    teacher's channels. Per example, the loss is

    `feature_weight · mean_c (mean_xy r(s) − mean_xy t)² +
    regression_weight · mean_k (W_T(r(s)) − z_t)²`,

    with `t` the teacher's feature, `W_T` the teacher's classifier (from
    that feature to its logits, `teacher_head`) and `z_t` the teacher's
    logits: the authors' code (its `statm_loss` and the mean squared error
    of logits, both weighted 1). The authors' connector also has batch
    normalization, which a term cannot train (it has no training flag):
    it is left out. Per example: `sample_weight` is honoured. torchdistill's
    `SRDLoss` is a different method (Miles & Mikolajczyk 2024).

    Reference: Yang, Martinez, Bulat & Tzimiropoulos, "Knowledge
    Distillation via Softmax Regression Representation Learning", ICLR
    2021.

    Args:
        teacher_layer, student_layer: the penultimate features (maps
            `(B, H, W, C)` or vectors `(B, C)`; maps of equal size).
        classifier: the teacher's classifier on `teacher_layer`'s output,
            usually `keras_kd.terms.srd.teacher_head(teacher,
            teacher_layer)`. Its configuration is saved with the term, its
            weights are not: rebuild it from the teacher after loading.
        feature_weight, regression_weight: the two weights, `≥ 0`.
        weight, name: as for every term (name `"srd"`).

    Example:

    ```python
    from keras_kd.terms.srd import SRD, teacher_head

    term = SRD("conv2", "conv2", classifier=teacher_head(teacher, "conv2"))
    ```
    """

    def __init__(self, teacher_layer, student_layer, classifier,
                 feature_weight=1.0, regression_weight=1.0, weight=None,
                 name="srd", **kwargs):
        super().__init__(teacher_layer, student_layer, weight=weight,
                         name=name, **kwargs)
        if isinstance(classifier, dict):
            classifier = keras.saving.deserialize_keras_object(classifier)
        if not callable(classifier):
            raise TypeError(
                "Argument `classifier` must be a Keras model or layer from "
                "the teacher's feature to its logits (see "
                f"`teacher_head`). Received: classifier={classifier!r}")
        self.classifier = classifier
        if isinstance(classifier, keras.layers.Layer):
            classifier.trainable = False
        self.feature_weight = check_non_negative("feature_weight",
                                                 feature_weight)
        self.regression_weight = check_non_negative("regression_weight",
                                                    regression_weight)
        self.connector = None

    def build(self, teacher_shapes, student_shapes):
        teacher_shape, student_shape = pair_shapes(
            teacher_shapes, student_shapes, self.teacher_layer,
            self.student_layer)
        if len(student_shape) == 4:
            if teacher_shape[1:3] != student_shape[1:3]:
                raise ValueError(
                    "SRD runs the teacher's classifier on the student's "
                    "map, so both maps need one size. Received: teacher "
                    f"{teacher_shape} and student {student_shape}")
            self.connector = keras.layers.Conv2D(
                teacher_shape[-1], 1, use_bias=False, activation="relu",
                name=f"{self.name}_connector", dtype="float32")
        else:
            self.connector = keras.layers.Dense(
                teacher_shape[-1], use_bias=False, activation="relu",
                name=f"{self.name}_connector", dtype="float32")
        self.connector.build(student_shape)

    def compute_loss(self, teacher, student, sample_weight=None):
        if len(teacher.logits) != 1:
            raise ValueError(
                f"SRD distils from one teacher; received the logits of "
                f"{len(teacher.logits)}.")
        t = ops.stop_gradient(ops.cast(teacher[self.teacher_layer],
                                       "float32"))
        s = self.connector(ops.cast(student[self.student_layer], "float32"))
        axes = tuple(range(1, len(t.shape) - 1))
        if axes:
            gap = ops.mean(s, axis=axes) - ops.mean(t, axis=axes)
        else:
            gap = s - t
        feature = ops.mean(ops.square(gap), axis=-1)
        logits = ops.cast(self.classifier(s), "float32")
        teacher_logits = ops.stop_gradient(ops.cast(teacher.logits[0],
                                                    "float32"))
        regression = ops.mean(ops.square(logits - teacher_logits), axis=-1)
        return (self.feature_weight * feature
                + self.regression_weight * regression)

    def get_config(self):
        config = super().get_config()
        config.update({
            "classifier": keras.saving.serialize_keras_object(
                self.classifier),
            "feature_weight": self.feature_weight,
            "regression_weight": self.regression_weight})
        return config
