"""Reader for the IDX format of (Fashion-)MNIST, gzipped or not.

The format (LeCun et al.): two zero bytes, a type code (0x08 = uint8), the
number of dimensions, one big-endian uint32 per dimension, then the data.
"""

import gzip
import os

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4",
           0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Returns the array stored in the IDX file at `path` (`.gz` or raw).

    Raises:
        FileNotFoundError: when `path` does not exist.
        ValueError: naming the file, when it is not a valid or complete IDX
            file (bad magic number, unknown type, truncated data).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"IDX file not found: {path}")
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"Unreadable IDX file {path}: {e}") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(
            f"Not an IDX file (bad magic number {data[:4].hex()!r}): {path}"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"Truncated IDX header in {path}")
    shape = tuple(
        int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)
    )
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"Truncated or oversized IDX file {path}: shape {shape} needs "
            f"{expected} data bytes, found {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
