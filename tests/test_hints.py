"""FitNets hint pairs with trainable connectors."""

import keras
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf
from conftest import make_cnn

import keras_kd


def feature(model, layer, x):
    return np.asarray(keras.Model(model.input, model.get_layer(
        layer).output)(x, training=False))


def make_distiller(pairs=(("relu1", "conv2"),), **compile_kwargs):
    teacher, student = make_cnn(8, "teacher"), make_cnn(4, "student")
    distiller = keras_kd.Distiller(teacher, student, hint_pairs=list(pairs))
    distiller.compile(**compile_kwargs)
    return distiller


def test_connector_is_a_1x1_conv_and_hint_loss_matches_numpy(data):
    x, y = data
    distiller = make_distiller(alpha=0.2, hint_weight=3.0)
    (connector,) = distiller.connectors
    assert isinstance(connector, keras.layers.Conv2D)
    assert connector.kernel.shape == (1, 1, 4, 8)
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(1, 1, 4, 8)).astype("float32")
    bias = rng.normal(size=(8,)).astype("float32")
    connector.set_weights([kernel, bias])

    logs = distiller.evaluate(x, y, batch_size=32, verbose=0,
                              return_dict=True)
    teacher_map = feature(distiller.teacher, "relu1", x)      # 12×12×8
    student_map = feature(distiller.student, "conv2", x)      # 6×6×4
    projected = np.einsum("bhwc,cd->bhwd", student_map.astype(np.float64),
                          kernel[0, 0]) + bias
    expected = np.mean((ref.area_pool(teacher_map, (6, 6)) - projected) ** 2)
    assert logs["hint_loss"] == pytest.approx(expected, rel=1e-4)
    assert logs["loss"] == pytest.approx(
        0.2 * logs["student_loss"] + 0.8 * logs["distillation_loss"]
        + 3.0 * logs["hint_loss"], rel=1e-5)


def test_vector_hint_uses_a_dense_connector(data):
    x, y = data
    distiller = make_distiller(pairs=[("gap", "gap", 0.5)])
    (connector,) = distiller.connectors
    assert isinstance(connector, keras.layers.Dense)
    kernel, bias = connector.get_weights()
    logs = distiller.evaluate(x, y, batch_size=32, verbose=0,
                              return_dict=True)
    projected = feature(distiller.student, "gap", x) @ kernel + bias
    expected = 0.5 * np.mean((feature(distiller.teacher, "gap", x)
                              - projected) ** 2)
    assert logs["hint_loss"] == pytest.approx(expected, rel=1e-4)


def test_connectors_train_but_stay_out_of_the_student(tmp_path, data):
    x, y = data
    student_params = make_cnn(4, "reference").count_params()
    distiller = make_distiller(optimizer=keras.optimizers.Adam(1e-2))
    connector_before = [w.copy() for w in distiller.connectors[0]
                        .get_weights()]
    first = distiller.evaluate(x, y, verbose=0, return_dict=True)
    distiller.fit(x, y, epochs=8, batch_size=16, verbose=0)
    last = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert last["hint_loss"] < first["hint_loss"]
    assert not np.allclose(connector_before[0],
                           distiller.connectors[0].get_weights()[0])
    # The student has exactly its own parameters, in memory and on disk.
    assert distiller.student.count_params() == student_params
    path = str(tmp_path / "student.keras")
    distiller.student.save(path)
    assert keras.models.load_model(path).count_params() == student_params
    connector_params = 4 * 8 + 8
    assert sum(int(np.prod(v.shape)) for v in distiller.trainable_variables
               ) == student_params - 2 * 4 + connector_params  # BN stats
    # A saved Distiller reloads its trained connectors.
    distiller.save(str(tmp_path / "distiller.keras"))
    restored = keras.models.load_model(str(tmp_path / "distiller.keras"))
    np.testing.assert_array_equal(restored.connectors[0].get_weights()[0],
                                  distiller.connectors[0].get_weights()[0])
    assert restored.terms[1].pairs == distiller.terms[1].pairs


def test_hint_weight_schedule_and_precomputed_hints(data):
    x, y = data
    distiller = make_distiller(alpha=0.5)
    live = distiller.evaluate(x, y, batch_size=8, verbose=0,
                              return_dict=True)
    stored = keras_kd.precompute_teacher(
        distiller.teacher, tf.data.Dataset.from_tensor_slices((x, y)),
        hint_layers=["relu1"], verbose=0)
    offline = distiller.evaluate(stored.batch(8), verbose=0,
                                 return_dict=True)
    assert offline["hint_loss"] == pytest.approx(live["hint_loss"], rel=1e-5)
    with pytest.raises(ValueError,
                       match=r"missing: \['0:relu1\|output\|raw'\]"):
        logits_only = keras_kd.precompute_teacher(
            distiller.teacher, tf.data.Dataset.from_tensor_slices((x, y)),
            verbose=0)
        distiller.evaluate(logits_only.batch(8), verbose=0)

    distiller.compile(optimizer=keras.optimizers.SGD(0.0), alpha=0.5,
                      jit_compile=True)
    history = distiller.fit(
        x, y, epochs=2, batch_size=32, verbose=0, shuffle=False,
        callbacks=[keras_kd.callbacks.LossWeightScheduler(
            hint_weight=lambda epoch: [0.0, 2.0][epoch])])
    losses = history.history["loss"]
    hint = history.history["hint_loss"]
    assert history.history["hint_weight"] == [0.0, 2.0]
    assert losses[1] - losses[0] == pytest.approx(2.0 * hint[1], rel=1e-4)


def test_bad_hint_pairs_are_clear_errors():
    with pytest.raises(ValueError, match="same rank.*'gap'.*'conv2'"):
        keras_kd.Distiller(make_cnn(8, "teacher"), make_cnn(4, "student"),
                           hint_pairs=[("gap", "conv2")])
    with pytest.raises(ValueError, match="hint_weight=-1"):
        make_distiller(hint_weight=-1)
    with pytest.raises(ValueError, match="hint_pairs entry"):
        keras_kd.Distiller(make_cnn(8, "teacher"), make_cnn(4, "student"),
                           hint_pairs=[("gap",)])
