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

A tapped `keras.layers.MultiHeadAttention` layer yields its attention
*probabilities* `(batch, heads, query, key)` instead of its output, without
the user rebuilding the model with `return_attention_scores=True`.
"""

import difflib

import keras
from keras import ops

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


class AttentionProbabilities(keras.layers.Layer):
    """Runs a `MultiHeadAttention` layer and also returns its probabilities.

    Returns `(attention_output, probabilities, query_mask)`: the layer's own
    output (the rest of the graph uses it, unchanged), the softmax attention
    probabilities `(batch, heads, query, key)` before attention dropout, and a
    float `(batch, query)` mask of valid queries (all ones without padding).

    Flash attention never materialises the probabilities, and Keras refuses
    `return_attention_scores=True` while it is on, so the wrapped layer runs
    its explicit attention path (same numbers) inside this call only; other
    layers keep flash attention.
    """

    def __init__(self, attention, **kwargs):
        super().__init__(name=f"{attention.name}_probabilities", **kwargs)
        self.attention = attention
        self.supports_masking = True

    def call(self, query, value, key=None, attention_mask=None,
             use_causal_mask=False, training=None):
        # Read before the layer runs: MultiHeadAttention removes the masks
        # from its input tensors.
        query_mask = keras.src.backend.get_keras_mask(query)
        flash = getattr(self.attention, "_flash_attention", None)
        self.attention._flash_attention = False
        try:
            output, probabilities = self.attention(
                query, value, key=key, attention_mask=attention_mask,
                use_causal_mask=use_causal_mask, training=training,
                return_attention_scores=True,
            )
        finally:
            self.attention._flash_attention = flash
        batch, length = ops.shape(query)[0], ops.shape(query)[1]
        if query_mask is not None:
            valid = ops.cast(query_mask, "float32")
        else:
            valid = ops.ones((batch, length), "float32")
        if attention_mask is not None:
            # A query row with no visible key is padding as well.
            valid *= ops.cast(
                ops.any(ops.cast(attention_mask, "bool"), axis=-1), "float32"
            )
        return output, probabilities, valid


def tap_model(model, paths, argument="layer name"):
    """Builds the flat model `x -> [model(x), *(output of each path)]`.

    For a path naming a `MultiHeadAttention` layer, the tapped value is its
    attention probabilities `(batch, heads, query, key)`, and the model gets
    one more output at the end: that layer's `(batch, query)` mask of valid
    queries. `taps.attention_probability_paths` lists those paths in the
    order of the extra outputs, so the outputs are
    `[model(x), *taps, *query_masks]`.

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
    attention_layers = set()
    for path in paths:
        layer = find_layer(model, path, argument=f"{argument} layer")
        wanted.setdefault(id(layer), []).append(path)
        if isinstance(layer, keras.layers.MultiHeadAttention):
            attention_layers.add(id(layer))

    captured = {}
    query_masks = {}
    wrappers = {}

    def call(operation, args, kwargs):
        if id(operation) not in attention_layers:
            return operation(*args, **kwargs)
        # A model built with `return_attention_scores=True` keeps its
        # (output, scores) node outputs.
        wants_scores = kwargs.pop("return_attention_scores", False)
        wrapper = wrappers.setdefault(
            id(operation), AttentionProbabilities(operation)
        )
        output, probabilities, valid = wrapper(*args, **kwargs)
        for path in wanted[id(operation)]:
            if path not in captured:
                captured[path] = probabilities
                query_masks[path] = valid
        return (output, probabilities) if wants_scores else output

    def capture(operation, outputs):
        if id(operation) in attention_layers:
            return
        for path in wanted.get(id(operation), ()):
            captured.setdefault(path, outputs)

    inputs = [
        keras.Input(batch_shape=tuple(x.shape), dtype=x.dtype, name=x.name)
        for x in graph.inputs
    ]
    outputs = replay(
        graph,
        inputs,
        call_fn=call,
        observe_fn=capture,
    )
    probability_paths = [path for path in paths if path in query_masks]
    taps = keras.Model(
        inputs=inputs if len(inputs) > 1 else inputs[0],
        outputs=[outputs]
        + [captured[path] for path in paths]
        + [query_masks[path] for path in probability_paths],
        name=f"{model.name}_taps",
    )
    taps.attention_probability_paths = probability_paths
    return taps


def tap_teachers(teachers, indexed_paths):
    """Taps several teachers, each once, for `(teacher_index, path)` entries.

    Args:
        teachers: list of teacher models.
        indexed_paths: list of `(teacher_index, path)`.

    Returns:
        `(taps, slots)`: one model per teacher (the teacher itself when
        nothing is tapped in it), and for each entry the `(teacher_index,
        output_index)` where its value sits in that teacher's tap outputs.
    """
    taps = []
    for index, teacher in enumerate(teachers):
        paths = [path for i, path in indexed_paths if i == index]
        taps.append(tap_model(teacher, paths, "teacher") if paths else teacher)
    counters = [0] * len(teachers)
    slots = []
    for index, _ in indexed_paths:
        counters[index] += 1
        slots.append((index, counters[index]))
    return taps, slots


def is_attention_probability_tap(taps, path):
    """Whether `path` in a `tap_model` yields MHA attention probabilities."""
    return path in list(getattr(taps, "attention_probability_paths", []))


def as_list(outputs):
    """A model's outputs as a list (a single tensor becomes `[tensor]`)."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
