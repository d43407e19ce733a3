"""The base of terms between one teacher layer and one student layer whose
loss compares relations among the examples of a batch (RKD, PKT,
similarity-preserving KD, correlation congruence)."""

from keras import ops

from keras_kd.terms.layer_pair_term import LayerPairTerm
from keras_kd.utils.validation import check_one_of


def flat_features(value, mask=None):
    """`(batch, features)` float32: `value` flattened per example, with the
    padded positions of a `(batch, steps, ...)` value zeroed first so that
    padding does not enter the relations."""
    value = ops.cast(value, "float32")
    if mask is not None and len(value.shape) >= 3:
        weights = ops.cast(mask, "float32")
        weights = ops.reshape(weights, tuple(weights.shape) + (1,) * (
            len(value.shape) - len(weights.shape)))
        value = value * weights
    return ops.reshape(value, (ops.shape(value)[0], -1))


class FeatureRelationTerm(LayerPairTerm):
    """A term on `(teacher_layer, student_layer)` whose loss is a function
    of the two batches of features, `relation_loss(teacher, student)`, a
    scalar over the batch.

    Batch-relational losses have no per-example values: `sample_weight`
    does not enter them, and a sequence mask zeroes padded positions before
    the features are flattened. The teacher and student features may have
    different sizes: only relations between examples are compared.

    Args:
        teacher_layer: path of the teacher layer (`"i:path"` for teacher
            `i`).
        student_layer: path of the student layer.
        mode: `"paper"` or `"code"` where a subclass has both (`MODES`).
        weight, name: as for every `Term`.
    """

    #: `mode` values a subclass accepts; `("paper",)` when it has one.
    MODES = ("paper",)

    def __init__(self, teacher_layer, student_layer, mode="paper",
                 weight=None, name=None, **kwargs):
        super().__init__(teacher_layer, student_layer, weight=weight,
                         name=name, **kwargs)
        self.mode = check_one_of("mode", mode, self.MODES)

    def compute_loss(self, teacher, student, sample_weight=None):
        mask = student.mask(self.student_layer)
        if mask is None:
            mask = teacher.mask(self.teacher_layer)
        value = self.relation_loss(
            flat_features(teacher[self.teacher_layer], mask),
            flat_features(student[self.student_layer], mask))
        return self.reduce(value)

    def relation_loss(self, teacher, student):
        """The loss of `(batch, features)` float32 teacher and student
        features, a scalar."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `relation_loss`.")

    def get_config(self):
        config = super().get_config()
        if len(self.MODES) > 1:
            config["mode"] = self.mode
        return config


def pairwise_distances(features, eps=1e-12):
    """Euclidean distances between the rows, 0 on the diagonal."""
    squares = ops.sum(ops.square(features), axis=-1)
    gram = ops.matmul(features, ops.transpose(features))
    distances = ops.sqrt(ops.maximum(
        squares[:, None] + squares[None, :] - 2.0 * gram, eps))
    size = ops.shape(features)[0]
    return distances * (1.0 - ops.eye(size, dtype="float32"))


def l2_normalize(x, axis=-1, eps=1e-12):
    """`x / max(‖x‖₂, eps)` along `axis` (PyTorch's `F.normalize`), with a
    finite gradient at `x = 0`."""
    squares = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x / ops.sqrt(ops.maximum(squares, eps * eps))


def l1_normalize(x, axis=-1, eps=1e-12):
    norm = ops.sum(ops.abs(x), axis=axis, keepdims=True)
    return x / ops.maximum(norm, eps)


def smooth_l1(a, b):
    """PyTorch's `smooth_l1_loss` (beta 1), mean over every entry."""
    diff = ops.abs(a - b)
    return ops.mean(ops.where(diff < 1.0, 0.5 * ops.square(diff),
                              diff - 0.5))
