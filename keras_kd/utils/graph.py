"""Replays a Functional graph with nested models inlined.

The tf_keras twin (the same graph rebuilt from other layers) walks a Keras
model's graph node by node; this module is that walk.
"""

import keras

from keras_kd.utils import compat
from keras_kd.utils.compat import functional_graph

__all__ = ["functional_graph", "replay"]


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

    outputs = compat.run_through_graph(graph, inputs, operation_fn)
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        return outputs[0]
    return outputs
