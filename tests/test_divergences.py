"""The language-model divergences against NumPy: golden values, masks,
exact zeros, half precision, bad arguments and saving."""

import keras
import numpy as np
import pytest

import keras_kd
from conftest import value_and_gradient
from keras_kd.utils import compat
from numpy_reference import divergence

TEACHER = np.array([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]], "float32")
STUDENT = np.array([[1.0, 1.0, 0.0], [0.5, 0.5, 2.0]], "float32")

LOSSES = {
    "forward": lambda t: keras_kd.losses.SoftTargetKD(temperature=t),
    "reverse": lambda t: keras_kd.losses.ReverseKL(temperature=t),
    "jsd": lambda t: keras_kd.losses.GeneralizedJSD(0.9, temperature=t),
    "skew": lambda t: keras_kd.losses.SkewKL(0.1, temperature=t),
    "skew_reverse": lambda t: keras_kd.losses.SkewReverseKL(
        0.1, temperature=t),
}
COEFFICIENT = {"jsd": 0.9, "skew": 0.1, "skew_reverse": 0.1}

# From tests/numpy_reference.py in float64 (T = 1 and T = 2).
GOLDEN = {
    "forward": (0.7264722461232076, 0.8504794943493489),
    "reverse": (0.7536306445987679, 0.8076888138488116),
    "jsd": (0.06487027364969986, 0.07241136600146456),
    "skew": (0.551561902047292, 0.6689544126637273),
    "skew_reverse": (0.562440507934842, 0.6498483206109786),
}


@pytest.mark.parametrize("kind", sorted(LOSSES))
@pytest.mark.parametrize("position,temperature", [(0, 1.0), (1, 2.0)])
def test_golden_values(kind, position, temperature):
    golden = GOLDEN[kind][position]
    assert divergence(kind, TEACHER, STUDENT, temperature,
                      COEFFICIENT.get(kind)) == pytest.approx(golden)
    value = float(LOSSES[kind](temperature)(TEACHER, STUDENT))
    assert value == pytest.approx(golden, rel=1e-5)


def test_jensen_shannon_at_one_half():
    value = float(keras_kd.losses.GeneralizedJSD(0.5)(TEACHER, STUDENT))
    assert value == pytest.approx(0.1677807510639691, rel=1e-5)
    assert value < np.log(2)  # bounded


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_masked_positions_count_for_nothing(kind):
    rng = np.random.default_rng(0)
    t = rng.normal(scale=3, size=(2, 5, 7)).astype("float32")
    s = rng.normal(scale=3, size=(2, 5, 7)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    expected = divergence(kind, t, s, 2.0, COEFFICIENT.get(kind), mask)
    padded = s.copy()
    padded[~mask] = 1e3  # anything at padded positions
    for student in (s, padded):
        student = keras.ops.convert_to_tensor(student)
        compat.set_keras_mask(student, keras.ops.convert_to_tensor(mask))
        value = float(LOSSES[kind](2.0)(t, student))
        assert value == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_exact_zeros_give_finite_values_and_gradients(kind):
    t = np.array([[-np.inf, 2.0, 0.0], [1.0, -np.inf, -np.inf]], "float32")
    s = np.array([[3.0, -2.0, 0.5], [-10.0, 10.0, 0.0]], "float32")
    value, gradient = value_and_gradient(lambda v: LOSSES[kind](1.0)(t, v),
                                         s)
    assert np.isfinite(value) and np.all(np.isfinite(gradient))
    if kind != "reverse":  # reverse KL is infinite where p = 0 < q
        assert float(value) == pytest.approx(divergence(
            kind, t, s, 1.0, COEFFICIENT.get(kind)), rel=1e-4)


@pytest.mark.parametrize("kind", sorted(LOSSES))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs_are_computed_in_float32(kind, dtype):
    rng = np.random.default_rng(1)
    t = rng.normal(scale=8, size=(4, 50)).astype("float32")
    s = rng.normal(scale=8, size=(4, 50)).astype("float32")
    value = LOSSES[kind](2.0)(keras.ops.cast(t, dtype),
                              keras.ops.cast(s, dtype))
    rounded = [np.asarray(keras.ops.cast(keras.ops.cast(a, dtype),
                                         "float32")) for a in (t, s)]
    assert np.isfinite(float(value))
    assert float(value) == pytest.approx(divergence(
        kind, *rounded, 2.0, COEFFICIENT.get(kind)), rel=1e-4)


@pytest.mark.parametrize("cls", [keras_kd.losses.GeneralizedJSD,
                                 keras_kd.losses.SkewKL,
                                 keras_kd.losses.SkewReverseKL])
@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5])
def test_coefficients_outside_the_open_unit_interval(cls, bad):
    with pytest.raises(ValueError, match=r"must be (> 0|in \(0, 1\))"):
        cls(bad)


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_serialization_round_trip(kind):
    loss = LOSSES[kind](3.0)
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss))
    assert type(clone) is type(loss)
    assert clone.get_config() == loss.get_config()
    assert float(clone(TEACHER, STUDENT)) == pytest.approx(
        float(loss(TEACHER, STUDENT)), rel=1e-6)


@pytest.mark.parametrize("kind", ["reverse", "jsd"])
def test_fit_with_a_divergence_as_the_soft_target_loss(kind, data):
    from conftest import make_cnn

    x, y = data
    loss = LOSSES[kind](2.0)
    distiller = keras_kd.Distiller(make_cnn(8, "teacher"),
                                   make_cnn(4, "student"))
    distiller.compile(distillation_loss_fn=loss)
    assert float(distiller.temperature) == 2.0  # the loss's, now the term's
    t = np.asarray(distiller.teacher(x, training=False))
    s = np.asarray(distiller.student(x, training=False))
    logs = distiller.evaluate(x, y, batch_size=32, verbose=0,
                              return_dict=True)
    assert logs["distillation_loss"] == pytest.approx(divergence(
        kind, t, s, 2.0, COEFFICIENT.get(kind)), rel=1e-5)
    history = distiller.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["distillation_loss"][0])
