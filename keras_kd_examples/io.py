"""Atomic writes for the examples: keras_kd's own helpers, re-exported so
example scripts do not reach into `keras_kd.utils`."""

from keras_kd.utils.io import atomic_path
from keras_kd.utils.io import write_text_atomic

__all__ = ["atomic_path", "write_text_atomic"]
