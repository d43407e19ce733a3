"""
Title: From a big Fashion-MNIST teacher to a pruned int8 TFLite student
Description: The main job: scratch vs distilled student, then pruning,
    int8 quantization, TFLite export and a report with pictures.

## What this does

1. Loads the shipped teacher, `saved_models/fashion_mnist/teacher.keras`
   (made by `examples/train_teacher.py`), and real Fashion-MNIST through
   `datasets.load` (offline from Debian's `dataset-fashion-mnist`).
2. Trains a small student from scratch: the baseline.
3. Trains the same student, from the same initial weights, with
   `keras_kd.Distiller`: soft targets + hard labels + attention transfer
   between the teacher's and the student's stage outputs. The teacher's
   logits and attention maps are computed once (`precompute_teacher`),
   so a distillation epoch costs about a plain student epoch.
4. Compresses the distilled student with `keras_kd.compression.compress`:
   int8 post-training quantization, and 50% magnitude pruning +
   sparsity-preserving QAT with distillation-aware fine-tuning.
5. Evaluates every variant and writes into `saved_models/fashion_mnist/`:
   the `.tflite` files, `results.json`, `report.md`, `accuracy_vs_size.png`
   and `attention_maps.png` (teacher vs student attention before and after
   distillation). The report is written last, atomically.

Run `python examples/fashion_mnist_distill.py --help`. The default (what
`make demo` runs) trains 3 epochs and fine-tunes 120 batches per
compression step, under 10 minutes on 2 CPU cores; `--full` trains 7
epochs and fine-tunes 200 batches (about 0.35 pt better, RESULTS §1);
`--quick` runs the whole path on a small subset in about a minute.
"""

import argparse
import gzip
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd import compression  # noqa: E402
from keras_kd.capture import capture_outputs  # noqa: E402
from keras_kd.losses.attention_transfer import attention_map  # noqa: E402
from keras_kd_examples import datasets  # noqa: E402
from keras_kd_examples.fashion_mnist_job import CONFIG  # noqa: E402
from keras_kd_examples.fashion_mnist_job import accuracy  # noqa: E402
from keras_kd_examples.fashion_mnist_job import cosine_adam  # noqa: E402
from keras_kd_examples.fashion_mnist_job import load_teacher  # noqa: E402
from keras_kd_examples.fashion_mnist_job import make_student  # noqa: E402
from keras_kd_examples.io import atomic_path  # noqa: E402
from keras_kd_examples.io import write_text_atomic  # noqa: E402

"""
## Configuration
"""

# The recipe (student, epochs, temperature, attention pairs, sparsity) is
# `CONFIG` in `keras_kd_examples/fashion_mnist_job.py`, shared with
# `benchmarks/distillation_seeds.py`.
OUT_DIR = "saved_models/fashion_mnist"
QUICK = {"train_batches": 30, "test_batches": 8, "epochs": 1}


"""
## Helpers
"""


def check_out_dir(out_dir):
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise PermissionError(
            f"The output folder is not writable: {out_dir} "
            f"({error.strerror}). Pass --out-dir.") from error
    if not os.access(out_dir, os.W_OK):
        raise PermissionError(
            f"The output folder is not writable: {out_dir}. Pass --out-dir.")


def compiled_student(init_weights):
    student = make_student()
    student.set_weights(init_weights)
    return student


def gzip_size(path):
    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), compresslevel=9))


"""
## Pictures
"""


