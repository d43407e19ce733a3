"""Every private Keras / TensorFlow attribute keras_kd relies on, in one place.

Keras has no forward hooks and no public way to read a layer's output mask
after the fact, to ask a `MultiHeadAttention` for its probabilities from
inside another layer's call, or to trace a function symbolically. Each such
reach into private API is a function here, and `tests/test_compat.py` names
each attribute, so that an upgrade that removes one fails loudly in one
test instead of deep inside a training step.

`PRIVATE_ATTRIBUTES` lists them for that test.
"""

import contextlib

import keras

PRIVATE_ATTRIBUTES = {
    # (owner, attribute): what keras_kd uses it for.
    ("keras.layers.Layer", "_flatten_layers"):
        "direct sublayers of any layer (layer paths, mixed precision check)",
    ("keras.layers.MultiHeadAttention", "_compute_attention"):
        "capturing attention probabilities inside any caller",
    ("keras.layers.MultiHeadAttention", "_flash_attention"):
        "running the explicit attention path while probabilities are read",
    ("keras.src.backend", "get_keras_mask"): "reading Keras masks",
    ("keras.src.backend", "set_keras_mask"): "attaching Keras masks",
    ("keras.src.backend", "compute_output_spec"):
        "shapes of tapped layers from a symbolic trace",
    ("keras.src.backend.common.symbolic_scope", "in_symbolic_scope"):
        "telling a model's symbolic build call from its real pass",
    ("keras.src.models.functional.Functional", "_run_through_graph"):
        "replaying a Functional graph (tf_keras twins)",
    ("keras.Sequential", "_functional"): "the graph of a built Sequential",
    ("keras.src.losses.loss", "reduce_weighted_values"):
        "reducing per-example term values as a Keras loss does",
    ("keras.src.losses.loss", "scale_loss_for_distribution"):
        "scaling scalar term values by the replicas in sync",
    ("keras.src.losses.loss", "unscale_loss_for_distribution"):
        "logging each term's value as Keras logs its loss",
    ("keras.KerasTensor", "_keras_history"):
        "the layer behind a model output or input (softmax check, names)",
    ("tf_keras.src.backend", "get_default_graph_uid_map"):
        "keeping tf_keras' automatic layer names clear of a twin's names",
    ("keras.Model", "_maybe_symbolic_build"):
        "replaced for MultiWorkerMirroredStrategy (keras-team/keras#20585)",
    ("keras.Model", "_symbolic_build"):
        "building a model from one local input batch under that strategy",
    ("keras.Model", "_initial_epoch"):
        "the epoch a restored backup resumes from",
    ("tensorflow.lite.TFLiteConverter", "_experimental_disable_per_channel"):
        "one int8 scale per tensor (export_tflite(per_channel=False))",
    ("keras.src.backend.common.global_state", "get_global_attribute"):
        "the shared call context, set to inference while an LM generates",
    ("keras.src.layers.layer.CallContext", "set_value"):
        "setting and restoring the call context's `training`",
    ("keras_hub.models.GPT2CausalLM", "_build_cache"):
        "seeding a keras-hub causal LM's key/value cache for sampling",
    ("keras.Operation", "_inbound_nodes"):
        "the calls of each operation of a Functional graph (tf_keras twins)",
    ("keras.src.ops.node.Node", "arguments"):
        "the arguments of one call in a Functional graph (tf_keras twins)",
    ("tensorflow_model_optimization.python.core.sparsity.keras"
     ".prune_registry", "PruneRegistry"):
        "which tf_keras layers TF-MOT can prune (no public registry)",
    ("tensorflow_model_optimization.python.core.quantization.keras"
     ".default_8bit.default_8bit_quantize_registry",
     "Default8BitQuantizeRegistry"):
        "which tf_keras layers TF-MOT's 8-bit QAT supports",
}

# Tested against (see setup.cfg for the bounds): keras 3.15, tensorflow
# 2.21, tf-keras 2.21, keras-hub 0.32.


