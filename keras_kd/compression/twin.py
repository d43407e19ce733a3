"""Keras 3 → tf_keras "twin" models, so TF-MOT can prune and quantize them.

TF-MOT accepts only tf_keras (Keras 2) models. `to_tf_keras` rebuilds a
Keras 3 Functional or Sequential model layer by layer as an equivalent
tf_keras Functional model: each layer's config is translated to the legacy
form, the layer is re-created in tf_keras, called on the replayed graph, and
given the original weights. Nested models are inlined (TF-MOT prunes flat
models best). The result is checked numerically against the original.
"""

import re

import keras
import numpy as np

from keras_kd.compression._imports import tf_keras
from keras_kd.utils import compat
from keras_kd.utils.graph import functional_graph
from keras_kd.utils.graph import replay

_ANY = object()
# Keras 3 config keys without a tf_keras counterpart, and the value at which
# dropping them changes nothing. Any other value has no twin.
_DROPPABLE = {
    "quantization_config": None,
    "seed": _ANY,
    "sliding_window": None,
    "use_gate": False,
    "rms_scaling": False,
    "lora_rank": None,
    "lora_alpha": _ANY,
    "optional": False,
    "flash_attention": None,
}
_RENAMED = {"LeakyReLU": {"negative_slope": "alpha"}}
_TOLERANCE = 1e-4
# Keras 3 activations that tf_keras lacks or defines differently (its
# `hard_sigmoid` is clip(0.2·x + 0.5); Keras 3's is relu6(x + 3) / 6): the
# twin uses these registered tf_keras custom objects instead.
_ACTIVATIONS = {"hard_silu": "keras_kd_hard_silu",
                "hard_swish": "keras_kd_hard_silu",
                "hard_sigmoid": "keras_kd_hard_sigmoid"}
# Keras 3 operations in a Functional graph (`x + 3.0` in MobileNetV3's
# hard sigmoid): replayed as the same operator on tf_keras tensors, which
# tf_keras records as `TFOpLambda` layers.
_OPERATORS = {"Add": lambda a, b: a + b, "Subtract": lambda a, b: a - b,
              "Multiply": lambda a, b: a * b,
              "Divide": lambda a, b: a / b, "TrueDivide": lambda a, b: a / b}


def to_tf_keras(model, check_numerics=True):
    """Returns the tf_keras twin of a Keras 3 Functional/Sequential model.

    The twin has the same layer names, weights and outputs (max |diff| within
    1e-4 on a random batch, checked unless `check_numerics=False`); nested
    models are inlined and `Identity` layers dropped. Use a
    fresh twin for each TF-MOT call: `prune_low_magnitude` wraps the layers
    of the model it receives.

    Args:
        model: a built Keras 3 `keras.Model` (Functional or Sequential). A
            tf_keras model is returned as it is.
        check_numerics: compare outputs on a random batch.

    Returns:
        A `tf_keras.Model`.

    Raises:
        ValueError: for subclassed models, and naming every layer class that
            has no tf_keras twin (e.g. `RMSNormalization`, custom layers,
            `LayerNormalization(rms_scaling=True)`).

    Example:

    ```python
    twin = keras_kd.compression.to_tf_keras(student)
    twin.summary()
    ```
    """
    tfk = tf_keras()
    if isinstance(model, tfk.Model):
        return model
    _register_activations(tfk)
    graph = functional_graph(model)
    if graph is None:
        raise ValueError(
            "`to_tf_keras` needs a Functional or Sequential model with a "
            f"symbolic graph. Received: model '{getattr(model, 'name', model)}'"
            f" of type {type(model).__name__} (a subclassed model or an "
            "unbuilt Sequential model)"
        )
    _check_supported(model, graph)

    twins = {}

    mask_only = _mask_only_operations(graph)

    def call_twin(operation, args, kwargs):
        if isinstance(operation, keras.layers.Identity):
            # Computes nothing, and TF-MOT's QAT registries mishandle it.
            return args[0]
        if id(operation) in mask_only:
            # tf_keras layers recompute and pass masks themselves.
            return None
        if _is_operator(operation):
            return _OPERATORS[type(operation).__name__](*args)
        twin = twins.get(id(operation))
        if twin is None:
            twin = twins[id(operation)] = _twin_layer(operation, tfk)
        kwargs = {
            k: v for k, v in kwargs.items()
            if k not in ("training", "mask") and v is not None
        }
        return twin(*args, **kwargs)

    inputs = [
        tfk.Input(batch_shape=tuple(x.shape), dtype=x.dtype,
                  name=_input_name(x))
        for x in graph.inputs
    ]
    outputs = replay(graph, inputs if len(inputs) > 1 else inputs[0],
                     call_twin)
    twin_model = tfk.Model(
        inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name
    )
    for layer_id, twin in twins.items():
        original = _layers_by_id(model)[layer_id]
        try:
            twin.set_weights(original.get_weights())
        except ValueError as e:
            raise ValueError(
                f"Could not copy the weights of layer '{original.name}' "
                f"({type(original).__name__}) into its tf_keras twin"
            ) from e
    _advance_name_counters([layer.name for layer in twin_model.layers])
    if check_numerics:
        _check_parity(model, twin_model)
    return twin_model


