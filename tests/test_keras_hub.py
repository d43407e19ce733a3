"""keras-hub transformers: attention inside encoder layers, random init."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import bert_classifier
from conftest import bert_inputs
from conftest import sharpen_attention

import keras_kd
import numpy_reference as ref
from keras_kd.capture import ATTENTION_PROBABILITIES
from keras_kd.capture import LayerCapture
from keras_kd.capture import Tap

keras_hub = pytest.importorskip("keras_hub")

TEACHER_MHA = "teacher_backbone/transformer_layer_2/self_attention_layer"
STUDENT_MHA = "student_backbone/transformer_layer_1/self_attention_layer"


def encoder_input(model, backbone, layer_index, x):
    """The input of encoder `layer_index`, from a plain Keras sub-model."""
    inner = model.get_layer(backbone)
    name = (f"transformer_layer_{layer_index - 1}" if layer_index
            else "embeddings_dropout")
    return keras.Model(inner.input, inner.get_layer(name).output)(x)


def probabilities_by_hand(model, backbone, layer_index, x):
    """Softmax of the layer's own query/key projections, in NumPy."""
    encoder = model.get_layer(backbone).get_layer(
        f"transformer_layer_{layer_index}")
    mha = encoder._self_attention_layer
    hidden = encoder_input(model, backbone, layer_index, x)
    q = np.asarray(mha._query_dense(hidden), np.float64)
    k = np.asarray(mha._key_dense(hidden), np.float64)
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    keys = np.asarray(x["padding_mask"])[:, None, None, :]
    scores = np.where(keys, scores, -1e9)
    scores -= scores.max(-1, keepdims=True)
    probs = np.exp(scores)
    return probs / probs.sum(-1, keepdims=True)


@pytest.fixture
def pair():
    teacher = sharpen_attention(bert_classifier(3, 4, 32, "teacher"))
    student = sharpen_attention(bert_classifier(2, 2, 16, "student"))
    return teacher, student


def test_probabilities_inside_encoder_layers_match_a_hand_computation(pair):
    teacher, _ = pair
    x, _ = bert_inputs()
    tap = Tap(TEACHER_MHA, ATTENTION_PROBABILITIES)
    with LayerCapture(teacher, [tap], "teacher") as capture:
        logits = teacher(x, training=False)
    captured = capture.result()[tap]
    expected = probabilities_by_hand(teacher, "teacher_backbone", 2, x)
    np.testing.assert_allclose(captured.value, expected, atol=2e-5)
    # keras-hub masks padded keys only; padded queries are found anyway.
    np.testing.assert_array_equal(captured.mask, x["padding_mask"])
    # What the model returns is unchanged by the capture.
    np.testing.assert_allclose(logits, teacher(x, training=False),
                               atol=1e-5)


def test_distiller_attention_loss_is_minilm_kl_over_valid_queries(pair):
    teacher, student = pair
    x, y = bert_inputs()
    distiller = keras_kd.Distiller(
        teacher, student, attention_pairs=[(TEACHER_MHA, STUDENT_MHA)])
    distiller.compile(attention_weight=1.0)
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    t_probs = probabilities_by_hand(teacher, "teacher_backbone", 2, x)
    s_probs = probabilities_by_hand(student, "student_backbone", 1, x)
    expected = ref.attention_map_kd(t_probs, s_probs, "kl",
                                    x["padding_mask"])
    assert expected > 0.05
    assert logs["attention_loss"] == pytest.approx(expected, rel=1e-3)


def test_identical_teacher_and_student_give_zero_losses(pair):
    teacher, _ = pair
    student = bert_classifier(3, 4, 32, "teacher")
    student.set_weights(teacher.get_weights())
    x, y = bert_inputs()
    distiller = keras_kd.Distiller(teacher, student,
                                   attention_pairs=[(TEACHER_MHA,
                                                     TEACHER_MHA)])
    distiller.compile(attention_weight=1.0)
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert abs(logs["attention_loss"]) < 1e-6
    assert abs(logs["distillation_loss"]) < 1e-6


@pytest.mark.slow
def test_fit_precompute_and_the_student_unchanged(pair):
    teacher, student = pair
    x, y = bert_inputs(batch=16)
    params, config = student.count_params(), student.get_config()
    distiller = keras_kd.Distiller(
        teacher, student, attention_pairs=[(TEACHER_MHA, STUDENT_MHA)],
        hint_pairs=[("teacher_backbone/transformer_layer_1",
                     "student_backbone/transformer_layer_0")])
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3),
                      attention_weight=1.0, hint_weight=0.1)
    before = distiller.evaluate(x, y, verbose=0, return_dict=True)
    stored = distiller.precompute(tf.data.Dataset.from_tensor_slices((x, y)),
                                  verbose=0)
    offline = distiller.evaluate(stored.batch(16), verbose=0,
                                 return_dict=True)
    for key in ("loss", "attention_loss", "hint_loss", "distillation_loss"):
        assert offline[key] == pytest.approx(before[key], rel=1e-4,
                                             abs=1e-7), key
    history = distiller.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["attention_loss"][-1] < before["attention_loss"]
    assert student.count_params() == params
    assert student.get_config() == config


def test_cached_attention_inside_a_causal_decoder():
    inputs = keras.Input((10,), dtype="int32")
    embedded = keras.layers.Embedding(40, 16, mask_zero=True,
                                      name="embedding")(inputs)
    decoder = keras_hub.layers.TransformerDecoder(32, 2, name="decoder")
    x = decoder(embedded)
    model = keras.Model(inputs, keras.layers.Dense(3)(
        keras.layers.GlobalAveragePooling1D()(x)))
    sharpen_attention(model)
    mha = decoder._self_attention_layer
    assert isinstance(mha, keras_hub.layers.CachedMultiHeadAttention)
    ids = np.random.default_rng(0).integers(1, 40, (4, 10)).astype("int32")
    ids[1, 6:] = 0
    tap = Tap("decoder/self_attention", ATTENTION_PROBABILITIES)
    with LayerCapture(model, [tap]) as capture:
        model(ids)
    captured = capture.result()[tap]
    hidden = model.get_layer("embedding")(ids)
    q = np.asarray(mha._query_dense(hidden), np.float64)
    k = np.asarray(mha._key_dense(hidden), np.float64)
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    visible = np.tril(np.ones((10, 10), bool))[None] & (ids != 0)[:, None]
    scores = np.where(visible[:, None], scores, -1e9)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(captured.value, probs, atol=2e-5)
    np.testing.assert_array_equal(captured.mask, ids != 0)
