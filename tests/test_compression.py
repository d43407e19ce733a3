"""Pruning, QAT, TFLite export and LiteRT evaluation on a small task."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import quadrant_images

import keras_kd
from keras_kd.compression import compress
from keras_kd.compression import evaluate_tflite
from keras_kd.compression import FineTuning
from keras_kd.compression import MByNSparsity
from keras_kd.compression import export_tflite
from keras_kd.compression import prune
from keras_kd.compression import quantize
from keras_kd.compression import weight_sparsity
from keras_kd.compression.tflite_eval import tflite_sparsity

ONE_EPOCH = FineTuning(epochs=1, learning_rate=3e-3)


def make_classifier(name="student"):
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False,
                            name="stem")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.SeparableConv2D(16, 3, padding="same",
                                     activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x), name=name)


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    x, y = quadrant_images(768)
    x_test, y_test = quadrant_images(256, seed=1)
    model = make_classifier()
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    assert accuracy > 0.9  # the task is learnable; the checks below mean it
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(128)
    return model, train, test, accuracy


def test_prune_reaches_target_sparsity_and_keeps_the_architecture(trained):
    model, train, test, _ = trained
    pruned = prune(model, train, teacher=model, target_sparsity=0.6,
                   fine_tuning=FineTuning(epochs=2, learning_rate=3e-3),
                   verbose=0)
    assert weight_sparsity(pruned) == pytest.approx(0.6, abs=0.03)
    assert pruned.count_params() == model.count_params()
    assert not any("prune_low_magnitude" in layer.name
                   for layer in pruned.layers)
    # The input model is untouched.
    assert weight_sparsity(model) < 0.01


def test_keep_dense_leaves_named_layers_unpruned(trained):
    model, train, _, _ = trained
    pruned = prune(model, train, target_sparsity=0.6, keep_dense=["stem"],
                   fine_tuning=ONE_EPOCH, verbose=0)
    stem = pruned.get_layer("stem").get_weights()[0]
    hidden = pruned.get_layer("hidden").get_weights()[0]
    assert np.mean(stem == 0) < 0.01
    assert np.mean(hidden == 0) == pytest.approx(0.6, abs=0.02)


def test_keep_dense_names_must_exist(trained):
    model, train, _, _ = trained
    with pytest.raises(ValueError, match="keep_dense.*'nope'"):
        prune(model, train, keep_dense=("nope",), verbose=0)


def test_m_by_n_structured_sparsity(trained):
    model, train, _, _ = trained
    pruned = prune(model, train, structure=MByNSparsity(2, 4),
                   fine_tuning=ONE_EPOCH, verbose=0)
    dense = pruned.get_layer("hidden").get_weights()[0]
    # Each group of 4 consecutive input weights keeps at most 2.
    groups = (dense != 0).reshape(-1, 4, dense.shape[1]).sum(axis=1)
    assert groups.max() <= 2


@pytest.mark.slow
def test_quantize_scheme_decides_whether_pruned_zeros_survive_qat(trained):
    model, train, _, _ = trained
    pruned = prune(model, train, target_sparsity=0.6, fine_tuning=ONE_EPOCH,
                   verbose=0)
    tuning = FineTuning(epochs=1, learning_rate=1e-3)

    def hidden_zeros(qat):
        layer = next(layer for layer in qat.layers
                     if layer.name.endswith("hidden"))
        kernel = next(w for w in layer.weights if "kernel" in w.name)
        return float(np.mean(kernel.numpy() == 0))

    kept = quantize(pruned, train, scheme="auto", fine_tuning=tuning,
                    verbose=0)
    lost = quantize(pruned, train, scheme="default_8bit",
                    fine_tuning=tuning, verbose=0)
    assert hidden_zeros(kept) == pytest.approx(0.6, abs=0.02)
    assert hidden_zeros(lost) < 0.3  # 0.18 measured: QAT moved most zeros
    with pytest.raises(ValueError, match="scheme='qat'"):
        quantize(pruned, train, scheme="qat", verbose=0)
    with pytest.raises(TypeError, match="scheme=8 of type int"):
        quantize(pruned, train, scheme=8, verbose=0)


def test_export_float_and_quantized_variants(trained, tmp_path):
    model, train, test, keras_accuracy = trained
    sizes = {}
    for quantization in (None, "dynamic", "float16", "int8"):
        path = str(tmp_path / f"m_{quantization}.tflite")
        export_tflite(model, path, quantization=quantization,
                      representative_data=train)
        results = evaluate_tflite(path, test)
        sizes[quantization] = results["size_bytes"]
        tolerance = 0.005 if quantization is None else 0.03
        assert results["accuracy"] == pytest.approx(keras_accuracy,
                                                    abs=tolerance)
        assert results["latency_ms_p50"] > 0
        assert 0 < results["gzip_bytes"] < results["size_bytes"] * 1.05
    assert sizes["int8"] * 3 < sizes[None]
    assert sizes["float16"] < sizes[None]


def test_int8_model_has_int8_input_and_output(trained, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    model, train, _, _ = trained
    path = export_tflite(model, str(tmp_path / "m.tflite"),
                         quantization="int8",
                         representative_data=np.zeros((8, 12, 12, 1),
                                                      "float32"))
    interpreter = Interpreter(model_path=path)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8


def scale_counts(path):
    """Number of quantization scales of each tensor of a `.tflite` file."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=path).get_tensor_details()
    return [len(d["quantization_parameters"]["scales"]) for d in details]


