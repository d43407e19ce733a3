"""One tap plan: every value a Distiller's terms read, resolved once.

Each value has a typed key, `TapKey(side, teacher_index, path, kind,
preparation)`: which model, which layer, what is read from it (its output
or its attention probabilities) and, on the teacher side, how the reading
term prepares it (`term.teacher_signature`). The live pass, `precompute`,
the disk store and the shape probe all use these keys, so two terms may
read one layer in any combination: the same raw value is captured once,
values of another kind or preparation never collide, and a term never
receives another term's prepared value unless both name the same
preparation.

Example:

```python
plan = TapPlan(distiller.terms, num_teachers=1)
plan.student_taps        # [Tap("conv2", "output"), ...], each once
plan.teacher_requests    # what precompute stores, keyed "0:conv2|output|raw"
```
"""

import collections

import keras

from keras_kd.capture import LayerCapture
from keras_kd.capture import Tap
from keras_kd.layer_pairs import split_teacher_path
from keras_kd.terms.term import TapValues
from keras_kd.utils import compat

TapKey = collections.namedtuple(
    "TapKey", ["side", "teacher_index", "path", "kind", "preparation"])
TapKey.__doc__ = """The identity of one tapped value (see the module)."""

TeacherRequest = collections.namedtuple(
    "TeacherRequest", ["key", "teacher_index", "tap", "prepare"])
TeacherRequest.__doc__ = """One prepared teacher value: its storage `key`
(a string), the teacher, the `Tap`, and `prepare(value) -> stored
value`."""


def key_string(key):
    """`"0:block2|output|raw"` for a teacher, `"student:block1|output"`."""
    if key.side == "teacher":
        return (f"{key.teacher_index}:{key.path}|{key.kind}|"
                f"{key.preparation}")
    return f"student:{key.path}|{key.kind}"


class _Prepare:
    """`term.prepare_teacher(path, ·)` as a one-argument function."""

    def __init__(self, term, path):
        self.term, self.path = term, path

    def __call__(self, value):
        return self.term.prepare_teacher(self.path, value)


class TapPlan:
    """What `terms` read from the teachers and the student, keyed.

    Args:
        terms: the Distiller's `keras_kd.terms.Term` objects.
        num_teachers: how many teachers `"i:path"` may index.
    """

    def __init__(self, terms, num_teachers):
        self.teacher_requests = []
        self.student_taps = []
        self._teacher_keys, self._student_keys, self._raw = {}, {}, {}
        for term in terms:
            teacher, student, raw = {}, {}, {}
            for path in term.teacher_taps():
                index, layer_path = split_teacher_path(
                    path, num_teachers, f"{term.name} term")
                key = key_string(TapKey(
                    "teacher", index, layer_path, term.tap_kind,
                    term.teacher_signature(path)))
                tap = Tap(layer_path, term.tap_kind)
                if key not in {r.key for r in self.teacher_requests}:
                    self.teacher_requests.append(TeacherRequest(
                        key, index, tap, _Prepare(term, path)))
                teacher[path], raw[path] = key, (index, tap)
            for path in term.student_taps():
                tap = Tap(path, term.tap_kind)
                if tap not in self.student_taps:
                    self.student_taps.append(tap)
                student[path] = key_string(TapKey(
                    "student", None, path, term.tap_kind, None))
            self._teacher_keys[term.name] = teacher
            self._student_keys[term.name] = student
            self._raw[term.name] = raw

    def teacher_taps(self, index):
        """The distinct raw taps of teacher `index`."""
        return list(dict.fromkeys(r.tap for r in self.teacher_requests
                                  if r.teacher_index == index))

    def resolve(self, teachers, student):
        """Resolves every path now: an unknown one fails before training."""
        for index, teacher in enumerate(teachers):
            LayerCapture(teacher, self.teacher_taps(index), "teacher")
        LayerCapture(student, self.student_taps, "student")

    def student_values(self, captured):
        """`({key: value}, {key: mask})` from a student `LayerCapture`."""
        values, masks = {}, {}
        for tap, found in captured.items():
            key = key_string(TapKey("student", None, tap.path, tap.kind,
                                    None))
            values[key] = found.value
            if found.mask is not None:
                masks[key] = found.mask
        return values, masks

    def probe(self, teachers, student, spec):
        """Raw tapped values of one symbolic pass on inputs `spec`, in the
        form `shapes` reads.

        Raises:
            ValueError: when teacher and student reject the same inputs.
        """

        def run(x):
            for model in [student] + teachers:
                if not model.built:  # a subclassed model builds by a call
                    model(x, training=False)
            raw = {}
            for name, model, taps in [
                    (str(i), t, self.teacher_taps(i))
                    for i, t in enumerate(teachers)] + [
                    ("student", student, self.student_taps)]:
                side = "student" if name == "student" else "teacher"
                with LayerCapture(model, taps, side) as capture:
                    model(x, training=False)
                raw[name] = {f"{t.path}|{t.kind}": v.value
                             for t, v in capture.result().items()}
            return raw

        try:
            return compat.compute_output_spec_static(run, spec)
        except ValueError as e:
            if "incompatible with the layer" not in str(e):
                raise
            raise ValueError(
                "Teacher and student must accept the same inputs: the "
                "Distiller gives both the same batch. Received inputs "
                f"{keras.tree.map_structure(lambda t: t.shape, spec)} that "
                f"one of them rejects: {e}") from e

    def shapes(self, term, raw):
        """`({path: shape}, {path: shape})` of `term`'s raw tapped values.

        Args:
            raw: `probe`'s `{"0": {"path|kind": value}, ..., "student":
                {...}}`, the raw values of each teacher and of the student.
        """
        teacher = {path: tuple(raw[str(index)][f"{tap.path}|{tap.kind}"]
                               .shape)
                   for path, (index, tap) in self._raw[term.name].items()}
        student = {path: tuple(raw["student"][f"{path}|{term.tap_kind}"]
                               .shape)
                   for path in self._student_keys[term.name]}
        return teacher, student

    def term_inputs(self, term, teacher, student, labels=None,
                    indices=None):
        """The `TapValues` pair `term.compute_loss` receives.

        Args:
            teacher: `(logits, {key: value}, {key: mask})` of the teachers.
            student: the same of the student.
            labels: the batch's hard labels (given to both sides).
            indices: the batch's example indices, when the data gives them
                (`{"y": labels, "index": ids}`).
        """
        sides = []
        for (logits, values, masks), keys in (
                (teacher, self._teacher_keys[term.name]),
                (student, self._student_keys[term.name])):
            sides.append(TapValues(
                {path: values[key] for path, key in keys.items()},
                {path: masks.get(key) for path, key in keys.items()},
                logits, labels, indices))
        return sides
