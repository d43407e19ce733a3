"""Dataset pipelines for the examples, offline where the data are local."""

from keras_kd_examples.datasets.idx import read_idx
from keras_kd_examples.datasets.loading import DATASETS
from keras_kd_examples.datasets.loading import as_numpy
from keras_kd_examples.datasets.loading import load
from keras_kd_examples.datasets.loading import load_arrays
from keras_kd_examples.datasets.reviews import load_reviews

__all__ = ["DATASETS", "as_numpy", "load", "load_arrays", "load_reviews",
           "read_idx"]
