"""The Distiller on JAX: the same weights and batch give the same losses
as on TensorFlow, and `keras.distribution.DataParallel` trains it across
two (host) devices as one device does."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import make_cnn

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("compares TensorFlow (this process) with JAX")
    directory = str(tmp_path_factory.mktemp("backends"))
    keras.utils.set_random_seed(5)
    make_cnn(16, "teacher").save(os.path.join(directory, "teacher.keras"))
    make_cnn(4, "student").save(os.path.join(directory, "student.keras"))
    rng = np.random.default_rng(0)
    np.savez(os.path.join(directory, "batch.npz"),
             x=rng.normal(size=(32, 12, 12, 1)).astype("float32"),
             y=rng.integers(0, 10, 32).astype("int32"))
    connector = keras.layers.Conv2D(16, 1)
    connector.build((None, 6, 6, 4))
    kernel, bias = connector.get_weights()
    np.savez(os.path.join(directory, "connector.npz"), kernel=kernel,
             bias=rng.normal(size=bias.shape).astype("float32"))
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    job = subprocess.run(
        [sys.executable, os.path.join(HERE, "backend_job.py"), directory],
        env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stderr[-3000:]
    sys.path.insert(0, HERE)
    from backend_job import run

    tf_result = {"single": run(directory, *np.load(os.path.join(
        directory, "batch.npz")).values())}
    with open(os.path.join(directory, "jax.json")) as f:
        return tf_result, json.load(f)


LOSSES = ["loss", "student_loss", "distillation_loss", "attention_loss",
          "hint_loss"]


def test_tensorflow_and_jax_give_the_same_losses(results):
    tf_result, jax_result = results
    for when in ("evaluate", "after_fit", "restored"):
        for key in LOSSES:
            a = tf_result["single"][when][key]
            b = jax_result["single"][when][key]
            assert b == pytest.approx(a, rel=1e-5, abs=1e-7), (when, key)
    for a, b in zip(tf_result["single"]["weights"],
                    jax_result["single"]["weights"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(jax_result["single"]["predict"],
                               tf_result["single"]["predict"], rtol=1e-4,
                               atol=1e-5)


def test_jax_data_parallel_trains_as_one_device(results):
    _, jax_result = results
    assert jax_result["devices"] == 2
    single, parallel = jax_result["single"], jax_result["data_parallel"]
    for key in LOSSES:
        assert parallel["evaluate"][key] == pytest.approx(
            single["evaluate"][key], rel=1e-5, abs=1e-7)
        assert parallel["after_fit"][key] == pytest.approx(
            single["after_fit"][key], rel=1e-4, abs=1e-6)
    moved = False
    for a, b, start in zip(single["weights"], parallel["weights"],
                           single["start"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
        moved = moved or not np.allclose(a, start)
    assert moved  # the step trained the student
