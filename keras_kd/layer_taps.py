"""One forward pass that returns a model's output and named intermediate maps.

`tap_model(model, ["block2_out", "backbone/stage3"])` builds a flat
Functional model over the *same layer objects* (weights shared, nothing
copied) whose outputs are `[model_output, block2_out, backbone/stage3]`.
Nested Functional and Sequential models are inlined while the graph is
replayed, so a layer deep inside a sub-model is reachable with a
`/`-separated path and is still computed once, in the same pass that
produces the logits. Calling the tapped model with `training=True` behaves
exactly like calling the original model: BatchNorm statistics update once and
dropout draws one mask.
"""

import difflib

import keras

from keras_kd.utils.graph import functional_graph
from keras_kd.utils.graph import replay


def layer_paths(model, prefix=""):
    """Every layer path reachable in `model`, nested models included."""
    paths = []
    for layer in model.layers:
        path = prefix + layer.name
        paths.append(path)
        if isinstance(layer, keras.Model):
            paths.extend(layer_paths(layer, prefix=path + "/"))
    return paths


def find_layer(model, path, argument="layer name"):
    """Returns the layer at `path` (`"backbone/block2_out"`) inside `model`.

    Raises:
        ValueError: naming `argument`, the unknown path, and the closest
            existing paths.
    """
    layer = model
    for part in path.split("/"):
        if not isinstance(layer, keras.Model):
            layer = None
            break
        try:
            layer = layer.get_layer(name=part)
        except ValueError:
            layer = None
            break
    if layer is None:
        available = layer_paths(model)
        close = difflib.get_close_matches(path, available, n=3, cutoff=0.4)
        hint = f" Closest names: {close}." if close else ""
        raise ValueError(
            f"Unknown {argument} '{path}' in model '{model.name}'.{hint} "
            f"Available: {available[:20]}"
            + (" ..." if len(available) > 20 else "")
        )
    return layer


def tap_model(model, paths, argument="layer name"):
    """Builds the flat model `x -> [model(x), *(output of each path)]`.

    Args:
        model: a built Functional or Sequential `keras.Model`.
        paths: layer paths, `/` separating nested models. A layer that is
            called several times is tapped at its first call.
        argument: how error messages name the model (e.g. `"teacher"`).

    Returns:
        A `keras.Model` sharing `model`'s layers and weights.
    """
    graph = functional_graph(model)
    if graph is None:
        raise ValueError(
            f"Layer pairs need a Functional or Sequential {argument} with a "
            f"symbolic graph, but {argument} '{model.name}' is a subclassed "
            f"model ({type(model).__name__}) or an unbuilt Sequential model. "
            "Build it with the Functional API or give the Sequential model an "
            "Input, or drop the layer pairs."
        )
    wanted = {}
    for path in paths:
        layer = find_layer(model, path, argument=f"{argument} layer")
        wanted.setdefault(id(layer), []).append(path)

    captured = {}

    def capture(operation, outputs):
        for path in wanted.get(id(operation), ()):
            captured.setdefault(path, outputs)

    inputs = [
        keras.Input(batch_shape=tuple(x.shape), dtype=x.dtype, name=x.name)
        for x in graph.inputs
    ]
    outputs = replay(
        graph,
        inputs,
        call_fn=lambda operation, args, kwargs: operation(*args, **kwargs),
        observe_fn=capture,
    )
    return keras.Model(
        inputs=inputs if len(inputs) > 1 else inputs[0],
        outputs=[outputs] + [captured[path] for path in paths],
        name=f"{model.name}_taps",
    )
