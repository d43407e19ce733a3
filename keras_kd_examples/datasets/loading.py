"""`keras_kd_examples.datasets.load`: batched tf.data pipelines for the
examples."""

import os

import numpy as np
import tensorflow as tf

from keras_kd_examples.datasets.idx import read_idx
from keras_kd.utils.validation import check_unit_interval

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# name -> (local IDX folders to try, whether horizontal flips keep labels)
DATASETS = {
    "fashion_mnist": ((DEBIAN_FASHION_MNIST,), True),
    "mnist": ((), False),
    "cifar10": ((), True),
}
_HOW_TO_GET = {
    "fashion_mnist": "apt-get install dataset-fashion-mnist (Debian/Ubuntu), "
                     "or go online once so TFDS can download it, or pass "
                     "data_dir= a folder with the four IDX .gz files",
    "mnist": "go online once so TFDS can download it, or pass data_dir= a "
             "folder with the four IDX .gz files",
    "cifar10": "go online once so TFDS can download it, or pass data_dir= a "
               "TFDS data folder where cifar10 is prepared",
}


def load_arrays(name, data_dir=None):
    """Returns `((x_train, y_train), (x_test, y_test))` as uint8/int arrays.

    Sources, in order: IDX files in `data_dir`; TFDS prepared in `data_dir`;
    the Debian package folder (Fashion-MNIST); TFDS with download. Images
    come back channels-last, `(N, H, W, C)`.

    Raises:
        ValueError: for an unknown `name`, listing the known ones.
        FileNotFoundError: when no source works, saying which were tried and
            how to get the data.
    """
    if name not in DATASETS:
        raise ValueError(
            f"Unknown dataset. Known: {sorted(DATASETS)}. Received: "
            f"name={name!r}"
        )
    local_folders, _ = DATASETS[name]
    tried = []
    folders = ([data_dir] if data_dir else []) + [
        f for f in local_folders if f != data_dir
    ]
    for folder in folders:
        if name != "cifar10" and _has_idx_files(folder):
            return _read_idx_folder(folder)
        tried.append(f"IDX files in {folder}: not found")
    for download in ([False] if data_dir else []) + [True]:
        try:
            return _load_tfds(name, data_dir, download)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            where = data_dir or "the default TFDS folder"
            action = "download" if download else "prepared data"
            tried.append(f"TFDS ({action}, {where}): "
                         f"{type(e).__name__}: {str(e)[:200]}")
    raise FileNotFoundError(
        f"Could not load dataset {name!r}. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nTo get the data: {_HOW_TO_GET[name]}."
    )


def _has_idx_files(folder):
    return all(
        os.path.exists(os.path.join(folder, f))
        for pair in _IDX_FILES.values()
        for f in pair
    )


def _read_idx_folder(folder):
    splits = []
    for split in ("train", "test"):
        images, labels = (os.path.join(folder, f) for f in _IDX_FILES[split])
        x, y = read_idx(images), read_idx(labels)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"IDX files {images} and {labels} do not hold matching "
                f"images and labels: shapes {x.shape} and {y.shape}"
            )
        splits.append((x[..., None], y.astype("int64")))
    return tuple(splits)


def _load_tfds(name, data_dir, download):
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            "TFDS is not installed: pip install 'keras_kd[data]'"
        ) from e
    splits = tfds.load(name, split=["train", "test"], as_supervised=True,
                       data_dir=data_dir, download=download)
    return tuple(_to_arrays(tfds, split) for split in splits)


def _to_arrays(tfds, dataset):
    # Batched reading; `batch_size=-1` in tfds.load aborts on mock data.
    xs, ys = zip(*tfds.as_numpy(dataset.batch(4096)))
    return np.concatenate(xs), np.concatenate(ys).astype("int64")


