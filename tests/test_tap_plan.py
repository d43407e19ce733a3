"""One tap plan: two terms may read one layer in any combination."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_kd
from conftest import make_cnn
from conftest import make_token_transformer
from keras_kd.tap_plan import TapPlan


def tokens(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(1, 20, (n, 6)).astype("int32"),
            rng.integers(0, 10, n).astype("int32"))


def test_one_attention_layer_in_attention_and_hint_pairs():
    x, y = tokens()
    teacher = make_token_transformer(4, "teacher")
    student = make_token_transformer(2, "student")
    distiller = keras_kd.Distiller(teacher, student,
                                   attention_pairs=[("mha", "mha")],
                                   hint_pairs=[("mha", "mha")])
    distiller.compile(attention_weight=1.0)
    assert [t.name for t in distiller.terms] == [
        "distillation", "attention", "hint"]
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    # The hint reads the layer's output, by hand through the connector.
    outputs = [keras.Model(m.input, m.get_layer("mha").output).predict(
        x, verbose=0) for m in (teacher, student)]
    (connector,) = distiller.connectors
    projected = ops.convert_to_numpy(connector(outputs[1]))
    assert logs["hint_loss"] == pytest.approx(
        np.mean((projected - outputs[0]) ** 2), rel=1e-5)
    # The attention term reads the probabilities, as it does alone.
    alone = keras_kd.Distiller(teacher, student,
                               attention_pairs=[("mha", "mha")])
    alone.compile(attention_weight=1.0)
    assert logs["attention_loss"] == pytest.approx(alone.evaluate(
        x, y, verbose=0, return_dict=True)["attention_loss"], rel=1e-6)


@keras.saving.register_keras_serializable(package="keras_kd_tests")
class DoubledFeature(keras_kd.terms.Term):
    """Prepares the teacher feature (×2) without naming a signature."""

    def teacher_taps(self):
        return ["conv2"]

    def student_taps(self):
        return ["conv2"]

    def prepare_teacher(self, path, value):
        return 2.0 * value

    def compute_loss(self, teacher, student, sample_weight=None):
        return ops.mean(teacher["conv2"], axis=(1, 2, 3))


@keras.saving.register_keras_serializable(package="keras_kd_tests")
class RawFeature(DoubledFeature):
    """Reads the same layer raw."""

    def prepare_teacher(self, path, value):
        return value


def test_a_term_gets_its_own_preparation_of_a_shared_layer(data):
    x, y = data
    teacher = make_cnn(8, "teacher")
    distiller = keras_kd.Distiller(
        teacher, make_cnn(8, "student"),
        terms=[RawFeature(name="raw"), DoubledFeature(name="doubled")])
    keys = [r.key for r in distiller.plan.teacher_requests]
    assert keys == ["0:conv2|output|RawFeature.raw",
                    "0:conv2|output|DoubledFeature.doubled"]
    distiller.compile()
    logs = distiller.evaluate(x, y, batch_size=32, verbose=0,
                              return_dict=True)
    feature = keras.Model(teacher.input, teacher.get_layer(
        "conv2").output).predict(x, verbose=0)
    assert logs["raw_loss"] == pytest.approx(feature.mean(), rel=1e-5)
    assert logs["doubled_loss"] == pytest.approx(2 * feature.mean(),
                                                 rel=1e-5)


def test_plan_keys_share_raw_values_and_separate_kinds():
    terms = [keras_kd.terms.HintTerm([("a", "b")]),
             keras_kd.terms.HintTerm([("a", "b")], name="hint2"),
             keras_kd.terms.AttentionMapTerm([("a", "b")])]
    plan = TapPlan(terms, num_teachers=1)
    assert [r.key for r in plan.teacher_requests] == [
        "0:a|output|raw", "0:a|attention_probabilities|raw"]
    assert [(t.path, t.kind) for t in plan.student_taps] == [
        ("b", "output"), ("b", "attention_probabilities")]
