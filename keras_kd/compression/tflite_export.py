"""TFLite export of Keras 3 / tf_keras models: float32, dynamic, fp16, int8.

Files hold only TFLite builtin operators (no Flex / Select-TF ops, which
phones without the Flex delegate cannot run), with one signature whose
inputs carry the model's input names.
"""

import re
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_kd.compression._imports import tf_keras
from keras_kd.compression.tflite_eval import operator_names
from keras_kd.utils import compat
from keras_kd.utils.io import check_writable_folder
from keras_kd.utils.io import write_bytes_atomic
from keras_kd.utils.validation import check_bool
from keras_kd.utils.validation import check_one_of

QUANTIZATIONS = (None, "dynamic", "float16", "int8", "int8_weight_only",
                 "int4_weight_only")
_WEIGHT_ONLY = {"int8_weight_only": 8, "int4_weight_only": 4}
_REPRESENTATIVE_SAMPLES = 200


class ModelInputs:
    """The inputs of a model: names, specs, and how the model takes them.

    `kind` is `"dict"` (keras-hub style named inputs), `"list"` (several
    positional inputs) or `"single"`.
    """

    def __init__(self, model, batch_size=1):
        structure = _input_structure(model)
        if isinstance(structure, dict):
            self.kind = "dict"
            tensors = dict(structure)
        elif isinstance(structure, (list, tuple)) and len(structure) > 1:
            self.kind = "list"
            tensors = {_tensor_name(t, i): t for i, t in enumerate(structure)}
        else:
            self.kind = "single"
            tensor = (structure[0] if isinstance(structure, (list, tuple))
                      else structure)
            tensors = {_tensor_name(tensor, 0): tensor}
        self.specs = {
            name: tf.TensorSpec((batch_size,) + tuple(t.shape[1:]),
                                tf.as_dtype(_dtype_name(t)), name=name)
            for name, t in tensors.items()}

    @property
    def names(self):
        return list(self.specs)

    def signature(self):
        """The `input_signature` of the serving function."""
        if self.kind == "dict":
            return [dict(self.specs)]
        return list(self.specs.values())

    def call(self, model):
        """`fn(*signature args) -> model(inputs, training=False)`."""
        if self.kind == "list":
            return lambda *xs: model(list(xs), training=False)
        return lambda x: model(x, training=False)

    def by_name(self, x, argument):
        """`{name: array}` from a dict, list or array of inputs.

        Raises:
            ValueError: when dict keys do not match the input names, naming
                both sides.
        """
        if isinstance(x, dict):
            if set(x) != set(self.specs):
                raise ValueError(
                    f"Argument `{argument}` has inputs named {sorted(x)}, but "
                    f"the model's inputs are named {sorted(self.specs)}. "
                    "Inputs are matched by name.")
            return {name: np.asarray(x[name]) for name in self.specs}
        if isinstance(x, (list, tuple)):
            if len(x) != len(self.specs):
                raise ValueError(
                    f"Argument `{argument}` has {len(x)} inputs, but the "
                    f"model has {len(self.specs)}: {self.names}.")
            return {name: np.asarray(v) for name, v in zip(self.specs, x)}
        if len(self.specs) != 1:
            raise ValueError(
                f"Argument `{argument}` gives one input array, but the model "
                f"has {len(self.specs)} inputs: {self.names}. Pass a dict "
                "keyed by input name.")
        return {self.names[0]: np.asarray(x)}


def _input_structure(model):
    try:
        structure = model.input
    except (AttributeError, ValueError) as e:
        raise ValueError(
            "Exporting needs a model with known inputs (Functional or "
            f"Sequential). Received: model '{model.name}' of type "
            f"{type(model).__name__}") from e
    return structure


def _tensor_name(tensor, position):
    layer = compat.producing_layer(tensor)
    name = layer.name if layer is not None else None
    name = name or getattr(tensor, "name", None) or f"input_{position}"
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name.split(":")[0])


def _dtype_name(tensor):
    dtype = tensor.dtype
    return getattr(dtype, "name", dtype)


