import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import value_and_gradient
from keras_kd import Distiller
from keras_kd.losses import AttentionTransfer
from keras_kd.utils.resize import area_resize
from numpy_reference import attention_transfer as reference

rng = np.random.default_rng(42)
TEACHER_MAP = rng.normal(size=(2, 4, 4, 3))
STUDENT_MAP = rng.normal(size=(2, 2, 2, 5))


@pytest.mark.parametrize("mode,golden", [("code", 0.05730460193710992),
                                         ("paper", 0.47761189382347913)])
def test_golden_value(mode, golden):
    assert reference(TEACHER_MAP, STUDENT_MAP, mode=mode) == pytest.approx(
        golden
    )
    value = AttentionTransfer(mode=mode)(
        TEACHER_MAP.astype("float32"), STUDENT_MAP.astype("float32")
    )
    assert float(value) == pytest.approx(golden, rel=1e-5)


@pytest.mark.parametrize("mode", ["code", "paper"])
@pytest.mark.parametrize(
    "teacher_shape,student_shape",
    [
        ((4, 7, 7, 32), (4, 7, 7, 8)),  # same size, other channels
        ((4, 14, 14, 16), (4, 7, 7, 4)),  # sizes divide: average pooling
        ((4, 14, 14, 16), (4, 6, 6, 4)),  # sizes don't divide: area weights
        ((4, 5, 9, 8), (4, 10, 3, 8)),  # each side larger along one axis
        ((4, 12, 16), (4, 12, 8)),  # rank 3 (B, T, C)
        ((4, 12, 16), (4, 5, 8)),  # rank 3, different lengths
    ],
)
def test_matches_numpy(mode, teacher_shape, student_shape):
    t = rng.normal(size=teacher_shape).astype("float32")
    s = rng.normal(size=student_shape).astype("float32")
    value = float(AttentionTransfer(mode=mode)(t, s))
    assert value == pytest.approx(reference(t, s, mode=mode), rel=1e-4)


@pytest.mark.parametrize("p", [1.0, 3.0])
def test_other_exponents_match_numpy(p):
    t = rng.normal(size=(3, 6, 6, 4)).astype("float32")
    s = rng.normal(size=(3, 6, 6, 2)).astype("float32")
    value = float(AttentionTransfer(p=p)(t, s))
    assert value == pytest.approx(reference(t, s, p=p), rel=1e-4)


def test_divisible_sizes_equal_average_pooling_of_squared_activations():
    t = rng.normal(size=(2, 14, 14, 4)).astype("float32")
    s = rng.normal(size=(2, 7, 7, 4)).astype("float32")
    # Average-pool |A|² over 2×2 blocks, then channel mean, then normalise.
    qt = (t**2).reshape(2, 7, 2, 7, 2, 4).mean(axis=(2, 4, 5)).reshape(2, -1)
    qs = (s**2).mean(-1).reshape(2, -1)
    qt /= np.linalg.norm(qt, axis=-1, keepdims=True)
    qs /= np.linalg.norm(qs, axis=-1, keepdims=True)
    value = float(AttentionTransfer()(t, s))
    assert value == pytest.approx(np.mean((qs - qt) ** 2), rel=1e-4)


@pytest.mark.parametrize("mode", ["code", "paper"])
def test_identical_maps_give_zero_and_finite_gradient(mode):
    t = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    value, gradient = value_and_gradient(
        lambda s: AttentionTransfer(mode=mode)(t, s), t)
    assert float(value) == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.isfinite(gradient))


def test_all_zero_student_map_is_finite():
    t = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    value, gradient = value_and_gradient(
        lambda s: AttentionTransfer()(t, s), np.zeros((2, 4, 4, 3), "float32"))
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(gradient))


@pytest.mark.parametrize(
    "kwargs,match",
    [({"mode": "fancy"}, "Received: mode='fancy'"),
     ({"p": 0}, "Received: p=0"),
     ({"p": -2}, "Received: p=-2"),
     ({"p": "two"}, "p")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        AttentionTransfer(**kwargs)


def test_rejects_maps_of_wrong_rank():
    with pytest.raises(ValueError, match="teacher_map of shape \\(4, 10\\)"):
        AttentionTransfer()(np.ones((4, 10), "float32"),
                            np.ones((4, 10), "float32"))


def test_rejects_maps_of_different_rank():
    with pytest.raises(ValueError, match="same rank"):
        AttentionTransfer()(np.ones((2, 4, 4, 3), "float32"),
                            np.ones((2, 16, 3), "float32"))


def test_serialization_round_trip():
    loss = AttentionTransfer(p=3, mode="paper")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss)
    )
    assert isinstance(restored, AttentionTransfer)
    assert (restored.p, restored.mode) == (3.0, "paper")
    t = TEACHER_MAP.astype("float32")
    s = STUDENT_MAP.astype("float32")
    assert float(restored(t, s)) == pytest.approx(float(loss(t, s)))


def test_fit_smoke_student_learns_teacher_attention():
    # A conv layer trained with AT alone moves its map towards a target map.
    x = rng.normal(size=(32, 8, 8, 2)).astype("float32")
    target = np.abs(x[..., :1]) ** 3 + 0.1
    model = keras.Sequential(
        [keras.Input((8, 8, 2)), keras.layers.Conv2D(4, 3, padding="same")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss=AttentionTransfer())
    history = model.fit(x, target, epochs=15, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("size_in,size_out", [((14, 14), (7, 7)),
                                              ((14, 10), (6, 4))])
def test_area_resize_equals_tensorflow_area_interpolation(size_in, size_out):
    x = np.random.default_rng(0).random((2, *size_in, 3)).astype("float32")
    expected = tf.image.resize(x, size_out, method="area").numpy()
    np.testing.assert_allclose(area_resize(x, size_out), expected,
                               rtol=1e-5, atol=1e-6)


def test_attention_pairs_of_different_sizes_compile_with_xla():
    # tf.image.resize(area) has no XLA kernel; our resize must compile.
    def cnn(width, pool, name):
        inputs = keras.Input((12, 12, 1))
        x = keras.layers.Conv2D(width, 3, padding="same", name="conv")(inputs)
        x = keras.layers.MaxPooling2D(pool, name="map")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)

    x = np.random.default_rng(0).random((8, 12, 12, 1)).astype("float32")
    y = np.arange(8) % 10
    results = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        distiller = Distiller(cnn(8, 1, "teacher"), cnn(4, 2, "student"),
                              attention_pairs=[("map", "map")])
        distiller.compile(jit_compile=jit)
        results.append(distiller.evaluate(x, y, verbose=0, return_dict=True))
    assert results[1]["attention_loss"] == pytest.approx(
        results[0]["attention_loss"], rel=1e-5)
