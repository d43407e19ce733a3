"""The contract of a distillation term.

A term is one weighted loss of the Distiller. It names the teacher and
student layers it reads (`teacher_taps()`, `student_taps()`), builds its
trainable parts from their shapes (`build`), says what of the teacher can be
stored offline (`teacher_signature`, `prepare_teacher`), and computes its
loss from the tapped values keyed by path (`compute_loss`). Its `weight` is
a non-trainable variable, so a callback can change it between epochs.

The Distiller's loss is

```
alpha · hard-label loss + Σ_terms weight · factor · term loss
```

where `factor` is `1 − alpha` for terms with `mixes_with_labels = True`
(Hinton's soft targets) and 1 otherwise.

Example, the distance loss of relational KD (Park et al., "Relational
Knowledge Distillation", CVPR 2019) in a few lines:

```python
import keras
from keras import ops
from keras import ops
import keras_kd

@keras.saving.register_keras_serializable(package="my_terms")
class RKDDistance(keras_kd.terms.Term):
    def __init__(self, teacher_layer, student_layer, **kwargs):
        super().__init__(**kwargs)
        self.teacher_layer, self.student_layer = teacher_layer, student_layer

    def teacher_taps(self):
        return [self.teacher_layer]

    def student_taps(self):
        return [self.student_layer]

    def compute_loss(self, teacher, student, sample_weight=None):
        ...  # teacher[self.teacher_layer], student[self.student_layer]

    def get_config(self):
        return {**super().get_config(), "teacher_layer": self.teacher_layer,
                "student_layer": self.student_layer}
```

See `examples/custom_term.py` for the whole of it.
"""

import collections.abc

import keras
from keras import ops

from keras_kd.capture import OUTPUT
from keras_kd.capture import Tap
from keras_kd.layer_pairs import split_teacher_path
from keras_kd.utils import compat
from keras_kd.utils.validation import check_non_negative


class TapValues(collections.abc.Mapping):
    """Tapped values of one side, keyed by the paths a term asked for.

    `values[path]` is a float tensor; `values.mask(path)` its boolean
    `(batch, steps)` mask or `None`; `values.logits` the model's logits (on
    the teacher side, a list with one tensor per teacher).
    """

    def __init__(self, values, masks, logits):
        self._values = dict(values)
        self._masks = dict(masks)
        self.logits = logits

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
        weight: `≥ 0`, the term's weight; or a `keras.Variable` to share
            (the Distiller shares its `attention_weight` this way).
        name: the term's name; the Distiller logs `f"{name}_loss"`.
    """

    #: Scaled by `1 − alpha` beside the hard-label loss (soft targets).
    mixes_with_labels = False
    #: What a tap of this term reads from a layer: "output" or
    #: "attention_probabilities".
    tap_kind = OUTPUT

    def __init__(self, weight=1.0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(weight, keras.Variable):
            self.weight = weight
        else:
            weight = check_non_negative("weight", weight)
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
        """Names what `prepare_teacher(path, ·)` returns, for precomputed
        data: values stored under another signature are not this term's."""
        return self.tap_kind

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

    def taps(self):
        """`[(side, teacher_index, Tap)]` this term reads."""
        found = []
        for path in self.teacher_taps():
            index, layer_path = split_teacher_path(path, None, "taps")
            found.append(("teacher", index, Tap(layer_path, self.tap_kind)))
        for path in self.student_taps():
            found.append(("student", None, Tap(path, self.tap_kind)))
        return found

    def get_config(self):
        config = super().get_config()
        config.update({"weight": float(self.weight.numpy())})
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
