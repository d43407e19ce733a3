"""Checks of the models before training: inputs, and logits by value."""

import keras
import numpy as np
import pytest

import keras_kd
from conftest import make_cnn
from keras_kd import model_checks
from keras_kd.model_checks import probe_batch
from test_distiller import CallCounter


def test_a_teacher_with_other_input_sizes_is_told_to_resize():
    teacher = make_cnn(8, "teacher", input_shape=(32, 32, 1))
    with pytest.raises(ValueError, match=r"\(None, 32, 32, 1\).*"
                                         r"\(None, 12, 12, 1\).*Resizing"
                                         r"\(32, 32\)"):
        keras_kd.Distiller(teacher, make_cnn(4, "student"))


def test_the_probe_changes_no_variable():
    inputs = keras.Input((12, 12, 1))
    counter = CallCounter(name="counter")
    teacher = keras.Model(inputs, make_cnn(8, "core")(counter(inputs)),
                          name="teacher")
    keras_kd.Distiller(teacher, make_cnn(4, "student"))
    assert float(counter.count) == 0.0


def test_probe_batch_makes_valid_inputs_of_each_dtype():
    spec = {"ids": keras.KerasTensor((None, None), "int32"),
            "mask": keras.KerasTensor((None, 5), "bool"),
            "x": keras.KerasTensor((None, 3), "float32")}
    batch = probe_batch(spec)
    assert batch["ids"].shape == (4, 8) and np.all(batch["ids"] == 1)
    assert batch["mask"].dtype == bool and batch["mask"].all()
    assert batch["x"].dtype == np.float32 and batch["x"].std() > 0


def test_two_class_logits_near_a_probability_row_are_not_refused():
    """Random-init logits of two classes can land within 1e-3 of summing
    to 1 (the text student at seed 2 gave 0.1755 + 0.8251 = 1.0006); a
    float32 softmax sums to 1 within 1e-6, and only that is refused."""
    inputs = keras.Input((3,))
    near = keras.Model(inputs, keras.layers.Dense(
        2, kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant([0.1755, 0.8251]))(
            inputs))
    model_checks.check_logits_by_value([("student", near)],
                                       np.ones((4, 3), "float32"))
    softmax = keras.Model(inputs, keras.layers.Dense(
        2, activation="softmax")(inputs))
    with pytest.raises(ValueError, match="must output logits"):
        model_checks.check_logits_by_value(
            [("student", softmax)],
            np.random.default_rng(0).normal(size=(4, 3)).astype("float32"))
