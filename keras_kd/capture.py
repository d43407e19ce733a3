"""Reads named layers' outputs during a model's own forward pass.

Keras has no forward hooks (torchdistill reaches any PyTorch module through
`register_forward_hook`); this module is their counterpart. Inside
`with LayerCapture(model, taps):` the tapped layer *instances* record what
they compute while `model(x)` runs as usual, so the logits and every tapped
value come from one pass: BatchNorm updates once, dropout draws one mask,
and nothing is rebuilt. The hooks are instance attributes installed on
entry and removed on exit, so the model's class, config and saved file are
untouched; they record only for captures entered in the same thread.

A tap of kind `"attention_probabilities"` on any `keras.layers.
MultiHeadAttention` (subclasses included, e.g. keras-hub's
`CachedMultiHeadAttention` inside `TransformerEncoder`) records the softmax
probabilities `(batch, heads, query, key)` and a `(batch, query)` mask of
valid queries, without changing what the layer returns to its caller.

Example:

```python
import keras
from keras_kd.capture import LayerCapture, Tap

with LayerCapture(model, [Tap("block2_out"), Tap("encoder/mha",
                  "attention_probabilities")]) as capture:
    logits = model(x, training=True)
values = capture.result()  # {tap: Captured(value, mask)}
```
"""

import collections
import inspect
import threading

import keras
from keras import ops

from keras_kd.layer_paths import find_layer
from keras_kd.layer_paths import split_index
from keras_kd.utils import compat

OUTPUT = "output"
ATTENTION_PROBABILITIES = "attention_probabilities"
KINDS = (OUTPUT, ATTENTION_PROBABILITIES)


class Tap(collections.namedtuple("Tap", ["path", "kind"])):
    """What to read from a model: a layer path and `"output"` or
    `"attention_probabilities"`."""

    def __new__(cls, path, kind=OUTPUT):
        if not isinstance(path, str) or not path:
            raise TypeError(
                "A tap's `path` must be a non-empty layer path string. "
                f"Received: path={path!r}")
        if kind not in KINDS:
            raise ValueError(
                f"A tap's `kind` must be one of {list(KINDS)}. Received: "
                f"kind={kind!r}")
        return super().__new__(cls, path, kind)


Captured = collections.namedtuple("Captured", ["value", "mask"])
Captured.__doc__ = """A tapped value and its boolean `(batch, steps)` mask
(or `None`): the Keras mask of a layer output, or the valid queries of
attention probabilities."""

_local = threading.local()
_hooks = {}  # (id(layer), method name) -> [count, instance attribute or None]
_hooks_lock = threading.Lock()
_MISSING = object()


def _active():
    if not hasattr(_local, "captures"):
        _local.captures = []
    return _local.captures


def _recorders(layer, kind):
    return [c for c in _active() if c._wants(layer, kind)]


def _output_mask(layer, inputs, outputs, previous_mask):
    """The mask Keras attaches to `outputs` right after `layer.call`."""
    flat = keras.tree.flatten(outputs)
    masks = [compat.get_keras_mask(x) for x in flat]
    if all(m is not None for m in masks):
        return keras.tree.pack_sequence_as(outputs, masks)
    if not layer.supports_masking:
        return None
    return layer.compute_mask(inputs, previous_mask)


def _wrap_call(layer, original):
    @compat.do_not_convert
    def call(*args, **kwargs):
        recorders = _recorders(layer, OUTPUT)
        if not recorders:
            return original(*args, **kwargs)
        first = args[0] if args else next(iter(kwargs.values()), None)
        # Read before the call: MultiHeadAttention removes its inputs' masks.
        previous_mask = kwargs.get("mask")
        if previous_mask is None and first is not None:
            previous_mask = keras.tree.map_structure(compat.get_keras_mask,
                                                     first)
        outputs = original(*args, **kwargs)
        mask = _output_mask(layer, first, outputs, previous_mask)
        for recorder in recorders:
            recorder._record(layer, OUTPUT, outputs, mask)
        return outputs

    return call


