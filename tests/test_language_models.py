"""Token-level distillation of keras-hub causal LMs (random init): padded
positions count for nothing, and every loss is a mean over valid tokens."""

import keras
import numpy as np
import pytest

import keras_kd
from keras_kd.labels import token_mask
from numpy_reference import divergence
from numpy_reference import log_softmax

VOCABULARY, LENGTH = 64, 12


def causal_lm(layers, hidden, name):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY, num_layers=layers, num_heads=2,
        hidden_dim=hidden, intermediate_dim=2 * hidden,
        max_sequence_length=LENGTH, name=f"{name}_backbone")
    return keras_hub.models.GPT2CausalLM(backbone=backbone,
                                         preprocessor=None, name=name)


def batch(seed=0, pad_token=0):
    """Right-padded sequences; labels are the next tokens."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCABULARY, (6, LENGTH + 1)).astype("int32")
    lengths = np.array([13, 9, 5, 13, 7, 3])
    valid = np.arange(LENGTH + 1)[None] < lengths[:, None]
    ids[~valid] = pad_token
    x = {"token_ids": ids[:, :-1], "padding_mask": valid[:, :-1]}
    # As keras-hub's preprocessors do, the sample weights mark the labels
    # that are real tokens.
    return x, ids[:, 1:], valid[:, 1:].astype("float32")


@pytest.fixture(scope="module")
def pair():
    keras.utils.set_random_seed(0)
    return causal_lm(2, 32, "teacher"), causal_lm(1, 16, "student")


def soft_targets_distiller(pair):
    distiller = keras_kd.Distiller(*pair)
    distiller.compile(temperature=2.0, alpha=0.5)
    return distiller


def test_padded_positions_change_no_loss(pair):
    distiller = soft_targets_distiller(pair)
    logs = []
    for pad_token in (0, 17):  # other tokens under padding_mask == False
        x, y, weights = batch(pad_token=pad_token)
        logs.append(distiller.evaluate(x, y, sample_weight=weights,
                                       batch_size=6, verbose=0,
                                       return_dict=True))
    for key in ("loss", "student_loss", "distillation_loss"):
        assert logs[1][key] == pytest.approx(logs[0][key], rel=1e-5), key


def test_losses_are_means_over_valid_tokens(pair):
    teacher, student = pair
    distiller = soft_targets_distiller(pair)
    x, y, _ = batch()
    logs = distiller.evaluate(x, y, batch_size=6, verbose=0,
                              return_dict=True)
    t = np.asarray(teacher(x, training=False), np.float64)
    s = np.asarray(student(x, training=False), np.float64)
    valid = x["padding_mask"]
    picked = np.take_along_axis(log_softmax(s), y[..., None], -1)[..., 0]
    hard = -picked[valid].mean()
    soft = divergence("forward", t, s, 2.0, mask=valid)
    assert logs["student_loss"] == pytest.approx(hard, rel=1e-5)
    assert logs["distillation_loss"] == pytest.approx(soft, rel=1e-4)
    assert logs["loss"] == pytest.approx(0.5 * hard + 0.5 * soft, rel=1e-5)
    # Not the mean over every position, padding included.
    everything = divergence("forward", t, s, 2.0)
    assert abs(everything - soft) > 1e-3 * soft


def test_reverse_kl_token_level_distillation_trains(pair):
    teacher, student = pair
    distiller = keras_kd.Distiller(teacher, student, terms=[
        keras_kd.terms.SoftTargetTerm(
            loss_fn=keras_kd.losses.ReverseKL(temperature=1.0))])
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), alpha=0.0)
    x, y, _ = batch()
    history = distiller.fit(x, y, epochs=5, batch_size=6, verbose=0)
    losses = history.history["distillation_loss"]
    assert losses[-1] < losses[0]


def test_token_mask_needs_sequence_logits():
    x = {"padding_mask": np.ones((2, 3), bool)}
    assert token_mask(x, keras.ops.zeros((2, 5))) is None
    assert token_mask(x, keras.ops.zeros((2, 3, 5))).shape == (2, 3)
    assert token_mask({"token_ids": 0}, keras.ops.zeros((2, 3, 5))) is None


def test_top_k_teacher_log_probabilities_for_sequences(pair):
    """The disk-free store with top-k keeps per-token targets of
    `(steps, vocab)` logits; with k = V − 1 they are exact."""
    import tensorflow as tf

    distiller = soft_targets_distiller(pair)
    x, y, _ = batch()
    live = distiller.evaluate(x, y, batch_size=6, verbose=0,
                              return_dict=True)
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))
    exact = distiller.precompute(unbatched, top_k=VOCABULARY - 1, verbose=0)
    _, targets = next(iter(exact.batch(6)))
    assert targets["teacher_top_k"]["log_probs"].shape == (
        6, LENGTH, VOCABULARY - 1)
    offline = distiller.evaluate(exact.batch(6), verbose=0,
                                 return_dict=True)
    for key in ("loss", "student_loss"):
        assert offline[key] == pytest.approx(live[key], rel=1e-5), key
    # A tiny KL (8.5e-4 here): float32 reconstruction error of the tail.
    assert offline["distillation_loss"] == pytest.approx(
        live["distillation_loss"], rel=1e-3)
    eight = distiller.evaluate(distiller.precompute(
        unbatched, top_k=8, verbose=0).batch(6), verbose=0, return_dict=True)
    assert eight["distillation_loss"] != pytest.approx(
        live["distillation_loss"], rel=1e-6)
    assert np.isfinite(eight["loss"])


def test_top_k_disk_store_for_sequences_equals_memory(pair, tmp_path):
    """Per-token top-k log-probabilities and tails go through the sharded
    disk store unchanged (the store streams: one shard in memory)."""
    import tensorflow as tf

    distiller = soft_targets_distiller(pair)
    x, y, weights = batch()
    unbatched = tf.data.Dataset.from_tensor_slices((x, y, weights))
    logs = []
    for directory in (None, tmp_path):
        stored = distiller.precompute(unbatched, top_k=8, shard_size=4,
                                      batch_size=2, directory=directory,
                                      verbose=0)
        logs.append(distiller.evaluate(stored.batch(6), verbose=0,
                                       return_dict=True))
    assert len(list(tmp_path.glob("shard-*.tfrecord"))) == 2
    for key in ("loss", "student_loss", "distillation_loss"):
        assert logs[1][key] == pytest.approx(logs[0][key], rel=1e-6), key


TEACHER_ATTENTION = "teacher_backbone/transformer_layer_1/self_attention"
STUDENT_ATTENTION = "student_backbone/transformer_layer_0/self_attention"


def test_attention_maps_and_hints_between_decoder_layers():
    """MiniLM attention-map KL and hints between GPT-2 decoder layers: the
    captured probabilities are causal, the losses are NumPy's over valid
    queries, and padded tokens change neither."""
    from keras_kd.capture import ATTENTION_PROBABILITIES
    from keras_kd.capture import LayerCapture
    from keras_kd.capture import Tap
    from conftest import sharpen_attention
    from numpy_reference import attention_map_kd

    keras.utils.set_random_seed(1)
    teacher = sharpen_attention(causal_lm(2, 32, "teacher"))
    student = sharpen_attention(causal_lm(1, 16, "student"))
    x, y, weights = batch()
    probabilities = []
    for model, path in ((teacher, TEACHER_ATTENTION),
                        (student, STUDENT_ATTENTION)):
        tap = Tap(path, ATTENTION_PROBABILITIES)
        with LayerCapture(model, [tap]) as capture:
            model(x, training=False)
        probabilities.append(np.asarray(capture.result()[tap][0]))
    valid = x["padding_mask"]
    for probs in probabilities:  # (batch, heads, queries, keys)
        future = np.triu(np.ones((LENGTH, LENGTH), bool), 1)
        assert (probs[:, :, future] == 0).all()  # no query sees ahead
        np.testing.assert_allclose(probs.sum(-1)[valid.nonzero()[0], :,
                                                 valid.nonzero()[1]], 1.0,
                                   rtol=1e-5)
    distiller = keras_kd.Distiller(
        teacher, student,
        attention_pairs=[(TEACHER_ATTENTION, STUDENT_ATTENTION)],
        hint_pairs=[("teacher_backbone/transformer_layer_1",
                     "student_backbone/transformer_layer_0")])
    distiller.compile(attention_weight=1.0, hint_weight=1.0)
    logs = []
    for pad_token in (0, 17):
        x, y, weights = batch(pad_token=pad_token)
        logs.append(distiller.evaluate(x, y, sample_weight=weights,
                                       batch_size=6, verbose=0,
                                       return_dict=True))
    expected = attention_map_kd(*probabilities, "kl", valid)
    assert expected > 1e-3
    unweighted = distiller.evaluate(x, y, batch_size=6, verbose=0,
                                    return_dict=True)
    assert unweighted["attention_loss"] == pytest.approx(expected, rel=1e-4)
    for key in ("attention_loss", "hint_loss", "loss"):
        assert logs[1][key] == pytest.approx(logs[0][key], rel=1e-5), key
