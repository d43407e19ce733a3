"""Offline distillation: precomputed teacher outputs equal a live teacher."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from conftest import make_cnn
from conftest import make_nested_teacher

PAIRS = [("backbone/relu1", "relu1"), ("backbone/conv2", "conv2", 0.5)]


def unbatched(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y))


@pytest.mark.parametrize("in_memory", [True, False])
def test_precomputed_losses_equal_live_teacher_even_after_nan_teacher(
        data, in_memory):
    x, y = data
    teacher = make_nested_teacher()
    student = make_cnn(4, "student")
    distiller = keras_kd.Distiller(teacher, student, attention_pairs=PAIRS)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), temperature=4.0)
    live = distiller.evaluate(x, y, batch_size=8, verbose=0,
                              return_dict=True)
    precomputed = keras_kd.precompute_teacher(
        teacher, unbatched(x, y), batch_size=5,
        attention_layers=[p[0] for p in PAIRS], in_memory=in_memory,
        verbose=0)
    # Ruin the teacher: a step that used it would give NaN losses.
    for weight in teacher.weights:
        weight.assign(np.full(weight.shape, np.nan, weight.dtype))
    offline = distiller.evaluate(precomputed.batch(8), verbose=0,
                                 return_dict=True)
    history = distiller.fit(precomputed.batch(8), epochs=1, verbose=0)
    for key in ("loss", "student_loss", "distillation_loss",
                "attention_loss"):
        assert offline[key] == pytest.approx(live[key], rel=1e-5), key
        assert np.isfinite(history.history[key][0]), key


def test_shuffled_batches_keep_examples_and_outputs_together(data):
    x, y = data
    teacher = make_cnn(8, "teacher")
    precomputed = keras_kd.precompute_teacher(teacher, unbatched(x, y),
                                              verbose=0)
    expected = teacher.predict(x, verbose=0)
    for xb, targets in precomputed.shuffle(32, seed=1).batch(7):
        np.testing.assert_allclose(
            targets["teacher_logits"],
            teacher.predict(xb, verbose=0), rtol=1e-5, atol=1e-6)
        index = [int(np.argmin(np.abs(x - xi).sum(axis=(1, 2, 3))))
                 for xi in xb.numpy()]
        np.testing.assert_array_equal(targets["y"], y[index])
        np.testing.assert_allclose(targets["teacher_logits"],
                                   expected[index], rtol=1e-5, atol=1e-6)


def test_stored_maps_reproduce_the_attention_map(data):
    x, y = data
    teacher = make_cnn(8, "teacher")
    precomputed = keras_kd.precompute_teacher(
        teacher, unbatched(x, y), attention_layers=["relu1"], verbose=0)
    _, targets = next(iter(precomputed.batch(32)))
    stored = targets["teacher_values"]["0:relu1|output|attention_map(p=2.0)"]
    assert stored.shape == (32, 12, 12, 1)
    features = keras.Model(teacher.inputs,
                           teacher.get_layer("relu1").output).predict(
        x, verbose=0)
    loss = keras_kd.losses.AttentionTransfer()
    student_like = np.random.default_rng(0).normal(
        size=(32, 12, 12, 3)).astype("float32")
    assert float(loss(stored, student_like)) == pytest.approx(
        float(loss(features, student_like)), rel=1e-4)


def test_missing_maps_for_attention_pairs_is_a_clear_error(data):
    x, y = data
    teacher = make_nested_teacher()
    distiller = keras_kd.Distiller(teacher, make_cnn(4, "student"),
                                   attention_pairs=PAIRS)
    distiller.compile()
    logits_only = keras_kd.precompute_teacher(teacher, unbatched(x, y),
                                              verbose=0)
    with pytest.raises(ValueError, match=r"missing: \['0:backbone/relu1\|"
                       r"output\|attention_map\(p=2.0\)', '0:backbone/conv2"):
        distiller.fit(logits_only.batch(8), epochs=1, verbose=0)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"dataset": np.zeros(3)}, TypeError, "dataset"),
    ({"batch_size": 0}, ValueError, "batch_size=0"),
    ({"p": -1}, ValueError, "p=-1"),
])
def test_bad_arguments(data, kwargs, error, match):
    x, y = data
    arguments = {"teacher": make_cnn(8, "teacher"),
                 "dataset": unbatched(x, y), **kwargs}
    with pytest.raises(error, match=match):
        keras_kd.precompute_teacher(**arguments)


def test_distiller_precompute_stores_exactly_its_terms(data):
    x, y = data
    teacher = make_nested_teacher()
    distiller = keras_kd.Distiller(teacher, make_cnn(4, "student"),
                                   attention_pairs=PAIRS,
                                   hint_pairs=[("backbone/conv2", "relu1")])
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), temperature=4.0)
    live = distiller.evaluate(x, y, batch_size=8, verbose=0,
                              return_dict=True)
    stored = distiller.precompute(unbatched(x, y), batch_size=5, verbose=0)
    assert sorted(stored.element_spec[1]["teacher_values"]) == [
        "0:backbone/conv2|output|attention_map(p=2.0)",
        "0:backbone/conv2|output|raw",
        "0:backbone/relu1|output|attention_map(p=2.0)"]
    offline = distiller.evaluate(stored.batch(8), verbose=0,
                                 return_dict=True)
    for key in ("loss", "attention_loss", "hint_loss"):
        assert offline[key] == pytest.approx(live[key], rel=1e-5), key


def test_stored_values_of_another_p_or_teacher_count_are_errors(data):
    x, y = data
    teacher = make_nested_teacher()
    distiller = keras_kd.Distiller(teacher, make_cnn(4, "student"),
                                   attention_pairs=PAIRS[:1])
    distiller.compile()
    other_p = keras_kd.precompute_teacher(
        teacher, unbatched(x, y), attention_layers=["backbone/relu1"], p=3.0,
        verbose=0)
    with pytest.raises(ValueError, match=r"Needed: \['0:backbone/relu1\|"
                                         r"output\|attention_map\(p=2.0\)'\]; "
                                         r"stored: \['0:backbone/relu1\|"
                                         r"output\|attention_map\(p=3.0\)'\]"):
        distiller.evaluate(other_p.batch(8), verbose=0)
    # The Distiller's own loss with p=3 reads them.
    distiller.compile(
        attention_loss_fn=keras_kd.losses.AttentionTransfer(p=3))
    assert np.isfinite(distiller.evaluate(other_p.batch(8), verbose=0,
                                          return_dict=True)["loss"])
    two = keras_kd.precompute_teacher([teacher, make_cnn(8, "second")],
                                      unbatched(x, y), verbose=0)
    with pytest.raises(ValueError, match=r"shape \(None, 2, 10\).*1 "
                                         r"teacher"):
        distiller.evaluate(two.batch(8), verbose=0)


def test_a_batched_dataset_is_a_clear_error(data):
    x, y = data
    with pytest.raises(ValueError, match="must be unbatched.*unbatch"):
        keras_kd.precompute_teacher(make_cnn(8, "teacher"),
                                    unbatched(x, y).batch(4), verbose=0)


@pytest.mark.parametrize("where", ["memory", "zipped", "store"])
def test_sample_weights_pass_through_precompute(data, tmp_path, where):
    x, y = data
    weights = np.linspace(0.0, 2.0, len(y)).astype("float32")
    teacher = make_nested_teacher()
    distiller = keras_kd.Distiller(teacher, make_cnn(4, "student"),
                                   attention_pairs=PAIRS)
    distiller.compile()
    live = distiller.evaluate(x, y, sample_weight=weights, batch_size=8,
                              verbose=0, return_dict=True)
    triples = tf.data.Dataset.from_tensor_slices((x, y, weights))
    stored = distiller.precompute(
        triples, batch_size=5, verbose=0, in_memory=where == "memory",
        directory=str(tmp_path / "store") if where == "store" else None)
    assert len(stored.element_spec) == 3
    offline = distiller.evaluate(stored.batch(8), verbose=0,
                                 return_dict=True)
    for key in ("loss", "student_loss", "distillation_loss",
                "attention_loss"):
        assert offline[key] == pytest.approx(live[key], rel=1e-5), key