def _valid_queries(query, key, attention_mask):
    """`(batch, query)`: which queries are not padding.

    A query row with no visible key is padding (Keras merges query masks
    that way). In self-attention a query whose own key position is masked
    is padding too: keras-hub encoders mask padded *keys* only.
    """
    batch, length = ops.shape(query)[0], ops.shape(query)[1]
    if attention_mask is None:
        return ops.ones((batch, length), "bool")
    keys = ops.shape(key)[1]
    mask = ops.broadcast_to(ops.cast(attention_mask, "bool"),
                            (batch, length, keys))
    valid = ops.any(mask, axis=-1)
    own_key = ops.any(ops.logical_and(
        mask, ops.cast(ops.eye(length, keys), "bool")), axis=-1)
    return ops.logical_and(
        valid, ops.logical_or(own_key, ops.not_equal(length, keys)))


def _wrap_compute_attention(layer, original):
    signature = inspect.signature(original)

    @compat.do_not_convert
    def compute_attention(*args, **kwargs):
        recorders = _recorders(layer, ATTENTION_PROBABILITIES)
        if not recorders:
            return original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        wanted = bound.arguments.get("return_attention_scores", False)
        bound.arguments["return_attention_scores"] = True
        # Flash attention never materialises the probabilities; the explicit
        # path gives the same numbers, for this call only.
        flash = compat.flash_attention_flag(layer)
        compat.set_flash_attention_flag(layer, False)
        try:
            output, scores = original(*bound.args, **bound.kwargs)
        finally:
            compat.set_flash_attention_flag(layer, flash)
        if scores is None:
            raise ValueError(
                f"MultiHeadAttention layer '{layer.name}' "
                f"({type(layer).__name__}) returned no attention "
                "probabilities from `_compute_attention`, so they cannot be "
                "distilled.")
        valid = _valid_queries(bound.arguments["query"],
                               bound.arguments["key"],
                               bound.arguments.get("attention_mask"))
        for recorder in recorders:
            recorder._record(layer, ATTENTION_PROBABILITIES, scores, valid)
        return output, (scores if wanted else None)

    return compute_attention


_METHODS = {OUTPUT: ("call", _wrap_call),
            ATTENTION_PROBABILITIES: ("_compute_attention",
                                      _wrap_compute_attention)}


def _install(layer, kind):
    method, wrap = _METHODS[kind]
    key = (id(layer), method)
    with _hooks_lock:
        if key in _hooks:
            _hooks[key][0] += 1
            return
        saved = layer.__dict__.get(method, _MISSING)
        _hooks[key] = [1, saved]
        object.__setattr__(layer, method, wrap(layer, getattr(layer, method)))


def _uninstall(layer, kind):
    method, _ = _METHODS[kind]
    key = (id(layer), method)
    with _hooks_lock:
        entry = _hooks[key]
        entry[0] -= 1
        if entry[0]:
            return
        del _hooks[key]
        if entry[1] is _MISSING:
            object.__delattr__(layer, method)
        else:
            object.__setattr__(layer, method, entry[1])