def test_per_tensor_int8_has_one_scale_per_tensor(trained, tmp_path):
    model, train, test, keras_accuracy = trained
    paths = {}
    for per_channel in (True, False):
        paths[per_channel] = export_tflite(
            model, str(tmp_path / f"per_channel_{per_channel}.tflite"),
            quantization="int8", representative_data=train,
            per_channel=per_channel)
    assert max(scale_counts(paths[True])) >= 16  # per output channel
    assert max(scale_counts(paths[False])) == 1
    assert (os.path.getsize(paths[False])
            < os.path.getsize(paths[True]) - 16 * 12)
    results = evaluate_tflite(paths[False], test)
    assert results["accuracy"] == pytest.approx(keras_accuracy, abs=0.03)
    with pytest.raises(TypeError, match="per_channel=.no."):
        export_tflite(model, str(tmp_path / "x.tflite"), per_channel="no")
    assert not os.path.exists(tmp_path / "x.tflite")


@pytest.mark.slow
def test_pruned_qat_int8_keeps_zeros_in_the_file(trained, tmp_path):
    model, train, test, keras_accuracy = trained
    pruned = prune(model, train, teacher=model, target_sparsity=0.75,
                   fine_tuning=FineTuning(epochs=2, learning_rate=3e-3),
                   verbose=0)
    qat = quantize(pruned, train, teacher=model, verbose=0)
    path = export_tflite(qat, str(tmp_path / "pruned_int8.tflite"),
                         quantization="int8", representative_data=train)
    with open(path, "rb") as f:
        data = f.read()
    assert tflite_sparsity(data) > 0.6  # read from the int8 weight tensors
    results = evaluate_tflite(path, test)
    assert results["sparsity"] == pytest.approx(tflite_sparsity(data))
    assert results["accuracy"] > keras_accuracy - 0.1


