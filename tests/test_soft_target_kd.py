import keras
import numpy as np
import pytest

import keras_kd
from conftest import value_and_gradient
from keras_kd.losses import SoftTargetKD
from numpy_reference import soft_target_kd as reference

TEACHER = np.array([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]], "float32")
STUDENT = np.array([[1.0, 1.0, 0.0], [0.5, 0.5, 2.0]], "float32")


@pytest.mark.parametrize("temperature,golden", [(4.0, 0.8452007352837427),
                                                (1.0, 0.7264722461232076)])
def test_golden_value(temperature, golden):
    assert reference(TEACHER, STUDENT, temperature) == pytest.approx(golden)
    value = float(SoftTargetKD(temperature)(TEACHER, STUDENT))
    assert value == pytest.approx(golden, rel=1e-5)


@pytest.mark.parametrize("temperature", [0.5, 2.0, 3.0, 10.0])
def test_matches_numpy_on_random_logits(temperature):
    rng = np.random.default_rng(int(temperature * 10))
    t = rng.normal(scale=5, size=(16, 10)).astype("float32")
    s = rng.normal(scale=5, size=(16, 10)).astype("float32")
    value = float(SoftTargetKD(temperature)(t, s))
    assert value == pytest.approx(reference(t, s, temperature), rel=1e-4)


def test_zero_when_student_equals_teacher():
    assert float(SoftTargetKD(3.0)(TEACHER, TEACHER)) == pytest.approx(
        0.0, abs=1e-6
    )


def test_finite_value_and_gradient_for_huge_logits():
    t = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], "float32")
    s = np.array([[-1e4, 1e4, 0.0], [1e4, -1e4, 0.0]], "float32")
    value, gradient = value_and_gradient(lambda v: SoftTargetKD(3.0)(t, v),
                                         s)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(gradient))
    assert float(value) == pytest.approx(reference(t, s, 3.0), rel=1e-5)


def test_sample_weight_is_a_weighted_batch_mean():
    weights = np.array([1.0, 0.0], "float32")
    value = float(SoftTargetKD(4.0)(TEACHER, STUDENT, sample_weight=weights))
    only_first = reference(TEACHER[:1], STUDENT[:1], 4.0)
    assert value == pytest.approx(only_first / 2, rel=1e-5)


def test_matches_keras_kl_divergence_on_softened_probabilities():
    temperature = 4.0
    soft = lambda z: keras.ops.softmax(z / temperature)  # noqa: E731
    keras_value = float(keras.losses.KLDivergence()(soft(TEACHER),
                                                    soft(STUDENT)))
    ours = float(SoftTargetKD(temperature)(TEACHER, STUDENT))
    assert ours == pytest.approx(keras_value * temperature**2, rel=1e-4)


@pytest.mark.parametrize("bad", [0, -1, 0.0, "hot", None, True])
def test_bad_temperature(bad):
    with pytest.raises((ValueError, TypeError), match="temperature"):
        SoftTargetKD(temperature=bad)


def test_bad_temperature_message_names_the_value():
    with pytest.raises(ValueError) as info:
        SoftTargetKD(temperature=-1)
    assert "Received: temperature=-1" in str(info.value)


def test_serialization_round_trip():
    loss = SoftTargetKD(temperature=5.0, name="kd")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss)
    )
    assert isinstance(restored, SoftTargetKD)
    assert restored.temperature == 5.0 and restored.name == "kd"
    assert float(restored(TEACHER, STUDENT)) == pytest.approx(
        float(loss(TEACHER, STUDENT))
    )


def test_registered_under_package_name():
    assert keras.saving.get_registered_object(
        "keras_kd>SoftTargetKD"
    ) is keras_kd.losses.SoftTargetKD


def test_fit_smoke_as_a_plain_keras_loss():
    # A student regressing onto fixed teacher logits with this loss alone.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    teacher_logits = (x @ rng.normal(size=(4, 3))).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=SoftTargetKD(2.0))
    history = model.fit(x, teacher_logits, epochs=20, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]
