"""Checks of a Distiller's teachers and student, before any training.

Outputs are checked by value, not by layer type: a probe batch whose
outputs are all non-negative and sum to 1 per row means the model ends in
a softmax (a layer, an activation, `ops.softmax` in a `Lambda` or in a
subclassed `call`), and the Distiller, which applies its own temperature
softmax, would silently train on probabilities as if they were logits.
"""

import keras
import numpy as np

from keras_kd.utils import compat


def as_teacher_list(teacher):
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [
        teacher]
    if not teachers:
        raise ValueError(
            "Argument `teacher` must be a keras.Model or a non-empty list of "
            f"them. Received: teacher={teacher!r}")
    if len({id(t) for t in teachers}) != len(teachers):
        raise ValueError(
            "Argument `teacher` lists the same model more than once. "
            f"Received: {[t.name for t in teachers]}")
    return teachers


def check_models(teacher, student):
    for argument, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"Argument `{argument}` must be a `keras.Model`. Received: "
                f"{argument}={model!r} (of type {type(model).__name__})")
    if teacher is student:
        raise ValueError(
            "Arguments `teacher` and `student` must be different model "
            f"objects. Received the same model '{teacher.name}' for both.")
    for argument, model in (("teacher", teacher), ("student", student)):
        if compat.is_graph_model(model) and len(model.outputs) != 1:
            raise ValueError(
                f"The {argument} must have a single output of class logits. "
                f"Received: {argument} '{model.name}' with "
                f"{len(model.outputs)} outputs")
    shapes = [_input_shape(m) for m in (teacher, student)]
    if None not in shapes and len(shapes[0]) == len(shapes[1]) and any(
            a is not None and b is not None and a != b
            for a, b in zip(shapes[0][1:], shapes[1][1:])):
        hint = "Give both models the same input shape."
        if len(shapes[0]) == 4:  # images: resize inside the teacher
            hint = ("Resize inside the teacher: `keras.Sequential(["
                    f"keras.Input({shapes[1][1:]}), keras.layers.Resizing("
                    f"{shapes[0][1]}, {shapes[0][2]}), teacher])`.")
        raise ValueError(
            "Teacher and student must accept the same inputs: the Distiller "
            f"gives both the same batch. Received: teacher '{teacher.name}' "
            f"with input shape {shapes[0]} and student '{student.name}' "
            f"with input shape {shapes[1]}. {hint}")
    classes = [num_classes(m) for m in (teacher, student)]
    if None not in classes and classes[0] != classes[1]:
        raise ValueError(
            "Teacher and student must output logits for the same number of "
            f"classes. Received: teacher '{teacher.name}' with {classes[0]} "
            f"classes and student '{student.name}' with {classes[1]} "
            "classes")


def _input_shape(model):
    if not compat.is_graph_model(model) or len(model.inputs) != 1:
        return None
    return tuple(model.inputs[0].shape)


def logits_rank(model):
    """The rank of a graph model's batched output; `None` if unknown."""
    if not compat.is_graph_model(model):
        return None
    return len(model.outputs[0].shape)


def num_classes(model):
    if not compat.is_graph_model(model):
        return None  # Subclassed model: no symbolic output.
    return model.outputs[0].shape[-1]


def probe_batch(spec, size=4, seed=0):
    """Concrete inputs for `spec` (KerasTensors): normal floats, ones for
    integers (valid token ids), `True` for booleans."""
    rng = np.random.default_rng(seed)

    def make(tensor):
        shape = (size,) + tuple(8 if d is None else d
                                for d in tensor.shape[1:])
        dtype = keras.backend.standardize_dtype(tensor.dtype)
        if dtype == "bool":
            return np.ones(shape, bool)
        if "int" in dtype:
            return np.ones(shape, dtype)
        return rng.normal(size=shape).astype(dtype)

    return keras.tree.map_structure(make, spec)


def check_logits_by_value(models, inputs):
    """Raises for a model whose outputs on `inputs` look like
    probabilities: all non-negative and summing to 1 over the last axis.
    The models run in a `keras.StatelessScope`: no variable changes."""
    for argument, model in models:
        with keras.StatelessScope():  # a probe changes no variable
            outputs = model(inputs, training=False)
        outputs = keras.ops.convert_to_numpy(outputs)
        # A float32 softmax sums to 1 within ~1e-6; 16-bit ones within
        # ~1e-3. The tighter bound keeps random logits of two classes from
        # passing for probabilities (seen: 0.175 + 0.825 = 1.0006).
        tolerance = 1e-5 if outputs.dtype.itemsize >= 4 else 2e-3
        outputs = np.asarray(outputs, "float64")
        if outputs.shape[-1] > 1 and np.all(outputs >= 0) and np.allclose(
                outputs.sum(-1), 1.0, atol=tolerance):
            raise ValueError(
                f"The {argument} must output logits, but the outputs of "
                f"{argument} '{model.name}' on a probe batch are "
                "non-negative and sum to 1 per row: probabilities, from a "
                "softmax somewhere (a layer, an "
                "activation, a `Lambda` or `ops.softmax` in `call`). Remove "
                "the softmax: the Distiller applies its own temperature "
                "softmax. If these really are logits, pass "
                "`check_logits=False`.")


def computes_in_float16(model):
    return any(layer.dtype_policy.compute_dtype == "float16"
               for layer in compat.all_layers(model))


def input_spec(models):
    """Symbolic inputs from the first Functional/Sequential model, if any."""
    for model in models:
        if not compat.is_graph_model(model):
            continue
        try:
            inputs = model.input
        except (AttributeError, ValueError):
            continue
        return keras.tree.map_structure(
            lambda t: keras.KerasTensor(t.shape, t.dtype), inputs)
    return None
