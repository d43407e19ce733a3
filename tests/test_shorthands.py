"""Terms are the one configuration surface; shorthands set, never copy."""

import keras
import numpy as np
import pytest

import keras_kd
from conftest import make_cnn
from conftest import make_token_transformer
from keras_kd.terms.shorthands import COMPILE_SHORTHANDS
from keras_kd.terms.shorthands import resolve_variables


def distiller_with(term, **kwargs):
    return keras_kd.Distiller(make_cnn(8, "teacher"), make_cnn(4, "student"),
                              terms=[term], **kwargs)


def test_a_given_temperature_survives_compile_save_and_load(tmp_path, data):
    x, y = data
    term = keras_kd.terms.SoftTargetTerm(temperature=5.0)
    distiller = distiller_with(term)
    distiller.compile()
    assert float(term.temperature) == 5.0
    assert distiller.temperature is term.temperature
    assert term.loss_fn.temperature is term.temperature  # one variable
    distiller.fit(x, y, epochs=1, verbose=0)
    distiller.save(tmp_path / "d.keras")
    restored = keras.models.load_model(tmp_path / "d.keras")
    assert float(restored.temperature) == 5.0
    restored.compile()
    assert float(restored.temperature) == 5.0
    distiller.compile(temperature=2.0)  # a shorthand sets the same one
    assert float(term.temperature) == 2.0


def test_a_loss_with_its_own_temperature_sets_the_term():
    term = keras_kd.terms.SoftTargetTerm(
        loss_fn=keras_kd.losses.SoftTargetKD(6.0))
    assert float(term.temperature) == 6.0
    with pytest.raises(ValueError, match="temperature=6.0.*temperature=2.0"):
        keras_kd.terms.SoftTargetTerm(
            temperature=2.0, loss_fn=keras_kd.losses.SoftTargetKD(6.0))


def test_each_term_has_its_own_default_weight():
    teacher = make_token_transformer(4, "teacher")
    student = make_token_transformer(2, "student")
    maps = keras_kd.Distiller(teacher, student,
                              attention_pairs=[("mha", "mha")])
    assert float(maps.terms[1].weight) == 1.0  # MiniLM attention maps
    features = keras_kd.Distiller(make_cnn(8, "t"), make_cnn(4, "s"),
                                  attention_pairs=[("conv2", "conv2")])
    assert float(features.terms[1].weight) == 500.0  # β/2 of AT


def test_every_compile_shorthand_is_documented_and_resolvable():
    assert all(f"`{name}`" in keras_kd.Distiller.compile.__doc__
               for name in COMPILE_SHORTHANDS)
    distiller = keras_kd.Distiller(make_cnn(8, "teacher"),
                                   make_cnn(4, "student"),
                                   hint_pairs=[("conv2", "conv2")])
    (weight,), _ = resolve_variables(distiller, "hint.weight")
    assert weight is distiller.terms[1].weight
    (alpha,), check = resolve_variables(distiller, "alpha")
    with pytest.raises(ValueError, match="alpha"):
        check("alpha", 1.5)


def test_a_shorthand_no_term_uses_is_an_error():
    distiller = keras_kd.Distiller(make_cnn(8, "teacher"),
                                   make_cnn(4, "student"))
    with pytest.raises(ValueError, match="attention_weight=3.0.*no term"):
        distiller.compile(attention_weight=3.0)
    with pytest.raises(ValueError, match="hint_loss_fn"):
        distiller.compile(hint_loss_fn="mse")


def test_schedules_address_terms_by_name_and_fail_on_unknown(data):
    x, y = data
    distiller = keras_kd.Distiller(make_cnn(8, "teacher"),
                                   make_cnn(4, "student"))
    distiller.compile()
    with pytest.raises(ValueError, match="no term uses `attention_weight`"):
        distiller.fit(x, y, epochs=1, verbose=0, callbacks=[
            keras_kd.callbacks.LossWeightScheduler(
                attention_weight=lambda epoch: 1.0)])
    assert distiller.optimizer.iterations.numpy() == 0  # before training
    history = distiller.fit(x, y, epochs=2, verbose=0, callbacks=[
        keras_kd.callbacks.TemperatureScheduler(lambda e: [2.0, 7.0][e],
                                                term="distillation"),
        keras_kd.callbacks.LossWeightScheduler(
            distillation=lambda e: [1.0, 0.5][e])])
    assert history.history["distillation.temperature"] == [2.0, 7.0]
    assert history.history["distillation"] == [1.0, 0.5]
    assert float(distiller.terms[0].loss_fn.temperature) == 7.0


def test_teacher_weights_shorthand_sets_the_soft_target_term():
    teachers = [make_cnn(8, "a"), make_cnn(8, "b")]
    distiller = keras_kd.Distiller(teachers, make_cnn(4, "student"),
                                   teacher_weights=[3.0, 1.0])
    assert distiller.terms[0].teacher_weights == [0.75, 0.25]
    np.testing.assert_allclose(distiller.teacher_weights, [0.75, 0.25])
