"""TFLite export of Keras 3 / tf_keras models: float32, dynamic, fp16, int8."""

import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_kd.utils.io import check_writable_folder
from keras_kd.utils.io import write_bytes_atomic
from keras_kd.utils.validation import check_bool
from keras_kd.utils.validation import check_one_of

QUANTIZATIONS = (None, "dynamic", "float16", "int8")
_REPRESENTATIVE_SAMPLES = 200


def _input_shape(model):
    shape = tuple(model.inputs[0].shape)
    return (None,) + tuple(shape[1:])


def representative_batches(data, input_shape, argument="representative_data"):
    """Yields float32 single-example batches from `data` for calibration.

    `data` may be a `tf.data.Dataset` of input batches or of `(x, y)` batches,
    or a NumPy array of inputs. Raises a clear error when the examples do not
    have the model's input shape.
    """
    if isinstance(data, tf.data.Dataset):
        def examples():
            for batch in data:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                yield from np.asarray(x)
    elif isinstance(data, np.ndarray):
        def examples():
            yield from data
    else:
        raise TypeError(
            f"Argument `{argument}` must be a tf.data.Dataset of input or "
            f"(x, y) batches, or a NumPy array. Received: {argument} of type "
            f"{type(data).__name__}"
        )
    expected = tuple(input_shape[1:])
    samples = []
    for example in examples():
        if not _shape_matches(np.shape(example), expected):
            raise ValueError(
                f"Argument `{argument}` has examples of shape "
                f"{np.shape(example)}, but the model expects {expected}. "
                f"Received: {argument} with batches of shape "
                f"(batch,) + {np.shape(example)}"
            )
        samples.append(np.asarray(example, np.float32)[None])
        if len(samples) >= _REPRESENTATIVE_SAMPLES:
            break
    if not samples:
        raise ValueError(f"Argument `{argument}` is empty.")
    return samples


def _shape_matches(actual, expected):
    return len(actual) == len(expected) and all(
        e is None or a == e for a, e in zip(actual, expected)
    )


def export_tflite(model, path, *, quantization=None,
                  representative_data=None, per_channel=True):
    """Converts `model` to a `.tflite` file at `path` (written atomically).

    The model's inference call (`training=False`, dynamic batch dimension)
    is saved as a temporary SavedModel and converted from there, which works
    alike for Keras 3 models, tf_keras twins and TF-MOT QAT models and keeps
    the converter's artifacts off stdout.

    Args:
        model: a Keras 3 or tf_keras model with one input.
        path: destination file; its folder must exist.
        quantization: `None` (float32), `"dynamic"` (int8 weights, float
            activations), `"float16"` (fp16 weights) or `"int8"` (full
            integer, int8 input and output; needs `representative_data`).
        representative_data: calibration inputs for `"int8"` (a dataset of
            input or `(x, y)` batches, or a NumPy array). The first 200
            examples are used.
        per_channel: with `"int8"`/`"dynamic"`, one scale per output channel
            of each kernel (the default, the most accurate). `False` gives one
            scale per tensor: about 12 bytes less per channel (a float32
            scale and an int64 zero point, for kernel and bias), which is
            ~9% of a 25k-parameter int8 file, at some accuracy risk. Meant
            for post-training quantization; a QAT model carries its own
            quantization parameters.

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
    path = str(path)
    check_writable_folder(path, "path")
    input_shape = _input_shape(model)
    samples = None
    if quantization == "int8":
        if representative_data is None:
            raise ValueError(
                "Full-integer quantization needs calibration inputs: pass "
                "`representative_data` with quantization='int8'. Received: "
                "representative_data=None"
            )
        samples = representative_batches(representative_data, input_shape)

    with tempfile.TemporaryDirectory() as saved_model_dir:
        _save_inference_graph(model, input_shape, saved_model_dir)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        # One scale per tensor (the converter has no public switch).
        converter._experimental_disable_per_channel = not per_channel
        flatbuffer = _convert(converter, quantization, samples)
    return write_bytes_atomic(path, flatbuffer)


def _save_inference_graph(model, input_shape, directory):
    """SavedModel with one `serve(x)` = `model(x, training=False)`."""
    signature = [tf.TensorSpec(input_shape, tf.float32)]
    if isinstance(model, keras.Model):
        # Keras 3 variables are tracked for TF only through an ExportArchive.
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda x: model(x, training=False),
                             input_signature=signature)
        archive.write_out(directory, verbose=False)
        return
    module = tf.Module()
    module.model = model
    module.serve = tf.function(
        lambda x: model(x, training=False),
        input_signature=signature,
    )
    tf.saved_model.save(
        module, directory, signatures=module.serve.get_concrete_function()
    )


def _convert(converter, quantization, samples):
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        converter.representative_dataset = lambda: ([s] for s in samples)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()