def load(name, *, batch_size=128, validation_split=0.1, augment=False,
         data_dir=None, seed=0):
    """Batched, prefetched `(train, val, test)` pipelines for a dataset.

    Images are scaled to float32 in [0, 1], channels-last; labels are int64.
    `validation_split` of the training set (its last examples, so the split
    is the same every run) becomes `val`. With `augment=True` the training
    pipeline pads by 2 (4 for CIFAR-10) and crops back at random, and flips
    horizontally where that keeps the label (Fashion-MNIST, CIFAR-10).

    Works offline where the data are local: Fashion-MNIST is read from
    Debian's `dataset-fashion-mnist` package (IDX files) when TFDS cannot
    download; any IDX folder or prepared TFDS folder can be given as
    `data_dir`.

    Args:
        name: `"fashion_mnist"`, `"mnist"` or `"cifar10"`.
        batch_size: batch size of all three pipelines.
        validation_split: fraction of the training set held out, in [0, 1).
        augment: random crops (and flips) on the training pipeline.
        data_dir: folder with IDX files or prepared TFDS data.
        seed: shuffling and augmentation seed.

    Returns:
        `(train, val, test)` `tf.data.Dataset`s of `(x, y)` batches; `val`
        is `None` when `validation_split=0`.

    Example:

    ```python
    train, val, test = keras_kd_examples.datasets.load("fashion_mnist",
                                              batch_size=128)
    ```
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or (
        batch_size < 1
    ):
        raise ValueError(f"Argument `batch_size` must be a positive integer. "
                         f"Received: batch_size={batch_size!r}")
    validation_split = check_unit_interval("validation_split",
                                           validation_split)
    if validation_split == 1.0:
        raise ValueError("Argument `validation_split` must be < 1. "
                         "Received: validation_split=1.0")
    (x_train, y_train), (x_test, y_test) = load_arrays(name, data_dir)
    n_val = int(round(len(x_train) * validation_split))
    x_fit, y_fit = x_train[: len(x_train) - n_val], y_train[
        : len(y_train) - n_val]
    _, flips = DATASETS[name]
    pad = 4 if x_train.shape[1] >= 32 else 2

    def pipeline(x, y, training):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if training:
            ds = ds.shuffle(min(len(x), 20000), seed=seed,
                            reshuffle_each_iteration=True)
        ds = ds.batch(batch_size).map(_scale,
                                      num_parallel_calls=tf.data.AUTOTUNE)
        if training and augment:
            # Sequential: the generator's draws follow the batch order, so
            # a seed gives the same augmentations every run.
            generator = tf.random.Generator.from_seed(seed)
            ds = ds.map(lambda xb, yb: (
                _augment(xb, pad, flips, generator.make_seeds(2)), yb))
        return ds.prefetch(tf.data.AUTOTUNE)

    val = None
    if n_val:
        val = pipeline(x_train[-n_val:], y_train[-n_val:], training=False)
    return (pipeline(x_fit, y_fit, training=True), val,
            pipeline(x_test, y_test, training=False))


def _scale(x, y):
    return tf.cast(x, tf.float32) / 255.0, y


def _augment(images, pad, flips, seeds):
    """Random crops after reflection padding, and flips, from `seeds`
    (`(2, 2)` stateless seeds: one for the crops, one for the flips)."""
    shape = tf.shape(images)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]],
                    mode="REFLECT")
    # One random offset per image, each from its own stateless seed.
    crop_seeds = tf.random.experimental.stateless_split(seeds[:, 0],
                                                        shape[0])
    cropped = tf.map_fn(
        lambda item: tf.image.stateless_random_crop(item[0], shape[1:],
                                                    seed=item[1]),
        (padded, crop_seeds), fn_output_signature=images.dtype)
    if flips:
        cropped = tf.image.stateless_random_flip_left_right(
            cropped, seed=seeds[:, 1])
    return cropped


def as_numpy(dataset):
    """Concatenates a `(x, y)` batch pipeline into two NumPy arrays."""
    xs, ys = zip(*((np.asarray(x), np.asarray(y)) for x, y in dataset))
    return np.concatenate(xs), np.concatenate(ys)
