"""Causal LMs to LiteRT: a next-token `.tflite` and greedy generation on it.

`export_tflite` writes one builtins-only file with two signatures:

- `"next_token"`: `token_ids (1, steps) int32`, `length (1,) int32` →
  `logits (1, vocab)` at position `length − 1` (the whole window is
  recomputed per token; any model taking `{"token_ids", "padding_mask"}`);
- `"decode"` (keras-hub `CausalLM`s, `kv_cache=True`): `token_id (1, 1)`,
  `cache`, `index ()` → `logits (1, vocab)` and the updated key/value
  `cache`, one token per call, as keras-hub's own `generate` decodes.

`LiteRTGenerator` runs greedy generation on either signature with
`ai_edge_litert`, and times it per token. TensorFlow backend only (the
converter traces TensorFlow graphs).

Example:

```python
keras_kd.lm.export_tflite(student, "student.tflite", sequence_length=64)
generator = keras_kd.lm.LiteRTGenerator("student.tflite")
tokens = generator.generate(prompt_ids, max_new_tokens=32)
```
"""

import tempfile
import time

import keras
import numpy as np

from keras_kd.utils import compat
from keras_kd.utils.io import check_writable_folder
from keras_kd.utils.io import write_bytes_atomic
from keras_kd.utils.validation import check_bool
from keras_kd.utils.validation import check_one_of

NEXT_TOKEN, DECODE = "next_token", "decode"
QUANTIZATIONS = (None, "dynamic", "int8_weight_only", "int4_weight_only")
_WEIGHT_ONLY = {"int8_weight_only": 8, "int4_weight_only": 4}


def _check_length(sequence_length):
    if isinstance(sequence_length, bool) or not isinstance(
            sequence_length, int) or sequence_length < 2:
        raise ValueError("Argument `sequence_length` must be an integer "
                         "≥ 2. Received: sequence_length="
                         f"{sequence_length!r}")
    return sequence_length


def export_tflite(model, path, sequence_length, quantization=None,
                  kv_cache=True):
    """Writes `model` as a builtins-only next-token `.tflite` at `path`.

    Args:
        model: a keras-hub `CausalLM` (`preprocessor=None`) or a model
            mapping `{"token_ids", "padding_mask"}` to `(batch, steps,
            vocab)` logits.
        path: the file (its folder must exist); written atomically.
        sequence_length: the window of the file (prompt + new tokens).
        quantization: `None` (float32), `"dynamic"` (int8 weights, float
            activations), or `"int8_weight_only"` / `"int4_weight_only"`
            (ai-edge-quantizer on the float file; int4 blockwise for
            fully-connected kernels; the token embedding's `GATHER` stays
            float: see `keras_kd.compression.weight_only`).
        kv_cache: add the `"decode"` signature (keras-hub causal LMs only;
            ignored for other models).

    Returns:
        The signature names in the file.
    """
    import tensorflow as tf

    from keras_kd.compression.tflite_export import check_builtins_only

    if keras.backend.backend() != "tensorflow":
        raise ValueError("keras_kd.lm.export_tflite needs the TensorFlow "
                         "backend (KERAS_BACKEND=tensorflow). Received: "
                         f"backend={keras.backend.backend()!r}")
    length = _check_length(sequence_length)
    check_one_of("quantization", quantization, QUANTIZATIONS)
    check_bool("kv_cache", kv_cache)
    path = str(path)
    check_writable_folder(path, "path")

    def next_token(token_ids, length):
        mask = tf.range(tf.shape(token_ids)[1])[None] < length[:, None]
        logits = model({"token_ids": token_ids, "padding_mask": mask},
                       training=False)
        return {"logits": tf.gather(logits, length - 1, axis=1,
                                    batch_dims=1)}

    endpoints = {NEXT_TOKEN: (next_token, [
        tf.TensorSpec((1, length), tf.int32, name="token_ids"),
        tf.TensorSpec((1,), tf.int32, name="length")])}
    seeded = compat.causal_lm_cache(model, tf.zeros((1, length), tf.int32)) \
        if kv_cache else None
    if seeded is not None:
        cache = seeded[1]

        def decode(token_id, cache, index):
            logits, _, cache = model.call_with_cache(token_id, cache, index)
            return {"logits": logits[:, 0], "cache": cache}

        endpoints[DECODE] = (decode, [
            tf.TensorSpec((1, 1), tf.int32, name="token_id"),
            tf.TensorSpec(cache.shape, cache.dtype, name="cache"),
            tf.TensorSpec((), tf.int32, name="index")])
    with tempfile.TemporaryDirectory() as saved_model_dir:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for name, (fn, signature) in endpoints.items():
            archive.add_endpoint(name, fn, input_signature=signature)
        archive.write_out(saved_model_dir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_model_dir, signature_keys=list(endpoints))
        if quantization == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        flatbuffer = converter.convert()
    if quantization in _WEIGHT_ONLY:
        from keras_kd.compression.weight_only import quantize_weights

        flatbuffer = quantize_weights(flatbuffer, _WEIGHT_ONLY[quantization])
    check_builtins_only(flatbuffer)
    write_bytes_atomic(path, flatbuffer)
    return list(endpoints)


