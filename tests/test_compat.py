"""Every private Keras attribute keras_kd relies on still exists."""

import importlib

import keras
import pytest

from keras_kd.utils import compat


def resolve(owner):
    module, _, rest = owner.partition(".")
    value = importlib.import_module(module)
    for part in rest.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            value = importlib.import_module(f"{value.__name__}.{part}")
    return value


@pytest.mark.parametrize("owner,attribute", sorted(compat.PRIVATE_ATTRIBUTES))
def test_private_attribute_exists(owner, attribute):
    if owner.startswith("tensorflow_model_optimization"):
        pytest.importorskip("tf_keras")
        # Through keras_kd's own import, so TF_USE_LEGACY_KERAS stays unset.
        compat.tfmot_prune_registry()
    target = resolve(owner)
    if attribute == "_keras_history":
        target = keras.Input((2,))
    elif attribute == "_flash_attention":
        target = keras.layers.MultiHeadAttention(2, 4)
    elif attribute == "_functional":
        target = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    elif attribute == "_initial_epoch":
        target = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    elif attribute in ("_inbound_nodes", "arguments"):
        inputs = keras.Input((2,))
        layer = keras.layers.Dense(1)
        keras.Model(inputs, layer(inputs))
        target = layer if attribute == "_inbound_nodes" else (
            compat.inbound_nodes(layer)[0])
    elif attribute == "_experimental_disable_per_channel":
        target = target.from_concrete_functions([], None)
    assert hasattr(target, attribute), (
        f"keras {keras.__version__}: {owner}.{attribute} is gone; keras_kd "
        f"uses it for {compat.PRIVATE_ATTRIBUTES[(owner, attribute)]}. "
        "Update keras_kd/utils/compat.py.")