def representative_samples(data, inputs, argument="representative_data"):
    """Up to 200 calibration examples, each `{input name: (1, ...) array}`.

    `data` may be a `tf.data.Dataset` of input or `(x, y)` batches, a NumPy
    array (single-input models), or a dict / list of arrays. Dict inputs are
    matched by name.
    """
    if isinstance(data, tf.data.Dataset):
        def batches():
            for batch in data:
                x = batch[0] if isinstance(batch, tuple) else batch
                yield keras.tree.map_structure(np.asarray, x)
    elif isinstance(data, (np.ndarray, dict, list)):
        def batches():
            yield data
    else:
        raise TypeError(
            f"Argument `{argument}` must be a tf.data.Dataset of input or "
            f"(x, y) batches, a NumPy array, or a dict of arrays. Received: "
            f"{argument} of type {type(data).__name__}")
    samples = []
    for batch in batches():
        named = inputs.by_name(batch, argument)
        count = len(next(iter(named.values())))
        for name, values in named.items():
            expected = tuple(inputs.specs[name].shape[1:])
            if not _shape_matches(values.shape[1:], expected):
                raise ValueError(
                    f"Argument `{argument}` has examples of shape "
                    f"{values.shape[1:]} for input '{name}', but the model "
                    f"expects {expected}. Received: {argument} with batches "
                    f"of shape {values.shape}")
        for i in range(count):
            samples.append({
                name: values[i:i + 1].astype(
                    inputs.specs[name].dtype.as_numpy_dtype)
                for name, values in named.items()})
            if len(samples) >= _REPRESENTATIVE_SAMPLES:
                return samples
    if not samples:
        raise ValueError(f"Argument `{argument}` is empty.")
    return samples


def _shape_matches(actual, expected):
    return len(actual) == len(expected) and all(
        e is None or a == e for a, e in zip(actual, expected)
    )


def recurrent_layers(model):
    """`"name (Class)"` of every recurrent layer of a Keras 3 or tf_keras
    model, wrappers included."""
    classes = [keras.layers.RNN, keras.layers.Bidirectional]
    try:
        tfk = tf_keras()
        classes += [tfk.layers.RNN, tfk.layers.Bidirectional]
    except ImportError:
        pass
    layers = compat.all_layers(model)[1:]
    return [f"{layer.name} ({type(layer).__name__})" for layer in layers
            if isinstance(layer, tuple(classes))]


def export_tflite(model, path, *, quantization=None,
                  representative_data=None, per_channel=True, batch_size=1,
                  block_size=32):
    """Converts `model` to a builtins-only `.tflite` file at `path`.

    The model's inference call (`training=False`) is saved with a *static*
    input signature (`batch_size` examples) and converted from there. A
    static shape is what lets the converter fuse recurrent layers into
    TFLite's sequence-LSTM kernels and avoid dynamic-shape ops that would
    need the Flex delegate; phones run one example at a time anyway.
    Students with recurrent layers are converted through their tf_keras twin
    (`to_tf_keras`): Keras 3 LSTMs become `WHILE` loops, tf_keras LSTMs
    fuse into `UNIDIRECTIONAL_SEQUENCE_LSTM`, whose integer kernels make
    full-int8 LSTMs possible.

    Inputs keep their names: a keras-hub student's `token_ids`,
    `segment_ids` and `padding_mask` are the file's signature inputs.
    A fused LSTM keeps its state in variable tensors of the file: reset
    them before each sequence (`interpreter.reset_all_variables()`, as
    `evaluate_tflite` does), or the next sequence starts from the last
    one's state.

    Args:
        model: a Keras 3 or tf_keras model (single, list or dict inputs).
        path: destination file; its folder must exist. Written atomically,
            and never when conversion fails.
        quantization: `None` (float32), `"dynamic"` (int8 weights, float
            activations), `"float16"` (fp16 weights) or `"int8"` (full
            integer; int8 output, and int8 input for float inputs; needs
            `representative_data`). Recurrent layers that do not fuse
            (GRU, SimpleRNN, masked LSTMs) cannot be full-integer: that is a
            clear error suggesting `"dynamic"`. `"int8_weight_only"` and
            `"int4_weight_only"` rewrite the float file with
            ai-edge-quantizer (`keras_kd.compression.weight_only`): int8 or
            int4 weights, float activations; embedding tables (`GATHER`)
            stay float.
        representative_data: calibration inputs for `"int8"`: a dataset of
            input or `(x, y)` batches, a NumPy array, or a dict of arrays
            keyed by input name. The first 200 examples are used.
        per_channel: with `"int8"`/`"dynamic"`, one scale per output channel
            of each kernel (the default). `False` gives one scale per
            tensor: smaller files, at some accuracy risk. Meant for
            post-training quantization.
        batch_size: the static batch size of the file (default 1), or
            `None` for a dynamic batch dimension (convolutional students).
        block_size: for `"int4_weight_only"`: input weights per scale of
            fully-connected kernels (32, 64, 128, 256), or `None` for one
            scale per output channel.

    Returns:
        `path`.

    Example:

    ```python
    keras_kd.compression.export_tflite(
        student, "student_int8.tflite", quantization="int8",
        representative_data=x_train[:500],
    )
    ```
    """
    check_one_of("quantization", quantization, QUANTIZATIONS)
    check_bool("per_channel", per_channel)
    from keras_kd.compression import weight_only

    check_one_of("block_size", block_size, weight_only.BLOCK_SIZES)
    if quantization in _WEIGHT_ONLY:
        weight_only._quantizer()  # the install hint before any work
    if batch_size is not None and (isinstance(batch_size, bool) or not (
            isinstance(batch_size, int)) or batch_size < 1):
        raise ValueError(
            "Argument `batch_size` must be a positive integer or None. "
            f"Received: batch_size={batch_size!r}")
    path = str(path)
    check_writable_folder(path, "path")
    source = _convertible(model)
    inputs = ModelInputs(source, batch_size)
    samples = None
    if quantization == "int8":
        if representative_data is None:
            raise ValueError(
                "Full-integer quantization needs calibration inputs: pass "
                "`representative_data` with quantization='int8'. Received: "
                "representative_data=None"
            )
        samples = representative_samples(representative_data, inputs)
        _check_full_integer(source, inputs)
    bits = _WEIGHT_ONLY.get(quantization)
    flatbuffer = _convert_model(source, inputs,
                                None if bits else quantization, samples,
                                per_channel)
    if bits:
        flatbuffer = weight_only.quantize_weights(flatbuffer, bits,
                                                  block_size)
    check_builtins_only(flatbuffer)
    return write_bytes_atomic(path, flatbuffer)


