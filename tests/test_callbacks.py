import keras
import numpy as np
import pytest

import keras_kd
from conftest import make_cnn
from numpy_reference import soft_target_kd


def make_distiller(**compile_kwargs):
    distiller = keras_kd.Distiller(make_cnn(8, "teacher"),
                                   make_cnn(4, "student"),
                                   attention_pairs=[("relu1", "relu1")])
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=True,
                      **compile_kwargs)
    return distiller


def test_temperature_schedule_changes_the_loss_in_a_jit_step(data):
    x, y = data
    distiller = make_distiller()
    schedule = [1.0, 3.0, 6.0]
    history = distiller.fit(
        x, y, batch_size=32, epochs=3, verbose=0,
        callbacks=[keras_kd.callbacks.TemperatureScheduler(
            lambda epoch: schedule[epoch])])
    assert history.history["temperature"] == schedule
    t = np.asarray(distiller.teacher(x, training=False))
    s = np.asarray(distiller.student(x, training=True))
    for temperature, logged in zip(schedule,
                                   history.history["distillation_loss"]):
        assert logged == pytest.approx(soft_target_kd(t, s, temperature),
                                       rel=1e-4)


def test_loss_weight_schedule(data):
    x, y = data
    distiller = make_distiller()
    history = distiller.fit(
        x, y, batch_size=32, epochs=2, verbose=0,
        callbacks=[keras_kd.callbacks.LossWeightScheduler(
            alpha=lambda epoch: [1.0, 0.0][epoch],
            attention_weight=lambda epoch: 0.0)])
    logs = history.history
    assert logs["alpha"] == [1.0, 0.0]
    assert logs["loss"][0] == pytest.approx(logs["student_loss"][0],
                                            rel=1e-5)
    assert logs["loss"][1] == pytest.approx(logs["distillation_loss"][1],
                                            rel=1e-5)


def test_bad_schedules(data):
    x, y = data
    with pytest.raises(TypeError, match="temperature=3"):
        keras_kd.callbacks.TemperatureScheduler(3)
    with pytest.raises(ValueError, match="at least one"):
        keras_kd.callbacks.LossWeightScheduler()
    distiller = make_distiller()
    with pytest.raises(ValueError, match="temperature=-1.0"):
        distiller.fit(x, y, epochs=1, verbose=0, callbacks=[
            keras_kd.callbacks.TemperatureScheduler(lambda epoch: -1.0)])
    model = make_cnn(4, "plain")
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="no such Distiller variable"):
        model.fit(x, np.zeros((32, 10)), epochs=1, verbose=0, callbacks=[
            keras_kd.callbacks.TemperatureScheduler(lambda epoch: 2.0)])
