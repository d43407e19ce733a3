"""Distillation terms: the contract, a user's own term, serialization."""

import importlib.util
import os

import keras
import numpy as np
import pytest
from conftest import make_cnn

import keras_kd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_example(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


custom_term = load_example("custom_term")


def rkd_distance_numpy(teacher, student):
    """Park et al. 2019, as the authors' code: Huber over all B² entries."""
    def normalised(x):
        x = x.reshape(len(x), -1).astype(np.float64)
        d = np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1),
                               1e-12))
        np.fill_diagonal(d, 0.0)
        return d / d[d > 0].mean()

    diff = np.abs(normalised(student) - normalised(teacher))
    return float(np.where(diff < 1, 0.5 * diff ** 2, diff - 0.5).mean())


def gap(model, x):
    return np.asarray(keras.Model(model.input,
                                  model.get_layer("gap").output)(x))


def test_rkd_term_matches_numpy_and_trains(data):
    x, y = data
    teacher, student = make_cnn(16, "teacher"), make_cnn(4, "student")
    term = custom_term.RKDDistance("gap", "gap", weight=25.0)
    distiller = keras_kd.Distiller(teacher, student, terms=[term])
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), alpha=0.5)
    logs = distiller.evaluate(x, y, batch_size=32, verbose=0,
                              return_dict=True)
    expected = rkd_distance_numpy(gap(teacher, x), gap(student, x))
    assert expected > 1e-3
    assert logs["rkd_distance_loss"] == pytest.approx(expected, rel=1e-4)
    assert logs["loss"] == pytest.approx(
        0.5 * logs["student_loss"] + 0.5 * logs["distillation_loss"]
        + 25.0 * logs["rkd_distance_loss"], rel=1e-5)
    history = distiller.fit(x, y, batch_size=32, epochs=10, verbose=0)
    assert history.history["rkd_distance_loss"][-1] < expected


def test_the_example_term_equals_the_shipped_rkd_distance():
    from keras_kd.terms import TapValues

    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(16, 12)), rng.normal(size=(16, 5))
    teacher = TapValues({"gap": keras.ops.convert_to_tensor(t)}, {}, None)
    student = TapValues({"gap": keras.ops.convert_to_tensor(s)}, {}, None)
    example = custom_term.RKDDistance("gap", "gap")
    shipped = keras_kd.terms.RKD("gap", "gap", distance_weight=1.0,
                                 angle_weight=0.0)
    assert float(example.reduced_loss(teacher, student)) == pytest.approx(
        float(shipped.reduced_loss(teacher, student)), rel=1e-5)
    config = example.get_config()
    assert (config["teacher_layer"], config["student_layer"]) == ("gap",
                                                                  "gap")


def test_a_term_weight_is_scheduled_by_name(data):
    x, y = data
    term = custom_term.RKDDistance("gap", "gap", weight=25.0)
    distiller = keras_kd.Distiller(make_cnn(8, "teacher"),
                                   make_cnn(4, "student"), terms=[term])
    distiller.compile()
    history = distiller.fit(
        x, y, epochs=2, verbose=0,
        callbacks=[keras_kd.callbacks.LossWeightScheduler(
            rkd_distance=lambda epoch: 10.0 * epoch)])
    assert history.history["rkd_distance"] == [0.0, 10.0]
    assert float(term.weight) == 10.0
    with pytest.raises(ValueError, match="no such Distiller variable or "
                                         "term.*rkd_distance"):
        distiller.fit(x, y, epochs=1, verbose=0, callbacks=[
            keras_kd.callbacks.LossWeightScheduler(rkd=lambda e: 1.0)])


def test_distiller_with_a_custom_term_saves_and_loads(tmp_path, data):
    x, y = data
    distiller = keras_kd.Distiller(
        make_cnn(8, "teacher"), make_cnn(4, "student"),
        hint_pairs=[("relu1", "relu1")],
        terms=[custom_term.RKDDistance("gap", "gap", weight=3.0)])
    distiller.compile()
    distiller.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    restored = keras.models.load_model(path)
    assert [t.name for t in restored.terms] == [
        "distillation", "hint", "rkd_distance"]
    assert float(restored.terms[-1].weight) == 3.0
    np.testing.assert_array_equal(restored.connectors[0].get_weights()[0],
                                  distiller.connectors[0].get_weights()[0])
    before = distiller.evaluate(x, y, verbose=0, return_dict=True)
    after = restored.evaluate(x, y, verbose=0, return_dict=True)
    assert after["rkd_distance_loss"] == pytest.approx(
        before["rkd_distance_loss"], rel=1e-5)


@pytest.mark.parametrize("term_class", [
    keras_kd.terms.AttentionTransferTerm, keras_kd.terms.AttentionMapTerm,
    keras_kd.terms.HintTerm])
def test_pair_terms_round_trip_their_config(term_class):
    term = term_class([("a", "b", 0.5), ("1:c", "d")], weight=2.0,
                      name="x")
    clone = term_class.from_config(term.get_config())
    assert clone.get_config() == term.get_config()
    assert clone.teacher_taps() == ["a", "1:c"]
    assert float(clone.weight) == 2.0


def test_soft_target_term_replaces_the_default_one(data):
    x, y = data
    teacher, student = make_cnn(8, "teacher"), make_cnn(4, "student")
    term = keras_kd.terms.SoftTargetTerm(temperature=5.0, weight=2.0)
    distiller = keras_kd.Distiller(teacher, student, terms=[term])
    distiller.compile(alpha=0.25)
    assert distiller.temperature is term.temperature
    assert [t.name for t in distiller.terms] == ["distillation"]
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(
        0.25 * logs["student_loss"]
        + 2.0 * 0.75 * logs["distillation_loss"], rel=1e-5)


def test_bad_terms_are_clear_errors():
    teacher, student = make_cnn(8, "teacher"), make_cnn(4, "student")
    with pytest.raises(TypeError, match="keras_kd.terms.Term.*Received: "
                                        "terms=\\['rkd'\\]"):
        keras_kd.Distiller(teacher, student, terms=["rkd"])
    with pytest.raises(ValueError, match="repeated: \\['hint'\\]"):
        keras_kd.Distiller(teacher, student, hint_pairs=[("gap", "gap")],
                           terms=[keras_kd.terms.HintTerm([("gap", "gap")])])
    with pytest.raises(ValueError, match="Unknown teacher index 2.*"
                                         "1 teacher"):
        keras_kd.Distiller(teacher, student, terms=[
            keras_kd.terms.HintTerm([("2:gap", "gap")])])
    with pytest.raises(ValueError, match="rank 4.*rank 3.*student layer "
                                         "'gap'.*\\(None, 4\\)"):
        keras_kd.Distiller(teacher, student, terms=[
            keras_kd.terms.AttentionTransferTerm([("relu1", "gap")])])
    with pytest.raises(ValueError, match="at least one"):
        keras_kd.terms.HintTerm([])