def check_builtins_only(flatbuffer):
    """Refuses a converted model that needs Select TF (Flex) ops."""
    flex = [op for op in operator_names(flatbuffer) if op.startswith("Flex")]
    if flex:
        raise ValueError(
            f"The converted model needs Select TF (Flex) ops {flex}, which "
            "phones without the Flex delegate cannot run; no file was "
            "written. Replace the layers that produce them.")


def _convertible(model):
    """The model to convert: the tf_keras twin of a Keras 3 recurrent
    student (fused LSTM kernels), else the model itself."""
    if not isinstance(model, keras.Model) or not recurrent_layers(model):
        return model
    from keras_kd.compression.twin import to_tf_keras

    try:
        return to_tf_keras(model)
    except ValueError:
        return model  # Keras 3 recurrent layers convert as WHILE loops.


def _check_full_integer(model, inputs):
    """Refuses int8 for recurrent layers left as WHILE loops: TFLite has no
    integer kernels for them (the converter can even crash on them)."""
    layers = recurrent_layers(model)
    if not layers:
        return
    float_file = _convert_model(model, inputs, None, None, True)
    if "WHILE" in operator_names(float_file):
        raise ValueError(
            f"Recurrent layers {layers} of model '{model.name}' convert to "
            "a WHILE loop, not to TFLite's fused LSTM kernel, so they cannot "
            "be full-integer (int8). Only unmasked LSTM and "
            "Bidirectional(LSTM) layers fuse. Use quantization='dynamic' "
            "(int8 weights, float activations) instead.")


def _convert_model(model, inputs, quantization, samples, per_channel):
    """Keras 3 models go through an `ExportArchive` SavedModel (the only way
    TF tracks their variables); tf_keras models (twins, TF-MOT models) are
    converted from a concrete function, which skips a SavedModel round
    trip."""
    call = inputs.call(model)
    if isinstance(model, keras.Model):
        with tempfile.TemporaryDirectory() as saved_model_dir:
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint("serve", call,
                                 input_signature=inputs.signature())
            archive.write_out(saved_model_dir, verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(
                saved_model_dir)
            return _convert(converter, quantization, samples, inputs,
                            per_channel)
    serve = tf.function(call, input_signature=inputs.signature())
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], model)
    return _convert(converter, quantization, samples, inputs, per_channel)


def _convert(converter, quantization, samples, inputs, per_channel):
    # One scale per tensor (the converter has no public switch).
    compat.set_per_channel(converter, per_channel)
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        converter.representative_dataset = lambda: iter(samples)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
        if all(spec.dtype.is_floating for spec in inputs.specs.values()):
            converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()
