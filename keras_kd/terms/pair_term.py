"""Terms over pairs of teacher and student layers, with per-pair weights."""

from keras import ops

from keras_kd.layer_pairs import pairs_to_config
from keras_kd.layer_pairs import parse_pairs
from keras_kd.layer_pairs import teacher_key
from keras_kd.terms.loss_term import LossTerm
from keras_kd.utils import compat


class PairTerm(LossTerm):
    """`Σ_i w_i · loss_fn(teacher_i, student_i)` over layer pairs.

    Subclasses give the default `loss_fn` and may override `pair_loss`.
    Masks: a sequence feature that carries a Keras mask (the student's, or
    the teacher's when the student has none) is passed to `loss_fn` as the
    Keras mask of its `y_pred`, and per-example `sample_weight` is given
    the shape `(batch, 1)` so that it weighs every valid position.

    Args:
        pairs: list of `(teacher_layer, student_layer[, weight])`; a teacher
            path `"i:path"` names teacher `i`.
        loss_fn: a `keras.losses.Loss` (or a function
            `fn(y_true, y_pred)`), given the teacher value as `y_true`.
        weight: the term's weight, or a shared `keras.Variable`.
        name: the term's name (the Distiller logs `f"{name}_loss"`).
    """

    def __init__(self, pairs, loss_fn=None, weight=None, name=None,
                 **kwargs):
        self.pairs = parse_pairs(pairs, "pairs")
        if not self.pairs:
            raise ValueError(
                f"Argument `pairs` of {type(self).__name__} must name at "
                f"least one (teacher_layer, student_layer) pair. Received: "
                f"pairs={pairs!r}")
        super().__init__(loss_fn=loss_fn, weight=weight, name=name, **kwargs)

    def teacher_taps(self):
        return [teacher_key(p) for p in self.pairs]

    def student_taps(self):
        return [p.student_layer for p in self.pairs]

    def compute_loss(self, teacher, student, sample_weight=None):
        total = ops.zeros((), "float32")
        for position, pair in enumerate(self.pairs):
            path = teacher_key(pair)
            mask = student.mask(pair.student_layer)
            if mask is None:
                mask = teacher.mask(path)
            value = self.pair_loss(position, teacher[path],
                                   student[pair.student_layer], mask,
                                   sample_weight)
            total += pair.weight * ops.cast(value, "float32")
        return total

    def pair_loss(self, position, teacher_value, student_value, mask,
                  sample_weight):
        """`loss_fn` on one pair, with the mask attached to the student."""
        student_value = masked(ops.cast(student_value, "float32"), mask)
        return self.loss_fn(ops.cast(teacher_value, "float32"),
                            student_value,
                            sample_weight=position_weights(sample_weight,
                                                           mask))

    def get_config(self):
        config = super().get_config()
        config.update({"pairs": pairs_to_config(self.pairs)})
        return config


def masked(value, mask):
    """`value` with `mask` as its Keras mask (a fresh tensor)."""
    if mask is None:
        return value
    value = ops.multiply(value, ops.ones((), value.dtype))
    compat.set_keras_mask(value, mask)
    return value


def position_weights(sample_weight, mask):
    """Per-example weights shaped to weigh each masked position."""
    if sample_weight is None or mask is None:
        return sample_weight
    sample_weight = ops.convert_to_tensor(sample_weight)
    if len(sample_weight.shape) == 1:
        return ops.expand_dims(sample_weight, -1)
    return sample_weight
