"""Any label form: integer, one-hot with label smoothing, mixup soft labels.

Each loss is checked by value against a hand computation in NumPy.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from conftest import make_cnn
from keras_kd.labels import check_labels
from keras_kd.labels import student_loss
from numpy_reference import log_softmax
from numpy_reference import soft_target_kd


def distiller_and_logits(x, **compile_kwargs):
    distiller = keras_kd.Distiller(make_cnn(8, "teacher"),
                                   make_cnn(4, "student"))
    distiller.compile(alpha=0.4, temperature=2.0, **compile_kwargs)
    t = distiller.teacher.predict(x, verbose=0).astype("float64")
    s = distiller.student.predict(x, verbose=0).astype("float64")
    return distiller, t, s


def test_one_hot_labels_with_label_smoothing_by_value(data):
    x, y = data
    one_hot = keras.utils.to_categorical(y, 10)
    distiller, t, s = distiller_and_logits(
        x, loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                     label_smoothing=0.1))
    logs = distiller.evaluate(x, one_hot, verbose=0, return_dict=True)
    smoothed = one_hot * 0.9 + 0.1 / 10
    hard = -np.mean(np.sum(smoothed * log_softmax(s), -1))
    assert logs["student_loss"] == pytest.approx(hard, rel=1e-5)
    assert logs["loss"] == pytest.approx(
        0.4 * hard + 0.6 * soft_target_kd(t, s, 2.0), rel=1e-5)


def test_mixup_soft_labels_by_value(data):
    x, y = data
    rng = np.random.default_rng(3)
    lam = rng.beta(0.4, 0.4, size=(len(y), 1))
    order = rng.permutation(len(y))
    mixed_x = (lam[:, :, None, None] * x
               + (1 - lam[:, :, None, None]) * x[order]).astype("float32")
    one_hot = keras.utils.to_categorical(y, 10)
    soft = (lam * one_hot + (1 - lam) * one_hot[order]).astype("float32")
    distiller, t, s = distiller_and_logits(
        mixed_x, loss="categorical_crossentropy")  # means from logits
    logs = distiller.evaluate(mixed_x, soft, verbose=0, return_dict=True)
    hard = -np.mean(np.sum(soft * log_softmax(s), -1))
    assert logs["student_loss"] == pytest.approx(hard, rel=1e-5)
    # And it trains on them.
    history = distiller.fit(mixed_x, soft, epochs=1, batch_size=8,
                            verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_the_label_form_must_match_the_loss(data):
    x, y = data
    distiller = keras_kd.Distiller(make_cnn(8, "teacher"),
                                   make_cnn(4, "student"))
    distiller.compile()
    one_hot = keras.utils.to_categorical(y, 10).astype("int32")
    with pytest.raises(ValueError, match="one-hot or soft labels of shape "
                                         r"\(32, 10\).*CategoricalCross"):
        distiller.fit(x, one_hot, verbose=0)
    batched = tf.data.Dataset.from_tensor_slices(
        (x, one_hot.astype("float32"))).batch(8)
    with pytest.raises(ValueError, match="one-hot or soft labels"):
        distiller.fit(batched, verbose=0)
    distiller.compile(loss=keras.losses.CategoricalCrossentropy(
        from_logits=True))
    with pytest.raises(ValueError, match="integer class labels of shape "
                                         r"\(32,\)"):
        distiller.evaluate(x, y, verbose=0)
    with pytest.raises(ValueError, match="sum to 1.*row sums from 2"):
        distiller.evaluate(x, 2 * one_hot.astype("float32"), verbose=0)


def test_out_of_range_integer_labels_are_refused():
    loss = student_loss(None)
    with pytest.raises(ValueError, match=r"\[0, 10\).*from 0 to 10"):
        check_labels(np.arange(11), 10, loss, "y")
    check_labels(np.arange(10), 10, loss, "y")


def test_loss_names_mean_their_logits_classes():
    for name, cls in (("sparse_categorical_crossentropy",
                       keras.losses.SparseCategoricalCrossentropy),
                      ("categorical_crossentropy",
                       keras.losses.CategoricalCrossentropy)):
        loss = student_loss(name)
        assert isinstance(loss, cls) and loss.get_config()["from_logits"]
    with pytest.raises(ValueError, match="from_logits=True"):
        student_loss(keras.losses.SparseCategoricalCrossentropy())
