"""Offline distillation: epoch time with precomputed teacher outputs.

Measures, on the same teacher, student and data (as `tf.data` pipelines,
batch 128):

- (a) a plain student epoch (hard labels only),
- (b) a `keras_kd.Distiller` epoch with a live teacher (KD + attention
  transfer on two layer pairs),
- (c) the same Distiller on the outputs of `keras_kd.precompute_teacher`
  (logits and compact per-pair maps stored once; the teacher never runs),

plus the one-off cost of `precompute_teacher`, and prints (c)/(a) against the
target of 1.10 and (b)/(c). The three alternate epoch by epoch (timings on a
shared 2-core machine drift by ±30%); each figure is the median after a
warm-up epoch.

Usage:
    python benchmarks/precompute.py [--samples 8192] [--epochs 4]
        [--teacher-width 64]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_kd  # noqa: E402

from keras_kd_examples.timing import PAIRS  # noqa: E402
from keras_kd_examples.timing import make_cnn  # noqa: E402
from keras_kd_examples.timing import timed_fit_data  # noqa: E402
from keras_kd_examples.cli import description  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=7,
                        help="epochs per variant, alternating; the first "
                             "is a warm-up")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--student-width", type=int, default=16)
    parser.add_argument("--teacher-width", type=int, default=64,
                        help="64 costs 16x the default student's FLOPs")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))

    def batched(dataset):
        return dataset.batch(args.batch_size).prefetch(tf.data.AUTOTUNE)

    teacher = make_cnn(args.teacher_width, "teacher")
    weights = make_cnn(args.student_width, "student").get_weights()

    def student():
        model = make_cnn(args.student_width, "student")
        model.set_weights(weights)
        return model

    def distiller():
        model = keras_kd.Distiller(teacher, student(), attention_pairs=PAIRS)
        model.compile(optimizer="adam", temperature=4.0)
        return model

    plain = student()
    plain.compile(optimizer="adam", loss=keras.losses.
                  SparseCategoricalCrossentropy(from_logits=True))
    live = distiller()
    start = time.perf_counter()
    stored = keras_kd.precompute_teacher(
        teacher, unbatched, attention_layers=[t for t, _ in PAIRS],
        verbose=0)
    precompute_seconds = time.perf_counter() - start
    offline = distiller()
    runs = {"a": (plain, batched(unbatched)), "b": (live, batched(unbatched)),
            "c": (offline, batched(stored))}
    # Epochs alternate between the variants, so that drift in the speed of
    # a shared machine hits all three alike; the first epoch of each is a
    # warm-up (tracing).
    times = {key: [] for key in runs}
    for _ in range(args.epochs):
        for key, (model, dataset) in runs.items():
            times[key].append(timed_fit_data(model, dataset, 1,
                                             warm_up=False))
    figures = {key: statistics.median(t[1:]) for key, t in times.items()}

    print(f"\nEpoch time, {args.samples} samples, batch {args.batch_size}, "
          f"median of {args.epochs - 1} alternating epochs after a warm-up; "
          f"teacher "
          f"{teacher.count_params():,} params (width {args.teacher_width}), "
          f"student {plain.count_params():,} params:")
    labels = {
        "a": "plain student epoch",
        "b": "Distiller, live teacher (KD + AT, 2 pairs)",
        "c": "Distiller, precomputed teacher outputs",
    }
    for key, label in labels.items():
        print(f"  ({key}) {label:<45s} {figures[key]:7.3f} s")
    print(f"  precompute_teacher, once                      "
          f"{precompute_seconds:7.3f} s")
    ratio = figures["c"] / figures["a"]
    print(f"  (c)/(a) = {ratio:.2f}   (target <= 1.10) "
          f"{'OK' if ratio <= 1.1 else 'MISSED'}")
    print(f"  (b)/(c) = {figures['b'] / figures['c']:.2f}   (speed-up of "
          "offline over live distillation per epoch)")


if __name__ == "__main__":
    main()
