"""Behaviour of the Distiller, checked by observable facts."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_kd
from conftest import make_cnn
from conftest import make_nested_teacher
from numpy_reference import attention_transfer
from numpy_reference import log_softmax
from numpy_reference import soft_target_kd

PAIRS = [("backbone/relu1", "relu1"), ("backbone/conv2", "conv2", 0.5)]


def make_distiller(pairs=PAIRS, student_dropout=0.0, **compile_kwargs):
    teacher = make_nested_teacher()
    student = make_cnn(4, "student", dropout=student_dropout)
    distiller = keras_kd.Distiller(teacher, student, attention_pairs=pairs)
    compile_kwargs.setdefault("optimizer", keras.optimizers.SGD(0.1))
    distiller.compile(metrics=["accuracy"], **compile_kwargs)
    return distiller


def weights_of(model):
    return [w.numpy().copy() for w in model.weights]


def assert_same_weights(before, after):
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


@keras.saving.register_keras_serializable(package="keras_kd_tests")
class CallCounter(keras.layers.Layer):
    """Identity layer that counts its executed calls, and training ones."""

    def build(self, input_shape):
        self.count = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="count"
        )
        self.training_count = self.add_weight(
            shape=(), initializer="zeros", trainable=False,
            name="training_count"
        )

    def call(self, x, training=None):
        self.count.assign_add(1.0)
        if training:
            self.training_count.assign_add(1.0)
        return x


def test_logs_and_predict(data):
    x, y = data
    distiller = make_distiller()
    history = distiller.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert set(history.history) == {
        "loss", "student_loss", "distillation_loss", "attention_loss",
        "accuracy",
    }
    np.testing.assert_allclose(
        distiller.predict(x, verbose=0),
        distiller.student.predict(x, verbose=0), rtol=1e-6,
    )
    assert distiller.student is not distiller.teacher


@keras.saving.register_keras_serializable(package="keras_kd_tests")
class ActivityPenalty(keras.layers.Layer):
    """Identity that adds `scale · mean(x²)` with `add_loss`."""

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        self.add_loss(self.scale * keras.ops.mean(keras.ops.square(x)))
        return x


def test_the_students_own_losses_count_in_the_loss(data):
    x, y = data
    inputs = keras.Input((12, 12, 1))
    h = keras.layers.Flatten()(inputs)
    h = ActivityPenalty(0.5, name="penalty")(keras.layers.Dense(
        8, kernel_regularizer=keras.regularizers.L2(100.0), name="hidden")(h))
    student = keras.Model(inputs, keras.layers.Dense(10, name="logits")(h),
                          name="student")
    distiller = keras_kd.Distiller(make_nested_teacher(), student)
    distiller.compile(alpha=0.5, temperature=2.0)
    logs = distiller.evaluate(x, y, batch_size=32, verbose=0,
                              return_dict=True)
    kernel = student.get_layer("hidden").kernel.numpy().astype("float64")
    hidden = keras.Model(inputs, student.get_layer("hidden").output).predict(
        x, verbose=0).astype("float64")
    own = 100.0 * np.sum(kernel ** 2) + 0.5 * np.mean(hidden ** 2)
    assert own > 10 * logs["student_loss"]  # far from negligible
    assert logs["loss"] == pytest.approx(
        0.5 * logs["student_loss"] + 0.5 * logs["distillation_loss"] + own,
        rel=1e-5)


def test_no_attention_pairs_omits_attention_loss(data):
    x, y = data
    history = make_distiller(pairs=None).fit(x, y, verbose=0)
    assert "attention_loss" not in history.history


def test_loss_is_the_documented_weighted_sum(data):
    x, y = data
    distiller = make_distiller(alpha=0.3, temperature=4.0,
                               attention_weight=250.0)
    logs = distiller.evaluate(x, y, batch_size=32, verbose=0,
                              return_dict=True)
    # Independent of keras_kd's capture: plain Keras sub-models.
    backbone = distiller.teacher.get_layer("backbone")
    teacher_taps = keras.Model(backbone.input, [
        backbone.output, backbone.get_layer("relu1").output,
        backbone.get_layer("conv2").output]).predict(x, verbose=0)
    student = distiller.student
    student_taps = keras.Model(student.input, [
        student.output, student.get_layer("relu1").output,
        student.get_layer("conv2").output]).predict(x, verbose=0)
    t_logits, s_logits = teacher_taps[0], student_taps[0]
    student_loss = -np.mean(log_softmax(s_logits.astype("float64"))
                            [np.arange(len(y)), y])
    kd = soft_target_kd(t_logits, s_logits, 4.0)
    at = (attention_transfer(teacher_taps[1], student_taps[1])
          + 0.5 * attention_transfer(teacher_taps[2], student_taps[2]))
    expected = 0.3 * student_loss + 0.7 * kd + 250.0 * at
    assert logs["student_loss"] == pytest.approx(student_loss, rel=1e-4)
    assert logs["distillation_loss"] == pytest.approx(kd, rel=1e-4)
    assert logs["attention_loss"] == pytest.approx(at, rel=1e-4)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(
    "distillation_loss_fn",
    [keras.losses.KLDivergence(), "kl_divergence",
     keras_kd.losses.SoftTargetKD(4.0)],
)
def test_keras_kl_divergence_gives_the_default_value(data,
                                                     distillation_loss_fn):
    x, y = data
    distiller = make_distiller(temperature=4.0)
    default = distiller.evaluate(x, y, verbose=0, return_dict=True)
    distiller.compile(temperature=4.0,
                      distillation_loss_fn=distillation_loss_fn)
    other = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert other["distillation_loss"] == pytest.approx(
        default["distillation_loss"], rel=1e-4
    )


def test_one_batchnorm_update_per_train_step(data):
    x, y = data
    distiller = make_distiller()
    student = distiller.student
    bn = student.get_layer("bn1")
    conv1 = keras.Model(student.inputs, student.get_layer("conv1").output)
    features = conv1.predict(x, verbose=0).astype("float64")
    batch_mean = features.mean(axis=(0, 1, 2))
    batch_var = features.var(axis=(0, 1, 2))
    distiller.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    # One step: moving = momentum * initial + (1 - momentum) * batch value.
    m = bn.momentum
    np.testing.assert_allclose(bn.moving_mean.numpy(), (1 - m) * batch_mean,
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(bn.moving_variance.numpy(),
                               m * 1.0 + (1 - m) * batch_var, rtol=1e-4)


def with_counter(model, name):
    inputs = keras.Input((12, 12, 1))
    counted = CallCounter(name="counter")(inputs)
    return keras.Model(inputs, model(counted), name=name)


@pytest.mark.parametrize("pairs", ["attention", "hint", "none"])
def test_one_teacher_and_one_student_pass_per_step(data, pairs):
    x, y = data
    teacher = with_counter(make_nested_teacher(), "teacher")
    student = with_counter(make_cnn(4, "student_core"), "student")
    layers = [("teacher/backbone/relu1", "student_core/relu1")]
    distiller = keras_kd.Distiller(
        teacher, student,
        attention_pairs=layers if pairs == "attention" else None,
        hint_pairs=layers if pairs == "hint" else None,
    )
    distiller.compile()
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 4 steps
    student_counter = student.get_layer("counter")
    teacher_counter = teacher.get_layer("counter")
    assert float(student_counter.training_count) == 4.0
    assert float(student_counter.count) == 4.0  # no extra inference pass
    assert float(teacher_counter.count) == 4.0  # one teacher pass a step
    assert float(teacher_counter.training_count) == 0.0  # in inference


def test_student_config_and_file_are_untouched(tmp_path, data):
    import zipfile

    def config_json(path):
        with zipfile.ZipFile(path) as archive:
            return archive.read("config.json")

    x, y = data
    distiller = make_distiller(student_dropout=0.2)
    config = distiller.student.get_config()
    distiller.student.save(tmp_path / "before.keras")
    distiller.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for layer in distiller.student._flatten_layers():
        assert "call" not in vars(layer), layer.name
    assert distiller.student.get_config() == config
    distiller.student.save(tmp_path / "after.keras")
    assert config_json(tmp_path / "after.keras") == config_json(
        tmp_path / "before.keras")
    loaded = keras.models.load_model(tmp_path / "after.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               distiller.student.predict(x, verbose=0),
                               atol=1e-6)


@keras.saving.register_keras_serializable(package="keras_kd_tests")
class DoubledKD(keras_kd.losses.SoftTargetKD):
    """A subclass whose own `call` must be the one that runs."""

    def call(self, y_true, y_pred):
        return 2.0 * super().call(y_true, y_pred)


def test_your_own_soft_target_loss_runs_as_given(data):
    x, y = data
    distiller = make_distiller(temperature=4.0)
    default = distiller.evaluate(x, y, batch_size=32, verbose=0,
                                 return_dict=True)["distillation_loss"]
    for loss, factor in ((keras_kd.losses.SoftTargetKD(4.0,
                                                       reduction="sum"), 32),
                         (DoubledKD(4.0), 2)):
        distiller.compile(distillation_loss_fn=loss)
        value = distiller.evaluate(x, y, batch_size=32, verbose=0,
                                   return_dict=True)["distillation_loss"]
        assert value == pytest.approx(factor * default, rel=1e-4)
    # Its temperature is the Distiller's, as a scheduler sets it.
    assert float(distiller.temperature) == 4.0
    distiller.temperature.assign(2.0)
    at_two = distiller.evaluate(x, y, batch_size=32, verbose=0,
                                return_dict=True)["distillation_loss"]
    # A later compile that leaves the loss out keeps it (and its variable).
    distiller.compile(temperature=2.0)
    assert distiller.terms[0].loss_fn is loss
    assert at_two == pytest.approx(distiller.evaluate(
        x, y, batch_size=32, verbose=0,
        return_dict=True)["distillation_loss"], rel=1e-4)


def test_soft_target_loss_without_temperature_sets_it(data):
    distiller = make_distiller()
    distiller.compile(distillation_loss_fn=keras_kd.losses.SoftTargetKD(4.0))
    assert float(distiller.temperature) == 4.0
    with pytest.raises(ValueError, match="temperature=4.0.*temperature=2.0"):
        distiller.compile(
            distillation_loss_fn=keras_kd.losses.SoftTargetKD(4.0),
            temperature=2.0)


def test_evaluate_changes_no_state(data):
    x, y = data
    distiller = make_distiller(student_dropout=0.5)
    distiller.fit(x, y, epochs=1, verbose=0)
    before = weights_of(distiller)
    distiller.evaluate(x, y, verbose=0)
    assert_same_weights(before, weights_of(distiller))


def test_teacher_unchanged_by_fit_and_student_trained(data):
    x, y = data
    distiller = make_distiller(student_dropout=0.2)
    teacher_before = weights_of(distiller.teacher)
    student_before = weights_of(distiller.student)
    distiller.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert_same_weights(teacher_before, weights_of(distiller.teacher))
    changed = [not np.array_equal(a, b) for a, b in
               zip(student_before, weights_of(distiller.student))]
    assert all(changed[:2])  # conv1 kernel and bias moved


def test_training_reduces_the_loss(data):
    x, y = data
    distiller = make_distiller(optimizer=keras.optimizers.Adam(0.01))
    history = distiller.fit(x, y, epochs=8, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_sample_weight_is_honoured(data):
    x, y = data
    distiller = make_distiller()
    weights = np.r_[np.ones(16), np.zeros(16)].astype("float32")
    weighted = distiller.evaluate(x, y, sample_weight=weights, batch_size=32,
                                  verbose=0, return_dict=True)
    first_half = distiller.evaluate(x[:16], y[:16], batch_size=16, verbose=0,
                                    return_dict=True)
    # "sum over batch size": zero-weighted examples count in the divisor.
    for key in ("student_loss", "distillation_loss", "attention_loss",
                "loss"):
        assert weighted[key] == pytest.approx(first_half[key] / 2, rel=1e-4)


def test_temperature_variable_governs_a_jit_compiled_step(data):
    x, y = data
    distiller = make_distiller(optimizer=keras.optimizers.SGD(0.0),
                               jit_compile=True)
    temperatures = [1.0, 2.0, 5.0]

    class Schedule(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.temperature.assign(temperatures[epoch])

    history = distiller.fit(x, y, epochs=3, batch_size=32, verbose=0,
                            callbacks=[Schedule()])
    assert distiller.jit_compile
    t_logits = np.asarray(distiller.teacher(x, training=False))
    s_logits = np.asarray(distiller.student(x, training=True))
    for temperature, logged in zip(temperatures,
                                   history.history["distillation_loss"]):
        assert logged == pytest.approx(
            soft_target_kd(t_logits, s_logits, temperature), rel=1e-4
        )


def test_jit_compile_matches_graph_mode(data):
    x, y = data
    results = []
    for jit in (False, True):
        keras.utils.set_random_seed(3)
        distiller = make_distiller(jit_compile=jit)
        history = distiller.fit(x, y, epochs=2, batch_size=16, shuffle=False,
                                verbose=0)
        results.append(history.history["loss"])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4)


def test_student_saves_without_teacher_and_loads_without_keras_kd(
        data, tmp_path):
    x, y = data
    distiller = make_distiller()
    distiller.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "student.keras")
    distiller.student.save(path)
    np.save(tmp_path / "x.npy", x)
    expected = distiller.student.predict(x, verbose=0)
    script = (
        "import sys, numpy as np, keras\n"
        f"m = keras.models.load_model({path!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, m.predict(x, verbose=0))\n"
        "print(m.count_params(), [l.name for l in m.layers])\n"
        "assert 'keras_kd' not in sys.modules\n"
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    result = subprocess.run([sys.executable, "-c", script], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(distiller.student.count_params()) in result.stdout
    assert "backbone" not in result.stdout
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected,
                               rtol=1e-5, atol=1e-6)


def test_distiller_save_and_load_round_trip(data, tmp_path):
    x, y = data
    distiller = make_distiller(temperature=5.0)
    distiller.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "distiller.keras")
    distiller.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, keras_kd.Distiller)
    assert [t["config"] for t in restored.get_config()["terms"]] == [
        t["config"] for t in distiller.get_config()["terms"]]
    np.testing.assert_allclose(restored.predict(x, verbose=0),
                               distiller.predict(x, verbose=0), rtol=1e-5)
    assert_same_weights(weights_of(distiller.teacher),
                        weights_of(restored.teacher))
    assert float(restored.temperature) == 5.0
    assert restored.compiled  # from the saved compile config
    a = distiller.evaluate(x, y, verbose=0, return_dict=True)
    b = restored.evaluate(x, y, verbose=0, return_dict=True)
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)


def test_get_config_from_config_round_trip():
    distiller = make_distiller()
    config = distiller.get_config()
    clone = keras_kd.Distiller.from_config(config)
    assert [t.name for t in clone.terms] == ["distillation", "attention"]
    assert clone.terms[1].pairs == distiller.terms[1].pairs
    assert clone.student.count_params() == distiller.student.count_params()
    assert clone.teacher.count_params() == distiller.teacher.count_params()
    assert clone.get_config()["terms"] == config["terms"]
    assert keras.saving.get_registered_object(
        "keras_kd>Distiller") is keras_kd.Distiller


def test_sequential_models_and_wide_teacher(data):
    x, y = data
    teacher = keras.Sequential([
        keras.Input((12, 12, 1)),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu",
                            name="t_conv"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu",
                            name="t_conv2"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ], name="teacher")
    student = keras.Sequential([
        keras.Input((12, 12, 1)),
        keras.layers.Conv2D(4, 3, strides=2, padding="same",
                            activation="relu", name="s_conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ], name="student")
    distiller = keras_kd.Distiller(teacher, student,
                                   attention_pairs=[("t_conv2", "s_conv")])
    distiller.compile()
    history = distiller.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["attention_loss"][0])


def test_subclassed_models_without_pairs(data):
    x, y = data

    class Tiny(keras.Model):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.flatten = keras.layers.Flatten()
            self.hidden = keras.layers.Dense(units, activation="relu")
            self.out = keras.layers.Dense(10)

        def call(self, inputs, training=None):
            return self.out(self.hidden(self.flatten(inputs)))

    distiller = keras_kd.Distiller(Tiny(64), Tiny(8))
    distiller.compile()
    history = distiller.fit(x, y, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


class SubclassedStudent(keras.Model):
    """A subclassed student with BatchNorm, tapped by attribute name."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 3, padding="same")
        self.bn = keras.layers.BatchNormalization()
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.out = keras.layers.Dense(10)

    def call(self, x, training=None):
        features = keras.ops.relu(self.bn(self.conv(x), training=training))
        return self.out(self.pool(features))


def test_subclassed_student_with_attention_and_hint_pairs(data):
    x, y = data
    student = SubclassedStudent(name="student")
    distiller = keras_kd.Distiller(
        make_nested_teacher(), student,
        attention_pairs=[("backbone/relu1", "bn")],
        hint_pairs=[("backbone/conv2", "conv")])
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    history = distiller.fit(x, y, batch_size=32, epochs=1, shuffle=False,
                            verbose=0)
    assert np.isfinite(history.history["attention_loss"][0])
    assert np.isfinite(history.history["hint_loss"][0])
    # One BatchNorm update for the single step.
    moving = student.bn.moving_mean.numpy()
    assert np.all(moving != 0.0)
    assert distiller.connectors[0].kernel.shape == (1, 1, 4, 16)
    params = sum(int(np.prod(w.shape)) for w in student.weights)
    assert student.count_params() == params  # no connector inside
