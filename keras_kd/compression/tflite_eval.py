"""Evaluation of `.tflite` files with the LiteRT interpreter."""

import gzip
import os
import time

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


def tflite_sparsity(data):
    """Fraction of zero values in the weight tensors of a TFLite model.

    Weight tensors are the constant tensors of rank >= 2 (convolution
    filters, fully-connected weights); biases and shape constants are left
    out. For int8 weights, a zero is the stored value 0 (their zero point).
    """
    _, schema = _litert()
    model = schema.Model.GetRootAsModel(data, 0)
    zeros = total = 0
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            if tensor.ShapeLength() < 2 or tensor.Buffer() <= 0:
                continue
            buffer = model.Buffers(tensor.Buffer())
            raw = buffer.DataAsNumpy()
            if isinstance(raw, int) or raw is None or raw.size == 0:
                continue
            dtype = {schema.TensorType.INT8: np.int8,
                     schema.TensorType.FLOAT32: np.float32,
                     schema.TensorType.FLOAT16: np.float16}.get(tensor.Type())
            if dtype is None:
                continue
            values = np.frombuffer(raw.tobytes(), dtype=dtype)
            zeros += int(np.sum(values == 0))
            total += values.size
    return zeros / total if total else 0.0


def _quantize_input(x, detail):
    if detail["dtype"] == np.float32:
        return x.astype(np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    q = np.round(x / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(detail["dtype"])


def _dequantize_output(y, detail):
    if detail["dtype"] == np.float32:
        return y
    scale, zero_point = detail["quantization"]
    return (y.astype(np.float32) - zero_point) * scale


def evaluate_tflite(path, dataset, latency_samples=_LATENCY_SAMPLES):
    """Accuracy, size, sparsity and latency of a `.tflite` classifier.

    Args:
        path: a `.tflite` file.
        dataset: `tf.data.Dataset` of `(x, y)` batches with integer labels
            (or a tuple of NumPy arrays `(x, y)`).
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
    interpreter = litert.Interpreter(model_content=data)
    input_detail = interpreter.get_input_details()[0]
    correct = seen = 0
    singles = []
    for x, y in dataset:
        x, y = np.asarray(x, np.float32), np.asarray(y).reshape(-1)
        interpreter.resize_tensor_input(input_detail["index"], x.shape)
        interpreter.allocate_tensors()
        input_detail = interpreter.get_input_details()[0]
        output_detail = interpreter.get_output_details()[0]
        interpreter.set_tensor(input_detail["index"],
                               _quantize_input(x, input_detail))
        interpreter.invoke()
        logits = _dequantize_output(
            interpreter.get_tensor(output_detail["index"]), output_detail
        )
        correct += int(np.sum(np.argmax(logits, axis=-1) == y))
        seen += len(y)
        if len(singles) < latency_samples + _LATENCY_WARMUP:
            singles.extend(x[: latency_samples + _LATENCY_WARMUP
                             - len(singles)])
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
    interpreter = litert.Interpreter(model_content=data)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"],
                                    (1,) + tuple(examples[0].shape))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    times = []
    for i, x in enumerate(examples):
        interpreter.set_tensor(detail["index"],
                               _quantize_input(x[None], detail))
        start = time.perf_counter()
        interpreter.invoke()
        if i >= _LATENCY_WARMUP or len(examples) <= _LATENCY_WARMUP:
            times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))
