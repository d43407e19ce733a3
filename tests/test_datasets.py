"""Dataset loading: IDX files, TFDS (mocked), pipelines and clear errors."""

import gzip
import os

import numpy as np
import pytest

import keras_kd_examples
from keras_kd_examples.datasets import load
from keras_kd_examples.datasets import read_idx


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 100), ("t10k", 40)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz",
                  rng.integers(0, 10, (n,)))
    return tmp_path


def test_read_idx_round_trip(tmp_path):
    array = np.arange(24).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "a.gz")), array)


def test_truncated_idx_file_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((4, 28, 28)))
    data = gzip.decompress(path.read_bytes())[:-100]
    path.write_bytes(gzip.compress(data))
    with pytest.raises(ValueError, match="Truncated.*train-images"):
        read_idx(str(path))


def test_unreadable_idx_file_names_the_file(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="labels.gz"):
        read_idx(str(path))
    raw = tmp_path / "raw.idx"
    raw.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="bad magic number.*raw.idx"):
        read_idx(str(raw))


def test_load_from_idx_folder(idx_folder):
    train, val, test = load("fashion_mnist", batch_size=16,
                            validation_split=0.2, data_dir=str(idx_folder))
    x, y = next(iter(train))
    assert x.shape == (16, 28, 28, 1) and x.dtype == "float32"
    assert 0.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0
    assert y.dtype == "int64"
    count = lambda ds: sum(int(b[1].shape[0]) for b in ds)  # noqa: E731
    assert (count(train), count(val), count(test)) == (80, 20, 40)


def test_validation_split_is_the_same_every_run(idx_folder):
    _, val_a, _ = load("mnist", validation_split=0.1,
                       data_dir=str(idx_folder))
    _, val_b, _ = load("mnist", validation_split=0.1,
                       data_dir=str(idx_folder))
    xa, _ = keras_kd_examples.datasets.as_numpy(val_a)
    xb, _ = keras_kd_examples.datasets.as_numpy(val_b)
    np.testing.assert_array_equal(xa, xb)


def test_augmentation_changes_images_but_keeps_shapes(idx_folder):
    plain, _, _ = load("fashion_mnist", batch_size=100, validation_split=0,
                       data_dir=str(idx_folder), seed=3)
    augmented, _, _ = load("fashion_mnist", batch_size=100,
                           validation_split=0, augment=True,
                           data_dir=str(idx_folder), seed=3)
    (xp, yp), (xa, ya) = next(iter(plain)), next(iter(augmented))
    assert xa.shape == xp.shape
    np.testing.assert_array_equal(np.sort(yp), np.sort(ya))
    assert not np.array_equal(np.sort(xp.numpy().ravel()),
                              np.sort(xa.numpy().ravel())) or not (
        np.array_equal(xp, xa))


def test_load_through_tfds_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        train, val, test = load("cifar10", batch_size=4,
                                validation_split=0.25)
        x, y = next(iter(train))
        assert x.shape == (4, 32, 32, 3) and x.dtype == "float32"
        assert sum(int(b[1].shape[0]) for b in val) == 3


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(ValueError, match="Known: \\['cifar10', "
                                         "'fashion_mnist', 'mnist'\\]"):
        load("imagenet")


def test_no_source_says_what_was_tried(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", offline)
    monkeypatch.setattr(keras_kd_examples.datasets.loading,
                        "DEBIAN_FASHION_MNIST",
                        str(tmp_path / "nothing"))
    monkeypatch.setitem(keras_kd_examples.datasets.loading.DATASETS,
                        "fashion_mnist",
                        ((str(tmp_path / "nothing"),), True))
    with pytest.raises(FileNotFoundError) as info:
        load("fashion_mnist", data_dir=str(tmp_path))
    message = str(info.value)
    assert f"IDX files in {tmp_path}" in message
    assert "TFDS (download" in message and "no network" in message
    assert "apt-get install dataset-fashion-mnist" in message


@pytest.mark.parametrize("kwargs,match", [
    ({"batch_size": 0}, "batch_size=0"),
    ({"validation_split": 1.0}, "validation_split"),
    ({"validation_split": -0.5}, "validation_split=-0.5"),
])
def test_bad_arguments(idx_folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load("fashion_mnist", data_dir=str(idx_folder), **kwargs)


@pytest.mark.skipif(
    not os.path.exists("/usr/share/datasets/fashion-mnist/"
                       "t10k-labels-idx1-ubyte.gz"),
    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_debian_package():
    (x, y), (xt, yt) = keras_kd_examples.datasets.load_arrays(
        "fashion_mnist")
    assert x.shape == (60000, 28, 28, 1) and xt.shape == (10000, 28, 28, 1)
    assert np.bincount(yt).tolist() == [1000] * 10


def test_the_seed_governs_augmentation(idx_folder):
    def first_batch(seed):
        train, _, _ = load("fashion_mnist", batch_size=50,
                           validation_split=0, augment=True,
                           data_dir=str(idx_folder), seed=seed)
        return next(iter(train))[0].numpy()

    np.testing.assert_array_equal(first_batch(5), first_batch(5))
    assert not np.array_equal(first_batch(5), first_batch(6))
