"""The contract of a distillation term.

A term is one weighted loss of the Distiller, and the one place that owns
its configuration: the layers it reads (`teacher_taps()`, `student_taps()`,
read as `tap_kind`), its weight (a non-trainable variable that callbacks
assign between epochs), its loss and any hyperparameter of its own. It
builds its trainable parts from the tapped shapes (`build`), says what of
the teacher can be stored offline (`teacher_signature`, `prepare_teacher`),
and computes its loss from the tapped values keyed by path
(`compute_loss`). The Distiller's loss is

```
alpha · hard-label loss + Σ_terms weight · factor · term loss
```

where `factor` is `1 − alpha` for terms with `mixes_with_labels = True`
(Hinton's soft targets) and 1 otherwise. Adding a method is one new `Term`
subclass: the Distiller, `precompute` and the callbacks need no edit.

Example, the distance loss of relational KD (Park et al., "Relational
Knowledge Distillation", CVPR 2019); `examples/custom_term.py` has the
whole of it:

```python
import keras
from keras import ops
import keras_kd

@keras.saving.register_keras_serializable(package="my_terms")
class EmbeddingDistance(keras_kd.terms.Term):
    def __init__(self, teacher_layer, student_layer, **kwargs):
        super().__init__(**kwargs)
        self.teacher_layer, self.student_layer = teacher_layer, student_layer

    def teacher_taps(self):
        return [self.teacher_layer]

    def student_taps(self):
        return [self.student_layer]

    def compute_loss(self, teacher, student, sample_weight=None):
        t, s = teacher[self.teacher_layer], student[self.student_layer]
        return ops.mean(ops.square(ops.mean(t, -1) - ops.mean(s, -1)), -1)

    def get_config(self):
        return {**super().get_config(), "teacher_layer": self.teacher_layer,
                "student_layer": self.student_layer}
```
"""

import collections.abc

import keras
from keras import ops

from keras_kd.capture import OUTPUT
from keras_kd.utils import compat
from keras_kd.utils.validation import check_non_negative


class TapValues(collections.abc.Mapping):
    """Tapped values of one side, keyed by the paths a term asked for.

    `values[path]` is a float tensor; `values.mask(path)` its boolean
    `(batch, steps)` mask or `None`; `values.logits` the model's logits (on
    the teacher side, a list with one entry per teacher: a tensor, or a
    dict of top-k targets when the teacher was precomputed with `top_k`);
    `values.labels` the batch's hard labels as the Distiller's loss reads
    them (integer, one-hot or soft rows; `None` where no labels are
    given); `values.indices` the examples' indices in the training set
    where the data gives them as `{"y": labels, "index": ids}` (else
    `None`).
    """

    def __init__(self, values, masks, logits, labels=None, indices=None):
        self._values = dict(values)
        self._masks = dict(masks)
        self.logits = logits
        self.labels = labels
        self.indices = indices

    def __getitem__(self, path):
        try:
            return self._values[path]
        except KeyError:
            raise KeyError(
                f"No tapped value for '{path}'. This term asked for "
                f"{sorted(self._values)}.") from None

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def mask(self, path):
        return self._masks.get(path)


