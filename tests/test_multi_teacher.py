"""Several teachers: averaged soft targets and indexed layer pairs."""

import keras
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf
from conftest import make_cnn

import keras_kd


def teachers():
    return [make_cnn(8, "teacher_a"), make_cnn(6, "teacher_b")]


def feature(model, layer, x):
    return np.asarray(keras.Model(model.input, model.get_layer(
        layer).output)(x, training=False))


@pytest.mark.parametrize("weights,expected_weights", [
    (None, [0.5, 0.5]), ([1.0, 3.0], [0.25, 0.75])])
def test_soft_targets_are_the_weighted_average_of_teachers(
        data, weights, expected_weights):
    x, y = data
    models = teachers()
    student = make_cnn(4, "student")
    distiller = keras_kd.Distiller(models, student, teacher_weights=weights)
    distiller.compile(temperature=3.0)
    assert distiller.teacher_weights == expected_weights
    logs = distiller.evaluate(x, y, batch_size=32, verbose=0,
                              return_dict=True)
    expected = ref.ensemble_kd(
        [np.asarray(m(x, training=False)) for m in models], expected_weights,
        np.asarray(student(x, training=False)), 3.0)
    assert logs["distillation_loss"] == pytest.approx(expected, rel=1e-5)
    # Not the same as distilling from either teacher alone.
    alone = ref.soft_target_kd(np.asarray(models[0](x)),
                               np.asarray(student(x)), 3.0)
    assert abs(alone - expected) > 1e-3 * expected


def test_index_prefix_picks_the_teacher_of_a_pair(data):
    x, y = data
    models = teachers()
    distiller = keras_kd.Distiller(
        models, make_cnn(4, "student"),
        attention_pairs=[("relu1", "relu1"), ("1:conv2", "conv2", 2.0)])
    distiller.compile(attention_weight=1.0)
    logs = distiller.evaluate(x, y, batch_size=32, verbose=0,
                              return_dict=True)
    student = distiller.student
    expected = ref.attention_transfer(
        feature(models[0], "relu1", x), feature(student, "relu1", x)
    ) + 2.0 * ref.attention_transfer(
        feature(models[1], "conv2", x), feature(student, "conv2", x))
    assert logs["attention_loss"] == pytest.approx(expected, rel=1e-4)
    (term,) = [t for t in distiller.get_config()["terms"]
               if t["config"]["name"] == "attention"]
    assert term["config"]["pairs"][1][0] == "1:conv2"


def test_multi_teacher_fit_save_and_precompute(tmp_path, data):
    x, y = data
    models = teachers()
    distiller = keras_kd.Distiller(models, make_cnn(4, "student"),
                                   teacher_weights=[2.0, 1.0],
                                   attention_pairs=[("1:relu1", "relu1")])
    distiller.compile()
    teacher_weights = [m.get_weights() for m in models]
    distiller.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for model, before in zip(models, teacher_weights):
        for a, b in zip(before, model.get_weights()):
            np.testing.assert_array_equal(a, b)
    live = distiller.evaluate(x, y, batch_size=8, verbose=0,
                              return_dict=True)

    stored = keras_kd.precompute_teacher(
        models, tf.data.Dataset.from_tensor_slices((x, y)),
        attention_layers=["1:relu1"], verbose=0)
    assert stored.element_spec[1]["teacher_logits"].shape == (2, 10)
    offline = distiller.evaluate(stored.batch(8), verbose=0,
                                 return_dict=True)
    for key in ("loss", "distillation_loss", "attention_loss"):
        assert offline[key] == pytest.approx(live[key], rel=1e-5)

    path = str(tmp_path / "distiller.keras")
    distiller.save(path)
    restored = keras.models.load_model(path)
    assert len(restored.teachers) == 2
    assert restored.teacher_weights == pytest.approx([2 / 3, 1 / 3])
    again = restored.evaluate(x, y, batch_size=8, verbose=0,
                              return_dict=True)
    assert again["loss"] == pytest.approx(live["loss"], rel=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    ({"attention_pairs": [("2:relu1", "relu1")]},
     "Unknown teacher index 2 .* 2 teacher"),
    ({"hint_pairs": [("5:gap", "gap")]}, "Unknown teacher index 5"),
    ({"teacher_weights": [1.0]}, "one weight per teacher"),
    ({"teacher_weights": [0.0, 0.0]}, "positive sum"),
    ({"teacher_weights": [1.0, -1.0]}, "must be >= 0"),
])
def test_bad_multi_teacher_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_kd.Distiller(teachers(), make_cnn(4, "student"), **kwargs)


def test_unknown_teacher_index_in_precompute(data):
    x, y = data
    with pytest.raises(ValueError, match="Unknown teacher index 1"):
        keras_kd.precompute_teacher(
            make_cnn(8, "teacher"), tf.data.Dataset.from_tensor_slices(
                (x, y)), attention_layers=["1:relu1"], verbose=0)


def test_precomputed_logits_of_the_wrong_teacher_count(data):
    x, y = data
    models = teachers()
    distiller = keras_kd.Distiller(models, make_cnn(4, "student"))
    distiller.compile()
    single = keras_kd.precompute_teacher(
        models[0], tf.data.Dataset.from_tensor_slices((x, y)), verbose=0)
    with pytest.raises(ValueError, match="2 teacher\\(s\\)"):
        distiller.evaluate(single.batch(8), verbose=0)