def _input_name(tensor):
    layer = compat.producing_layer(tensor)
    return layer.name if layer is not None else None


def _layers_by_id(model, found=None):
    found = {} if found is None else found
    for layer in model.layers:
        found[id(layer)] = layer
        if hasattr(layer, "layers"):
            _layers_by_id(layer, found)
    return found


def _leaf_operations(graph):
    """Every operation of `graph`, nested models expanded, inputs skipped."""
    for operation in graph.operations:
        inner = (functional_graph(operation)
                 if isinstance(operation, keras.Model) else None)
        if inner is not None:
            yield from _leaf_operations(inner)
        elif not isinstance(operation, keras.layers.InputLayer):
            yield operation


def _mask_only_operations(graph):
    """Ids of ops whose results only ever feed `mask=` arguments, directly
    or through other such ops (`Embedding(mask_zero=True)`'s `NotEqual`,
    `Masking`'s `NotEqual` → `Any`): the twin drops them, as tf_keras
    layers compute and pass masks themselves."""
    uses = {}  # tensor id -> [(consumer id, used as a mask)]
    operations = {}

    def walk(g):
        for operation in g.operations:
            inner = (functional_graph(operation)
                     if isinstance(operation, keras.Model) else None)
            if inner is not None:
                walk(inner)
                continue
            operations[id(operation)] = operation
            for node in compat.inbound_nodes(operation):
                args, kwargs = compat.node_call_arguments(node)
                for tensor in keras.tree.flatten(kwargs.pop("mask", None)):
                    uses.setdefault(id(tensor), []).append(
                        (id(operation), True))
                for tensor in keras.tree.flatten((args, kwargs)):
                    uses.setdefault(id(tensor), []).append(
                        (id(operation), False))
        for tensor in keras.tree.flatten(g.outputs):
            uses.setdefault(id(tensor), []).append((None, False))

    walk(graph)
    candidates = {key for key, op in operations.items()
                  if not isinstance(op, keras.layers.Layer)}
    changed = True
    while changed:
        changed = False
        for key in list(candidates):
            outputs = [t for node in compat.inbound_nodes(operations[key])
                       for t in keras.tree.flatten(node.outputs)]
            for tensor in outputs:
                if any(not as_mask and consumer not in candidates
                       for consumer, as_mask in uses.get(id(tensor), [])):
                    candidates.discard(key)
                    changed = True
                    break
    return candidates


def _check_supported(model, graph):
    """Names every operation without a tf_keras twin, all at once."""
    tfk = tf_keras()
    problems = []
    mask_only = _mask_only_operations(graph)
    for operation in _leaf_operations(graph):
        name = type(operation).__name__
        if isinstance(operation, keras.layers.Identity) or (
                id(operation) in mask_only) or _is_operator(operation):
            continue
        if not hasattr(tfk.layers, name) or not hasattr(operation,
                                                        "get_config"):
            problems.append(f"{operation.name} ({name})")
            continue
        try:
            _translate_config(operation)
        except ValueError as e:
            problems.append(f"{operation.name} ({name}: {e})")
    if problems:
        raise ValueError(
            f"Model '{model.name}' has layers without a tf_keras twin, so "
            f"TF-MOT cannot compress it: {', '.join(problems)}. Replace them "
            "with standard Keras layers."
        )


