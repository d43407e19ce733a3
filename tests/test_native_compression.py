"""Keras-native pruning and QAT (`keras_kd.compression.native`), and the
path `prune` / `quantize` / `compress` choose for students TF-MOT cannot
take."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import bert_classifier
from conftest import bert_inputs

from keras_kd import compression
from keras_kd.compression.native.fake_quant import fake_quantize
from keras_kd.compression.native.masks import MagnitudeMasks
from keras_kd.compression.native.weights import copy_model
from keras_kd.compression.native.weights import weight_sites
from keras_kd.compression.schedules import PolynomialRamp
from keras_kd.compression.structures import BlockSparsity
from keras_kd.compression.structures import MByNSparsity
from keras_kd.compression.tflite_eval import operator_types
from keras_kd.compression.tflite_eval import read_tflite
from keras_kd.compression.tflite_eval import weight_tensor_zeros

pytest.importorskip("tensorflow_model_optimization")
pytest.importorskip("ai_edge_litert")
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="compression is TensorFlow's")
ONE_EPOCH = compression.FineTuning(epochs=1, learning_rate=1e-3)


def token_transformer(vocabulary=60, length=12, width=16, classes=3):
    """The text example's transformer student, small: keras-hub token and
    position embeddings (masked), one `TransformerEncoder`, mean pool."""
    import keras_hub

    inputs = keras.Input((length,), dtype="int32", name="tokens")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary, length, width, mask_zero=True, name="embedding")(inputs)
    x = keras_hub.layers.TransformerEncoder(2 * width, 2, name="block1")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(classes, name="logits")(x))


def token_data(n=64, vocabulary=60, length=12, seed=0, one_hot=False):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocabulary, (n, length)).astype("int32")
    y = (x[:, 0] % 3).astype("int32")
    labels = np.eye(3, dtype="float32")[y] if one_hot else y
    return tf.data.Dataset.from_tensor_slices((x, labels)).batch(16)


def kernel_zeros(model):
    return {site.path: float(np.mean(
        keras.ops.convert_to_numpy(site.variable) == 0))
        for site in weight_sites(model)}


# --- which kernels ---------------------------------------------------------

def test_weight_sites_reach_attention_projections_and_embeddings():
    model = token_transformer()
    paths = [site.path for site in weight_sites(model)]
    for name in ("query", "key", "value", "attention_output"):
        wanted = f"self_attention_layer/{name}/kernel"
        assert any(wanted in p for p in paths), name
    assert any(p.endswith("token_embedding/embeddings") for p in paths)
    assert any(p.endswith("feedforward_intermediate_dense/kernel")
               for p in paths)
    assert "logits/kernel" in paths
    # Every supported kernel, each once; biases and norms are not kernels.
    assert len(paths) == len(set(paths)) == 8
    kept = [site.path for site in weight_sites(model, keep_dense=("block1",))]
    assert not any("block1" in p for p in kept) and "logits/kernel" in kept


def test_weight_site_axes():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(6, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.EinsumDense("ab,bc->ac", 5, name="einsum")(x)
    sites = {s.layer.name: s for s in weight_sites(keras.Model(inputs,
                                                               outputs))}
    # Convolutions: per-channel scales on the output channels, M-by-N over
    # the input channels; fully-connected kernels: one scale.
    assert (sites["conv"].channel_axis, sites["conv"].input_axis) == (3, 2)
    assert (sites["einsum"].channel_axis, sites["einsum"].input_axis) == (
        None, 0)


# --- masks against NumPy ---------------------------------------------------

def _site(values):
    inputs = keras.Input((values.shape[0],))
    layer = keras.layers.Dense(values.shape[1], use_bias=False)
    keras.Model(inputs, layer(inputs))
    layer.kernel.assign(values)
    return weight_sites(layer)[0]


def pruned_half(values, structure=None):
    """`values` as a Dense kernel after masks for 50% sparsity."""
    site = _site(values)
    masks = MagnitudeMasks([site], structure)
    masks.update(0.5)
    masks.apply()
    return keras.ops.convert_to_numpy(site.variable)


def test_magnitude_mask_zeros_exactly_the_smallest():
    values = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    got = pruned_half(values)
    order = np.argsort(np.abs(values).reshape(-1))
    expected = values.reshape(-1).copy()
    expected[order[:24]] = 0
    np.testing.assert_array_equal(got, expected.reshape(8, 6))


def test_m_by_n_mask_keeps_two_of_four_along_the_inputs():
    values = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    got = pruned_half(values, MByNSparsity(2, 4))
    for column in range(3):
        for start in (0, 4):
            group, kept = values[start:start + 4, column], got[
                start:start + 4, column]
            largest = np.argsort(-np.abs(group))[:2]
            assert set(np.flatnonzero(kept)) == set(largest)


def test_block_mask_prunes_whole_blocks():
    values = np.random.default_rng(2).normal(size=(4, 8)).astype("float32")
    got = pruned_half(values, BlockSparsity(1, 4)).reshape(4, 2, 4)
    means = np.abs(values).reshape(4, 2, 4).mean(-1).reshape(-1)
    zero_blocks = set(np.argsort(means)[:4])
    for block in range(8):
        row, col = divmod(block, 2)
        assert (not np.any(got[row, col])) == (block in zero_blocks)


def test_m_by_n_refuses_a_kernel_it_cannot_group():
    site = _site(np.ones((6, 2), "float32"))
    with pytest.raises(ValueError, match="keep_dense"):
        MagnitudeMasks([site], MByNSparsity(2, 4))


def test_native_schedule_reaches_the_target_on_its_last_update():
    ramp = PolynomialRamp(ramp=0.5, updates=3)
    values = {step: ramp.sparsity_at(step, 0.8, 100) for step in range(100)}
    updates = {step: v for step, v in values.items() if v is not None}
    assert updates[0] == 0.0 and updates[50] == pytest.approx(0.8)
    assert max(updates) == 50
    # Between, the paper's cubic: s_t = s_f (1 - (1 - t/T)^3).
    assert updates[16] == pytest.approx(0.8 * (1 - (1 - 16 / 50) ** 3))


# --- fake quantization against NumPy --------------------------------------

def numpy_fake_quant(x, low, high, narrow_range):
    """TensorFlow's FakeQuantWithMinMaxVars, written out."""
    quant_min, quant_max = (1 if narrow_range else 0), 255
    scale = (high - low) / (quant_max - quant_min)
    zero = np.clip(np.round(quant_min - low / scale), quant_min, quant_max)
    nudged_low = (quant_min - zero) * scale
    nudged_high = (quant_max - zero) * scale
    clamped = np.clip(x, nudged_low, nudged_high)
    return np.floor((clamped - nudged_low) / scale + 0.5) * scale + nudged_low


