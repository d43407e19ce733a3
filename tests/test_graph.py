"""Functional graph replay with nested models inlined (tf_keras twins)."""

import keras
import numpy as np

from keras_kd.utils.graph import functional_graph
from keras_kd.utils.graph import replay


def nested():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(
        4, name="inner_dense")], name="inner")
    inputs = keras.Input((3,))
    x = keras.layers.Dense(3, name="first")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="last")(inner(x)))


def test_replay_calls_each_leaf_once_and_gives_the_model_output():
    model = nested()
    called, observed = [], []

    def call(operation, args, kwargs):
        called.append(operation.name)
        return operation(*args, **kwargs)

    x = np.ones((2, 3), "float32")
    out = replay(functional_graph(model), keras.ops.convert_to_tensor(x),
                 call, observe_fn=lambda op, _: observed.append(op.name))
    assert called == ["first", "inner_dense", "last"]
    assert observed == ["first", "inner_dense", "inner", "last"]
    np.testing.assert_allclose(out, model(x), atol=1e-6)


def test_functional_graph_of_subclassed_models_is_none():
    class Tiny(keras.Model):
        def call(self, x):
            return x

    assert functional_graph(Tiny()) is None
    assert functional_graph(nested()) is not None
