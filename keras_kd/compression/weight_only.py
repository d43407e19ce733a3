"""int8 and int4 weights in a converted `.tflite` file, by ai-edge-quantizer.

Post-training quantization by the TFLite converter stores int8 weights
at best. Google's ai-edge-quantizer rewrites a float file instead, and
goes to 4 bits:

- `"int8_weight_only"`: int8 weights, one scale per output channel,
  dequantized before each operator, which then computes in float
  (`FULLY_CONNECTED`, `BATCH_MATMUL`, `CONV_2D`, `DEPTHWISE_CONV_2D`,
  `EMBEDDING_LOOKUP`).
- `"int4_weight_only"`: int4 weights. Fully-connected kernels are stored in
  blocks of `block_size` input weights, each with its own scale (the
  quantizer supports blocks only for those, with activations quantized on
  the fly); convolutions and batched matmuls get int4 per channel and
  float compute. `block_size=None` makes every kernel per-channel.

What stays float: anything the quantizer's recipes do not cover, notably
the embedding tables a Keras `Embedding` becomes (TFLite `GATHER`, not
`EMBEDDING_LOOKUP`); `quantized_tensors` lists what was changed.

Install with `pip install 'keras_kd[compress]'`.

Example:

```python
keras_kd.compression.export_tflite(
    student, "student_int4.tflite", quantization="int4_weight_only")
```
"""

BLOCK_SIZES = (None, 32, 64, 128, 256)
_INSTALL_HINT = ("Weight-only int8/int4 needs ai-edge-quantizer: pip install "
                 "'keras_kd[compress]'")


def _quantizer():
    try:
        from ai_edge_quantizer import qtyping
        from ai_edge_quantizer import quantizer
        from ai_edge_quantizer.recipe_manager import RecipeManager
    except ImportError as e:
        raise ImportError(_INSTALL_HINT + f" (missing: {e.name})") from e
    return quantizer, qtyping, RecipeManager


def _recipe(bits, block_size):
    _, qtyping, RecipeManager = _quantizer()
    manager = RecipeManager()
    manager.add_weight_only_config(
        regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
        num_bits=bits,
        granularity=qtyping.QuantGranularity.CHANNELWISE)
    if bits == 4 and block_size is not None:
        manager.add_dynamic_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.FULLY_CONNECTED,
            num_bits=4, granularity=getattr(
                qtyping.QuantGranularity, f"BLOCKWISE_{block_size}"))
    return manager.get_quantization_recipe()


def quantize_weights(flatbuffer, bits, block_size=32):
    """The float TFLite model `flatbuffer` with `bits`-bit weights.

    Args:
        flatbuffer: bytes of a float32 `.tflite` model.
        bits: 8 or 4.
        block_size: int4 only: input weights per scale of fully-connected
            kernels (32, 64, 128, 256), or `None` for per-channel. A kernel
            whose input size the block does not divide makes the whole file
            per-channel.

    Returns:
        The quantized model's bytes.
    """
    if bits not in (4, 8):
        raise ValueError(f"Argument `bits` must be 4 or 8. Received: "
                         f"bits={bits!r}")
    if block_size not in BLOCK_SIZES:
        raise ValueError(f"Argument `block_size` must be one of "
                         f"{BLOCK_SIZES}. Received: block_size={block_size!r}")
    quantizer, _, _ = _quantizer()
    try:
        return _run(quantizer, flatbuffer, _recipe(bits, block_size))
    except Exception:
        if bits == 8 or block_size is None:
            raise
        # A kernel the block does not divide: per-channel int4 instead.
        return _run(quantizer, flatbuffer, _recipe(bits, None))


def _run(quantizer, flatbuffer, recipe):
    model = quantizer.Quantizer(bytearray(flatbuffer))
    model.load_quantization_recipe(recipe)
    result = model.quantize(enable_progress_bar=False,
                            enable_progress_report=False)
    return bytes(result.quantized_model)


def quantized_tensors(flatbuffer):
    """`{"int8": [...], "int4": [...], "float32": [...]}`: names of the
    weight tensors (constant, rank >= 2) of a TFLite model by storage
    type, so a report can say which stayed float."""
    from keras_kd.compression.tflite_eval import _litert
    from keras_kd.compression.tflite_eval import weight_tensors

    _, schema = _litert()
    names = {value: name.lower() for name, value in vars(
        schema.TensorType).items() if not name.startswith("_")}
    found = {}
    for _, tensor, _ in weight_tensors(flatbuffer):
        found.setdefault(names.get(tensor.Type(), "other"), []).append(
            tensor.Name().decode())
    return {kind: sorted(set(found_names))
            for kind, found_names in found.items()}
