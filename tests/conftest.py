"""Shared fixtures and model builders for the keras_kd tests.

The CPU is split into two logical devices before TensorFlow starts, so the
`tf.distribute.MirroredStrategy` tests have two replicas on any machine.

`keras.backend.clear_session()` runs a full garbage collection before every
test; what outlives it (TensorFlow, Keras, the test modules, module-scoped
fixtures) is then frozen out of the collector (`gc.freeze`), so the next
collection scans only what one test made. Scanning the ~370,000 objects of
the imports each time cost 0.2 s a test, a fifth of the quick loop.
"""

import gc
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu,
    [tf.config.LogicalDeviceConfiguration(),
     tf.config.LogicalDeviceConfiguration()],
)


def make_cnn(width, name, num_classes=10, input_shape=(12, 12, 1),
             dropout=0.0, final_activation=None):
    """A small CNN with named layers `conv1`, `bn1`, `relu1`, `conv2`."""
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(width, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(
        width, 3, padding="same", activation="relu", name="conv2"
    )(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation=final_activation, name="logits"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def make_nested_teacher(width=16, name="teacher"):
    """A teacher whose CNN sits inside as the nested model `backbone`."""
    backbone = make_cnn(width, "backbone")
    inputs = keras.Input((12, 12, 1), name="image")
    return keras.Model(inputs, backbone(inputs), name=name)


def make_token_transformer(heads, name, dim=16, length=6, vocab=20,
                           mask_zero=False, flash_attention=None):
    """A one-block transformer over token ids with MHA layer `mha`.

    `Add` (not `+`) keeps Keras padding masks flowing to the pooling.
    """
    inputs = keras.Input((length,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab, dim, mask_zero=mask_zero,
                               name="embedding")(inputs)
    y = keras.layers.MultiHeadAttention(
        heads, dim // heads, name="mha", flash_attention=flash_attention
    )(x, x)
    x = keras.layers.LayerNormalization(name="ln")(
        keras.layers.Add(name="residual")([x, y]))
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x),
                       name=name)


def value_and_gradient(fn, x):
    """`(fn(x), d fn / d x)` as NumPy, on the TensorFlow or JAX backend."""
    if keras.backend.backend() == "jax":
        import jax

        value, gradient = jax.value_and_grad(fn)(x)
        return np.asarray(value), np.asarray(gradient)
    variable = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = fn(variable)
    return value.numpy(), tape.gradient(value, variable).numpy()


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 10, size=(32,)).astype("int32")
    return x, y


@pytest.fixture(autouse=True)
def _clear_session():
    keras.backend.clear_session()  # fresh layer names, no stale graphs
    gc.freeze()  # what outlived the collection is never scanned again
    keras.utils.set_random_seed(1)
    yield
    keras.config.set_dtype_policy("float32")


def quadrant_images(n, size=12, seed=0):
    """Learnable 4-class images: the label is the brightest quadrant."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n).astype("int32")
    x = rng.normal(0.0, 0.3, size=(n, size, size, 1)).astype("float32")
    half = size // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, r * half:(r + 1) * half, c * half:(c + 1) * half] += 1.0
    return x, y


def bert_classifier(layers, heads, hidden, name, vocabulary=50, length=16):
    """A small random-init keras-hub BERT classifier (no downloads)."""
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary, num_layers=layers, num_heads=heads,
        hidden_dim=hidden, intermediate_dim=2 * hidden,
        max_sequence_length=length, name=f"{name}_backbone")
    return keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=3, preprocessor=None,
        activation=None, name=name)


def bert_inputs(batch=8, length=12, seed=0, vocabulary=50):
    """Token ids with every other example padded after 7 tokens."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocabulary, (batch, length)).astype("int32")
    padding = np.ones((batch, length), bool)
    padding[::2, 7:] = False
    ids[~padding] = 0
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
         "padding_mask": padding}
    return x, rng.integers(0, 3, batch).astype("int32")


def sharpen_attention(model, scale=8.0):
    """Scales query and key kernels so that attention is far from uniform
    (random-init BERT attends almost uniformly)."""
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.MultiHeadAttention):
            for dense in (layer._query_dense, layer._key_dense):
                dense.kernel.assign(dense.kernel * scale)
    return model
