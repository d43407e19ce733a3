"""Top-k soft targets: exact on the stored classes and the tail's mass,
within the documented bound at T = 1, and equal losses through the
Distiller when nothing is dropped."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_cnn
from numpy_reference import log_softmax
from numpy_reference import soft_target_kd

import keras_kd
from keras_kd.top_k_targets import compact_top_k
from keras_kd.top_k_targets import expand_top_k


def soft(logits, temperature):
    return np.exp(log_softmax(np.asarray(logits, np.float64) / temperature))


@pytest.mark.parametrize("temperature", [1.0, 3.0, 4.0])
def test_expanded_soft_targets_are_exact_on_the_top_k_and_the_tail_mass(
        temperature):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(6, 20)).astype("float32")
    compact = compact_top_k(logits, 5)
    assert compact["log_probs"].shape == (6, 5)
    assert compact["tail_log_prob"].shape == (6, 4)  # T = 1, 2, 4, 8
    assert keras.backend.standardize_dtype(compact["indices"].dtype) == (
        "int16")
    dense = np.asarray(expand_top_k(compact, 20, temperature))
    expected, got = soft(logits, temperature), soft(dense, temperature)
    top = np.argsort(-expected, axis=-1)[:, :5]
    rows = np.arange(6)[:, None]
    tail = np.ones_like(expected, bool)
    tail[rows, top] = False
    tail_mass = (expected * tail).sum(-1)
    # Exact at the grid's temperatures; T = 3 is interpolated.
    tolerance = 1e-4 if temperature in (1.0, 4.0) else 0.05
    np.testing.assert_allclose(got[rows, top], expected[rows, top],
                               rtol=tolerance)
    np.testing.assert_allclose(got[tail].reshape(6, 15).sum(-1), tail_mass,
                               rtol=tolerance)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_loss_error_is_within_the_documented_bound(temperature):
    rng = np.random.default_rng(1)
    classes, k = 100, 10
    teacher = rng.normal(scale=4.0, size=(64, classes)).astype("float32")
    student = rng.normal(scale=2.0, size=(64, classes)).astype("float32")
    dense = np.asarray(expand_top_k(compact_top_k(teacher, k), classes,
                                    temperature))
    for row in range(64):
        full = soft_target_kd(teacher[row:row + 1], student[row:row + 1],
                              temperature)
        approx = soft_target_kd(dense[row:row + 1], student[row:row + 1],
                                temperature)
        q = soft(teacher[row], temperature)
        order = np.argsort(-q)
        r = q[order[k:]].sum()
        log_s = np.log(soft(student[row], temperature))[order[k:]]
        bound = temperature ** 2 * r * (
            math.log(classes - k) + log_s.max() - log_s.min())
        assert abs(approx - full) <= bound + 1e-5


def test_a_peaked_teacher_whose_tail_underflows_gives_finite_losses():
    logits = np.zeros((2, 50), "float32")
    logits[:, 3] = 200.0
    dense = expand_top_k(compact_top_k(logits, 2), 50)
    loss = keras_kd.losses.SoftTargetKD(4.0)(dense, np.zeros((2, 50)))
    assert np.isfinite(float(loss))


def test_sequence_targets_expand_row_by_row():
    """`(batch, steps, k)` targets (causal LMs) expand to what each
    `(k,)` row gives alone, by a scatter: no `(…, k, C)` one-hot."""
    logits = np.random.default_rng(3).normal(size=(3, 4, 30)) * 3
    compact = compact_top_k(logits.astype("float32"), 6)
    dense = np.asarray(expand_top_k(compact, 30, 2.0))
    assert dense.shape == (3, 4, 30)
    rows = {name: np.asarray(value).reshape((12,) + value.shape[2:])
            for name, value in compact.items()}
    flat = np.asarray(expand_top_k(rows, 30, 2.0))
    np.testing.assert_allclose(dense.reshape(12, 30), flat, rtol=1e-6)
    # The top 6 are exact log-probabilities.
    top = np.take_along_axis(dense, np.asarray(compact["indices"], "int64"),
                             -1)
    np.testing.assert_allclose(top, compact["log_probs"], rtol=1e-6)


@pytest.mark.parametrize("top_k,match", [
    (0, "top_k=0"), (2.5, "top_k=2.5"), (True, "top_k=True"),
    (10, "smaller than the number of classes"),
])
def test_bad_top_k_is_named(data, top_k, match):
    x, y = data
    with pytest.raises(ValueError, match=match):
        keras_kd.precompute_teacher(
            make_cnn(8, "teacher"), tf.data.Dataset.from_tensor_slices(
                (x, y)), top_k=top_k, verbose=0)


def test_distiller_losses_with_top_k_equal_full_logits_when_one_class_is_left(
        data):
    # With k = C − 1 the single tail class carries its exact mass, so the
    # reconstruction is exact and the losses equal the full-logit ones.
    x, y = data
    teacher, student = make_cnn(8, "teacher"), make_cnn(4, "student")
    distiller = keras_kd.Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), temperature=4.0)
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))
    full = distiller.evaluate(distiller.precompute(unbatched, verbose=0)
                              .batch(8), verbose=0, return_dict=True)
    stored = distiller.precompute(unbatched, top_k=9, verbose=0)
    _, targets = next(iter(stored.batch(32)))
    assert "teacher_logits" not in targets
    assert targets["teacher_top_k"]["log_probs"].shape == (32, 9)
    compact = distiller.evaluate(stored.batch(8), verbose=0,
                                 return_dict=True)
    assert compact["distillation_loss"] == pytest.approx(
        full["distillation_loss"], rel=1e-4)
    # With k = 3 the loss moves, by less than the tail's share.
    three = distiller.evaluate(distiller.precompute(unbatched, top_k=3,
                                                    verbose=0).batch(8),
                               verbose=0, return_dict=True)
    assert three["distillation_loss"] != pytest.approx(
        full["distillation_loss"], rel=1e-6)
    history = distiller.fit(stored.batch(8), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_two_teachers_top_k(data):
    x, y = data
    teachers = [make_cnn(8, "t0"), make_cnn(6, "t1")]
    distiller = keras_kd.Distiller(teachers, make_cnn(4, "student"))
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))
    full = distiller.evaluate(distiller.precompute(unbatched, verbose=0)
                              .batch(8), verbose=0, return_dict=True)
    stored = distiller.precompute(unbatched, top_k=9, verbose=0)
    assert next(iter(stored.batch(4)))[1]["teacher_top_k"][
        "log_probs"].shape == (4, 2, 9)
    compact = distiller.evaluate(stored.batch(8), verbose=0,
                                 return_dict=True)
    assert compact["loss"] == pytest.approx(full["loss"], rel=1e-4)
