"""LayerCapture: values of any layer from the model's own forward pass."""

import keras
import numpy as np
import pytest
from conftest import make_cnn
from conftest import make_token_transformer

from keras_kd.capture import ATTENTION_PROBABILITIES
from keras_kd.capture import LayerCapture
from keras_kd.capture import Tap
from keras_kd.capture import capture_outputs


class Block(keras.layers.Layer):
    """A layer holding sublayers as attributes (like keras-hub's)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._inner = keras.layers.Dense(6, name="inner_dense")
        self.act = keras.layers.ReLU(name="block_relu")

    def call(self, x):
        return self.act(self._inner(x))


class SubModel(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.c1 = keras.layers.Dense(8, activation="relu")
        self.block = Block(name="block")
        self.c2 = keras.layers.Dense(5)
        self.unused = keras.layers.Dense(3)

    def call(self, x, training=None):
        return self.c2(self.block(self.c1(x)))


def x_vectors(n=4):
    return np.random.default_rng(0).normal(size=(n, 7)).astype("float32")


def test_subclassed_model_attributes_and_sublayers():
    model = SubModel()
    x = x_vectors()
    logits, values = capture_outputs(
        model, ["c1", "block/inner_dense", "block/_inner", "c2"], x)
    hidden = model.c1(x)
    inner = model.block._inner(hidden)
    np.testing.assert_allclose(values["c1"], hidden, atol=1e-6)
    np.testing.assert_allclose(values["block/inner_dense"], inner, atol=1e-6)
    np.testing.assert_allclose(values["block/_inner"], inner, atol=1e-6)
    np.testing.assert_allclose(values["c2"], logits, atol=1e-6)


def test_hooks_leave_no_trace_and_record_only_inside():
    model = make_cnn(4, "student")
    config = model.get_config()
    x = np.zeros((2, 12, 12, 1), "float32")
    with LayerCapture(model, ["relu1", "conv2"]) as capture:
        assert "call" in vars(model.get_layer("relu1"))
        model(x)
    assert set(t.path for t in capture.result()) == {"relu1", "conv2"}
    for layer in model._flatten_layers():
        assert "call" not in vars(layer), layer.name
    assert model.get_config() == config
    model(x)  # a call outside the capture records nothing
    assert len(capture.result()) == 2


def test_tuple_outputs_need_an_index():
    inputs = keras.Input((5, 3))
    sequence, state_h, _ = keras.layers.LSTM(
        4, return_sequences=True, return_state=True, name="lstm")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(state_h + sequence[
        :, -1]))
    x = np.ones((2, 5, 3), "float32")
    with pytest.raises(ValueError, match=r"returns a tuple of 3 values.*"
                                         r"'lstm\[0\]'"):
        capture_outputs(model, ["lstm"], x)
    _, values = capture_outputs(model, ["lstm[1]"], x)
    assert values["lstm[1]"].shape == (2, 4)
    with pytest.raises(ValueError, match=r"indexes the layer's output with "
                                         r"\[7\].*tuple of 3"):
        capture_outputs(model, ["lstm[7]"], x)


def test_a_layer_never_called_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\['unused'\] were not called"):
        capture_outputs(SubModel(), ["unused"], x_vectors())


def test_a_shared_layer_called_twice_is_a_clear_error():
    inputs = keras.Input((4,))
    shared = keras.layers.Dense(4, name="shared")
    model = keras.Model(inputs, shared(shared(inputs)))
    with pytest.raises(ValueError, match="'shared' was called more than "
                                         "once"):
        capture_outputs(model, ["shared"], np.ones((2, 4), "float32"))


def test_unknown_paths_name_the_closest_sublayers():
    with pytest.raises(ValueError, match=r"Unknown student layer "
                                         r"'block/inner_dens'.*"
                                         r"block/inner_dense"):
        LayerCapture(SubModel(), ["block/inner_dens"], "student")


def test_attention_probabilities_of_a_non_attention_layer_is_an_error():
    with pytest.raises(ValueError, match="MultiHeadAttention.*'ln'"):
        LayerCapture(make_token_transformer(2, "t"),
                     [Tap("ln", ATTENTION_PROBABILITIES)])


def test_attention_probabilities_equal_keras_scores_and_output_unchanged():
    model = make_token_transformer(2, "t", mask_zero=True)
    x = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]], "int32")
    tap = Tap("mha", ATTENTION_PROBABILITIES)
    expected_logits = model(x)
    with LayerCapture(model, [tap]) as capture:
        logits = model(x)
    np.testing.assert_allclose(logits, expected_logits, atol=1e-5)
    captured = capture.result()[tap]
    embedded = model.get_layer("embedding")(x)
    _, scores = model.get_layer("mha")(embedded, embedded,
                                       return_attention_scores=True)
    np.testing.assert_allclose(captured.value, scores, atol=1e-6)
    np.testing.assert_array_equal(captured.mask, x != 0)