def _translate(value):
    """Keras 3 serialized objects → the legacy tf_keras form, recursively."""
    if isinstance(value, dict):
        if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return value["config"]["name"]
        translated = {k: _translate(v) for k, v in value.items()}
        if "class_name" in value and isinstance(value.get("config"), dict):
            config = translated["config"]
            for key in ("input_axes", "output_axes"):  # initializer extras
                config.pop(key, None)
            return {"class_name": value["class_name"], "config": config}
        return translated
    if isinstance(value, list):
        return [_translate(v) for v in value]
    return value


def _translate_config(layer):
    config = _legacy_config(type(layer).__name__,
                            _translate(layer.get_config()))
    if config.get("activation") in _ACTIVATIONS:
        config["activation"] = _ACTIVATIONS[config["activation"]]
    return config


def _is_operator(operation):
    """A Keras 3 operation node (not a layer) the twin replays as an
    operator: `x + 3.0`, `x * (1 / 6)`."""
    return (not isinstance(operation, keras.layers.Layer)
            and type(operation).__name__ in _OPERATORS)


def _register_activations(tfk):
    """Keras 3's hard sigmoid and hard SiLU as tf_keras custom objects, so
    twins (and TF-MOT's clones of them) deserialize."""
    import tensorflow as tf

    def hard_sigmoid(x):
        return tf.nn.relu6(x + 3.0) / 6.0

    def hard_silu(x):
        return x * (tf.nn.relu6(x + 3.0) / 6.0)

    # tf_keras serializes a function by its __name__: the registered one.
    hard_sigmoid.__name__ = "keras_kd_hard_sigmoid"
    hard_silu.__name__ = "keras_kd_hard_silu"
    objects = tfk.utils.get_custom_objects()
    objects.setdefault("keras_kd_hard_sigmoid", hard_sigmoid)
    objects.setdefault("keras_kd_hard_silu", hard_silu)


def _legacy_config(class_name, config):
    """A translated config without Keras 3-only keys, wrappers included."""
    for key in ("layer", "backward_layer"):  # Bidirectional, TimeDistributed
        inner = config.get(key)
        if isinstance(inner, dict) and "class_name" in inner:
            inner["config"] = _legacy_config(inner["class_name"],
                                             inner["config"])
    for old, new in _RENAMED.get(class_name, {}).items():
        if old in config:
            config[new] = config.pop(old)
    for key, harmless in _DROPPABLE.items():
        if key in config:
            value = config.pop(key)
            if harmless is not _ANY and value != harmless:
                raise ValueError(f"{key}={value!r} has no tf_keras twin")
    if class_name == "MultiHeadAttention":
        for key in ("query_shape", "key_shape", "value_shape"):
            config.setdefault(key, None)
    return config


def _twin_layer(layer, tfk):
    cls = getattr(tfk.layers, type(layer).__name__)
    return cls.from_config(_translate_config(layer))


def _advance_name_counters(names):
    """Keeps tf_keras' automatic names from colliding with imported ones.

    Otherwise a layer created later (e.g. by a QAT transform) may be named
    `conv2d` while an imported layer already has that name.
    """
    uid_map = compat.tf_keras_uid_map()
    for name in names:
        match = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
        base, number = match.group(1), int(match.group(2) or 0)
        # tf_keras names a new layer `base_<uid_map[("", base)]>`.
        uid_map[("", base)] = max(uid_map[("", base)], number + 1)


def _check_parity(model, twin_model):
    """Outputs agree on a random batch, with trailing padding (zeros) on
    half of its examples, as masked sequence models see it."""
    rng = np.random.default_rng(0)
    inputs = []
    for x in model.inputs:
        shape = tuple(4 if d is None else d for d in x.shape)
        if "int" in str(x.dtype):
            value = rng.integers(1, 8, shape).astype(x.dtype)
        else:
            value = rng.normal(size=shape).astype("float32")
        if len(shape) >= 2 and shape[1] > 1:
            value[::2, shape[1] // 2:] = 0  # padding
        inputs.append(value)
    inputs = inputs if len(inputs) > 1 else inputs[0]
    expected = np.asarray(model(inputs, training=False), "float32")
    actual = np.asarray(twin_model(inputs, training=False), "float32")
    diff = float(np.max(np.abs(expected - actual)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if not diff <= _TOLERANCE * scale:
        raise ValueError(
            f"The tf_keras twin of '{model.name}' does not match the "
            f"original: max |diff| = {diff:.3g} on a random batch"
        )
