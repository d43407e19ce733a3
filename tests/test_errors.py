"""Bad input: a clear error naming the argument and the value received,
raised before any training."""

import keras
import numpy as np
import pytest

import keras_kd
from conftest import make_cnn
from conftest import make_nested_teacher


@pytest.fixture
def models():
    return make_nested_teacher(), make_cnn(4, "student")


def test_unknown_layer_name_lists_closest_names(models):
    teacher, student = models
    with pytest.raises(ValueError) as info:
        keras_kd.Distiller(teacher, student,
                           attention_pairs=[("backbone/relu", "relu1")])
    message = str(info.value)
    assert "'backbone/relu'" in message and "teacher" in message
    assert "backbone/relu1" in message  # closest name offered


def test_unknown_student_layer(models):
    teacher, student = models
    with pytest.raises(ValueError, match="student layer 'conv9'"):
        keras_kd.Distiller(teacher, student,
                           attention_pairs=[("backbone/relu1", "conv9")])


def test_class_count_mismatch(models):
    teacher, _ = models
    student = make_cnn(4, "student", num_classes=7)
    with pytest.raises(ValueError, match="10 classes .* 7 classes"):
        keras_kd.Distiller(teacher, student)


@pytest.mark.parametrize("which", ["teacher", "student"])
def test_softmax_output_is_rejected(which):
    teacher = make_cnn(8, "teacher")
    student = make_cnn(4, "student")
    soft = make_cnn(4, which, final_activation="softmax")
    if which == "teacher":
        teacher = soft
    else:
        student = soft
    with pytest.raises(ValueError, match=f"{which} must output logits"):
        keras_kd.Distiller(teacher, student)


