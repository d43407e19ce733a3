"""Keras-native quantization-aware training by fake quantization.

Keras 3 has no QAT (keras-team/keras#20493) and TF-MOT's does not cover
`MultiHeadAttention` (tensorflow/model-optimization#718). `fake_quantize`
wraps a trained Keras 3 student so that, in every call, each kernel found by
`weight_sites` (Dense, EinsumDense, Conv, Embedding, and so the projections
inside `MultiHeadAttention`) is rounded to int8 (symmetric, narrow range:
one scale per output channel for convolutions, per tensor for
fully-connected kernels, as TFLite's int8 kernels take them), and the
outputs of those layers and the float model inputs to 8 bits between
ranges that follow the data (a calibration pass, then a moving average
while training). The rounding uses
`keras.quantizers.fake_quant_with_min_max_vars`, whose TensorFlow ops
the TFLite converter reads as the quantization of each tensor:
`export_tflite(qat, quantization="int8", representative_data=...)` then
writes int8 builtin kernels with exactly the trained scales; tensors
without a fake quantizer (layer norms, softmax, residual sums) are
calibrated from `representative_data`.

TensorFlow backend only (like the rest of `keras_kd.compression`).

Reference: Jacob et al., "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference", CVPR 2018.

Example:

```python
from keras_kd.compression.native.fake_quant import fake_quantize

qat = fake_quantize(student, calibration_data=train_ds)
```
"""

import contextlib

import keras
from keras import ops

from keras_kd.compression.native.weights import weight_sites

_EMA_DECAY = 0.99


def _assert_tensorflow():
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "Keras-native quantization-aware training writes TensorFlow "
            "fake-quantization ops for the TFLite converter: it needs "
            "KERAS_BACKEND=tensorflow. Received: backend "
            f"{keras.backend.backend()!r}")


class FakeQuantization(keras.layers.Layer):
    """Calls `student` with its kernels and activations fake-quantized.

    Holds the quantization ranges (non-trainable variables): the last
    weight range of each kernel and a moving-average range of each
    quantized layer's output and of each float input. `calibrating = True`
    makes calls widen the activation ranges to what they see instead.

    Args:
        student: a built Keras 3 model.
        keep_dense: names of layers left in float.
    """

    def __init__(self, student, keep_dense=(), **kwargs):
        super().__init__(**kwargs)
        _assert_tensorflow()
        self.student = student
        self.sites = weight_sites(student, keep_dense)
        self.calibrating = False
        self.weight_ranges = []
        self.output_ranges = []
        for i, site in enumerate(self.sites):
            initial = kernel_range(site, site.variable)
            self.weight_ranges.append(self.add_weight(
                shape=tuple(initial.shape), initializer="zeros",
                trainable=False, name=f"weight_range_{i}"))
            self.weight_ranges[-1].assign(initial)
            self.output_ranges.append(None if site.kind == "embedding"
                                      else self._range(f"output_range_{i}"))
        self.input_ranges = {}

    def _range(self, name):
        # [min, max]; empty (min > max) until the first observation.
        variable = self.add_weight(shape=(2,), initializer="zeros",
                                   trainable=False, name=name)
        variable.assign([1.0, -1.0])
        return variable

    def build(self, input_shape):
        float_inputs = [
            path for path, spec in _flat_specs(self.student.input)
            if "float" in str(spec.dtype)]
        for path in float_inputs:
            self.input_ranges[path] = self._range(f"input_range_{path}")
        self.built = True

    def call(self, inputs, training=False):
        inputs = _map_flat(
            inputs, self.student.input,
            lambda path, x: self._activation(x, self.input_ranges[path],
                                             training)
            if path in self.input_ranges else x)
        with self._fake_quantized(training):
            return self.student(inputs, training=training)

    def _activation(self, x, range_variable, training):
        if training or self.calibrating:
            low = ops.minimum(ops.min(x), 0.0)
            high = ops.maximum(ops.max(x), 0.0)
            old_low, old_high = range_variable[0], range_variable[1]
            empty = old_low > old_high
            if self.calibrating:
                new = ops.stack([ops.minimum(low, old_low),
                                 ops.maximum(high, old_high)])
            else:
                decay = _EMA_DECAY
                new = ops.stack([decay * old_low + (1 - decay) * low,
                                 decay * old_high + (1 - decay) * high])
            new = ops.where(empty, ops.stack([low, high]), new)
            range_variable.assign(ops.stop_gradient(new))
        low = ops.minimum(range_variable[0], 0.0)
        high = ops.maximum(range_variable[1], low + 1e-6)
        return keras.quantizers.fake_quant_with_min_max_vars(
            x, low, high, num_bits=8, narrow_range=False)

    def _weight(self, site, range_variable, training):
        kernel = ops.convert_to_tensor(site.variable)
        if training:
            range_variable.assign(ops.stop_gradient(kernel_range(site,
                                                                 kernel)))
        high = ops.maximum(range_variable, 1e-8)
        return keras.quantizers.fake_quant_with_min_max_vars(
            kernel, -high, high, num_bits=8, narrow_range=True,
            axis=site.channel_axis)

    @contextlib.contextmanager
    def _fake_quantized(self, training):
        """Replaces the `call` of every quantized layer for one call of the
        student: kernels read through a `StatelessScope` that maps each to
        its fake-quantized value, outputs fake-quantized after."""
        by_layer = {}
        for site, weight_range, output_range in zip(
                self.sites, self.weight_ranges, self.output_ranges):
            entry = by_layer.setdefault(id(site.layer), [site.layer, [], None])
            entry[1].append((site, weight_range))
            entry[2] = output_range
        installed = []
        try:
            for layer, kernels, output_range in by_layer.values():
                object.__setattr__(layer, "call", self._quantized_call(
                    layer, type(layer).call.__get__(layer), kernels,
                    output_range, training))
                installed.append(layer)
            yield
        finally:
            for layer in installed:
                object.__delattr__(layer, "call")

    def _quantized_call(self, layer, original, kernels, output_range,
                        training):
        def call(*args, **kwargs):
            mapping = [(site.variable, self._weight(site, rng, training))
                       for site, rng in kernels]
            with keras.StatelessScope(state_mapping=mapping):
                outputs = original(*args, **kwargs)
            if output_range is None:
                return outputs
            return self._activation(outputs, output_range, training)
        return call

    def refresh_weight_ranges(self):
        """Sets each kernel's range to its current max |weight| (after the
        last optimizer step, which came after the last range update)."""
        for site, weight_range in zip(self.sites, self.weight_ranges):
            weight_range.assign(kernel_range(site, site.variable))

    def compute_output_spec(self, inputs, training=False):
        return self.student.compute_output_spec(inputs)