class LiteRTGenerator:
    """Greedy generation with LiteRT on a file from `export_tflite`.

    Args:
        path: the `.tflite` file.
        num_threads: LiteRT's CPU threads (default: its own).

    Attributes:
        seconds_per_token: the mean time of one new token in the last
            `generate` call (prompt tokens excluded).
    """

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path),
                                       num_threads=num_threads)
        self.signatures = list(self.interpreter.get_signature_list())
        runner = self.interpreter.get_signature_runner(NEXT_TOKEN)
        self.sequence_length = int(
            runner.get_input_details()["token_ids"]["shape"][1])
        self.seconds_per_token = None

    def generate(self, prompt, max_new_tokens, use_cache=True):
        """The prompt (a list of token ids) and `max_new_tokens` greedy
        tokens after it, as one list; `use_cache` picks the `"decode"`
        signature when the file has one."""
        prompt = [int(t) for t in prompt]
        if not prompt or len(prompt) + max_new_tokens > self.sequence_length:
            raise ValueError(
                f"A prompt of {len(prompt)} tokens plus max_new_tokens="
                f"{max_new_tokens} must fit the file's window of "
                f"{self.sequence_length} (and the prompt is not empty).")
        if use_cache and DECODE in self.signatures:
            return self._with_cache(prompt, max_new_tokens)
        return self._full_window(prompt, max_new_tokens)

    def _timed(self, tokens, max_new_tokens, step):
        start = None
        for i in range(max_new_tokens):
            if i == 1:
                start = time.perf_counter()  # the first token warms up
            tokens.append(int(np.argmax(step(tokens))))
        if max_new_tokens > 1:
            self.seconds_per_token = (time.perf_counter() - start) / (
                max_new_tokens - 1)
        return tokens

    def _full_window(self, prompt, max_new_tokens):
        runner = self.interpreter.get_signature_runner(NEXT_TOKEN)

        def step(tokens):
            ids = np.zeros((1, self.sequence_length), np.int32)
            ids[0, :len(tokens)] = tokens
            return runner(token_ids=ids, length=np.array(
                [len(tokens)], np.int32))["logits"][0]

        return self._timed(list(prompt), max_new_tokens, step)

    def _with_cache(self, prompt, max_new_tokens):
        runner = self.interpreter.get_signature_runner(DECODE)
        details = runner.get_input_details()["cache"]
        state = {"cache": np.zeros(details["shape"], details["dtype"])}

        def feed(token, index):
            out = runner(token_id=np.array([[token]], np.int32),
                         cache=state["cache"],
                         index=np.array(index, np.int32))
            state["cache"] = out["cache"]
            return out["logits"][0]

        for index, token in enumerate(prompt[:-1]):  # prefill
            feed(token, index)

        def step(tokens):
            return feed(tokens[-1], len(tokens) - 1)

        return self._timed(list(prompt), max_new_tokens, step)