@keras.saving.register_keras_serializable(package="keras_kd")
class Term(keras.layers.Layer):
    """Base class of distillation terms (see the module docstring).

    Subclasses override `teacher_taps`, `student_taps` and `compute_loss`,
    and where needed `build` (trainable parts), `prepare_teacher` and
    `teacher_signature` (what precomputation stores), and `get_config`.

    Args:
        weight: `≥ 0`, the term's weight, kept in the non-trainable
            variable `self.weight`.
        name: the term's name; the Distiller logs `f"{name}_loss"` and
            schedulers address the term by it.
    """

    #: Scaled by `1 − alpha` beside the hard-label loss (soft targets).
    mixes_with_labels = False
    #: What a tap of this term reads from a layer: "output" or
    #: "attention_probabilities".
    tap_kind = OUTPUT
    #: The weight a term gets when none is given.
    default_weight = 1.0

    def __init__(self, weight=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        weight = check_non_negative(
            "weight", self.default_weight if weight is None else weight)
        self.weight = self.add_weight(
            name="weight", shape=(), trainable=False, dtype="float32",
            initializer=keras.initializers.Constant(weight))

    def teacher_taps(self):
        """Teacher layer paths this term reads; `"i:path"` names teacher
        `i`."""
        return []

    def student_taps(self):
        """Student layer paths this term reads."""
        return []

    def build(self, teacher_shapes, student_shapes):
        """Checks shapes and creates trainable parts, once, before training.

        Args:
            teacher_shapes: `{path: shape}` of the tapped teacher values
                (batch axis included), as `teacher_taps()` names them.
            student_shapes: the same for `student_taps()`.
        """

    def teacher_signature(self, path):
        """Names what `prepare_teacher(path, ·)` returns.

        Terms whose signatures agree share one prepared teacher value (and
        one stored copy offline); data stored under another signature is
        not this term's. A term that keeps `prepare_teacher` as it is reads
        the raw value (`"raw"`); one that overrides it gets a signature of
        its own unless it names one here.
        """
        if type(self).prepare_teacher is Term.prepare_teacher:
            return "raw"
        return f"{type(self).__name__}.{self.name}"

    def prepare_teacher(self, path, value):
        """The teacher value as the loss uses it (and precompute stores)."""
        return value

    def compute_loss(self, teacher, student, sample_weight=None):
        """The term's loss, before its weight.

        Args:
            teacher: `TapValues` of `teacher_taps()` (prepared values).
            student: `TapValues` of `student_taps()`.
            sample_weight: optional `(batch,)` weights.

        Returns:
            `(batch,)` per-example values, which the Distiller averages
            with `sample_weight` as a Keras loss does; or a scalar already
            reduced that way (`self.reduce(value)`: divided by the number
            of replicas under a `tf.distribute` strategy).
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `compute_loss`.")

    def reduce(self, values, sample_weight=None):
        """Reduces as a Keras loss does (use it for a scalar you return).

        Per-example `(batch,)` values: their mean with `sample_weight`. A
        scalar (a relational loss over the batch) is kept. Either way the
        result is divided by the number of replicas under a `tf.distribute`
        strategy, so that summing gradients over replicas averages them.
        """
        values = ops.cast(values, "float32")
        if len(values.shape) == 0:
            return compat.scale_for_replicas(values)
        return compat.reduce_per_example(values, sample_weight)

    def reduced_loss(self, teacher, student, sample_weight=None):
        """`compute_loss` as a float32 scalar, reduced as a Keras loss."""
        value = ops.cast(self.compute_loss(teacher, student,
                                           sample_weight=sample_weight),
                         "float32")
        if len(value.shape) == 1:
            return self.reduce(value, sample_weight)
        if len(value.shape) != 0:
            raise ValueError(
                f"Term '{self.name}' must return a scalar or per-example "
                f"values (batch,). Received shape {tuple(value.shape)}")
        return value

    def get_config(self):
        config = super().get_config()
        config.update({"weight": float(ops.convert_to_numpy(self.weight))})
        return config


def as_term_list(terms):
    """Validates the `terms` argument of the Distiller."""
    if terms is None:
        return []
    if isinstance(terms, Term):
        terms = [terms]
    if not isinstance(terms, (list, tuple)) or not all(
            isinstance(t, Term) for t in terms):
        raise TypeError(
            "Argument `terms` must be a list of `keras_kd.terms.Term` "
            f"objects. Received: terms={terms!r}")
    return list(terms)


def check_term_names(terms):
    """Each term of a Distiller needs its own name."""
    names = [term.name for term in terms]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"Each term of a Distiller needs its own name (its loss is "
            f"logged as '<name>_loss'). Received the names {names}; "
            f"repeated: {duplicates}")
