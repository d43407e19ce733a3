"""Every Python block of README.md runs, verbatim, on small fixtures.

The README's placeholders (`make_student`, `teacher.keras`, `x_train`,
`big`, `teacher_a`, `train_ds`, ...) are given small random-init models
whose layer names are the README's; each test then checks what its block
promises.
"""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md")) as _f:
    BLOCKS = re.findall(r"```python\n(.*?)```", _f.read(), re.S)


def block(marker):
    (found,) = [b for b in BLOCKS if marker in b]
    return found


def test_every_block_is_tested():
    markers = ["make_student()", "label_smoothing", "BertTextClassifier",
               "teacher_a, teacher_b", "compression.prune",
               "OnPolicyDistiller", "DistillationTensorBoard"]
    assert sorted(BLOCKS) == sorted(block(m) for m in markers)


def blocks_cnn(name, taps, nested=None):
    """A 28×28 CNN whose layers are named as the README's paths."""
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for position, (layer, pool) in enumerate(taps):
        x = keras.layers.Conv2D(4 + 4 * position, 3, padding="same",
                                activation="relu", name=layer)(x)
        if pool:
            x = keras.layers.MaxPooling2D()(x)
    if nested is not None:
        x = nested(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x),
                       name=name)


def images(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 28, 28, 1)).astype("float32"),
            rng.integers(0, 10, n).astype("int32"))


def quickstart_namespace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inner = keras.Input((14, 14, 8))
    backbone = keras.Model(inner, keras.layers.Conv2D(
        8, 3, strides=2, padding="same", name="block3_out")(inner),
        name="backbone")
    blocks_cnn("teacher", [("block1", True), ("block2_out", False)],
               nested=backbone).save("teacher.keras")
    x, y = images(32)
    return {"make_student": lambda: blocks_cnn(
        "student", [("block1_out", True), ("block2_out", True)]),
        "x_train": x, "y_train": y, "x_val": x[:16], "y_val": y[:16]}


def test_quickstart(tmp_path, monkeypatch):
    namespace = quickstart_namespace(tmp_path, monkeypatch)
    exec(block("make_student()"), namespace)
    distiller = namespace["distiller"]
    assert [t.name for t in distiller.terms] == ["distillation", "attention"]
    assert float(distiller.temperature) == 4.0
    assert float(distiller.alpha) == pytest.approx(0.1)
    student = keras.models.load_model(tmp_path / "student.keras")
    assert student.count_params() == namespace["student"].count_params()
    # The next block continues the same session: any label form.
    exec(block("label_smoothing"), namespace)
    loss = distiller.student_loss_fn
    assert isinstance(loss, keras.losses.CategoricalCrossentropy)
    assert loss.get_config()["label_smoothing"] == 0.1


def test_keras_hub_block():
    import keras_hub

    def bert(layers, name):
        return keras_hub.models.BertBackbone(
            vocabulary_size=30, num_layers=layers, num_heads=2,
            hidden_dim=8, intermediate_dim=16, max_sequence_length=12,
            name=name)

    student = keras_hub.models.BertTextClassifier(
        backbone=bert(4, "student_backbone"), num_classes=2,
        preprocessor=None, activation=None)
    namespace = {"keras_hub": keras_hub, "keras_kd": keras_kd,
                 "big": bert(12, "bert_backbone"), "student": student}
    exec(block("BertTextClassifier"), namespace)
    (term,) = namespace["distiller"].terms[1:]
    assert isinstance(term, keras_kd.terms.AttentionMapTerm)
    assert float(term.weight) == 1.0


def test_hints_block():
    namespace = {"keras_kd": keras_kd,
                 "teacher_a": blocks_cnn("a", [("block5_out", False)]),
                 "teacher_b": blocks_cnn("b", [("conv", False)]),
                 "student": blocks_cnn("student", [("block1_out", False)])}
    exec(block("teacher_a, teacher_b"), namespace)
    distiller = namespace["distiller"]
    assert [t.name for t in distiller.terms] == ["hint", "distillation"]
    assert float(distiller.terms[0].weight) == 0.5
    assert float(distiller.temperature) == 2.0
    np.testing.assert_allclose(distiller.teacher_weights, [0.7, 0.3])


def test_language_model_block(tmp_path, monkeypatch):
    import keras_hub

    def gpt2(layers, name):
        backbone = keras_hub.models.GPT2Backbone(
            vocabulary_size=40, num_layers=layers, num_heads=2,
            hidden_dim=8, intermediate_dim=16, max_sequence_length=64,
            name=f"{name}_backbone")
        return keras_hub.models.GPT2CausalLM(backbone=backbone,
                                             preprocessor=None, name=name)

    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(0)
    ids = np.random.default_rng(0).integers(1, 40, (4, 8)).astype("int32")
    student = gpt2(1, "student")
    namespace = {"keras_kd": keras_kd, "teacher": gpt2(2, "teacher"),
                 "student": student, "prompt_ids": [3, 4, 5],
                 "prompts": {"token_ids": ids,
                             "padding_mask": np.ones_like(ids, bool)}}
    before = [w.copy() for w in student.get_weights()]
    exec(block("OnPolicyDistiller"), namespace)
    assert namespace["sequences"]["token_ids"].shape == (4, 40)
    assert namespace["sequences"]["response_mask"].sum() == 4 * 32
    assert any((a != b).any() for a, b in zip(before,
                                              student.get_weights()))
    assert (tmp_path / "student.tflite").read_bytes()[4:8] == b"TFL3"


@pytest.mark.slow
def test_compression_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = images(64)
    namespace = {
        "student": blocks_cnn("student", [("conv", True)]),
        "teacher": blocks_cnn("teacher", [("conv", True)]),
        "train_ds": tf.data.Dataset.from_tensor_slices((x, y)).batch(16)}
    exec(block("compression.prune"), namespace)
    # 2:4 along the inputs: exactly half of the logits kernel (the
    # one-channel stem has no group of 4 inputs to sparsify).
    kernel = namespace["pruned"].get_layer("logits").get_weights()[0]
    assert np.mean(kernel == 0) == pytest.approx(0.5)
    with open(tmp_path / "student_int8.tflite", "rb") as f:
        assert f.read(8)[4:8] == b"TFL3"


def test_method_zoo_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def cnn(name, width):
        inputs = keras.Input((28, 28, 1))
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same",
                                activation="relu", name="block3")(inputs)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x),
                           name=name)

    x, y = images(32)
    namespace = {"keras_kd": keras_kd, "teacher": cnn("teacher", 8),
                 "student": cnn("student", 4), "x_train": x, "y_train": y,
                 "x_val": x[:8]}
    exec(block("DistillationTensorBoard"), namespace)
    history = namespace["distiller"].history.history
    for name in ("rkd_loss", "similarity_preserving_loss", "attention_loss"):
        assert np.isfinite(history[name][0]), name
    assert any(name.startswith("events.out.tfevents")
               for _, _, files in os.walk(tmp_path / "logs")
               for name in files)
