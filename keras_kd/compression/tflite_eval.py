"""Evaluation of `.tflite` files with the LiteRT interpreter."""

import gzip
import os
import time

import keras
import numpy as np
import tensorflow as tf

_LATENCY_SAMPLES = 200
_LATENCY_WARMUP = 10


def _litert():
    try:
        from ai_edge_litert import interpreter as litert
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as e:
        raise ImportError(
            "Evaluating .tflite files needs LiteRT: pip install "
            "'keras_kd[compress]'"
        ) from e
    return litert, schema


def read_tflite(path, argument="path"):
    """Returns the bytes of the TFLite file at `path`, checking its header."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Argument `{argument}` is not a file. "
            f"Received: {argument}={path!r}"
        )
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(
            f"Argument `{argument}` is not a TFLite flatbuffer (no 'TFL3' "
            f"identifier). Received: {argument}={path!r}"
        )
    return data


def weight_tensors(data):
    """`(buffer index, tensor, raw bytes as NumPy)` of each weight tensor of
    a TFLite flatbuffer: the constant tensors of rank >= 2 with data
    (convolution filters, fully-connected weights, embedding tables)."""
    _, schema = _litert()
    model = schema.Model.GetRootAsModel(data, 0)
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            if tensor.ShapeLength() < 2 or tensor.Buffer() <= 0:
                continue
            raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
            if isinstance(raw, int) or raw is None or raw.size == 0:
                continue
            yield tensor.Buffer(), tensor, raw


def _weight_values(data):
    """`(buffer index, tensor, values)` of the int8 / float weights."""
    _, schema = _litert()
    dtypes = {schema.TensorType.INT8: np.int8,
              schema.TensorType.FLOAT32: np.float32,
              schema.TensorType.FLOAT16: np.float16}
    for buffer, tensor, raw in weight_tensors(data):
        dtype = dtypes.get(tensor.Type())
        if dtype is not None:
            yield buffer, tensor, np.frombuffer(raw.tobytes(), dtype=dtype)


def tflite_sparsity(data):
    """Fraction of zero values in the weight tensors of a TFLite model.

    Weight tensors are the constant tensors of rank >= 2 (convolution
    filters, fully-connected weights); biases and shape constants are left
    out. For int8 weights, a zero is the stored value 0 (their zero point).
    """
    zeros = total = 0
    for _, _, values in _weight_values(data):
        zeros += int(np.sum(values == 0))
        total += values.size
    return zeros / total if total else 0.0


def _operator_code_names(model, schema):
    """The name of each operator code of a model: builtin names
    (`"CONV_2D"`) and custom codes (`"FlexAddV2"` for Select TF ops)."""
    builtin = {value: name for name, value in vars(
        schema.BuiltinOperator).items() if not name.startswith("_")}
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        custom = code.CustomCode()
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        names.append(custom.decode() if custom
                     else builtin.get(number, str(number)))
    return names


def operator_names(data):
    """The operators of a TFLite flatbuffer: builtin names (`"CONV_2D"`) and
    custom codes (`"FlexAddV2"` for Select TF ops)."""
    _, schema = _litert()
    model = schema.Model.GetRootAsModel(data, 0)
    return sorted(set(_operator_code_names(model, schema)))


def operator_types(data):
    """`{operator name: sorted set of "input types -> output types"}` for
    every operator of a TFLite flatbuffer: which kernels run in int8.

    Example: `{"FULLY_CONNECTED": ["INT8,INT8,INT32->INT8"], ...}` for an
    int8 fully-connected layer (input, weights, bias -> output).
    """
    _, schema = _litert()
    types = {value: name for name, value in vars(
        schema.TensorType).items() if not name.startswith("_")}
    model = schema.Model.GetRootAsModel(data, 0)
    code_names = _operator_code_names(model, schema)
    found = {}
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)

        def kinds(indices):
            return ",".join(
                "-" if i < 0 else types[subgraph.Tensors(i).Type()]
                for i in indices)

        for o in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(o)
            name = code_names[op.OpcodeIndex()]
            signature = (f"{kinds(op.InputsAsNumpy())}->"
                         f"{kinds(op.OutputsAsNumpy())}")
            found.setdefault(name, set()).add(signature)
    return {name: sorted(s) for name, s in found.items()}


def weight_tensor_zeros(data):
    """`[(name, shape, fraction of zeros)]` of the weight tensors (constant,
    rank >= 2) of a TFLite flatbuffer, largest first."""
    found = {}
    for buffer, tensor, values in _weight_values(data):
        found[buffer] = (tensor.Name().decode(), tuple(tensor.ShapeAsNumpy()),
                         float(np.mean(values == 0)), values.size)
    ordered = sorted(found.values(), key=lambda entry: -entry[3])
    return [entry[:3] for entry in ordered]


def _quantize_input(x, detail):
    if detail["dtype"] != np.int8 and detail["dtype"] != np.uint8:
        return x.astype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    q = np.round(x.astype(np.float32) / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(detail["dtype"])


def _dequantize_output(y, detail):
    if detail["dtype"] == np.float32:
        return y
    scale, zero_point = detail["quantization"]
    return (y.astype(np.float32) - zero_point) * scale


class TFLiteRunner:
    """Runs a `.tflite` classifier on named inputs, any batch size.

    Inputs are matched by name to the file's signature (as
    `export_tflite` writes them); a single unnamed array feeds a
    single-input file. Files with a static batch size run in chunks of it.
    """

    def __init__(self, data):
        litert, _ = _litert()
        self.interpreter = litert.Interpreter(model_content=data)
        signatures = self.interpreter.get_signature_list()
        self.key = next(iter(signatures))
        self.runner = self.interpreter.get_signature_runner(self.key)
        self.input_details = self.runner.get_input_details()
        self.output_name = signatures[self.key]["outputs"][0]
        self.output_detail = self.runner.get_output_details()[
            self.output_name]
        batch = [int(d["shape_signature"][0]) if len(d["shape_signature"])
                 else -1 for d in self.input_details.values()]
        self.static_batch = batch[0] if batch and batch[0] > 0 else None

    @property
    def names(self):
        return sorted(self.input_details)

    def named(self, x, argument="dataset"):
        if isinstance(x, dict):
            x = {k: np.asarray(v) for k, v in x.items()}
            if set(x) != set(self.input_details):
                raise ValueError(
                    f"Argument `{argument}` has inputs named {sorted(x)}, "
                    f"but the .tflite file's inputs are named {self.names}. "
                    "Inputs are matched by name.")
            return x
        if isinstance(x, (list, tuple)) or len(self.input_details) != 1:
            raise ValueError(
                f"Argument `{argument}` must give the inputs as a dict keyed "
                f"by name for this .tflite file with inputs {self.names}. "
                f"Received inputs of type {type(x).__name__}")
        return {self.names[0]: np.asarray(x)}

    def logits(self, named):
        count = len(next(iter(named.values())))
        step = self.static_batch or count
        outputs = []
        for start in range(0, count, step):
            chunk = {k: v[start:start + step] for k, v in named.items()}
            size = len(next(iter(chunk.values())))
            if self.static_batch and size < step:  # pad the last chunk
                chunk = {k: np.concatenate(
                    [v, np.repeat(v[-1:], step - size, axis=0)])
                    for k, v in chunk.items()}
            result = self.runner(**{
                k: _quantize_input(v, self.input_details[k])
                for k, v in chunk.items()})
            # Fused LSTM kernels keep their state in variable tensors: each
            # sequence must start from zeros.
            self.interpreter.reset_all_variables()
            outputs.append(_dequantize_output(
                result[self.output_name], self.output_detail)[:size])
        return np.concatenate(outputs)


def class_indices(y, logits):
    """Integer classes `(n,)` from integer labels `(n,)` / `(n, 1)` or from
    one-hot or soft label rows `(n, classes)`."""
    classes = logits.shape[-1]
    if y.ndim == logits.ndim and y.shape[-1] == classes and classes > 1:
        return np.argmax(y, axis=-1).reshape(-1)
    return y.reshape(-1)


def evaluate_tflite(path, dataset, latency_samples=_LATENCY_SAMPLES):
    """Accuracy, size, sparsity and latency of a `.tflite` classifier.

    Args:
        path: a `.tflite` file.
        dataset: `tf.data.Dataset` of `(x, y)` or `(x, y, sample_weight)`
            batches (or a tuple of arrays `(x, y)`); `y` holds integer
            labels, or one-hot / soft rows (their argmax is the class); `x`
            is an array, or a dict of arrays keyed by input name for
            multi-input models.
        latency_samples: examples timed one at a time for the latency.

    Returns:
        Dict with `accuracy`, `size_bytes`, `gzip_bytes` (gzip level 9),
        `sparsity` (zero fraction of the weight tensors), `latency_ms_p50`
        (per example, batch 1, LiteRT's default delegate) and `examples`.

    Example:

    ```python
    results = keras_kd.compression.evaluate_tflite("student_int8.tflite",
                                                    test_ds)
    print(results["accuracy"], results["gzip_bytes"])
    ```
    """
    data = read_tflite(path)
    litert, _ = _litert()
    if isinstance(dataset, tuple):
        dataset = tf.data.Dataset.from_tensor_slices(dataset).batch(256)
    runner = TFLiteRunner(data)
    correct = seen = 0
    singles = []
    for x, y, *_ in dataset:  # sample weights, if any, are not needed
        named = runner.named(keras.tree.map_structure(np.asarray, x))
        logits = runner.logits(named)
        y = class_indices(np.asarray(y), logits)
        correct += int(np.sum(np.argmax(logits, axis=-1) == y))
        seen += len(y)
        for i in range(len(y)):
            if len(singles) >= latency_samples + _LATENCY_WARMUP:
                break
            singles.append({k: v[i:i + 1] for k, v in named.items()})
    if seen == 0:
        raise ValueError("Argument `dataset` is empty.")
    return {
        "accuracy": correct / seen,
        "examples": seen,
        "size_bytes": len(data),
        "gzip_bytes": len(gzip.compress(data, compresslevel=9)),
        "sparsity": tflite_sparsity(data),
        "latency_ms_p50": _latency_p50(litert, data, singles),
    }


def _latency_p50(litert, data, examples):
    """Median time of one invocation on batch-1 examples (a list of
    `{input name: (1, ...) array}`, or of arrays for single-input files)."""
    runner = TFLiteRunner(data)
    rank = len(next(iter(runner.input_details.values()))["shape"])

    def single(example):
        if isinstance(example, dict):
            return example
        example = np.asarray(example)
        return runner.named(example[None] if example.ndim == rank - 1
                            else example)

    examples = [single(e) for e in examples]
    runner.runner(**{k: _quantize_input(v, runner.input_details[k])
                     for k, v in examples[0].items()})  # allocate once
    times = []
    for i, x in enumerate(examples):
        feed = {k: _quantize_input(v, runner.input_details[k])
                for k, v in x.items()}
        start = time.perf_counter()
        runner.runner(**feed)
        if i >= _LATENCY_WARMUP or len(examples) <= _LATENCY_WARMUP:
            times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))