def test_fake_quantized_dense_equals_numpy():
    rng = np.random.default_rng(3)
    inputs = keras.Input((5,), name="x")
    layer = keras.layers.Dense(4, name="dense")
    student = keras.Model(inputs, layer(inputs))
    x = rng.normal(size=(32, 5)).astype("float32")
    qat = fake_quantize(student, calibration_data=tf.data.Dataset
                        .from_tensor_slices(x).batch(32))
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    bias = keras.ops.convert_to_numpy(layer.bias)
    m = np.abs(kernel).max()
    fq_kernel = numpy_fake_quant(kernel, -m, m, True)
    fq_x = numpy_fake_quant(x, min(x.min(), 0), max(x.max(), 0), False)
    y = fq_x @ fq_kernel + bias
    expected = numpy_fake_quant(y, min(y.min(), 0), max(y.max(), 0), False)
    got = keras.ops.convert_to_numpy(qat(x, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # The student itself is untouched: its own call is still float.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(student(x)), x @ kernel + bias, atol=1e-5)


def test_qat_file_runs_int8_kernels_equal_to_keras(tmp_path):
    """The converter reads the fake quantizers: int8 fully-connected
    kernels whose outputs equal the Keras QAT model's."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,), name="x")
    x = keras.layers.Dense(32, activation="relu")(inputs)
    student = keras.Model(inputs, keras.layers.Dense(4)(x))
    x = np.random.default_rng(4).normal(size=(64, 16)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.zeros(64, "int32"))
                                              ).batch(16)
    qat = compression.quantize(student, data, fine_tuning=ONE_EPOCH,
                               path="keras", verbose=0)
    assert qat.compression_path == "keras"
    path = compression.export_tflite(qat, tmp_path / "qat.tflite",
                                     quantization="int8",
                                     representative_data=data)
    data_bytes = read_tflite(path)
    assert operator_types(data_bytes)["FULLY_CONNECTED"] == [
        "INT8,INT8,INT32->INT8"]
    from keras_kd.compression.tflite_eval import TFLiteRunner

    tflite = TFLiteRunner(data_bytes).logits({"x": x})
    keras_logits = keras.ops.convert_to_numpy(qat(x, training=False))
    low, high = keras.ops.convert_to_numpy(
        qat.get_layer("fake_quantization").output_ranges[-1])
    step = (high - low) / 255
    difference = np.abs(tflite - keras_logits)
    # The same int8 values but for an odd rounding tie: one step at most.
    assert np.mean(difference < 1e-5) >= 0.95
    assert np.max(difference) <= 1.05 * step


# --- prune / quantize choose the path --------------------------------------

def test_prune_takes_the_keras_path_for_keras_hub_layers():
    keras.utils.set_random_seed(0)
    student = token_transformer()
    before = [w.copy() for w in student.get_weights()]
    pruned = compression.prune(student, token_data(one_hot=True),
                               target_sparsity=0.5, fine_tuning=ONE_EPOCH,
                               verbose=0)
    assert pruned.compression_path == "keras"
    assert isinstance(pruned, keras.Model) and pruned is not student
    zeros = kernel_zeros(pruned)
    assert len(zeros) == 8
    for path, fraction in zeros.items():
        assert fraction == pytest.approx(0.5, abs=0.02), path
    for old, new in zip(before, student.get_weights()):
        np.testing.assert_array_equal(old, new)  # the student is unchanged
    with pytest.raises(ValueError, match="path"):
        compression.prune(student, token_data(), path="tf_keras", verbose=0)


def test_forced_paths_are_checked():
    inputs = keras.Input((4,))
    student = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    data = tf.data.Dataset.from_tensor_slices(
        (np.ones((8, 4), "float32"), np.zeros(8, "int32"))).batch(4)
    twin = compression.to_tf_keras(student)
    with pytest.raises(ValueError, match="tf_keras model"):
        compression.prune(twin, data, path="keras", verbose=0)
    pruned = compression.prune(student, data, path="keras",
                               fine_tuning=ONE_EPOCH, verbose=0)
    assert pruned.compression_path == "keras"
    assert compression.prune(student, data, fine_tuning=ONE_EPOCH,
                             verbose=0).compression_path == "tfmot"
    with pytest.raises(ValueError, match="keep_dense"):
        compression.quantize(student, data, path="tfmot",
                             keep_dense=("dense",), verbose=0)


def test_copy_refuses_subclassed_models():
    class Tiny(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed"):
        copy_model(Tiny())


def test_keras_hub_bert_prune_qat_int8_builtins_with_zeros(tmp_path):
    """A keras-hub BertBackbone student: prune 50% -> QAT -> int8 TFLite,
    builtins only, with the zeros in its largest kernels in the file."""
    keras.utils.set_random_seed(0)
    student = bert_classifier(2, 2, 32, "student", vocabulary=200)
    x, y = bert_inputs(batch=64, length=16, vocabulary=200)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    pruned = compression.prune(student, data, target_sparsity=0.5,
                               fine_tuning=ONE_EPOCH, verbose=0)
    qat = compression.quantize(pruned, data, fine_tuning=ONE_EPOCH,
                               verbose=0)
    assert (pruned.compression_path, qat.compression_path) == (
        "keras", "keras")
    # Sparsity-preserving QAT: the zeros survive the fine-tuning.
    assert kernel_zeros(qat.get_layer("fake_quantization").student) == (
        kernel_zeros(pruned))
    path = compression.export_tflite(qat, tmp_path / "bert.tflite",
                                     quantization="int8",
                                     representative_data=data)
    data_bytes = read_tflite(path)
    types = operator_types(data_bytes)
    for op in ("FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "GELU"):
        assert all(t.startswith("INT8") for t in types[op]), (op, types[op])
    largest = weight_tensor_zeros(data_bytes)[:6]
    assert all(fraction >= 0.49 for _, _, fraction in largest), largest
    report = compression.evaluate_tflite(path, data)
    assert report["examples"] == 64


@pytest.mark.slow
def test_compress_takes_the_keras_path_for_a_transformer(tmp_path):
    keras.utils.set_random_seed(0)
    student = token_transformer()
    data = token_data(one_hot=True)
    report = compression.compress(student, data, sparsity=0.5,
                                  prune_epochs=1, out_dir=tmp_path / "out",
                                  verbose=0)
    assert report["path"]["prune_and_quantize"] == "keras"
    assert report["pruned_int8"]["path"] == "keras"
    assert "skipped" not in report
    assert report["pruned_int8"]["sparsity"] >= 0.4
    assert report["recommended"]["file"] in os.listdir(tmp_path / "out")
    written = json.loads((tmp_path / "out" / "compression.json").read_text())
    assert written["recommended"] == report["recommended"]
    assert "Keras-native" in (tmp_path / "out" / "compression.md").read_text()
