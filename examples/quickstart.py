"""
Title: keras_kd quickstart — distil a CNN on Fashion-MNIST
Description: Soft targets + hard labels + attention transfer in one
    `compile`/`fit`, against the same student trained alone.

## What this shows

1. Train a teacher CNN briefly on real Fashion-MNIST.
2. Train a 10x smaller student from scratch (the baseline).
3. Train the same student, from the same initial weights, with
   `keras_kd.Distiller`: Hinton soft targets (T=4), hard labels (alpha=0.1)
   and attention transfer between two pairs of conv layers.
4. Print the test accuracy of all three.

The data are read offline from Debian's `dataset-fashion-mnist` package
(`apt-get install dataset-fashion-mnist`), or from `--data-dir`.

Run `python examples/quickstart.py --help` for options; `--quick` trains on
a subset for a smoke run.
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd.datasets.idx import read_idx  # noqa: E402

"""
## Configuration
"""

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
CONFIG = {
    "teacher_epochs": 3,
    "student_epochs": 3,
    "batch_size": 128,
    "temperature": 4.0,
    "alpha": 0.1,
    "attention_weight": 500.0,
    # (teacher layer, student layer): 28x28 and 14x14 maps.
    "attention_pairs": [("block1_out", "block1_out"),
                        ("block2_out", "block2_out")],
}

"""
## Data
"""


def load_fashion_mnist(data_dir):
    def arrays(prefix):
        x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
        return (x[..., None].astype("float32") / 255.0), y.astype("int32")

    return arrays("train"), arrays("t10k")


"""
## Models

Both are plain Functional CNNs that output logits; layer names are what the
attention pairs refer to.
"""


def make_cnn(width, name):
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for i, filters in enumerate((width, 2 * width), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_out")(x)
        x = keras.layers.MaxPooling2D(name=f"block{i}_pool")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def accuracy(model, x, y):
    logits = model.predict(x, batch_size=512, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == y))


"""
## Train and compare
"""


def main():
    parser = argparse.ArgumentParser(
        description="Distil a CNN on Fashion-MNIST with keras_kd.")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--quick", action="store_true",
                        help="2,000 training images and 1 epoch each")
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(args.data_dir)
    epochs = dict(teacher=CONFIG["teacher_epochs"],
                  student=CONFIG["student_epochs"])
    if args.quick:
        x_train, y_train = x_train[:2000], y_train[:2000]
        epochs = dict(teacher=1, student=1)
    batch_size = CONFIG["batch_size"]
    keras.utils.set_random_seed(0)

    print("\n== Teacher ==")
    teacher = make_cnn(32, "teacher")
    teacher.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    teacher.fit(x_train, y_train, epochs=epochs["teacher"],
                batch_size=batch_size, verbose=2)

    student_init = make_cnn(8, "student").get_weights()

    print("\n== Student from scratch ==")
    scratch = make_cnn(8, "student")
    scratch.set_weights(student_init)
    scratch.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    scratch.fit(x_train, y_train, epochs=epochs["student"],
                batch_size=batch_size, verbose=2)

    print("\n== Student distilled with keras_kd ==")
    student = make_cnn(8, "student")
    student.set_weights(student_init)
    distiller = keras_kd.Distiller(
        teacher, student, attention_pairs=CONFIG["attention_pairs"])
    distiller.compile(optimizer="adam", metrics=["accuracy"],
                      alpha=CONFIG["alpha"],
                      temperature=CONFIG["temperature"],
                      attention_weight=CONFIG["attention_weight"])
    distiller.fit(x_train, y_train, epochs=epochs["student"],
                  batch_size=batch_size, verbose=2)

    rows = [
        ("teacher", teacher.count_params(), accuracy(teacher, x_test, y_test)),
        ("student, scratch", scratch.count_params(),
         accuracy(scratch, x_test, y_test)),
        ("student, distilled", distiller.student.count_params(),
         accuracy(distiller.student, x_test, y_test)),
    ]
    print("\n| model | parameters | test accuracy |")
    print("|---|---:|---:|")
    for name, params, acc in rows:
        print(f"| {name} | {params:,} | {100 * acc:.2f}% |")


if __name__ == "__main__":
    main()
