"""Keras 3 → tf_keras twins: numerics, names, training behaviour, errors."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_kd.compression import to_tf_keras


def cnn_battery():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    a = keras.layers.SeparableConv2D(8, 3, padding="same")(x)
    b = keras.layers.DepthwiseConv2D(3, padding="same",
                                     activation="relu")(x)
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.Add()([x, keras.layers.Conv2D(16, 1)(x)])
    x = keras.layers.LeakyReLU(negative_slope=0.2)(x)
    x = keras.layers.Activation("swish")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Reshape((16, 16))(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(5)(x)
    return keras.Model(inputs, outputs, name="battery"), (4, 16, 16, 3)


def nested_model():
    block = keras.Sequential([
        keras.Input((8, 8, 4)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(),
    ], name="block")
    inputs = keras.Input((8, 8, 4))
    x = block(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x),
                       name="nested"), (4, 8, 8, 4)


def transformer_block():
    tokens = keras.Input((12,), dtype="int32")
    x = keras.layers.Embedding(50, 16)(tokens)
    y = keras.layers.LayerNormalization()(x)
    y = keras.layers.MultiHeadAttention(num_heads=4, key_dim=4)(y, y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.LayerNormalization()(x)
    x = keras.layers.Dense(32, activation="gelu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, keras.layers.Dense(4)(x),
                       name="transformer"), (3, 12)


def recurrent(kind, mask):
    def build():
        tokens = keras.Input((10,), dtype="int32")
        x = keras.layers.Embedding(30, 8, mask_zero=mask)(tokens)
        layer = {"lstm": keras.layers.LSTM(6, return_sequences=True),
                 "gru": keras.layers.GRU(6, return_sequences=True),
                 "simple_rnn": keras.layers.SimpleRNN(
                     6, return_sequences=True),
                 "bilstm": keras.layers.Bidirectional(
                     keras.layers.LSTM(3, return_sequences=True))}[kind]
        x = keras.layers.GlobalAveragePooling1D()(layer(x))
        return keras.Model(tokens, keras.layers.Dense(4)(x),
                           name=f"{kind}_{mask}"), (4, 10)

    build.__name__ = f"{kind}{'_masked' if mask else ''}"
    return build


def masking_lstm():
    inputs = keras.Input((9, 3))
    x = keras.layers.Masking()(inputs)
    x = keras.layers.LSTM(5)(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x),
                       name="masking"), (4, 9, 3)


RECURRENT = [recurrent(kind, mask) for kind in ("lstm", "gru", "simple_rnn",
                                                "bilstm")
             for mask in (False, True)] + [masking_lstm]


@pytest.mark.parametrize("builder", RECURRENT, ids=lambda b: b.__name__)
def test_recurrent_and_masked_twins_match_on_padded_inputs(builder):
    model, shape = builder()
    twin = to_tf_keras(model)
    rng = np.random.default_rng(1)
    if len(shape) == 2:
        x = rng.integers(1, 30, shape).astype("int32")
    else:
        x = rng.normal(size=shape).astype("float32")
    x[::2, shape[1] // 2:] = 0  # trailing padding on half of the batch
    np.testing.assert_allclose(twin(x).numpy(), np.asarray(model(x)),
                               atol=1e-5)
    assert "NotEqual" not in [type(layer).__name__ for layer in twin.layers]


@pytest.mark.parametrize("builder", [cnn_battery, nested_model,
                                     transformer_block])
def test_twin_matches_original(builder):
    import tf_keras

    model, shape = builder()
    # Non-trivial BatchNorm statistics, so inference mode is really tested.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.3))
            layer.moving_variance.assign(
                np.full(layer.moving_variance.shape, 2.0))
    twin = to_tf_keras(model)
    assert isinstance(twin, tf_keras.Model)
    rng = np.random.default_rng(1)
    if len(shape) == 2:
        x = rng.integers(0, 50, shape).astype("int32")
    else:
        x = rng.normal(size=shape).astype("float32")
    diff = np.max(np.abs(np.asarray(model(x)) - twin(x).numpy()))
    assert diff <= 1e-4
    assert twin.count_params() == model.count_params()


def test_twin_keeps_layer_names():
    model, _ = cnn_battery()
    twin = to_tf_keras(model)
    names = {layer.name for layer in model.layers}
    assert names == {layer.name for layer in twin.layers}


def test_nested_models_are_inlined():
    model, _ = nested_model()
    twin = to_tf_keras(model)
    assert "block" not in [layer.name for layer in twin.layers]
    assert any(type(layer).__name__ == "Conv2D" for layer in twin.layers)


def test_dropout_switches_on_when_fine_tuning():
    # Keras 3 records training=False in Dropout nodes; the twin must not.
    inputs = keras.Input((64,))
    outputs = keras.layers.Dropout(0.5)(keras.layers.Dense(64)(inputs))
    twin = to_tf_keras(keras.Model(inputs, outputs))
    x = np.ones((8, 64), "float32")
    assert np.array_equal(twin(x, training=False).numpy(),
                          twin(x, training=False).numpy())
    assert np.mean(twin(x, training=True).numpy() == 0) > 0.2


def test_imported_names_do_not_collide_with_new_tf_keras_layers():
    import tf_keras

    model, _ = cnn_battery()
    twin = to_tf_keras(model)
    new_layer = tf_keras.layers.Conv2D(4, 1)
    assert new_layer.name not in {layer.name for layer in twin.layers}


def test_unsupported_layers_are_named():
    inputs = keras.Input((8, 8))
    x = keras.layers.LayerNormalization(rms_scaling=True, name="rms_ln")(
        inputs)
    x = keras.layers.RMSNormalization(name="rms")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(ValueError) as info:
        to_tf_keras(model)
    message = str(info.value)
    assert "rms_ln" in message and "rms_scaling=True" in message
    assert "rms (RMSNormalization)" in message


def test_custom_layer_is_named():
    class Twice(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    inputs = keras.Input((4,))
    model = keras.Model(inputs, Twice(name="twice")(inputs))
    with pytest.raises(ValueError, match="twice \\(Twice\\)"):
        to_tf_keras(model)


def test_subclassed_model_is_rejected():
    class Tiny(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed"):
        to_tf_keras(Tiny())


def test_importing_tfmot_leaves_tf_keras_and_environment_alone():
    script = """
import os, sys
import keras, tensorflow as tf
import keras_kd.compression as c
assert "tensorflow_model_optimization" not in sys.modules  # lazy
inputs = keras.Input((4,))
model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
c.to_tf_keras(model)
from keras_kd.compression._imports import tfmot
tfmot()
assert "tensorflow_model_optimization" in sys.modules
assert tf.keras.Model is keras.Model, tf.keras.Model
assert "TF_USE_LEGACY_KERAS" not in os.environ
print("clean")
"""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", script], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "clean" in result.stdout