@pytest.mark.slow
def test_compress_writes_files_and_report(trained, tmp_path):
    model, train, test, _ = trained
    with pytest.raises(TypeError, match="per_channel=1"):
        compress(model, train, per_channel=1, out_dir=str(tmp_path / "bad"))
    assert not os.path.exists(tmp_path / "bad")
    out_dir = tmp_path / "out"
    # per_channel=False here; the main job's test runs the default.
    report = compress(model, train, teacher=model, val_data=test,
                      sparsity=0.5, out_dir=str(out_dir), prune_epochs=1,
                      qat_epochs=1, per_channel=False, verbose=0)
    expected = {"student_float32.tflite", "student_int8.tflite",
                "student_dynamic.tflite", "student_int8_weight_only.tflite",
                "student_int4_weight_only.tflite",
                "student_pruned_int8.tflite", "compression.json",
                "compression.md"}
    assert set(os.listdir(out_dir)) == expected
    saved = json.loads((out_dir / "compression.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert set(saved) == {"float32", "int8", "dynamic", "int8_weight_only",
                          "int4_weight_only", "pruned_int8", "path",
                          "recommended"}
    # Weight-only int8 through ai-edge-quantizer: a smaller file.
    assert saved["int8_weight_only"]["size_bytes"] < saved["float32"][
        "size_bytes"]
    assert saved["path"]["prune_and_quantize"] == "tfmot"
    assert saved["pruned_int8"]["path"] == "tfmot"
    chosen = saved[saved["recommended"]["name"]]
    assert chosen["accuracy"] >= saved["float32"]["accuracy"] - 0.01
    assert chosen["latency_ms_p50"] <= 1.05 * saved["float32"][
        "latency_ms_p50"]
    assert saved["pruned_int8"]["sparsity"] > 0.4
    assert saved["float32"]["sparsity"] < 0.05
    markdown = (out_dir / "compression.md").read_text()
    assert "student_pruned_int8.tflite" in markdown and "|" in markdown
    # The post-training quantized file: one scale per tensor.
    assert max(scale_counts(str(out_dir / "student_int8.tflite"))) == 1
    # The QAT file keeps TF-MOT's per-channel kernel scales.
    assert max(scale_counts(str(out_dir / "student_pruned_int8.tflite"))) > 1


@pytest.mark.slow
def test_compress_takes_the_keras_path_on_any_twin_error(
        trained, tmp_path, monkeypatch):
    """A twin that raises TypeError (as MobileNetV3's `hard_silu` did)
    means Keras-native pruning and QAT, with the reason in the report, in
    one complete folder; a failure later leaves `out_dir` as it was."""
    from keras_kd.compression import pipeline
    from keras_kd.compression import twin

    model, train, test, _ = trained

    def no_twin(model):
        raise TypeError("Unknown activation function 'hard_silu'")

    monkeypatch.setattr(twin, "to_tf_keras", no_twin)
    out_dir = tmp_path / "out"
    report = compress(model, train, val_data=test, out_dir=str(out_dir),
                      candidates=("dynamic",), verbose=0)
    assert report["path"] == {
        "prune_and_quantize": "keras",
        "reason": "TypeError: Unknown activation function 'hard_silu'"}
    assert report["pruned_int8"]["sparsity"] >= 0.6
    assert "skipped" not in report
    assert set(os.listdir(out_dir)) == {
        "student_float32.tflite", "student_int8.tflite",
        "student_dynamic.tflite", "student_pruned_int8.tflite",
        "compression.json", "compression.md"}
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no staging folder left

    def broken(*args, **kwargs):
        raise RuntimeError("LiteRT failed")

    before = {name: (out_dir / name).read_bytes()
              for name in os.listdir(out_dir)}
    monkeypatch.setattr(pipeline, "evaluate_tflite", broken)
    with pytest.raises(RuntimeError, match="LiteRT failed"):
        compress(model, train, val_data=test, out_dir=str(out_dir),
                 candidates=("dynamic",), verbose=0)
    assert {name: (out_dir / name).read_bytes()
            for name in os.listdir(out_dir)} == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_recommendation_never_loses():
    from keras_kd.compression.pipeline import recommend

    def entry(accuracy, gzip_kb, latency):
        return {"file": f"{accuracy}.tflite", "accuracy": accuracy,
                "size_bytes": 2048 * gzip_kb, "gzip_bytes": 1024 * gzip_kb,
                "latency_ms_p50": latency}

    report = {"float32": entry(0.90, 100, 1.0),
              "int8": entry(0.87, 25, 0.5),          # 3 pt worse
              "pruned_int8": entry(0.895, 10, 1.2),  # slower
              "dynamic": entry(0.899, 30, 1.04),     # within the noise
              "path": {"prune_and_quantize": "tfmot", "reason": ""}}
    assert recommend(report, 0.01)["name"] == "dynamic"
    assert recommend(report, 0.05)["name"] == "int8"
    report["dynamic"]["latency_ms_p50"] = 1.2
    assert recommend(report, 0.01)["name"] == "float32"


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "half"])
def test_bad_sparsity(trained, bad):
    model, train, _, _ = trained
    # A string is a TypeError, an out-of-range number a ValueError.
    with pytest.raises((TypeError, ValueError), match="target_sparsity"):
        prune(model, train, target_sparsity=bad, verbose=0)
    with pytest.raises((TypeError, ValueError), match="sparsity"):
        compress(model, train, sparsity=bad, out_dir="unused")


def test_bad_candidates(trained):
    model, train, _, _ = trained
    for bad in (("float8",), ("int3_weight_only",), (None,)):
        with pytest.raises(ValueError, match="candidates"):
            compress(model, train, candidates=bad, out_dir="unused")
    assert not os.path.exists("unused")


def test_int8_needs_representative_data(trained, tmp_path):
    model, _, _, _ = trained
    with pytest.raises(ValueError, match="representative_data=None"):
        export_tflite(model, str(tmp_path / "m.tflite"), quantization="int8")
    assert os.listdir(tmp_path) == []


def test_representative_data_of_wrong_shape(trained, tmp_path):
    model, _, _, _ = trained
    wrong = np.zeros((4, 28, 28, 1), "float32")
    with pytest.raises(ValueError,
                       match="representative_data.*\\(28, 28, 1\\)"):
        export_tflite(model, str(tmp_path / "m.tflite"), quantization="int8",
                      representative_data=wrong)
    assert os.listdir(tmp_path) == []


