"""Exact area resizing as matrix products (XLA-compilable).

`tf.image.resize(..., "area")` has no XLA kernel, so a `jit_compile=True`
step fails on it. Area resizing is linear and separable: each output cell
is the overlap-weighted mean of the input cells it covers. We build those
weights once per (input, output) size at trace time and apply them with an
einsum, which every backend path compiles.
"""

import numpy as np
from keras import ops


def area_weights(size_in, size_out):
    """`(size_out, size_in)` matrix of overlap fractions; rows sum to 1."""
    scale = size_in / size_out
    starts = np.arange(size_out)[:, None] * scale
    ends = starts + scale
    cells = np.arange(size_in)[None, :]
    overlap = np.clip(np.minimum(ends, cells + 1) - np.maximum(starts, cells),
                      0.0, None)
    return (overlap / scale).astype("float32")


def area_resize(x, target):
    """Area-resizes the spatial axes of `x` to `target`.

    Args:
        x: `(B, H, W)`, `(B, H, W, C)`, `(B, T)` or `(B, T, C)`: the spatial
            axes follow the batch axis; an axis after them (one more than
            `len(target)`) is a channel axis and is left alone.
        target: the output spatial size, one entry per spatial axis.

    Returns:
        `x` resized; sizes that already match are left alone.
    """
    target = tuple(target)
    spatial = len(target)
    size = tuple(x.shape[1:1 + spatial])
    if size == target:
        return x
    x = ops.cast(x, "float32")
    channels = len(x.shape) - 1 - spatial  # 0 or 1
    suffix = "c" if channels else ""
    if spatial == 1:
        rows = ops.convert_to_tensor(area_weights(size[0], target[0]))
        return ops.einsum(f"it,bt{suffix}->bi{suffix}", rows, x)
    rows = ops.convert_to_tensor(area_weights(size[0], target[0]))
    cols = ops.convert_to_tensor(area_weights(size[1], target[1]))
    return ops.einsum(f"ih,bhw{suffix},jw->bij{suffix}", rows, x, cols)


def match_to_smaller(a, b, channels):
    """Area-resizes `a` and `b` to the smaller of their spatial sizes.

    Args:
        a, b: tensors of the same rank whose spatial axes follow the batch
            axis.
        channels: whether a trailing channel axis follows the spatial axes
            (it is left as it is).

    Returns:
        The pair, unchanged when the sizes agree or are not static.
    """
    end = -1 if channels else None
    a_size, b_size = tuple(a.shape[1:end]), tuple(b.shape[1:end])
    if a_size == b_size or None in a_size + b_size:
        return a, b
    target = tuple(min(x, y) for x, y in zip(a_size, b_size))
    return area_resize(a, target), area_resize(b, target)
