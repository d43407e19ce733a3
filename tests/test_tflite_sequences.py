"""Builtins-only TFLite for recurrent, masked, transformer, dict students."""

import importlib.util
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import bert_classifier
from conftest import bert_inputs

from keras_kd import compression
from keras_kd.compression.tflite_eval import TFLiteRunner
from keras_kd.compression.tflite_eval import operator_names
from keras_kd.compression.tflite_eval import read_tflite

LENGTH, VOCABULARY = 16, 64
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "compression_benchmark",
        os.path.join(ROOT, "benchmarks", "compression_figures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_benchmark = _load_benchmark()


def token_task(n, seed):
    """The compression benchmark's synthetic task (the label is the most
    frequent of three marker tokens), at this file's sizes."""
    return _benchmark.token_task(n, seed, length=LENGTH,
                                 vocabulary=VOCABULARY)


def student(kind):
    inputs = keras.Input((LENGTH,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCABULARY, 32,
                               mask_zero=kind.startswith("masked"))(inputs)
    if kind in ("lstm", "masked_lstm"):
        x = keras.layers.LSTM(64, return_sequences=True)(x)
    elif kind == "gru":
        x = keras.layers.GRU(64, return_sequences=True)(x)
    elif kind == "simple_rnn":
        x = keras.layers.SimpleRNN(64, return_sequences=True)(x)
    elif kind == "bilstm":
        x = keras.layers.Bidirectional(
            keras.layers.LSTM(64, return_sequences=True))(x)
    else:  # a transformer block
        x = keras.layers.LayerNormalization()(keras.layers.Add()(
            [x, keras.layers.MultiHeadAttention(2, 32)(x, x)]))
        x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x), name=kind)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.
                  SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*token_task(384, 0), epochs=2, batch_size=32, verbose=0)
    return model


FUSED = ["lstm", "bilstm", "transformer"]
LOOPED = ["gru", "simple_rnn", "masked_lstm"]


SLOW = pytest.mark.slow


# The quick loop (`-m "not slow"`) keeps the transformer (15 s); the rest
# take 7-24 s each.
@pytest.mark.parametrize("kind", [
    pytest.param("lstm", marks=SLOW), pytest.param("bilstm", marks=SLOW),
    "transformer", pytest.param("gru", marks=SLOW),
    pytest.param("simple_rnn", marks=SLOW),
    pytest.param("masked_lstm", marks=SLOW)])
def test_sequence_students_export_builtins_only(tmp_path, kind):
    model = student(kind)
    x, y = token_task(200, 1)
    expected = np.asarray(model.predict(x, verbose=0))
    files = {}
    # int8 of a fused BiLSTM converts as the LSTM's does, at twice the
    # cost (25 s): the LSTM case covers it.
    modes = [None, "dynamic"] + (["int8"] if kind in ("lstm", "transformer")
                                 else []) + (
        ["float16"] if kind in ("lstm", "transformer") else [])
    for quantization in modes:
        path = tmp_path / f"{quantization}.tflite"
        compression.export_tflite(model, path, quantization=quantization,
                                  representative_data=x[:64])
        data = read_tflite(path)
        assert not [op for op in operator_names(data)
                    if op.startswith("Flex")]
        runner = TFLiteRunner(data)
        assert runner.names == ["tokens"] and runner.static_batch == 1
        files[quantization] = (len(data), runner.logits({"tokens": x}))
    size, logits = files[None]
    assert np.max(np.abs(logits - expected)) <= 1e-4
    for quantization in modes[1:]:
        agreement = np.mean(files[quantization][1].argmax(-1)
                            == expected.argmax(-1))
        assert agreement >= 0.97, (quantization, agreement)
    for quantization in ("dynamic", "int8"):
        if quantization in files:
            assert files[quantization][0] <= 0.6 * size, (
                quantization, files[quantization][0], size)
    if kind == "lstm":
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in operator_names(
            read_tflite(tmp_path / "int8.tflite"))
    if kind in LOOPED:
        path = tmp_path / "refused.tflite"
        with pytest.raises(ValueError, match="cannot be full-integer.*"
                                             "quantization='dynamic'"):
            compression.export_tflite(model, path, quantization="int8",
                                      representative_data=x[:64])
        assert not path.exists()


@pytest.mark.slow
def test_keras_hub_student_with_dict_inputs(tmp_path):
    model = bert_classifier(2, 2, 32, "student", vocabulary=200)
    x, _ = bert_inputs(batch=48, length=16, vocabulary=200)
    # A few steps on a learnable rule give decisive logits.
    rule = (x["token_ids"][:, :3].sum(-1) % 3).astype("int32")
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.
                  SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, rule, epochs=15, batch_size=16, verbose=0)
    logits = np.asarray(model.predict(x, verbose=0))
    y = logits.argmax(-1)  # the Keras model's accuracy is then 100%
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    for quantization in (None, "dynamic"):
        path = tmp_path / f"{quantization}.tflite"
        compression.export_tflite(model, path, quantization=quantization)
        runner = TFLiteRunner(read_tflite(path))
        assert runner.names == ["padding_mask", "segment_ids", "token_ids"]
        results = compression.evaluate_tflite(path, data)
        assert results["accuracy"] == 1.0, quantization
    tflite_logits = TFLiteRunner(read_tflite(tmp_path / "None.tflite")
                                 ).logits(x)
    assert np.max(np.abs(tflite_logits - logits)) <= 1e-4


@pytest.mark.slow
def test_compress_prunes_a_keras_hub_student_natively(tmp_path):
    model = bert_classifier(1, 2, 16, "student", vocabulary=200)
    x, _ = bert_inputs(batch=32, length=16, vocabulary=200)
    y = np.asarray(model.predict(x, verbose=0)).argmax(-1)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    report = compression.compress(model, data, quantization="dynamic",
                                  out_dir=tmp_path / "out", verbose=0)
    assert sorted(report) == [
        "dynamic", "float32", "int4_weight_only", "int8_weight_only", "path",
        "pruned_dynamic", "recommended"]
    assert report["path"]["prune_and_quantize"] == "keras"
    assert "without a tf_keras twin" in report["path"]["reason"]
    assert report["pruned_dynamic"]["sparsity"] >= 0.5
    assert sorted(os.listdir(tmp_path / "out")) == [
        "compression.json", "compression.md", "student_dynamic.tflite",
        "student_float32.tflite", "student_int4_weight_only.tflite",
        "student_int8_weight_only.tflite", "student_pruned_dynamic.tflite"]
    markdown = (tmp_path / "out" / "compression.md").read_text()
    assert "Pruned and quantized by: Keras-native" in markdown


def test_bad_arguments_leave_no_file(tmp_path):
    model = bert_classifier(1, 2, 16, "student", vocabulary=200)
    x, _ = bert_inputs(batch=4, length=16, vocabulary=200)
    path = tmp_path / "model.tflite"
    wrong = {"tokens": x["token_ids"], "segment_ids": x["segment_ids"],
             "padding_mask": x["padding_mask"]}
    with pytest.raises(ValueError, match=r"named \['padding_mask', "
                                         r"'segment_ids', 'tokens'\].*named "
                                         r"\['padding_mask', 'segment_ids', "
                                         r"'token_ids'\]"):
        compression.export_tflite(model, path, quantization="int8",
                                  representative_data=wrong)
    with pytest.raises(ValueError, match="batch_size=0"):
        compression.export_tflite(model, path, batch_size=0)
    with pytest.raises(ValueError, match="quantization='int4'"):
        compression.export_tflite(model, path, quantization="int4")
    assert not path.exists() and not os.listdir(tmp_path)
