"""int8 / int4 weight-only files through ai-edge-quantizer
(`keras_kd.compression.weight_only`, `export_tflite(quantization=...)`)."""

import os

import keras
import numpy as np
import pytest
from conftest import bert_classifier
from conftest import bert_inputs

from keras_kd import compression
from keras_kd.compression.tflite_eval import TFLiteRunner
from keras_kd.compression.tflite_eval import operator_types
from keras_kd.compression.tflite_eval import read_tflite
from keras_kd.compression.weight_only import quantize_weights
from keras_kd.compression.weight_only import quantized_tensors

pytest.importorskip("ai_edge_quantizer")
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="compression is TensorFlow's")


@pytest.fixture(scope="module")
def mlp_files(tmp_path_factory):
    """A student whose dense kernels dominate, in three files."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,), name="x")
    h = keras.layers.Dense(256, activation="relu")(inputs)
    h = keras.layers.Dense(256, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(10)(h))
    folder = tmp_path_factory.mktemp("weight_only")
    files = {q: compression.export_tflite(model, folder / f"{q}.tflite",
                                          quantization=q)
             for q in (None, "int8_weight_only", "int4_weight_only")}
    x = np.random.default_rng(0).normal(size=(32, 64)).astype("float32")
    return model, files, x


def test_int8_and_int4_weights_shrink_the_file(mlp_files):
    model, files, x = mlp_files
    size = {q: os.path.getsize(p) for q, p in files.items()}
    assert size["int8_weight_only"] <= 0.30 * size[None]
    assert size["int4_weight_only"] <= 0.25 * size[None]
    kinds = {q: quantized_tensors(read_tflite(p)) for q, p in files.items()}
    assert len(kinds[None]["float32"]) == 3
    assert len(kinds["int8_weight_only"]["int8"]) == 3
    assert len(kinds["int4_weight_only"]["int4"]) == 3
    reference = model.predict(x, verbose=0)
    scale = np.abs(reference).max()
    tolerances = {"int8_weight_only": 0.02, "int4_weight_only": 0.25}
    for q, tolerance in tolerances.items():
        got = TFLiteRunner(read_tflite(files[q])).logits({"x": x})
        assert np.max(np.abs(got - reference)) <= tolerance * scale, q


def test_int4_fully_connected_kernels_are_blockwise(mlp_files):
    _, files, _ = mlp_files
    data = read_tflite(files["int4_weight_only"])
    # int4 kernels (the bias is folded away), activations quantized on the
    # fly, and one float16 scale per block of 32 input weights: a tensor of
    # scales beside each kernel, which per-channel int4 does not have.
    assert operator_types(data)["FULLY_CONNECTED"] == [
        "FLOAT32,INT4,-->FLOAT32"]
    kinds = quantized_tensors(data)
    assert len(kinds["float16"]) == len(kinds["int4"]) == 3
    per_channel = quantize_weights(read_tflite(files[None]), 4,
                                   block_size=None)
    assert "float16" not in quantized_tensors(per_channel)


def test_embedding_tables_stay_float(tmp_path):
    keras.utils.set_random_seed(0)
    model = bert_classifier(1, 2, 32, "student", vocabulary=500)
    path = compression.export_tflite(model, tmp_path / "bert.tflite",
                                     quantization="int8_weight_only")
    kinds = quantized_tensors(read_tflite(path))
    assert any("token_embedding" in name for name in kinds["float32"])
    assert len(kinds["int8"]) >= 6  # the projections and feed-forwards
    x, _ = bert_inputs(batch=8, length=16, vocabulary=500)
    got = TFLiteRunner(read_tflite(path)).logits(x)
    reference = model.predict(x, verbose=0)
    assert np.max(np.abs(got - reference)) <= 0.02 * np.abs(reference).max()


def test_bad_arguments(mlp_files):
    model, _, _ = mlp_files
    with pytest.raises(ValueError, match="block_size"):
        compression.export_tflite(model, "unused.tflite",
                                  quantization="int4_weight_only",
                                  block_size=48)
    with pytest.raises(ValueError, match="bits"):
        quantize_weights(b"", 2)
    assert not os.path.exists("unused.tflite")