class SoftmaxModel(keras.Model):
    """A subclassed model whose `call` ends in `ops.softmax`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(10)

    def call(self, x, training=None):
        return keras.ops.softmax(self.dense(self.flatten(x)))


def softmax_ending(kind, name):
    """A model that ends in a softmax no layer type shows."""
    if kind == "subclassed":
        return SoftmaxModel(name=name)
    inputs = keras.Input((12, 12, 1))
    logits = make_cnn(4, "core")(inputs)
    if kind == "layer":
        outputs = keras.layers.Softmax(name="probs")(logits)
    elif kind == "lambda":
        outputs = keras.layers.Lambda(keras.ops.softmax)(logits)
    else:  # an op on a KerasTensor: a bare operation, no layer
        outputs = keras.ops.softmax(logits)
    return keras.Model(inputs, outputs, name=name)


@pytest.mark.parametrize("kind", ["layer", "lambda", "ops", "subclassed"])
@pytest.mark.parametrize("which", ["teacher", "student"])
def test_softmax_outputs_are_refused_by_value(kind, which):
    models = {"teacher": make_cnn(8, "teacher"),
              "student": make_cnn(4, "student")}
    models[which] = softmax_ending(kind, which)
    with pytest.raises(ValueError, match=f"The {which} must output logits"
                                         f".*{which} '{which}'.*sum to 1"):
        keras_kd.Distiller(models["teacher"], models["student"])
    # The bypass, for logits that happen to look like probabilities.
    distiller = keras_kd.Distiller(models["teacher"], models["student"],
                                   check_logits=False)
    assert distiller.check_logits is False


class LogitsModel(SoftmaxModel):
    def call(self, x, training=None):
        return self.dense(self.flatten(x))


def test_two_subclassed_models_are_checked_at_fit():
    """No input spec before the data: the first batch is the probe."""
    distiller = keras_kd.Distiller(SoftmaxModel(name="teacher"),
                                   LogitsModel(name="student"))
    distiller.compile()
    x = np.random.default_rng(0).normal(size=(8, 12, 12, 1))
    with pytest.raises(ValueError, match="teacher must output logits"):
        distiller.fit(x.astype("float32"), np.zeros(8, "int32"), verbose=0)


def test_same_model_for_teacher_and_student(models):
    _, student = models
    with pytest.raises(ValueError, match="different model objects"):
        keras_kd.Distiller(student, student)


@pytest.mark.parametrize("argument", ["teacher", "student"])
def test_non_model_argument(models, argument):
    teacher, student = models
    kwargs = {"teacher": teacher, "student": student, argument: "resnet"}
    with pytest.raises(TypeError, match=f"Received: {argument}='resnet'"):
        keras_kd.Distiller(**kwargs)


def test_attention_pair_on_a_flat_output(models):
    teacher, student = models
    with pytest.raises(ValueError, match="student layer 'gap' .*\\(None, 4\\)"):
        keras_kd.Distiller(teacher, student,
                           attention_pairs=[("backbone/relu1", "gap")])


@pytest.mark.parametrize(
    "pair", [("relu1",), ("a", "b", 1.0, 2.0), "relu1", (1, "relu1")]
)
def test_malformed_attention_pair(models, pair):
    teacher, student = models
    with pytest.raises(ValueError, match="attention_pairs entry"):
        keras_kd.Distiller(teacher, student, attention_pairs=[pair])


def test_negative_pair_weight(models):
    teacher, student = models
    with pytest.raises(ValueError, match="must be >= 0. Received"):
        keras_kd.Distiller(
            teacher, student,
            attention_pairs=[("backbone/relu1", "relu1", -1.0)])


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"temperature": 0}, ValueError, "Received: temperature=0"),
        ({"temperature": -1.5}, ValueError, "Received: temperature=-1.5"),
        ({"temperature": "warm"}, TypeError, "temperature='warm'"),
        ({"alpha": 1.5}, ValueError, "Received: alpha=1.5"),
        ({"alpha": -0.1}, ValueError, "Received: alpha=-0.1"),
        ({"attention_weight": -1}, ValueError,
         "Received: attention_weight=-1"),
        ({"student_loss_fn": 3}, TypeError, "student_loss_fn=3"),
        ({"distillation_loss_fn": "no_such_loss"}, ValueError,
         "distillation_loss_fn='no_such_loss'"),
        ({"loss": "mse", "student_loss_fn": "mse"}, ValueError,
         "`loss` or its alias `student_loss_fn`"),
        ({"loss": keras.losses.CategoricalCrossentropy()}, ValueError,
         "from_logits=True"),
        ({"distillation_loss_fn": keras_kd.losses.SoftTargetKD(2.0),
          "temperature": 4.0}, ValueError, "temperature=2.0"),
    ],
)
def test_bad_compile_arguments(models, kwargs, error, match):
    teacher, student = models
    distiller = keras_kd.Distiller(teacher, student)
    with pytest.raises(error, match=match):
        distiller.compile(**kwargs)


def test_fit_before_compile(models, data):
    teacher, student = models
    distiller = keras_kd.Distiller(teacher, student)
    before = [w.numpy().copy() for w in student.weights]
    with pytest.raises(ValueError, match="compile"):
        distiller.fit(*data, verbose=0)
    for a, b in zip(before, student.weights):
        np.testing.assert_array_equal(a, b.numpy())


def test_class_mismatch_of_subclassed_models_caught_before_any_update(data):
    class Tiny(keras.Model):
        def __init__(self, classes, **kwargs):
            super().__init__(**kwargs)
            self.flat = keras.layers.Flatten()
            self.out = keras.layers.Dense(classes)

        def call(self, x):
            return self.out(self.flat(x))

    distiller = keras_kd.Distiller(Tiny(10), Tiny(7))
    distiller.compile()
    with pytest.raises(ValueError, match="same number of classes"):
        distiller.fit(*data, verbose=0)


@pytest.mark.parametrize("argument", ["temperature", "attention_weight",
                                      "hint_weight"])
def test_infinite_compile_arguments(models, argument):
    teacher, student = models
    distiller = keras_kd.Distiller(teacher, student)
    with pytest.raises(ValueError, match=f"`{argument}` must be a finite "
                                         f"number. Received: {argument}=inf"):
        distiller.compile(**{argument: float("inf")})


def test_labels_outside_the_classes(models, data):
    teacher, student = models
    x, y = data
    distiller = keras_kd.Distiller(teacher, student)
    distiller.compile()
    bad = y.copy()
    bad[3] = 10
    with pytest.raises(ValueError, match=r"integer class labels in \[0, 10\)"
                                         r".*from 0 to 10"):
        distiller.fit(x, bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="`validation_data`.*from -1"):
        distiller.fit(x, y, epochs=1, verbose=0,
                      validation_data=(x, y - 1))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        distiller.evaluate(x, bad, verbose=0)


def test_a_student_layer_the_pass_never_calls_fails_at_construction():
    class WithSpare(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.flatten = keras.layers.Flatten()
            self.out = keras.layers.Dense(10)
            self.spare = keras.layers.Dense(10)

        def call(self, x):
            return self.out(self.flatten(x))

    with pytest.raises(ValueError, match=r"\['spare'\] were not called"):
        keras_kd.Distiller(make_cnn(8, "teacher"), WithSpare(name="s"),
                           hint_pairs=[("gap", "spare")])


def test_a_shared_teacher_layer_fails_at_construction():
    inputs = keras.Input((12, 12, 1))
    shared = keras.layers.Conv2D(1, 3, padding="same", name="shared")
    x = keras.layers.GlobalAveragePooling2D()(shared(shared(inputs)))
    teacher = keras.Model(inputs, keras.layers.Dense(10)(x))
    with pytest.raises(ValueError, match="teacher layer 'shared' was called "
                                         "more than once"):
        keras_kd.Distiller(teacher, make_cnn(4, "student"),
                           attention_pairs=[("shared", "relu1")])
