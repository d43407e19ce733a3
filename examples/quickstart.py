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

The data come from `keras_kd_examples.datasets.load`: offline from Debian's
`dataset-fashion-mnist` package, from `--data-dir`, or from TFDS.

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
from keras_kd_examples.models import cnn_student  # noqa: E402
from keras_kd_examples import datasets  # noqa: E402
from keras_kd_examples.cli import chance_note  # noqa: E402

"""
## Configuration
"""

CONFIG = {
    "teacher_epochs": 3,
    "student_epochs": 3,
    "batch_size": 128,
    "temperature": 4.0,
    "alpha": 0.1,
    "attention_weight": 500.0,
    # (teacher layer, student layer): 28x28 and 14x14 maps.
    "attention_pairs": [("stage1_out", "stage1_out"),
                        ("stage2_out", "stage2_out")],
}

"""
## Models

Both are plain Functional CNNs from `keras_kd_examples.models` that output
logits; their `stage{i}_out` layer names are what the attention pairs refer to.
"""


def make_cnn(width, name):
    return cnn_student(widths=(width, 2 * width), name=name)


def accuracy(model, dataset):
    x, y = datasets.as_numpy(dataset)
    logits = model.predict(x, batch_size=512, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == y))


"""
## Train and compare
"""


def main():
    parser = argparse.ArgumentParser(
        description="Distil a CNN on Fashion-MNIST with keras_kd.")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true",
                        help="2,000 training images and 1 epoch each")
    args = parser.parse_args()

    train, _, test = datasets.load(
        "fashion_mnist", batch_size=CONFIG["batch_size"], validation_split=0,
        data_dir=args.data_dir)
    epochs = dict(teacher=CONFIG["teacher_epochs"],
                  student=CONFIG["student_epochs"])
    if args.quick:
        train, epochs = train.take(16), dict(teacher=1, student=1)
    keras.utils.set_random_seed(0)

    print("\n== Teacher ==")
    teacher = make_cnn(32, "teacher")
    teacher.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    teacher.fit(train, epochs=epochs["teacher"], verbose=2)

    student_init = make_cnn(8, "student").get_weights()

    print("\n== Student from scratch ==")
    scratch = make_cnn(8, "student")
    scratch.set_weights(student_init)
    scratch.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    scratch.fit(train, epochs=epochs["student"], verbose=2)

    print("\n== Student distilled with keras_kd ==")
    student = make_cnn(8, "student")
    student.set_weights(student_init)
    distiller = keras_kd.Distiller(
        teacher, student, attention_pairs=CONFIG["attention_pairs"])
    distiller.compile(optimizer="adam", metrics=["accuracy"],
                      alpha=CONFIG["alpha"],
                      temperature=CONFIG["temperature"],
                      attention_weight=CONFIG["attention_weight"])
    distiller.fit(train, epochs=epochs["student"], verbose=2)

    rows = [
        ("teacher", teacher.count_params(), accuracy(teacher, test)),
        ("student, scratch", scratch.count_params(),
         accuracy(scratch, test)),
        ("student, distilled", distiller.student.count_params(),
         accuracy(distiller.student, test)),
    ]
    print("\n| model | parameters | test accuracy |")
    print("|---|---:|---:|")
    for name, params, acc in rows:
        print(f"| {name} | {params:,} | {100 * acc:.2f}% |")
    if args.quick:
        print(chance_note([acc for _, _, acc in rows], 10, "--quick"))


if __name__ == "__main__":
    main()