class LayerCapture:
    """Records tapped layer values while `model` runs, in one pass.

    Args:
        model: any `keras.Model` or layer: Functional, Sequential or
            subclassed, layers nested at any depth.
        taps: list of `Tap` (or path strings, meaning `"output"`). A path
            may end with `[i]` to pick one element of a tuple or dict output.
        argument: how errors name the model (`"teacher"`, `"student"`).

    Raises:
        ValueError: at construction, for an unknown path (with the closest
            names) or an attention tap on a layer that is not a
            `MultiHeadAttention`; from `result()`, for a layer the pass never
            called, called more than once, or with an ambiguous output.
    """

    def __init__(self, model, taps, argument="model"):
        self.model = model
        self.argument = argument
        self.taps = [t if isinstance(t, Tap) else Tap(t) for t in taps]
        self._targets = {}
        for tap in self.taps:
            path, index = split_index(tap.path)
            layer = find_layer(model, path, argument)
            if tap.kind == ATTENTION_PROBABILITIES:
                if index is not None or not isinstance(
                        layer, keras.layers.MultiHeadAttention):
                    raise ValueError(
                        f"Attention probabilities can only be read from a "
                        f"keras.layers.MultiHeadAttention layer (or a "
                        f"subclass). Received: {argument} layer "
                        f"'{tap.path}' of type {type(layer).__name__}")
            self._targets[tap] = (layer, index)
        self._records = None

    def _wants(self, layer, kind):
        return self._records is not None and any(
            target is layer and tap.kind == kind
            for tap, (target, _) in self._targets.items())

    def _record(self, layer, kind, value, mask):
        for tap, (target, index) in self._targets.items():
            if target is not layer or tap.kind != kind:
                continue
            trace = (_graph_of(value), compat.in_symbolic_scope())
            if tap in self._records and self._traces[tap] != trace:
                # Keras built the model by a symbolic call first (a
                # subclassed model's first call): the real pass replaces it.
                del self._records[tap]
            self._traces[tap] = trace
            if tap in self._records:
                raise ValueError(
                    f"The {self.argument} layer '{tap.path}' was called more "
                    f"than once in one forward pass of '{self.model.name}', "
                    "so which call to distil is ambiguous. Tap a layer that "
                    "runs once per pass (a shared layer cannot be tapped).")
            self._records[tap] = self._select(tap, index, value, mask)

    def _select(self, tap, index, value, mask):
        if index is not None:
            try:
                value = value[index]
            except (IndexError, KeyError, TypeError) as e:
                raise ValueError(
                    f"The {self.argument} layer path '{tap.path}' indexes "
                    f"the layer's output with [{index}], but the output is "
                    f"{_describe(value)}.") from e
            if isinstance(mask, (list, tuple, dict)):
                mask = mask[index]
        elif not _is_tensor(value):
            raise ValueError(
                f"The {self.argument} layer '{tap.path}' returns "
                f"{_describe(value)}; name the element to distil with an "
                f"index, e.g. '{tap.path}[0]'.")
        if isinstance(mask, (list, tuple, dict)):
            mask = None
        if mask is not None:
            mask = ops.cast(mask, "bool")
        # A fresh tensor: the layer's own output keeps its Keras mask for the
        # model, and losses do not pick that mask up behind our back.
        return Captured(ops.copy(value), mask)

    def __enter__(self):
        self._records, self._traces = {}, {}
        for tap, (layer, _) in self._targets.items():
            _install(layer, tap.kind)
        _active().append(self)
        return self

    def __exit__(self, *exc_info):
        _active().remove(self)
        for tap, (layer, _) in self._targets.items():
            _uninstall(layer, tap.kind)
        return False

    def result(self):
        """`{tap: Captured(value, mask)}` of the pass that just ran."""
        missing = [t.path for t in self.taps if t not in self._records]
        if missing:
            raise ValueError(
                f"The {self.argument} layer(s) {missing} were not called in "
                f"the forward pass of '{self.model.name}', so there is "
                "nothing to distil. Tap layers that the model's call runs.")
        return dict(self._records)


def _graph_of(value):
    """The graph of the first tensor in `value`; `None` when eager."""
    first = keras.tree.flatten(value)[0]
    try:
        return first.graph
    except AttributeError:
        return None


def _is_tensor(value):
    return ops.is_tensor(value) or isinstance(value, keras.KerasTensor)


def _describe(value):
    if isinstance(value, dict):
        return f"a dict with keys {sorted(value)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} values"
    return f"a {type(value).__name__}"


def capture_outputs(model, paths, inputs, training=False):
    """Runs `model(inputs)` once and returns `(outputs, {path: value})`.

    Example:

    ```python
    logits, maps = capture_outputs(model, ["block2_out"], images)
    ```
    """
    with LayerCapture(model, [Tap(p) for p in paths]) as capture:
        outputs = model(inputs, training=training)
    values = capture.result()
    return outputs, {tap.path: values[tap].value for tap in values}
