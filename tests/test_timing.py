"""The benchmarks' CNN pair and epoch timers."""

import numpy as np

from keras_kd_examples.timing import PAIRS
from keras_kd_examples.timing import make_cnn
from keras_kd_examples.timing import timed_fit


def test_cnn_pair_has_the_paired_layers_and_the_timer_measures_epochs():
    model = make_cnn(4, "student")
    for teacher_layer, student_layer in PAIRS:
        assert model.get_layer(student_layer).output.shape[1] in (14, 7)
    assert model.output.shape == (None, 10)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.zeros((32, 28, 28, 1), "float32")
    y = np.zeros(32, "int64")
    seconds = timed_fit(model, x, y, epochs=3, batch_size=16)
    assert 0 < seconds < 60
