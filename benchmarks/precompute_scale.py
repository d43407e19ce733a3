"""Disk-backed offline distillation at scale: memory, disk, epoch time,
and how much top-k soft targets save and cost.

For synthetic data of N examples (32×32×3 uint8 images made on the fly from
a seeded `tf.data.Dataset.range`, never held in memory; 1000 classes) this
prints, each figure measured in a fresh process:

- peak RSS of `precompute_teacher(..., directory=...)` (full logits and
  `top_k=10`), and the bytes it wrote;
- peak RSS and time of one offline `Distiller` epoch streamed from the
  store, against one plain student epoch (hard labels only) on the same
  images streamed from a TFRecord store of the images and labels alone;
- the soft-target loss with top-10 targets against the full logits, on
  the outputs of a teacher trained on a 1000-class task (no real 1000-class
  teacher can be had offline here: see `benchmarks/RESULTS.md`).

Targets (issue "Past one machine and past memory"): peak RSS of 1M ≤ 1.2×
that of 60k; offline epoch ≤ 1.1× a plain student epoch; top-10 of 1000
classes stores ≥ 20× fewer bytes of soft targets with the KD loss within
1% of the full-logit value.

Usage:
    python benchmarks/precompute_scale.py [--sizes 60000,250000,1000000]
        [--work-dir /tmp/kd_scale]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from keras_kd_examples.cli import description

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CLASSES = 1000
TOP_K = 10
BATCH = 256


def images(n):
    """`n` seeded (image, label) pairs, made on the fly."""
    import tensorflow as tf

    def make(i):
        seed = tf.stack([i, tf.constant(7, tf.int64)])
        label = tf.random.stateless_uniform((), seed, 0, CLASSES, tf.int64)
        image = tf.random.stateless_uniform((32, 32, 3), seed + 1, 0, 256,
                                            tf.int32)
        # A label-dependent stripe gives the task some signal.
        stripe = tf.one_hot(label % 32, 32, on_value=96, dtype=tf.int32)
        image = tf.clip_by_value(image // 2 + stripe[None, :, None], 0, 255)
        return tf.cast(image, tf.uint8), label

    return tf.data.Dataset.range(n).map(make, num_parallel_calls=4)


def cnn(width, name):
    import keras

    inputs = keras.Input((32, 32, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(width, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(x), name=name)


def peak_rss_mb():
    """This process's peak RSS (VmHWM). Not `getrusage`: Linux carries a
    parent's `ru_maxrss` across `fork` + `exec` into the child's."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)


def worker(args):
    """One measurement in this process; prints a JSON line."""
    import keras
    import tensorflow as tf

    import keras_kd

    keras.utils.set_random_seed(0)
    teacher = cnn(32, "teacher")
    store = os.path.join(args.work_dir, f"{args.task}-{args.n}")
    result = {"task": args.task, "n": args.n}
    start = time.perf_counter()
    if args.task in ("precompute", "precompute_top_k"):
        shutil.rmtree(store, ignore_errors=True)
        keras_kd.precompute_teacher(
            teacher, images(args.n), batch_size=BATCH, directory=store,
            top_k=TOP_K if args.task == "precompute_top_k" else None,
            verbose=0)
        result["bytes"] = folder_bytes(store)
    elif args.task == "images_only":  # the plain epoch's input, on disk
        shutil.rmtree(store, ignore_errors=True)
        os.makedirs(store)
        with tf.io.TFRecordWriter(os.path.join(store, "x.tfrecord")) as w:
            for xb, yb in images(args.n).batch(BATCH):
                w.write(tf.io.serialize_tensor(xb).numpy())
                w.write(tf.io.serialize_tensor(yb).numpy())
    elif args.task in ("offline_epoch", "offline_epoch_top_k"):
        source = ("precompute" if args.task == "offline_epoch"
                  else "precompute_top_k")
        train = keras_kd.open_teacher_store(
            os.path.join(args.work_dir, f"{source}-{args.n}"))
        distiller = keras_kd.Distiller(teacher, cnn(8, "student"))
        distiller.compile(optimizer="adam")
        data = train.shuffle(10_000).batch(BATCH).prefetch(4)
        distiller.fit(data.take(20), epochs=1, verbose=0)  # trace
        start = time.perf_counter()
        distiller.fit(data, epochs=1, verbose=0)
    elif args.task == "plain_epoch":
        path = os.path.join(args.work_dir, f"images_only-{args.n}",
                            "x.tfrecord")
        records = tf.data.TFRecordDataset(path).batch(2).map(
            lambda pair: (tf.ensure_shape(tf.io.parse_tensor(
                pair[0], tf.uint8), [None, 32, 32, 3]),
                tf.ensure_shape(tf.io.parse_tensor(pair[1], tf.int64),
                                [None])))
        data = records.unbatch().shuffle(10_000).batch(BATCH).prefetch(4)
        student = cnn(8, "student")
        student.compile(optimizer="adam", loss=keras.losses.
                        SparseCategoricalCrossentropy(from_logits=True))
        student.fit(data.take(20), epochs=1, verbose=0)
        start = time.perf_counter()
        student.fit(data, epochs=1, verbose=0)
    result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)


