"""`keras_kd.callbacks.DistillationTensorBoard`: what lands in the event
files."""

import glob

import keras
import numpy as np
import pytest
from conftest import make_cnn
from conftest import make_token_transformer

import keras_kd
from keras_kd.tensorboard_view import _side_by_side


def read_events(log_dir):
    tf = pytest.importorskip("tensorflow")
    scalars, images = {}, {}
    for path in glob.glob(f"{log_dir}/**/events.out.tfevents.*",
                          recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                if value.metadata.plugin_data.plugin_name == "images":
                    images.setdefault(value.tag, []).append(
                        (event.step, tensor))
                else:
                    scalars.setdefault(value.tag, []).append(
                        (event.step, float(tensor)))
    return scalars, images


def test_term_losses_and_attention_maps_side_by_side(data, tmp_path):
    x, y = data
    keras.utils.set_random_seed(0)
    distiller = keras_kd.Distiller(make_cnn(8, "teacher"),
                                   make_cnn(4, "student"),
                                   attention_pairs=[("conv2", "relu1")])
    distiller.compile(optimizer="adam")
    board = keras_kd.callbacks.DistillationTensorBoard(
        tmp_path, images=x[:3], every=2)
    distiller.fit(x, y, batch_size=16, epochs=3, verbose=0,
                  callbacks=[board])
    scalars, images = read_events(tmp_path)
    for tag in ("terms/loss", "terms/student_loss", "terms/distillation_loss",
                "terms/attention_loss"):
        assert [step for step, _ in scalars[tag]] == [0, 1, 2], tag
    assert all(np.isfinite(v) for _, v in scalars["terms/attention_loss"])
    (tag,) = images
    assert tag == "attention/attention/conv2 | relu1"
    assert [step for step, _ in images[tag]] == [0, 2]  # every 2 epochs
    # One encoded PNG per example (3), width 6 + 1 + 6 at the teacher's
    # 6 x 6 map of conv2.
    encoded = images[tag][0][1]
    assert encoded[0] == b"13" and encoded[1] == b"6" and len(encoded) == 5
    import tensorflow as tf

    picture = tf.io.decode_png(encoded[2]).numpy()
    assert picture.shape == (6, 13, 1)
    assert np.all(picture[:, 6] == 255)  # the white gap between the two


def test_attention_probabilities_of_transformers(tmp_path):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).integers(0, 20, (8, 6)).astype("int32")
    y = np.zeros(8, "int32")
    distiller = keras_kd.Distiller(
        make_token_transformer(4, "teacher"), make_token_transformer(
            2, "student"), terms=[keras_kd.terms.AttentionMapTerm(
                [("mha", "mha")])])
    distiller.compile(optimizer="adam")
    board = keras_kd.callbacks.DistillationTensorBoard(tmp_path, images=x)
    distiller.fit(x, y, epochs=1, verbose=0, callbacks=[board])
    (tag, picture), = board.attention_images()
    assert tag == "attention/attention_map/mha | mha"
    assert picture.shape == (4, 6, 13, 1)  # 6 queries x 6 keys each side
    assert picture.min() >= 0 and picture.max() <= 1


def test_side_by_side_resizes_the_student_to_the_teacher():
    teacher = np.zeros((1, 4, 4), np.float32)
    student = np.arange(4, dtype=np.float32).reshape(1, 2, 2)
    picture = _side_by_side(teacher, student)[0, ..., 0]
    np.testing.assert_array_equal(picture[:, 5:], np.kron(
        student[0], np.ones((2, 2))))


def test_bad_arguments():
    with pytest.raises(ValueError, match="every"):
        keras_kd.callbacks.DistillationTensorBoard("logs", every=0)
