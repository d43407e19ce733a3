"""Masked sequence features: BiLSTM teacher -> LSTM student over padding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd

LENGTH = 8


def recurrent(kind, units, name, length=None):
    inputs = keras.Input((length,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(30, 12, mask_zero=True, name="embedding")(
        inputs)
    if kind == "bilstm":
        x = keras.layers.Bidirectional(
            keras.layers.LSTM(units, return_sequences=True), name="bilstm")(x)
    else:
        x = keras.layers.LSTM(units, return_sequences=True, name="lstm")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x),
                       name=name)


def tokens(batch=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 30, (batch, LENGTH)).astype("int32")
    lengths = rng.integers(3, LENGTH + 1, batch)
    for row, n in zip(x, lengths):
        row[n:] = 0
    return x, rng.integers(0, 4, batch).astype("int32")


def make_distiller(**compile_kwargs):
    teacher = recurrent("bilstm", 16, "teacher")
    student = recurrent("lstm", 5, "student")
    distiller = keras_kd.Distiller(
        teacher, student, attention_pairs=[("bilstm", "lstm")],
        hint_pairs=[("bilstm", "lstm", 0.5)])
    distiller.compile(attention_weight=10.0, **compile_kwargs)
    return distiller


def features(model, layer, x):
    return np.asarray(keras.Model(model.input, model.get_layer(
        layer).output)(x), np.float64)


def masked_attention_transfer(teacher, student, valid):
    """NumPy: maps normalised over valid positions, squared differences
    averaged over valid (example, position) pairs."""
    def q(a):
        m = (a ** 2).mean(-1) * valid
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)

    return float(((q(student) - q(teacher)) ** 2 * valid).sum() / valid.sum())


def test_losses_are_taken_over_valid_positions():
    distiller = make_distiller()
    x, y = tokens()
    logs = distiller.evaluate(x, y, batch_size=6, verbose=0,
                              return_dict=True)
    valid = (x != 0).astype(np.float64)
    t = features(distiller.teacher, "bilstm", x)
    s = features(distiller.student, "lstm", x)
    expected_at = masked_attention_transfer(t, s, valid)
    assert logs["attention_loss"] == pytest.approx(expected_at, rel=1e-4)
    kernel, bias = distiller.connectors[0].get_weights()
    projected = s @ kernel + bias
    per_position = ((projected - t) ** 2).mean(-1)
    expected_hint = 0.5 * (per_position * valid).sum() / valid.sum()
    assert logs["hint_loss"] == pytest.approx(expected_hint, rel=1e-4)


def test_more_padding_changes_no_loss():
    distiller = make_distiller()
    x, y = tokens()
    padded = np.pad(x, ((0, 0), (0, 7)))
    short = distiller.evaluate(x, y, batch_size=6, verbose=0,
                               return_dict=True)
    long = distiller.evaluate(padded, y, batch_size=6, verbose=0,
                              return_dict=True)
    for key in ("loss", "attention_loss", "hint_loss", "distillation_loss",
                "student_loss"):
        assert long[key] == pytest.approx(short[key], rel=1e-5), key


@pytest.mark.slow
def test_fit_and_precompute_on_masked_sequences():
    distiller = make_distiller(optimizer=keras.optimizers.Adam(1e-2))
    x, y = tokens(batch=32)
    history = distiller.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    live = distiller.evaluate(x, y, batch_size=8, verbose=0,
                              return_dict=True)
    stored = distiller.precompute(tf.data.Dataset.from_tensor_slices((x, y)),
                                  verbose=0)
    offline = distiller.evaluate(stored.batch(8), verbose=0,
                                 return_dict=True)
    for key in ("attention_loss", "hint_loss"):
        assert offline[key] == pytest.approx(live[key], rel=1e-4), key


def test_paper_mode_on_masked_sequences_is_a_clear_error():
    distiller = make_distiller(
        attention_loss_fn=keras_kd.losses.AttentionTransfer(mode="paper"))
    x, y = tokens()
    with pytest.raises(ValueError, match="mode='paper'.*masked"):
        distiller.evaluate(x, y, verbose=0)
