"""Is the distilled student better than the same student alone, over seeds?

One run of the main job compares one scratch student with one distilled
student; on Fashion-MNIST two runs of the same recipe differ by a few tenths
of a point, as much as the gain we look for. This script trains the main
job's student (`examples/fashion_mnist_distill.py`'s CONFIG) alone and with
keras_kd for several seeds, on the same data and schedule, and prints each
accuracy, the mean and standard deviation of both, and the mean gain.

The teacher's logits and attention maps are computed once
(`keras_kd.precompute_teacher`), so a distilled epoch costs about a plain
one. A seed fixes the initial weights (the same for both students) and the
shuffling.

Usage:
    python benchmarks/distillation_seeds.py [--seeds 3] [--epochs 7]
        [--temperature 4] [--alpha 0.5] [--attention-weight 50]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd_examples import datasets  # noqa: E402
from keras_kd_examples.fashion_mnist_job import CONFIG  # noqa: E402
from keras_kd_examples.fashion_mnist_job import accuracy  # noqa: E402
from keras_kd_examples.fashion_mnist_job import cosine_adam  # noqa: E402
from keras_kd_examples.fashion_mnist_job import load_teacher  # noqa: E402
from keras_kd_examples.fashion_mnist_job import make_student  # noqa: E402
from keras_kd_examples.timing import summary  # noqa: E402
from keras_kd_examples.cli import description  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TEACHER = os.path.join(ROOT, "saved_models", "fashion_mnist", "teacher.keras")


def train_pair(seed, teacher, x_train, y_train, offline, test, args):
    """(accuracy alone, accuracy distilled) for one seed."""
    batch_size = CONFIG["batch_size"]
    steps = int(np.ceil(len(x_train) / batch_size)) * args.epochs
    keras.utils.set_random_seed(seed)
    init = make_student().get_weights()

    alone = make_student()
    alone.set_weights(init)
    alone.compile(
        optimizer=cosine_adam(steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    alone.fit(tf.data.Dataset.from_tensor_slices((x_train, y_train))
              .shuffle(20000, seed=seed).batch(batch_size).prefetch(8),
              epochs=args.epochs, verbose=0)

    student = make_student()
    student.set_weights(init)
    distiller = keras_kd.Distiller(teacher, student,
                                   attention_pairs=CONFIG["attention_pairs"])
    distiller.compile(optimizer=cosine_adam(steps),
                      alpha=args.alpha, temperature=args.temperature,
                      attention_weight=args.attention_weight)
    distiller.fit(offline.shuffle(20000, seed=seed).batch(batch_size)
                  .prefetch(8), epochs=args.epochs, verbose=0)
    return accuracy(alone, test), accuracy(student, test)


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    parser.add_argument("--temperature", type=float,
                        default=CONFIG["temperature"])
    parser.add_argument("--alpha", type=float, default=CONFIG["alpha"])
    parser.add_argument("--attention-weight", type=float,
                        default=CONFIG["attention_weight"])
    parser.add_argument("--teacher", default=TEACHER)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    teacher = load_teacher(args.teacher)
    train, _, test = datasets.load(
        "fashion_mnist", batch_size=CONFIG["batch_size"],
        validation_split=CONFIG["validation_split"], data_dir=args.data_dir)
    x_train, y_train = datasets.as_numpy(train)
    offline = keras_kd.precompute_teacher(
        teacher, tf.data.Dataset.from_tensor_slices((x_train, y_train)),
        batch_size=512,
        attention_layers=[t for t, _ in CONFIG["attention_pairs"]]).cache()

    print(f"Student {make_student().count_params():,} parameters, "
          f"{args.epochs} epochs; T={args.temperature}, alpha={args.alpha}, "
          f"attention weight {args.attention_weight}.")
    progress = keras.utils.Progbar(args.seeds, unit_name="seed")
    rows = []
    start = time.time()
    for seed in range(args.seeds):
        rows.append(train_pair(seed, teacher, x_train, y_train, offline,
                               test, args))
        progress.add(1)
    print("seed  alone    distilled  gain")
    for seed, (alone, distilled) in enumerate(rows):
        print(f"{seed:4d}  {100 * alone:.2f}%  {100 * distilled:.2f}%    "
              f"{100 * (distilled - alone):+.2f} pt")
    alone, distilled = zip(*rows)
    gains = [d - a for a, d in rows]
    print(f"alone      {summary(alone)}")
    print(f"distilled  {summary(distilled)}")
    print(f"gain       {100 * statistics.mean(gains):+.2f} pt on average "
          f"(target >= +0.5; {(time.time() - start) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
