"""Pruning schedules: names, our small objects, TF-MOT's own."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_cnn

from keras_kd.compression import ConstantSparsity
from keras_kd.compression import FineTuning
from keras_kd.compression import PolynomialRamp
from keras_kd.compression import prune
from keras_kd.compression import weight_sparsity
from keras_kd.compression.schedules import pruning_schedule


def test_ramp_and_updates_set_the_tfmot_schedule():
    schedule = pruning_schedule(PolynomialRamp(ramp=0.5, updates=5), 0.8,
                                100)
    config = schedule.get_config()["config"]
    assert (config["end_step"], config["frequency"]) == (50, 10)
    assert config["final_sparsity"] == 0.8
    default = pruning_schedule("polynomial", 0.8, 100).get_config()["config"]
    assert (default["end_step"], default["frequency"]) == (70, 3)
    constant = pruning_schedule(ConstantSparsity(updates=4), 0.5, 100)
    assert constant.get_config()["config"]["frequency"] == 25
    clone = PolynomialRamp.from_config(PolynomialRamp(0.3, 7).get_config())
    assert (clone.ramp, clone.updates) == (0.3, 7)


def test_a_tfmot_schedule_is_used_as_it_is(data):
    from keras_kd.compression._imports import tfmot

    x, y = data
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    own = tfmot().sparsity.keras.ConstantSparsity(0.5, begin_step=0,
                                                  frequency=1)
    assert pruning_schedule(own, 0.9, 10) is own
    pruned = prune(make_cnn(8, "student"), train, target_sparsity=0.9,
                   schedule=own, fine_tuning=FineTuning(), verbose=0)
    assert weight_sparsity(pruned) == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("schedule,error,match", [
    ("cubic", ValueError, "schedule='cubic'"),
    (0.7, TypeError, "schedule=0.7 of type float"),
])
def test_bad_schedules(schedule, error, match):
    with pytest.raises(error, match=match):
        pruning_schedule(schedule, 0.5, 10)


@pytest.mark.parametrize("kwargs,match", [
    ({"ramp": 0}, "ramp"), ({"ramp": 1.5}, "ramp"),
    ({"updates": 0}, "updates=0")])
def test_bad_schedule_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolynomialRamp(**kwargs)
    assert np.isfinite(PolynomialRamp().ramp)