def test_output_folder_must_exist(trained, tmp_path):
    model, _, _, _ = trained
    with pytest.raises(ValueError, match="folder of `path` does not exist"):
        export_tflite(model, str(tmp_path / "missing" / "m.tflite"))


def test_unknown_quantization(trained, tmp_path):
    model, _, _, _ = trained
    with pytest.raises(ValueError, match="quantization='int4'"):
        export_tflite(model, str(tmp_path / "m.tflite"), quantization="int4")


def test_not_a_tflite_file(tmp_path, trained):
    _, _, test, _ = trained
    path = tmp_path / "fake.tflite"
    path.write_text("definitely not a flatbuffer")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        evaluate_tflite(str(path), test)
    with pytest.raises(FileNotFoundError, match="path="):
        evaluate_tflite(str(tmp_path / "none.tflite"), test)


def test_subclassed_model_cannot_be_pruned(trained):
    _, train, _, _ = trained

    class Tiny(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed"):
        prune(Tiny(), train, verbose=0)


@pytest.mark.slow
def test_keras_applications_mobilenet_through_prune_qat_and_int8(tmp_path):
    """A keras.applications student (random init) on the whole path."""
    student = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=4,
        classifier_activation=None)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 4, 64).astype("int32")
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    pruned = prune(student, train, target_sparsity=0.5,
                   fine_tuning=ONE_EPOCH, verbose=0)
    assert weight_sparsity(pruned) >= 0.45
    quantized = quantize(pruned, train, verbose=0)
    path = export_tflite(quantized, tmp_path / "m.tflite",
                         quantization="int8", representative_data=train)
    results = evaluate_tflite(path, train)
    assert results["examples"] == 64 and 0.0 <= results["accuracy"] <= 1.0
    assert results["sparsity"] >= 0.4


def perturbed(model, seed=0):
    """Random BatchNormalization statistics: random-init keras.applications
    models otherwise output logits near 1e-10, which any twin matches."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape),
                               rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape),
                               rng.uniform(0.5, 1.5, variance.shape)])
    return model


@pytest.mark.parametrize("family", ["MobileNetV3Small", "MobileNetV3Large",
                                    "EfficientNetB0"])
def test_keras_applications_twins_match_keras(family):
    """MobileNetV3 (hard SiLU, hard sigmoid as `x + 3` operators) and
    EfficientNetB0 twins give Keras's logits to 1e-4 · max(1, |logit|)."""
    from keras_kd.compression.twin import to_tf_keras

    keras.utils.set_random_seed(0)
    kwargs = {"include_preprocessing": False} if "V3" in family else {}
    model = perturbed(getattr(keras.applications, family)(
        input_shape=(32, 32, 3), weights=None, classes=5,
        classifier_activation=None, **kwargs))
    x = np.random.default_rng(1).normal(size=(4, 32, 32, 3)).astype(
        "float32")
    expected = np.asarray(model(x, training=False))
    got = to_tf_keras(model)(x, training=False).numpy()
    assert np.abs(expected).max() > 1e-2  # logits that can disagree
    assert np.abs(got - expected).max() <= 1e-4 * max(
        1.0, np.abs(expected).max())


@pytest.mark.slow
def test_mobilenet_v3_through_compress(tmp_path):
    """MobileNetV3Small (random init): TF-MOT's QAT refuses its twin's
    operator layers, so pruning and QAT take the Keras-native path, and the
    report says why."""
    keras.utils.set_random_seed(0)
    student = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, classes=4,
        classifier_activation=None, include_preprocessing=False)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 4, 32).astype("int32")
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    report = compress(student, train, sparsity=0.5, prune_epochs=1,
                      out_dir=str(tmp_path / "out"), verbose=0)
    assert report["path"]["prune_and_quantize"] == "keras"
    assert "TFOpLambda" in report["path"]["reason"]
    assert "skipped" not in report
    assert report["pruned_int8"]["sparsity"] >= 0.4
    assert report["float32"]["sparsity"] < 0.05
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert "Keras-native" in (tmp_path / "out" / "compression.md"
                              ).read_text()


def mlp(width, name):
    inputs = keras.Input((12, 12, 1))
    hidden = keras.layers.Dense(width, activation="relu")(
        keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(10)(hidden), name=name)