def kernel_range(site, kernel):
    """max |kernel|: one value, or one per output channel of a
    convolution (`site.channel_axis`)."""
    values = ops.abs(kernel)
    if site.channel_axis is None:
        return ops.max(values)
    axes = tuple(a for a in range(len(values.shape))
                 if a != site.channel_axis)
    return ops.max(values, axis=axes)


def _flat_specs(structure):
    if isinstance(structure, dict):
        return sorted(structure.items())
    if isinstance(structure, (list, tuple)):
        return [(str(i), t) for i, t in enumerate(structure)]
    return [("0", structure)]


def _map_flat(inputs, structure, fn):
    if isinstance(structure, dict):
        return {k: fn(k, v) for k, v in inputs.items()}
    if isinstance(structure, (list, tuple)):
        return [fn(str(i), v) for i, v in enumerate(inputs)]
    return fn("0", inputs)


def _new_inputs(student):
    def new(tensor):
        return keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype,
                           name=tensor.name)
    structure = student.input
    if isinstance(structure, dict):
        return {k: new(v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [new(t) for t in structure]
    return new(structure)


def fake_quantize(student, *, keep_dense=(), calibration_data=None,
                  calibration_batches=10):
    """A Functional model that runs `student` fake-quantized for int8.

    The student is used as it is (its variables are the new model's, so
    training the new model trains the student). With `calibration_data`
    (batches of inputs or `(x, y)`), the activation ranges start from the
    min/max over its first `calibration_batches` batches.

    Args:
        student: a built Keras 3 Functional or Sequential model (keras-hub
            backbones included).
        keep_dense: names of layers left in float.
        calibration_data: optional `tf.data.Dataset` for the first ranges.
        calibration_batches: batches of it to read, >= 1.

    Returns:
        The quantization-aware Keras 3 model; its `FakeQuantization` layer
        is `model.layers[-1]`.
    """
    inputs = _new_inputs(student)
    layer = FakeQuantization(student, keep_dense=keep_dense,
                             name="fake_quantization")
    model = keras.Model(inputs, layer(inputs), name=f"{student.name}_qat")
    if calibration_data is not None:
        layer.calibrating = True
        try:
            for i, batch in enumerate(calibration_data):
                if i >= calibration_batches:
                    break
                x = batch[0] if isinstance(batch, tuple) else batch
                model(x, training=False)
        finally:
            layer.calibrating = False
    return model
