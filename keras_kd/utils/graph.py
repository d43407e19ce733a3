"""Replays a Functional graph with nested models inlined.

Both the layer taps (one pass yielding intermediate maps) and the tf_keras
twin (the same graph rebuilt from other layers) walk a Keras model's graph
node by node; this module is that walk.
"""

import keras
from keras.src.models.functional import Functional


def functional_graph(model):
    """The Functional graph behind `model`, or `None` for subclassed models."""
    if isinstance(model, keras.Sequential):
        # A built Sequential model keeps its graph in `_functional`.
        return getattr(model, "_functional", None)
    if isinstance(model, Functional):
        return model
    return None


def replay(graph, inputs, call_fn, observe_fn=None):
    """Runs `graph` on `inputs`, calling `call_fn(op, args, kwargs)` per node.

    Nested Functional or Sequential models are not called as one operation:
    their own nodes are replayed in place, so `call_fn` sees only leaf
    operations (layers and ops), each once per node.

    Args:
        graph: a Functional graph (see `functional_graph`).
        inputs: tensors (symbolic or not) matching `graph.inputs`.
        call_fn: `call_fn(operation, args, kwargs) -> outputs`, where `args`
            and `kwargs` are the node's recorded call arguments with tensors
            replaced by the replayed ones.
        observe_fn: optional `observe_fn(operation, outputs)`, called for
            every operation, nested models included, once it has run.

    Returns:
        The replayed outputs, a single tensor for a single-output graph.
    """

    def operation_fn(operation):
        def call(*args, **kwargs):
            inner = (
                functional_graph(operation)
                if isinstance(operation, keras.Model)
                else None
            )
            if inner is not None:
                inner_inputs = args[0] if len(args) == 1 else list(args)
                outputs = replay(inner, inner_inputs, call_fn, observe_fn)
            else:
                outputs = call_fn(operation, args, kwargs)
            if observe_fn is not None:
                observe_fn(operation, outputs)
            return outputs

        return call

    outputs = graph._run_through_graph(inputs, operation_fn=operation_fn)
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        return outputs[0]
    return outputs