def test_fine_tuning_loss_is_the_distillers(data):
    from keras_kd.compression.fine_tune import fine_tune
    from keras_kd.compression.twin import to_tf_keras

    x, y = data

    teacher, student = mlp(32, "teacher"), mlp(8, "student")
    distiller = keras_kd.Distiller(teacher, student)
    distiller.compile(alpha=0.3, temperature=2.5)
    expected = distiller.evaluate(x, y, batch_size=32, verbose=0,
                                  return_dict=True)["loss"]
    losses = fine_tune(to_tf_keras(student),
                       tf.data.Dataset.from_tensor_slices((x, y)).batch(32),
                       teacher=teacher,
                       fine_tuning=FineTuning(alpha=0.3, temperature=2.5,
                                              learning_rate=1e-12),
                       verbose=0)
    assert losses[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    ({"epochs": 0}, "epochs=0"),
    ({"learning_rate": -1.0}, "learning_rate=-1.0"),
    ({"alpha": 2.0}, "alpha=2.0"),
    ({"temperature": 0.0}, "temperature=0.0"),
])
def test_fine_tuning_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FineTuning(**kwargs)


def test_fine_tuning_round_trips_its_config():
    tuning = FineTuning(epochs=3, learning_rate=1e-3, alpha=0.5,
                        temperature=4.0)
    assert FineTuning.from_config(tuning.get_config()).get_config() == (
        tuning.get_config())
    smoothed = FineTuning(loss=keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1))
    again = FineTuning.from_config(smoothed.get_config())
    assert again.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    assert FineTuning(loss="categorical_crossentropy").loss.get_config()[
        "from_logits"]
    with pytest.raises(ValueError, match="from_logits=False"):
        FineTuning(loss=keras.losses.CategoricalCrossentropy())


def test_fine_tuning_loss_is_the_distillers_loss(data):
    """`FineTuning(loss=...)` (label smoothing) gives the loss the
    Distiller computes with the same `compile(loss=...)`."""
    from keras_kd.compression.fine_tune import fine_tune
    from keras_kd.compression.twin import to_tf_keras

    x, y = data
    one_hot = keras.utils.to_categorical(y, 10)
    smoothed = keras.losses.CategoricalCrossentropy(from_logits=True,
                                                    label_smoothing=0.2)
    teacher, student = mlp(32, "teacher"), mlp(8, "student")
    distiller = keras_kd.Distiller(teacher, student)
    distiller.compile(alpha=0.3, temperature=2.5, loss=smoothed)
    expected = distiller.evaluate(x, one_hot, batch_size=32, verbose=0,
                                  return_dict=True)["loss"]
    losses = fine_tune(
        to_tf_keras(student),
        tf.data.Dataset.from_tensor_slices((x, one_hot)).batch(32),
        teacher=teacher, verbose=0, fine_tuning=FineTuning(
            alpha=0.3, temperature=2.5, learning_rate=1e-12, loss=smoothed))
    assert losses[0] == pytest.approx(expected, rel=1e-5)


def test_evaluate_tflite_takes_one_hot_and_weighted_batches(
        trained, tmp_path):
    model, _, test, _ = trained
    path = export_tflite(model, str(tmp_path / "m.tflite"))
    plain = evaluate_tflite(path, test)["accuracy"]
    one_hot = test.map(lambda x, y: (x, tf.one_hot(y, 4)))
    weighted = test.map(lambda x, y: (x, y, tf.ones_like(y, tf.float32)))
    assert evaluate_tflite(path, one_hot)["accuracy"] == plain
    assert evaluate_tflite(path, weighted)["accuracy"] == plain
    assert plain > 0.9


def test_fine_tuning_takes_sample_weights_and_one_hot_labels(data):
    """The loss of a weighted (and of a one-hot) batch is the Distiller's:
    zero-weighted examples count in the divisor, as in Keras."""
    from keras_kd.compression.fine_tune import fine_tune
    from keras_kd.compression.twin import to_tf_keras

    x, y = data
    weights = np.r_[np.ones(16), np.zeros(16)].astype("float32")
    teacher, student = mlp(32, "teacher"), mlp(8, "student")
    distiller = keras_kd.Distiller(teacher, student)
    distiller.compile(alpha=0.3, temperature=2.5)
    expected = distiller.evaluate(x, y, sample_weight=weights, batch_size=32,
                                  verbose=0, return_dict=True)["loss"]
    settings = FineTuning(alpha=0.3, temperature=2.5, learning_rate=1e-12)
    for labels in (y, keras.utils.to_categorical(y, 10)):
        losses = fine_tune(
            to_tf_keras(student), tf.data.Dataset.from_tensor_slices(
                (x, labels, weights)).batch(32),
            teacher=teacher, fine_tuning=settings, verbose=0)
        assert losses[0] == pytest.approx(expected, rel=1e-5)
