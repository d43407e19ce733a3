"""Layer paths: `"backbone/transformer_layer_3/self_attention_layer"`.

A path is a `/`-separated list of steps from a model down to one layer
instance. Each step names a direct child of the layer reached so far:

- a layer of a Functional or Sequential model (by its `name`), or
- a sublayer tracked by any layer or subclassed model, by its `name` or by
  the attribute that holds it (keras-hub's `TransformerEncoder` holds
  `self._self_attention_layer`, named `"self_attention_layer"`; a subclassed
  model's `self.c2` is reachable as `"c2"` whatever its layer name).

A path may end with an index, `"lstm[0]"` or `"encoder[sequence_output]"`,
to pick one element of a layer that returns a tuple, list or dict.

Example:

```python
from keras_kd.layer_paths import find_layer

layer = find_layer(classifier, "bert_backbone/transformer_layer_0/"
                               "self_attention_layer")
```
"""

import difflib
import re

import keras

from keras_kd.utils import compat

_INDEXED = re.compile(r"^(?P<path>.*?)\[(?P<index>[^\[\]]+)\]$")


def split_index(path):
    """`"lstm[0]"` -> `("lstm", 0)`; `"enc[out]"` -> `("enc", "out")`.

    A path without an index gives `(path, None)`.
    """
    match = _INDEXED.match(path)
    if not match:
        return path, None
    index = match.group("index").strip()
    return match.group("path"), int(index) if index.isdigit() else index


def children(layer):
    """`(name, sublayer)` for each direct child of `layer`.

    The layer name of every tracked sublayer, then the attribute names that
    hold sublayers (with and without a leading underscore).
    """
    found = []
    direct = (layer.layers if isinstance(layer, keras.Model)
              and compat.is_graph_model(layer) else [])
    for sublayer in list(direct) + compat.direct_sublayers(layer):
        found.append((sublayer.name, sublayer))
    for attribute, value in vars(layer).items():
        if isinstance(value, keras.layers.Layer) and value is not layer:
            found.append((attribute, value))
            if attribute.startswith("_"):
                found.append((attribute.lstrip("_"), value))
    return found


def layer_paths(model, prefix="", depth=8):
    """Every layer path reachable in `model` by layer name, sublayers too."""
    paths, seen = [], set()
    for name, layer in children(model):
        if id(layer) in seen or name != layer.name:
            continue
        seen.add(id(layer))
        path = prefix + name
        paths.append(path)
        if depth > 1:
            paths.extend(layer_paths(layer, path + "/", depth - 1))
    return paths


def find_layer(model, path, argument="layer"):
    """Returns the layer instance at `path` inside `model`.

    Args:
        model: any `keras.Model` (Functional, Sequential or subclassed) or
            layer.
        path: `/`-separated steps (see the module docstring), without an
            index suffix.
        argument: how error messages name the model, e.g. `"teacher"`.

    Raises:
        ValueError: naming `argument`, the unknown path, and the closest
            existing paths.
    """
    layer = model
    for step in path.split("/"):
        matches = [child for name, child in children(layer) if name == step]
        if not matches:
            layer = None
            break
        layer = matches[0]
    if layer is None or layer is model:
        available = layer_paths(model)
        close = difflib.get_close_matches(path, available, n=3, cutoff=0.4)
        hint = f" Closest names: {close}." if close else ""
        raise ValueError(
            f"Unknown {argument} layer '{path}' in model '{model.name}'."
            f"{hint} Available: {available[:20]}"
            + (" ..." if len(available) > 20 else "")
        )
    return layer
