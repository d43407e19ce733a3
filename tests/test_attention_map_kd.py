"""AttentionMapKD and MultiHeadAttention pairs in the Distiller."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import numpy_reference as ref
from conftest import make_cnn
from conftest import make_token_transformer
from keras.src.backend import set_keras_mask

import keras_kd
from keras_kd.capture import ATTENTION_PROBABILITIES as ATTENTION
from keras_kd.capture import LayerCapture
from keras_kd.capture import Tap


def probabilities(shape, seed):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]).astype(
        "float32")


@pytest.mark.parametrize("mode", ["kl", "mse"])
@pytest.mark.parametrize("teacher_heads,student_heads", [
    (2, 2), (4, 2), (6, 2), (3, 2), (2, 4)])
def test_matches_numpy_reference(mode, teacher_heads, student_heads):
    teacher = probabilities((3, teacher_heads, 5, 5), 0)
    student = probabilities((3, student_heads, 5, 5), 1)
    value = keras_kd.losses.AttentionMapKD(mode=mode)(teacher, student)
    assert float(value) == pytest.approx(
        ref.attention_map_kd(teacher, student, mode), rel=1e-5)


def test_golden_values():
    # Hand-checkable: one head, one query, two keys.
    teacher = np.array([[[[0.5, 0.5]]]], "float32")
    student = np.array([[[[0.25, 0.75]]]], "float32")
    kl = keras_kd.losses.AttentionMapKD("kl")(teacher, student)
    mse = keras_kd.losses.AttentionMapKD("mse")(teacher, student)
    expected_kl = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    assert float(kl) == pytest.approx(expected_kl, rel=1e-6)  # 0.1438...
    assert float(mse) == pytest.approx(0.0625, rel=1e-6)


def test_grouping_averages_consecutive_teacher_heads():
    # Teacher heads (0, 1) average to the student's head 0 exactly, heads
    # (2, 3) to head 1: the loss is then zero.
    student = probabilities((2, 2, 4, 4), 0)
    spread = probabilities((2, 2, 4, 4), 1) * 0.1
    teacher = np.empty((2, 4, 4, 4), "float32")
    teacher[:, 0::2] = student + spread - spread.mean()
    teacher[:, 1::2] = student - spread + spread.mean()
    for mode in ("kl", "mse"):
        value = keras_kd.losses.AttentionMapKD(mode)(teacher, student)
        assert abs(float(value)) < 1e-6


def test_keras_mask_on_student_probs_skips_padded_queries():
    teacher = probabilities((2, 2, 4, 4), 0)
    student = probabilities((2, 2, 4, 4), 1)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    masked = keras.ops.convert_to_tensor(student)
    set_keras_mask(masked, keras.ops.convert_to_tensor(mask))
    value = keras_kd.losses.AttentionMapKD("kl")(teacher, masked)
    expected = ref.attention_map_kd(teacher, student, "kl", mask)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(ref.attention_map_kd(teacher, student))


def test_different_lengths_are_a_clear_error():
    with pytest.raises(ValueError, match="same query and key lengths"):
        keras_kd.losses.AttentionMapKD()(probabilities((1, 2, 4, 4), 0),
                                         probabilities((1, 2, 5, 5), 0))
    with pytest.raises(ValueError, match="mode='js'"):
        keras_kd.losses.AttentionMapKD(mode="js")


def tokens(batch=8, length=6, seed=0, pad=False):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 20, size=(batch, length)).astype("int32")
    if pad:
        x[::2, length // 2:] = 0
    y = rng.integers(0, 10, size=(batch,)).astype("int32")
    return x, y


def sharpen(*models):
    """Larger embeddings: peaked attention, losses far from float32 noise."""
    for i, model in enumerate(models):
        layer = model.get_layer("embedding")
        rng = np.random.default_rng(i)
        layer.set_weights([3 * rng.normal(size=w.shape).astype("float32")
                           for w in layer.get_weights()])
    return models


def reference_probabilities(model, x):
    """The probabilities from Keras itself, with return_attention_scores."""
    embedded = model.get_layer("embedding")(x)
    _, probs = model.get_layer("mha")(embedded, embedded,
                                      return_attention_scores=True)
    mask = None
    if model.get_layer("embedding").mask_zero:
        mask = (x != 0)
    return np.asarray(probs), mask


@pytest.mark.parametrize("pad", [False, True])
def test_distiller_captures_mha_probabilities_in_its_single_pass(pad):
    teacher = make_token_transformer(4, "teacher", mask_zero=pad)
    student = make_token_transformer(2, "student", dim=8, mask_zero=pad)
    sharpen(teacher, student)
    distiller = keras_kd.Distiller(teacher, student,
                                   attention_pairs=[("mha", "mha", 2.0)])
    distiller.compile(attention_weight=1.0)
    x, y = tokens(pad=pad)
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    t_probs, mask = reference_probabilities(teacher, x)
    s_probs, _ = reference_probabilities(student, x)
    assert t_probs.shape == (8, 4, 6, 6) and s_probs.shape == (8, 2, 6, 6)
    expected = 2.0 * ref.attention_map_kd(t_probs, s_probs, "kl", mask)
    assert expected > 0.05
    if pad:  # Padded queries really are left out of the average.
        unmasked = 2.0 * ref.attention_map_kd(t_probs, s_probs, "kl")
        assert abs(unmasked - expected) > 0.01 * expected
    assert logs["attention_loss"] == pytest.approx(expected, rel=1e-4)
    # The captured pass gives the student's own logits.
    with LayerCapture(student, [Tap("mha", ATTENTION)]) as capture:
        logits = student(x)
    np.testing.assert_allclose(logits, student(x), atol=1e-6)
    np.testing.assert_allclose(
        capture.result()[Tap("mha", ATTENTION)].value, s_probs, atol=1e-6)


def test_mse_mode_and_fit_trains_towards_teacher_attention():
    teacher = make_token_transformer(4, "teacher")
    student = make_token_transformer(2, "student", dim=8)
    sharpen(teacher, student)
    distiller = keras_kd.Distiller(teacher, student,
                                   attention_pairs=[("mha", "mha")])
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-2), alpha=1.0,
        attention_weight=100.0,
        attention_map_loss_fn=keras_kd.losses.AttentionMapKD(mode="mse"))
    x, y = tokens(batch=32)
    before = distiller.evaluate(x, y, verbose=0, return_dict=True)
    distiller.fit(x, y, epochs=15, batch_size=32, verbose=0)
    after = distiller.evaluate(x, y, verbose=0, return_dict=True)
    t_probs, _ = reference_probabilities(teacher, x)
    s_probs, _ = reference_probabilities(student, x)
    assert after["attention_loss"] == pytest.approx(
        ref.attention_map_kd(t_probs, s_probs, "mse"), rel=1e-4)
    assert after["attention_loss"] < 0.75 * before["attention_loss"]


def test_flash_attention_layers_are_captured_and_left_as_set():
    # The TF backend cannot run flash attention at all; the tap still reads
    # the probabilities through the explicit path and restores the flag.
    student = make_token_transformer(2, "student", flash_attention=True)
    x, _ = tokens()
    with LayerCapture(student, [Tap("mha", ATTENTION)]) as capture:
        student(x)
    probs = np.asarray(capture.result()[Tap("mha", ATTENTION)].value)
    assert probs.shape == (8, 2, 6, 6)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert student.get_layer("mha")._flash_attention is True


def test_pairing_mha_with_a_conv_map_is_a_clear_error():
    with pytest.raises(ValueError, match="two MultiHeadAttention layers"):
        keras_kd.Distiller(make_token_transformer(2, "teacher"),
                           make_token_transformer(2, "student"),
                           attention_pairs=[("mha", "ln")])


def test_mismatched_sequence_lengths_are_a_clear_error():
    with pytest.raises(ValueError, match=r"same inputs.*\(None, 6\).*"
                                         r"\(None, 4\)"):
        keras_kd.Distiller(make_token_transformer(2, "teacher"),
                           make_token_transformer(2, "student", length=4),
                           attention_pairs=[("mha", "mha")])


def test_precomputed_probabilities_give_the_live_losses():
    teacher = make_token_transformer(4, "teacher", mask_zero=True)
    student = make_token_transformer(2, "student", dim=8, mask_zero=True)
    sharpen(teacher, student)
    distiller = keras_kd.Distiller(teacher, student,
                                   attention_pairs=[("mha", "mha")])
    distiller.compile(attention_weight=1.0)
    x, y = tokens(pad=True)
    live = distiller.evaluate(x, y, batch_size=8, verbose=0,
                              return_dict=True)
    stored = keras_kd.precompute_teacher(
        teacher, tf.data.Dataset.from_tensor_slices((x, y)),
        attention_layers=["mha"], verbose=0)
    values = stored.element_spec[1]["teacher_values"]
    assert values["0:mha|attention_probabilities|raw"].shape == (4, 6, 6)
    offline = distiller.evaluate(stored.batch(8), verbose=0,
                                 return_dict=True)
    for key in ("loss", "distillation_loss", "attention_loss"):
        assert offline[key] == pytest.approx(live[key], rel=1e-5)


def test_conv_pairs_still_work_beside(data):
    # A regression guard: conv pairs are unaffected by MHA support.
    x, y = data
    distiller = keras_kd.Distiller(make_cnn(8, "teacher"),
                                   make_cnn(4, "student"),
                                   attention_pairs=[("relu1", "relu1")])
    distiller.compile()
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["attention_loss"] > 0
