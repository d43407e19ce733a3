"""
Title: A distillation term of your own — relational KD in 40 lines
Description: Subclass `keras_kd.terms.Term`, name the layers it reads, and
    the Distiller taps them in its single pass.

## What this shows

`keras_kd.terms.Term` is the contract every distillation loss of keras_kd
follows (soft targets, attention transfer, attention maps and hints are
terms too). A term names the teacher and student layers it reads, computes
its loss from their values keyed by path, and keeps its weight in a
variable. Here we write the distance loss of relational knowledge
distillation (RKD, Park et al., CVPR 2019; keras_kd ships the whole method,
distances and angles, as `keras_kd.terms.RKD`, which gives the same value
with `angle_weight=0`): the student's pairwise
distances between the examples of a batch, normalised by their mean, should
match the teacher's. It compares *relations*, so teacher and student
embeddings may have different widths, and no connector is needed.

Then we distil a small CNN with soft targets + RKD on Fashion-MNIST.

Run `python examples/custom_term.py --help`; `--quick` trains on a subset.
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from keras import ops  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd_examples import datasets  # noqa: E402
from keras_kd_examples.cli import chance_note  # noqa: E402
from keras_kd_examples.cli import description  # noqa: E402

"""
## The term
"""


def pairwise_distances(embeddings, eps=1e-12):
    """`(B, B)` Euclidean distances, zero on the diagonal."""
    x = ops.cast(embeddings, "float32")
    squared = ops.sum(ops.square(x[:, None, :] - x[None, :, :]), axis=-1)
    off_diagonal = 1.0 - ops.eye(ops.shape(x)[0])
    return ops.sqrt(ops.maximum(squared, eps)) * off_diagonal


@keras.saving.register_keras_serializable(package="keras_kd_examples")
class RKDDistance(keras_kd.terms.LayerPairTerm):
    """RKD distance loss: Huber(ψ_s / μ_s − ψ_t / μ_t), mean over B² pairs.

    ψ are pairwise distances between the examples of the batch, μ their
    mean over distinct pairs (as the authors' code, the mean runs over all
    B² entries, the zero diagonal included). `LayerPairTerm` keeps the
    two layer paths, names them as the term's taps and saves them in its
    config.
    """

    def __init__(self, teacher_layer, student_layer, weight=25.0,
                 name="rkd_distance", **kwargs):
        super().__init__(teacher_layer, student_layer, weight=weight,
                         name=name, **kwargs)

    def compute_loss(self, teacher, student, sample_weight=None):
        def normalised(features):
            flat = ops.reshape(features, (ops.shape(features)[0], -1))
            distances = pairwise_distances(flat)
            pairs = ops.sum(ops.cast(distances > 0, "float32"))
            return distances / (ops.sum(distances) / ops.maximum(pairs, 1.0))

        t = ops.stop_gradient(normalised(teacher[self.teacher_layer]))
        s = normalised(student[self.student_layer])
        difference = ops.abs(s - t)
        huber = ops.where(difference < 1.0, 0.5 * ops.square(difference),
                          difference - 0.5)
        return self.reduce(ops.mean(huber))  # one value for the batch


"""
## Models and training
"""


def cnn(width, name):
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(width, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(2 * width, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="embedding")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--quick", action="store_true",
                        help="2,000 training examples, 1 epoch each")
    parser.add_argument("--data-dir", default=None,
                        help="folder of Fashion-MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    (x_train, y_train), (x_test, y_test) = datasets.load_arrays(
        "fashion_mnist", data_dir=args.data_dir)
    x_train, x_test = x_train[..., None], x_test[..., None]
    epochs = args.epochs
    if args.quick:
        x_train, y_train, epochs = x_train[:2000], y_train[:2000], 1
    teacher = cnn(32, "teacher")
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    teacher.fit(x_train, y_train, epochs=epochs, batch_size=128, verbose=2)
    distiller = keras_kd.Distiller(
        teacher, cnn(8, "student"),
        terms=[RKDDistance("embedding", "embedding")])
    distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.5,
                      temperature=4.0)
    distiller.fit(x_train, y_train, epochs=epochs, batch_size=128, verbose=2)
    logs = distiller.evaluate(x_test, y_test, verbose=0, return_dict=True)
    print(f"distilled student: {logs['accuracy']:.4f} test accuracy, "
          f"rkd_distance_loss {logs['rkd_distance_loss']:.4f}")
    if args.quick:
        print(chance_note([logs["accuracy"]], 10, "--quick"))


if __name__ == "__main__":
    main()