def direct_sublayers(layer):
    """The sublayers `layer` tracks directly (not recursively)."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


def all_layers(model):
    """`model` and every layer it tracks, recursively."""
    return list(model._flatten_layers())


def get_keras_mask(x):
    from keras.src import backend

    return backend.get_keras_mask(x)


def set_keras_mask(x, mask):
    from keras.src import backend

    backend.set_keras_mask(x, mask)


def in_symbolic_scope():
    """Whether Keras is tracing symbolically (building a model)."""
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope

    return in_symbolic_scope()


def compute_output_spec(fn, *args, **kwargs):
    """Traces `fn` on `keras.KerasTensor` inputs; returns output specs."""
    from keras.src import backend

    return backend.compute_output_spec(fn, *args, **kwargs)


def compute_output_spec_static(fn, spec):
    """`compute_output_spec(fn, spec)`; where JAX's shape polymorphism
    cannot decide a comparison of an unknown length (keras-hub's
    `PositionEmbedding` checks it against its maximum), traced again with
    the unknown non-batch sizes set to 8."""
    try:
        return compute_output_spec(fn, spec)
    except Exception as e:
        if type(e).__name__ != "InconclusiveDimensionOperation":
            raise

    def static(t):
        shape = (t.shape[0],) + tuple(8 if d is None else d
                                      for d in t.shape[1:])
        return keras.KerasTensor(shape, t.dtype)

    return compute_output_spec(fn, keras.tree.map_structure(static, spec))


def flash_attention_flag(layer):
    return getattr(layer, "_flash_attention", None)


def set_flash_attention_flag(layer, value):
    # Plain attribute write: Keras tracks no state behind this flag.
    object.__setattr__(layer, "_flash_attention", value)


def functional_graph(model):
    """The Functional graph behind `model`, or `None` for subclassed models."""
    from keras.src.models.functional import Functional

    if isinstance(model, keras.Sequential):
        # A built Sequential model keeps its graph in `_functional`.
        return getattr(model, "_functional", None)
    if isinstance(model, Functional):
        return model
    return None


def is_graph_model(model):
    """Whether `model` is a Functional model or a built Sequential model."""
    return functional_graph(model) is not None


def run_through_graph(graph, inputs, operation_fn):
    return graph._run_through_graph(inputs, operation_fn=operation_fn)


def reduce_per_example(values, sample_weight=None):
    """What a Keras loss does with per-example values: the batch mean with
    `sample_weight` ("sum_over_batch_size"), divided by the replicas."""
    from keras.src.losses.loss import reduce_weighted_values

    return reduce_weighted_values(values, sample_weight=sample_weight,
                                  reduction="sum_over_batch_size")


def unscale_for_replicas(value):
    """Undoes `scale_for_replicas`, for logging (as Keras's loss tracker)."""
    from keras.src.losses.loss import unscale_loss_for_distribution

    return unscale_loss_for_distribution(value)


def do_not_convert(fn):
    """`fn` kept out of AutoGraph's conversion (on TensorFlow; as it is on
    other backends): the capture hooks are plain Python around a call."""
    if keras.backend.backend() != "tensorflow":
        return fn
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(fn)


def scale_for_replicas(value):
    """`value` divided by the replicas in sync, as Keras scales losses."""
    from keras.src.losses.loss import scale_loss_for_distribution

    return scale_loss_for_distribution(value)


def producing_layer(tensor):
    """The layer (Keras 3 operation or tf_keras layer) that made `tensor`."""
    history = getattr(tensor, "_keras_history", None)
    return (getattr(history, "operation", None)
            or getattr(history, "layer", None))


def tf_keras_uid_map():
    """tf_keras' counters of automatic layer names."""
    from tf_keras.src import backend as tf_keras_backend

    return tf_keras_backend.get_default_graph_uid_map()


def inbound_nodes(operation):
    """The nodes (calls) of `operation` in Functional graphs."""
    return list(operation._inbound_nodes)


def node_call_arguments(node):
    """`(args, kwargs)` of one call of a Functional graph."""
    return node.arguments.args, dict(node.arguments.kwargs)


def tfmot_prune_registry():
    """TF-MOT's registry of prunable tf_keras layers (`.supports(layer)`).

    Imports TF-MOT through `keras_kd.compression._imports.tfmot` first, so
    `TF_USE_LEGACY_KERAS` does not leak."""
    from keras_kd.compression._imports import tfmot

    tfmot()
    from tensorflow_model_optimization.python.core.sparsity.keras import (
        prune_registry,
    )

    return prune_registry.PruneRegistry


def tfmot_default_8bit_registry():
    """TF-MOT's default 8-bit QAT registry (`.supports(layer)`)."""
    from keras_kd.compression._imports import tfmot

    tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (  # noqa: E501
        default_8bit_quantize_registry,
    )

    return default_8bit_quantize_registry.Default8BitQuantizeRegistry()


def set_per_channel(converter, per_channel):
    """One int8 scale per output channel (default) or per tensor."""
    converter._experimental_disable_per_channel = not per_channel


def symbolic_build_multi_worker(model, original, iterator=None,
                                data_batch=None):
    """Keras's symbolic build before `fit`, made to work across workers.

    Keras 3 (`TensorFlowTrainer._maybe_symbolic_build`) takes the first
    input batch and `strategy.reduce("MEAN", ...)`s it across replicas just
    to have a batch of the right shapes. Under
    `MultiWorkerMirroredStrategy` that eager cross-worker reduce of a
    `PerReplica` fails ("Attempt to convert a value (PerReplica:...) with
    an unsupported type", keras-team/keras#20585). The first local
    replica's batch has the same shapes and needs no communication. Other
    strategies run Keras's own code (`original`).
    """
    if keras.backend.backend() != "tensorflow":
        return original(iterator=iterator, data_batch=data_batch)
    import tensorflow as tf

    strategy = model.distribute_strategy
    if iterator is None or not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return original(iterator=iterator, data_batch=data_batch)
    for _, _, it in iterator:
        batch = next(it)
        data_batch = keras.tree.map_structure(
            lambda v: (strategy.experimental_local_results(v)[0]
                       if isinstance(v, tf.distribute.DistributedValues)
                       else v), batch)
        break
    with strategy.scope():
        model._symbolic_build(data_batch=data_batch)


def set_initial_epoch(model, epoch):
    """The epoch `fit` starts from, set from `on_train_begin` (as Keras's
    own `BackupAndRestore` does)."""
    model._initial_epoch = epoch


def reducible_logs(logs):
    """Step logs Keras can reduce across workers.

    Under `MultiWorkerMirroredStrategy` Keras 3 reduces each returned value
    with `strategy.reduce("MEAN", value, axis=0)`, which fails for scalars
    ("Invalid reduction dimension 0", keras-team/keras#20585): they get
    that axis. Epoch logs and `History` come from the metrics themselves.
    Other strategies and backends get `logs` as they are.
    """
    if keras.backend.backend() != "tensorflow":
        return logs
    import tensorflow as tf

    if not isinstance(tf.distribute.get_strategy(),
                      tf.distribute.MultiWorkerMirroredStrategy):
        return logs
    return {name: keras.ops.reshape(value, (1,))
            if len(value.shape) == 0 else value
            for name, value in logs.items()}


def dataset_label_spec(data):
    """The label spec of a `tf.data.Dataset` of `(x, y[, w])` (a
    `tf.TensorSpec`, or a dict of them for precomputed teachers), else
    `None`."""
    import sys

    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(data, tf.data.Dataset):
        return None
    spec = data.element_spec
    if isinstance(spec, tuple) and len(spec) >= 2 and isinstance(
            spec[1], (tf.TensorSpec, dict)):
        return spec[1]
    return None


@contextlib.contextmanager
def inference_call_context():
    """Layers called inside run in inference mode (`training=False`), even
    within an outer `Layer.__call__(training=True)`: keras-hub's
    `call_with_cache` passes no `training`, so its dropout would follow the
    outer call. Keras keeps the value in one shared call context and does
    not restore it after a nested explicit `training=`; we restore it."""
    from keras.src.backend.common import global_state

    context = global_state.get_global_attribute("current_call_ctx")
    if context is None:
        yield
        return
    saved = context.get_value("training")
    context.set_value("training", False)
    try:
        yield
    finally:
        context.set_value("training", saved)


def causal_lm_cache(model, token_ids):
    """`(hidden_states, cache)` of a keras-hub `CausalLM` seeded with
    `token_ids` (its private `_build_cache`, which every keras-hub causal LM
    has beside the public `call_with_cache`); `None` for other models."""
    build = getattr(model, "_build_cache", None)
    if build is None or not hasattr(model, "call_with_cache"):
        return None
    return build(token_ids)
