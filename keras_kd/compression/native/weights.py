"""The weights Keras-native pruning and QAT act on, in any Keras 3 model.

TF-MOT reaches only tf_keras models; these helpers find the kernels of
Keras 3 layers wherever they sit (a keras-hub `TransformerEncoder`'s
`MultiHeadAttention` projections are `EinsumDense` layers three levels
down), so that `prune(path="keras")` and `quantize(path="keras")` work on
any student, Functional, Sequential or keras-hub.

Example:

```python
from keras_kd.compression.native.weights import weight_sites

for site in weight_sites(student):
    print(site.path, site.variable.shape)
```
"""

import keras

from keras_kd.utils import compat

# Layer classes and the attributes that hold their kernels (public
# properties of Keras 3; each returns the variable itself unless LoRA is
# enabled).
_KERNELS = (
    (keras.layers.Dense, ("kernel",)),
    (keras.layers.EinsumDense, ("kernel",)),
    (keras.layers.SeparableConv1D, ("depthwise_kernel", "pointwise_kernel")),
    (keras.layers.SeparableConv2D, ("depthwise_kernel", "pointwise_kernel")),
    (keras.layers.DepthwiseConv1D, ("kernel",)),
    (keras.layers.DepthwiseConv2D, ("kernel",)),
    (keras.layers.Conv1D, ("kernel",)),
    (keras.layers.Conv2D, ("kernel",)),
    (keras.layers.Conv3D, ("kernel",)),
    (keras.layers.Conv1DTranspose, ("kernel",)),
    (keras.layers.Conv2DTranspose, ("kernel",)),
    (keras.layers.Conv3DTranspose, ("kernel",)),
    (keras.layers.Embedding, ("embeddings",)),
)
_PER_CHANNEL = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
              keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)


class WeightSite:
    """One kernel of one layer: what pruning masks and QAT fake-quantizes.

    Attributes:
        layer: the Keras layer that owns the kernel.
        attribute: the layer's attribute (`"kernel"`, `"embeddings"`, ...).
        variable: the kernel variable.
        path: the variable's path (`"block1/self_attention/query/kernel"`).
        kind: `"embedding"`, `"conv"` or `"dense"` (Dense and EinsumDense).
        channel_axis: the axis of per-channel int8 scales, or `None` for
            one scale per tensor (what the TFLite converter takes for
            fully-connected kernels).
        input_axis: the axis that is summed over (the input channels), along
            which `MByNSparsity` groups weights.
    """

    def __init__(self, layer, attribute, variable):
        self.layer = layer
        self.attribute = attribute
        self.variable = variable
        self.path = variable.path
        rank = len(variable.shape)
        if isinstance(layer, keras.layers.Embedding):
            self.kind, self.channel_axis, self.input_axis = (
                "embedding", None, rank - 1)
        elif isinstance(layer, (keras.layers.Dense,
                                keras.layers.EinsumDense)):
            self.kind, self.channel_axis = "dense", None
            self.input_axis = _contracted_axis(layer, rank)
        else:
            self.kind = "conv"
            per_channel = (isinstance(layer, _PER_CHANNEL)
                           and not isinstance(layer, _DEPTHWISE))
            self.channel_axis = rank - 1 if per_channel else None
            transpose = "Transpose" in type(layer).__name__
            self.input_axis = rank - 1 if transpose else rank - 2

    def __repr__(self):
        return (f"WeightSite({self.path!r}, shape="
                f"{tuple(self.variable.shape)})")


def _contracted_axis(layer, rank):
    if not isinstance(layer, keras.layers.EinsumDense):
        return 0
    inputs, _, output = layer.equation.partition("->")
    first, _, kernel = inputs.partition(",")
    for axis, letter in enumerate(kernel):
        if letter in first and letter not in output:
            return axis
    return 0


def kernels_of(layer):
    """`(attribute, variable)` for each kernel `layer` owns itself."""
    for classes, attributes in _KERNELS:
        if isinstance(layer, classes):
            found = []
            for attribute in attributes:
                value = getattr(layer, attribute, None)
                if isinstance(value, keras.Variable) and len(value.shape) >= 2:
                    found.append((attribute, value))
                elif value is not None and not isinstance(
                        value, keras.Variable):
                    raise ValueError(
                        f"Layer '{layer.name}' computes its `{attribute}` "
                        "(LoRA is enabled), so its kernel cannot be pruned "
                        "or quantized in place. Merge the LoRA weights first.")
            return found
    return []


def weight_sites(model, keep_dense=()):
    """Every kernel of a supported layer in `model`, nested layers included,
    each once, in the order Keras tracks them.

    Args:
        model: a Keras 3 model or layer.
        keep_dense: names of layers (at any depth) whose kernels, and those
            of their sublayers, are left out.
    """
    skipped = set()
    for layer in compat.all_layers(model):
        if layer.name in keep_dense:
            skipped.update(id(inner) for inner in compat.all_layers(layer))
    sites, seen = [], set()
    for layer in compat.all_layers(model):
        if id(layer) in skipped:
            continue
        for attribute, variable in kernels_of(layer):
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            sites.append(WeightSite(layer, attribute, variable))
    return sites


def layer_names(model):
    """Names of `model`'s layers at every depth."""
    return {layer.name for layer in compat.all_layers(model)}


def copy_model(model):
    """A new Keras 3 model like `model`, with its weights copied (pruning and
    QAT never change the model they are given).

    Raises:
        ValueError: for a subclassed model (no graph: nothing to export).
    """
    if not compat.is_graph_model(model):
        raise ValueError(
            f"Model '{model.name}' of type {type(model).__name__} is a "
            "subclassed model: pruning, QAT and TFLite export need a "
            "Functional or Sequential model (keras-hub backbones and tasks "
            "are Functional). Rebuild it with `keras.Model(inputs, outputs)`.")
    try:
        clone = keras.models.clone_model(model)
    except Exception:  # subclassed Functional (keras-hub backbones)
        try:
            clone = keras.saving.deserialize_keras_object(
                keras.saving.serialize_keras_object(model))
        except Exception as e:
            raise ValueError(
                f"Cannot copy model '{model.name}' of type "
                f"{type(model).__name__} (neither `keras.models.clone_model` "
                "nor its config round trip works): Keras-native pruning and "
                "QAT need a Functional, Sequential or serializable model."
            ) from e
    clone.set_weights(model.get_weights())
    return clone
