"""keras_kd.lm.export_tflite: a builtins-only next-token file whose greedy
generation on LiteRT is Keras's, token for token (TensorFlow backend)."""

import keras
import numpy as np
import pytest

import keras_kd
from keras_kd.compression.tflite_eval import operator_names

VOCABULARY, WINDOW, NEW = 48, 40, 32


def causal_lm(hidden):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY, num_layers=2, num_heads=2,
        hidden_dim=hidden, intermediate_dim=2 * hidden,
        max_sequence_length=WINDOW, dropout=0.0)
    model = keras_hub.models.GPT2CausalLM(backbone=backbone,
                                          preprocessor=None)
    embedding = backbone.token_embedding.embeddings
    embedding.assign(embedding * 4.0)  # sharper than random init
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = causal_lm(16)
    path = tmp_path_factory.mktemp("lm") / "student.tflite"
    signatures = keras_kd.lm.export_tflite(model, path, WINDOW)
    return model, path, signatures


def keras_greedy(model, prompts):
    width = prompts.shape[1]
    batch = {"token_ids": np.pad(prompts, ((0, 0), (0, WINDOW - width))),
             "padding_mask": np.pad(np.ones_like(prompts, bool),
                                    ((0, 0), (0, WINDOW - width)))}
    out = keras_kd.lm.sample_continuations(model, batch, NEW,
                                           temperature=0.0)
    return np.asarray(out["token_ids"])[:, :width + NEW]


def test_file_has_both_signatures_and_builtins_only(exported):
    _, path, signatures = exported
    assert signatures == ["next_token", "decode"]
    operators = set(operator_names(path.read_bytes()))
    assert "DYNAMIC_UPDATE_SLICE" in operators  # the KV cache's update
    assert not [op for op in operators if op.startswith("Flex")]
    generator = keras_kd.lm.LiteRTGenerator(path)
    assert sorted(generator.signatures) == ["decode", "next_token"]
    assert generator.sequence_length == WINDOW


@pytest.mark.parametrize("use_cache", [True, False])
def test_litert_greedy_generation_equals_keras_token_for_token(exported,
                                                               use_cache):
    model, path, _ = exported
    prompts = np.random.default_rng(0).integers(
        1, VOCABULARY, (10, 4)).astype("int32")
    expected = keras_greedy(model, prompts)
    generator = keras_kd.lm.LiteRTGenerator(path)
    got = np.array([generator.generate(p, NEW, use_cache=use_cache)
                    for p in prompts])
    np.testing.assert_array_equal(got, expected)
    assert generator.seconds_per_token > 0


def test_int8_weights_file_is_smaller_and_generates(tmp_path):
    # Kernels of ≥ 1024 weights: the converter leaves smaller ones float.
    model = causal_lm(64)
    files = {}
    for quantization in (None, "dynamic"):
        files[quantization] = tmp_path / f"{quantization}.tflite"
        keras_kd.lm.export_tflite(model, files[quantization], WINDOW,
                                  quantization=quantization, kv_cache=False)
    assert files["dynamic"].stat().st_size < 0.5 * files[None].stat().st_size
    small = files["dynamic"]
    tokens = keras_kd.lm.LiteRTGenerator(small).generate([1, 2, 3], 5)
    assert len(tokens) == 8 and all(0 <= t < VOCABULARY for t in tokens)


def test_bad_arguments(exported, tmp_path):
    model, path, _ = exported
    with pytest.raises(ValueError, match="sequence_length=1"):
        keras_kd.lm.export_tflite(model, tmp_path / "a.tflite", 1)
    with pytest.raises(ValueError, match="quantization='int4'"):
        keras_kd.lm.export_tflite(model, tmp_path / "a.tflite", 8,
                                  quantization="int4")
    with pytest.raises(ValueError, match="must fit the file's window"):
        keras_kd.lm.LiteRTGenerator(path).generate([1] * 10, WINDOW)
    assert not list(tmp_path.iterdir())
