"""`fit` under MirroredStrategy (two logical CPUs) matches one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd


def make_model(width, name):
    # No BatchNorm: per-replica batch statistics would legitimately differ.
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                            name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x), name=name)


def run(strategy, teacher_weights, student_weights, x, y, sample_weight):
    with strategy.scope():
        teacher, student = make_model(16, "teacher"), make_model(4, "student")
        teacher.set_weights(teacher_weights)
        student.set_weights(student_weights)
        distiller = keras_kd.Distiller(teacher, student,
                                       attention_pairs=[("conv", "conv")])
        distiller.compile(optimizer=keras.optimizers.SGD(0.5),
                          metrics=["accuracy"], temperature=2.0)
    history = distiller.fit(x, y, sample_weight=sample_weight, epochs=3,
                            batch_size=16, shuffle=False, verbose=0)
    return history.history, [w.numpy() for w in student.weights]


def test_mirrored_strategy_matches_single_device():
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2, "conftest splits the CPU into two devices"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 5, size=(48,))
    sample_weight = rng.uniform(0.5, 1.5, size=(48,)).astype("float32")
    teacher_weights = make_model(16, "t").get_weights()
    student_weights = make_model(4, "s").get_weights()

    single, single_w = run(tf.distribute.get_strategy(), teacher_weights,
                           student_weights, x, y, sample_weight)
    mirrored_strategy = tf.distribute.MirroredStrategy(
        [d.name for d in devices[:2]])
    assert mirrored_strategy.num_replicas_in_sync == 2
    mirrored, mirrored_w = run(mirrored_strategy, teacher_weights,
                               student_weights, x, y, sample_weight)
    for key in ("loss", "student_loss", "distillation_loss",
                "attention_loss"):
        np.testing.assert_allclose(mirrored[key], single[key], rtol=2e-4,
                                   err_msg=key)
    for a, b in zip(mirrored_w, single_w):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    # Training moved away from the start, so the comparison means something.
    assert single["loss"][-1] != pytest.approx(single["loss"][0])