def run(task, n, work_dir):
    out = subprocess.run(
        [sys.executable, __file__, "--worker", task, "--n", str(n),
         "--work-dir", work_dir], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{task} n={n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def top_k_error():
    """KD loss with top-10 targets vs full logits, on a trained teacher."""
    import keras
    import numpy as np

    from keras_kd.losses import SoftTargetKD
    from keras_kd.top_k_targets import compact_top_k
    from keras_kd.top_k_targets import expand_top_k

    # A 1000-class task with structure: each class is a noisy prototype,
    # classes come in families of 10 that share half of their prototype,
    # so a trained teacher spreads its probability within a family, as
    # real teachers do among similar classes.
    rng = np.random.default_rng(0)
    families = rng.normal(size=(100, 64))
    prototypes = (np.repeat(families, 10, axis=0)
                  + rng.normal(size=(CLASSES, 64)))
    labels = rng.integers(0, CLASSES, 60_000)
    x = (prototypes[labels] + 1.5 * rng.normal(size=(60_000, 64))).astype(
        "float32")
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((64,)),
                                keras.layers.Dense(256, activation="relu"),
                                keras.layers.Dense(CLASSES)])
    teacher.compile(optimizer="adam", metrics=["accuracy"],
                    loss=keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True))
    teacher.fit(x[:50_000], labels[:50_000], epochs=5, batch_size=256,
                verbose=0)
    accuracy = teacher.evaluate(x[50_000:], labels[50_000:], verbose=0)[1]
    student = keras.Sequential([keras.Input((64,)),
                                keras.layers.Dense(32, activation="relu"),
                                keras.layers.Dense(CLASSES)])
    student.compile(optimizer="adam", loss=keras.losses.
                    SparseCategoricalCrossentropy(from_logits=True))
    student.fit(x[:50_000], labels[:50_000], epochs=1, batch_size=256,
                verbose=0)
    t = teacher.predict(x[50_000:], verbose=0)
    s = student.predict(x[50_000:], verbose=0)
    rows = []
    for k in (TOP_K, 50, 100):
        compact = compact_top_k(t, k)
        for temperature in (1.0, 2.0, 3.0, 4.0):
            kd = SoftTargetKD(temperature)
            full = float(kd(t, s))
            approx = float(kd(expand_top_k(compact, CLASSES, temperature),
                              s))
            rows.append((k, temperature, full, approx,
                         abs(approx - full) / full))
    q = np.exp(t - t.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    tail = 1 - np.sort(q, -1)[:, -TOP_K:].sum(-1)
    return accuracy, float(np.mean(tail)), rows


def main():
    from keras_kd.top_k_targets import TAIL_TEMPERATURES

    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--sizes", default="60000,250000,1000000")
    parser.add_argument("--work-dir", default="/tmp/kd_scale")
    parser.add_argument("--top-k-only", action="store_true",
                        help="only the soft-target error figures")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.task = args.worker
        return worker(args)
    os.makedirs(args.work_dir, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"Soft targets: top-{TOP_K} of {CLASSES} classes", flush=True)
    accuracy, tail, rows = top_k_error()
    print(f"  teacher: {accuracy:.1%} test accuracy on the 1000-class task,"
          f" mean tail mass beyond the top {TOP_K}: {tail:.4f}")
    for k, temperature, full, approx, error in rows:
        verdict = ("met" if error <= 0.01 else "MISSED") if k == TOP_K else (
            "for comparison")
        print(f"  top-{k}, T={temperature:g}: KD loss full {full:.4f}, "
              f"top-k {approx:.4f}, relative error {error:.2%} ({verdict})")
    if args.top_k_only:
        return 0
    full_bytes = CLASSES * 4
    # float32 values, int16 classes, the tail at 4 temperatures
    compact_bytes = TOP_K * (4 + 2) + 4 * len(TAIL_TEMPERATURES)
    print(f"  bytes per example: {full_bytes} full, {compact_bytes} top-"
          f"{TOP_K}: {full_bytes / compact_bytes:.0f}x smaller "
          f"({'met' if full_bytes / compact_bytes >= 20 else 'MISSED'})",
          flush=True)
    figures = {}
    for n in sizes:
        for task in ("precompute", "precompute_top_k", "images_only",
                     "offline_epoch", "offline_epoch_top_k", "plain_epoch"):
            figures[(task, n)] = result = run(task, n, args.work_dir)
            extra = (f", {result['bytes'] / 2**20:.0f} MiB on disk"
                     if "bytes" in result else "")
            print(f"n={n:>8,} {task:17s} {result['seconds']:8.1f} s, peak "
                  f"RSS {result['peak_rss_mb']:7.0f} MB{extra}", flush=True)
        for task in ("offline_epoch", "offline_epoch_top_k"):
            ratio = (figures[(task, n)]["seconds"]
                     / figures[("plain_epoch", n)]["seconds"])
            print(f"n={n:>8,} {task} / plain epoch: {ratio:.2f} "
                  f"({'met' if ratio <= 1.1 else 'MISSED'}: <= 1.10)",
                  flush=True)
        for task in ("precompute", "precompute_top_k", "images_only"):
            shutil.rmtree(os.path.join(args.work_dir, f"{task}-{n}"),
                          ignore_errors=True)
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        for task in ("precompute", "precompute_top_k", "offline_epoch",
                     "plain_epoch"):
            growth = (figures[(task, large)]["peak_rss_mb"]
                      / figures[(task, small)]["peak_rss_mb"])
            print(f"peak RSS of {task}, {large:,} / {small:,}: {growth:.2f}"
                  f" ({'met' if growth <= 1.2 else 'MISSED'}: <= 1.20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