def plot_accuracy_vs_size(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        ax.scatter(row["gzip_kb"], 100 * row["accuracy"], s=60)
        ax.annotate(row["name"], (row["gzip_kb"], 100 * row["accuracy"]),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("gzipped model file size (KB, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Fashion-MNIST: accuracy vs size")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def plot_attention_maps(teacher, scratch, distilled, images, pairs, path):
    """Teacher vs student attention maps (p=2) on a few test images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_layer, s_layer = pairs[0]
    maps = {}
    for name, model, layer in (("teacher", teacher, t_layer),
                               ("scratch student", scratch, s_layer),
                               ("distilled student", distilled, s_layer)):
        _, features = capture_outputs(model, [layer], images)
        features = features[layer]
        maps[name] = np.asarray(attention_map(features))
    columns = ["input"] + list(maps)
    fig, axes = plt.subplots(len(images), len(columns),
                             figsize=(2.2 * len(columns), 2.2 * len(images)))
    for i in range(len(images)):
        axes[i, 0].imshow(images[i, ..., 0], cmap="gray")
        for j, name in enumerate(maps, start=1):
            axes[i, j].imshow(maps[name][i], cmap="inferno")
        for j, title in enumerate(columns):
            axes[i, j].axis("off")
            if i == 0:
                axes[i, j].set_title(title, fontsize=9)
    fig.suptitle(f"Attention maps at {t_layer} / {s_layer}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


"""
## Report
"""


def write_report(results, rows, out_dir):
    lines = [
        "# Fashion-MNIST: distillation and compression report",
        "",
        "Made by `examples/fashion_mnist_distill.py`"
        + (" in **--quick mode** (a subset: numbers are not meaningful)"
           if results["quick"] else
           f", {results['epochs']} epochs per student and "
           f"{results['compression_batches']} fine-tuning batches per "
           "compression step"
           + ("" if results.get("full") else
              " (the short default of `make demo`; `--full` trains 7 "
              "epochs, about 0.35 pt better alone and distilled)"))
        + ".",
        "",
        "| model | test accuracy | parameters | file | size | gzipped | "
        "p50 latency |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        latency = (f"{row['latency_ms']:.3f} ms" if row.get("latency_ms")
                   else "")
        lines.append(
            f"| {row['name']} | {100 * row['accuracy']:.2f}% | "
            f"{row['params']:,} | {row['file']} | "
            f"{row['size_kb']:.1f} KB | {row['gzip_kb']:.1f} KB | "
            f"{latency} |")
    gain = results["student_distilled_accuracy"] - results[
        "student_scratch_accuracy"]
    lines += [
        "",
        f"- Distillation gain over the same student trained alone: "
        f"**{100 * gain:+.2f} pt** "
        f"(student has {results['student_params']:,} parameters, "
        f"{results['student_params'] / results['teacher_params']:.1%} of "
        "the teacher's). One seed: seeds differ by a few tenths of a "
        "point; `benchmarks/distillation_seeds.py` measures the mean gain.",
        f"- The pruned int8 file has "
        f"{results['tflite_pruned_int8_sparsity']:.1%} zero weights: "
        f"{results['tflite_pruned_int8_gzip_bytes'] / 1024:.1f} KB gzipped.",
    ]
    lines += [
        "",
        f"- Settings: {json.dumps(results['config'])}",
        f"- Wall time: {results['minutes']:.1f} min.",
        "",
        "![accuracy vs size](accuracy_vs_size.png)",
        "",
        "![attention maps](attention_maps.png)",
        "",
    ]
    write_text_atomic(os.path.join(out_dir, "report.md"), "\n".join(lines))
    return "\n".join(lines[4:4 + len(rows) + 2])


"""
## Main
"""


def main():
    parser = argparse.ArgumentParser(
        description="Distil, prune and quantize a Fashion-MNIST student.")
    parser.add_argument("--full", action="store_true",
                        help=f"{CONFIG['full_epochs']} epochs and "
                             f"{CONFIG['full_compression_batches']} "
                             "fine-tuning batches per compression step")
    parser.add_argument("--teacher", default=os.path.join(OUT_DIR,
                                                          "teacher.keras"))
    parser.add_argument("--out-dir", default=OUT_DIR)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    parser.add_argument("--quick", action="store_true",
                        help="a subset and one epoch: a smoke run")
    args = parser.parse_args()
    start = time.time()
    check_out_dir(args.out_dir)
    teacher = load_teacher(args.teacher)

    train, val, test = datasets.load(
        "fashion_mnist", batch_size=CONFIG["batch_size"],
        validation_split=CONFIG["validation_split"], data_dir=args.data_dir)
    epochs = CONFIG["full_epochs"] if args.full else args.epochs
    compression_batches = CONFIG["full_compression_batches" if args.full
                                 else "compression_batches"]
    if args.quick:
        train = train.take(QUICK["train_batches"])
        val = val.take(QUICK["test_batches"])
        test = test.take(QUICK["test_batches"])
        epochs = QUICK["epochs"]
    steps = int(train.cardinality()) * epochs
    keras.utils.set_random_seed(0)
    init = make_student().get_weights()

    print("\n== Student from scratch (the baseline) ==")
    scratch = compiled_student(init)
    scratch.compile(
        optimizer=cosine_adam(steps), metrics=["accuracy"],
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    scratch.fit(train, validation_data=val, epochs=epochs, verbose=2)

    print("\n== Teacher outputs, computed once (offline distillation) ==")
    # No augmentation here, so the teacher's logits and attention maps can
    # be computed once instead of in every step.
    # `precompute_teacher` needs a dataset that yields the same order every
    # time: the (shuffled) training pipeline is materialised once.
    # The validation split gets the same treatment, so that validating a
    # distillation epoch does not run the teacher either.
    attention_layers = [t for t, _ in CONFIG["attention_pairs"]]
    offline, offline_val = (
        keras_kd.precompute_teacher(
            teacher, tf.data.Dataset.from_tensor_slices(
                datasets.as_numpy(split)),
            batch_size=512, attention_layers=attention_layers).cache()
        for split in (train, val))
    offline = offline.shuffle(20000, seed=0).batch(
        CONFIG["batch_size"]).prefetch(8)
    offline_val = offline_val.batch(CONFIG["batch_size"]).prefetch(8)

    print("\n== The same student distilled with keras_kd ==")
    distiller = keras_kd.Distiller(
        teacher, compiled_student(init),
        attention_pairs=CONFIG["attention_pairs"])
    distiller.compile(optimizer=cosine_adam(steps), metrics=["accuracy"],
                      alpha=CONFIG["alpha"],
                      temperature=CONFIG["temperature"],
                      attention_weight=CONFIG["attention_weight"])
    distiller.fit(offline, validation_data=offline_val, epochs=epochs,
                  verbose=2)
    student = distiller.student

    print("\n== Compression: int8, and pruning + QAT int8 ==")
    report = compression.compress(
        student, train.take(compression_batches), teacher=teacher,
        val_data=test,
        sparsity=CONFIG["sparsity"], quantization="int8",
        out_dir=args.out_dir, prune_epochs=CONFIG["prune_epochs"],
        qat_epochs=CONFIG["qat_epochs"], keep_dense=CONFIG["keep_dense"],
        verbose=2)
    teacher_tflite = compression.export_tflite(
        teacher, os.path.join(args.out_dir, "teacher_float32.tflite"))
    scratch_tflite = compression.export_tflite(
        scratch, os.path.join(args.out_dir, "student_scratch_float32.tflite"))

    accuracies = {
        "teacher": accuracy(teacher, test),
        "scratch": accuracy(scratch, test),
        "distilled": accuracy(student, test),
    }
    kb = 1 / 1024
    rows = [
        {"name": "teacher (float32)", "accuracy": accuracies["teacher"],
         "params": teacher.count_params(),
         "file": os.path.basename(teacher_tflite),
         "size_kb": os.path.getsize(teacher_tflite) * kb,
         "gzip_kb": gzip_size(teacher_tflite) * kb},
        {"name": "student, scratch (float32)",
         "accuracy": accuracies["scratch"],
         "params": scratch.count_params(),
         "file": os.path.basename(scratch_tflite),
         "size_kb": os.path.getsize(scratch_tflite) * kb,
         "gzip_kb": gzip_size(scratch_tflite) * kb},
    ]
    for key, name in (("float32", "student, distilled (float32)"),
                      ("int8", "distilled, int8 .tflite"),
                      ("pruned_int8", "distilled, pruned int8 .tflite")):
        entry = report[key]
        rows.append({
            "name": name,
            "accuracy": (accuracies["distilled"] if key == "float32"
                         else entry["accuracy"]),
            "params": student.count_params(), "file": entry["file"],
            "size_kb": entry["size_bytes"] * kb,
            "gzip_kb": entry["gzip_bytes"] * kb,
            "latency_ms": entry["latency_ms_p50"]})

    results = {
        "teacher_accuracy": accuracies["teacher"],
        "student_scratch_accuracy": accuracies["scratch"],
        "student_distilled_accuracy": accuracies["distilled"],
        "tflite_float32_accuracy": report["float32"]["accuracy"],
        "tflite_int8_accuracy": report["int8"]["accuracy"],
        "tflite_int8_gzip_bytes": report["int8"]["gzip_bytes"],
        "tflite_pruned_int8_accuracy": report["pruned_int8"]["accuracy"],
        "tflite_pruned_int8_gzip_bytes": report["pruned_int8"]["gzip_bytes"],
        "tflite_pruned_int8_sparsity": report["pruned_int8"]["sparsity"],
        "tflite_float32_gzip_bytes": report["float32"]["gzip_bytes"],
        "latency_ms_p50": {k: v["latency_ms_p50"] for k, v in report.items()
                           if "latency_ms_p50" in v},
        "recommended_file": report["recommended"]["file"],
        "student_params": student.count_params(),
        "teacher_params": teacher.count_params(),
        "epochs": epochs,
        "compression_batches": compression_batches,
        "full": args.full,
        "quick": args.quick,
        "minutes": (time.time() - start) / 60,
        "config": {k: v for k, v in CONFIG.items()},
    }
    images = next(iter(test))[0][:4].numpy()
    plot_accuracy_vs_size(rows, os.path.join(args.out_dir,
                                             "accuracy_vs_size.png"))
    plot_attention_maps(teacher, scratch, student, images,
                        CONFIG["attention_pairs"],
                        os.path.join(args.out_dir, "attention_maps.png"))
    write_text_atomic(os.path.join(args.out_dir, "results.json"),
                      json.dumps(results, indent=2, default=list) + "\n")
    table = write_report(results, rows, args.out_dir)
    print("\n" + table)
    print(f"\nWrote {args.out_dir}/report.md, results.json, PNG plots and "
          f".tflite files ({results['minutes']:.1f} min).")


if __name__ == "__main__":
    main()
