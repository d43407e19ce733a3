"""Which published method helps where: every term of the method zoo on the
Fashion-MNIST main job's teacher and student, over seeds.

Each run trains the main job's student (65k parameters; batch-norm
momentum 0.9 for these short runs) from the same initial weights per seed,
for `--epochs` on the first `--train` training images, and reports its
accuracy on the 10,000 test images; nothing is
tuned here (every method runs with its paper's defaults, the main job's
T = 4 and alpha = 0.5 for soft targets). Recipes:

- `alone`: labels only; `soft targets`: Hinton KD + labels (the baseline
  of every feature method);
- feature methods, each added to soft targets + labels: RKD, PKT, CC on
  the penultimate embeddings (teacher `pool`, 128; student `flatten`, 576),
  SP, VID and SRD on the last maps (`stage3_out`, 7×7×128 and 7×7×64);
- logit methods, each in place of the soft-target term (they are variants
  of it; their papers train CE + the method): DKD, DIST, logit
  standardization.

FSP is left out: it needs equal channel counts between teacher and student
(128 against 64 here). CRD runs with the training images' indices as its
memory keys.

`--task text`: the logit methods on the text example's transformer student
(`keras_kd_examples.text_job`, Rotten Tomatoes reviews): its transformer
teacher trained once (seed 0), then per seed the student alone, with soft
targets + labels (the text job's T = 2, alpha = 0.3), and with DKD, DIST
and logit standardization in place of the soft targets; each at its best
validation epoch, reported on the test split.

Usage:
    python benchmarks/methods.py [--seeds 3] [--epochs 2] [--train 20000]
        [--methods alone,soft_targets,rkd,...] [--out benchmarks/methods]
    python benchmarks/methods.py --task text [--seeds 3]
"""

import argparse
import json
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
from keras_kd.terms.srd import teacher_head  # noqa: E402
from keras_kd_examples import datasets  # noqa: E402
from keras_kd_examples.cli import description  # noqa: E402
from keras_kd_examples.fashion_mnist_job import CONFIG  # noqa: E402
from keras_kd_examples.fashion_mnist_job import accuracy  # noqa: E402
from keras_kd_examples.fashion_mnist_job import cosine_adam  # noqa: E402
from keras_kd_examples.fashion_mnist_job import load_teacher  # noqa: E402
from keras_kd_examples.fashion_mnist_job import make_student  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEACHER = os.path.join(ROOT, "saved_models", "fashion_mnist", "teacher.keras")
EMBEDDING = ("pool", "flatten")
MAPS = ("stage3_out", "stage3_out")


def recipes(teacher):
    """`name -> (terms factory or None for labels only, compile alpha)`."""
    soft = lambda: keras_kd.terms.SoftTargetTerm(  # noqa: E731
        temperature=CONFIG["temperature"])

    def with_soft(make):
        return lambda: [soft(), make()]

    return {
        "alone": (None, 1.0),
        "soft_targets": (lambda: [soft()], CONFIG["alpha"]),
        "rkd": (with_soft(lambda: keras_kd.terms.RKD(*EMBEDDING)),
                CONFIG["alpha"]),
        "pkt": (with_soft(lambda: keras_kd.terms.PKT(*EMBEDDING)),
                CONFIG["alpha"]),
        "correlation_congruence": (with_soft(
            lambda: keras_kd.terms.CorrelationCongruence(*EMBEDDING)),
            CONFIG["alpha"]),
        "similarity_preserving": (with_soft(
            lambda: keras_kd.terms.SimilarityPreserving(*MAPS)),
            CONFIG["alpha"]),
        "vid": (with_soft(lambda: keras_kd.terms.VID(*MAPS)),
                CONFIG["alpha"]),
        "srd": (with_soft(lambda: keras_kd.terms.SRD(
            *MAPS, classifier=teacher_head(teacher, MAPS[0]))),
            CONFIG["alpha"]),
        "crd": (with_soft(lambda: keras_kd.terms.CRD(
            *EMBEDDING, num_examples=NUM_EXAMPLES[0])), CONFIG["alpha"]),
        # Logit methods replace the soft-target term: CE + the method.
        "dkd": (lambda: [keras_kd.terms.DKD()], 1.0),
        "dist": (lambda: [keras_kd.terms.DIST()], 1.0),
        "logit_standardization": (
            lambda: [keras_kd.terms.LogitStandardization()], 0.5),
    }


def train(name, recipe, seed, teacher, data, test, epochs):
    make_terms, alpha = recipe
    steps = sum(1 for _ in data) * epochs
    keras.utils.set_random_seed(seed)
    model = student()
    model.set_weights(INITIAL[seed])
    started = time.time()
    if make_terms is None:
        model.compile(optimizer=cosine_adam(steps),
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
        model.fit(data.map(lambda x, y: (x, y["y"])), epochs=epochs,
                  verbose=0)
    else:
        distiller = keras_kd.Distiller(teacher, model, terms=make_terms())
        distiller.compile(optimizer=cosine_adam(steps), alpha=alpha)
        distiller.fit(data, epochs=epochs, verbose=0)
    return accuracy(model, test), time.time() - started


INITIAL = {}
NUM_EXAMPLES = [0]


def student():
    """The main job's student with batch-norm momentum 0.9: at Keras's
    0.99 the moving statistics of a 188-step run still carry 15% of their
    initial values, and the students evaluated at 12-24% (seen)."""
    model = make_student()
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    return model


def plot(table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    means = [100 * statistics.mean(table[n]) for n in names]
    stds = [100 * (statistics.stdev(table[n]) if len(table[n]) > 1 else 0)
            for n in names]
    base = 100 * statistics.mean(table["alone"])
    figure, axis = plt.subplots(figsize=(9, 4))
    axis.bar(range(len(names)), [m - base for m in means], yerr=stds,
             color=["grey" if n in ("alone", "soft_targets") else "tab:blue"
                    for n in names])
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_xticks(range(len(names)), names, rotation=35, ha="right")
    axis.set_ylabel("test accuracy − alone (pt)")
    axis.set_title("Method zoo on Fashion-MNIST (mean ± std over seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def text_recipes():
    from keras_kd_examples import text_job

    soft = lambda: keras_kd.terms.SoftTargetTerm(  # noqa: E731
        temperature=text_job.CONFIG["temperature"])
    alpha = text_job.CONFIG["alpha"]
    return {
        "alone": (None, 1.0),
        "soft_targets": (lambda: [soft()], alpha),
        "dkd": (lambda: [keras_kd.terms.DKD()], 1.0),
        "dist": (lambda: [keras_kd.terms.DIST()], 1.0),
        "logit_standardization": (
            lambda: [keras_kd.terms.LogitStandardization()], alpha),
    }


def run_text(args):
    from keras_kd_examples import text_job

    data = text_job.prepare(seed=0)
    teacher = text_job.train_teachers(data, seed=0, verbose=0)["transformer"]
    x, y = data["train"]
    table, seconds = {}, {}
    for seed in range(args.seeds):
        keras.utils.set_random_seed(seed)
        initial = text_job.transformer_student().get_weights()
        for name, (make_terms, alpha) in text_recipes().items():
            started = time.time()
            keras.utils.set_random_seed(seed)
            model = text_job.transformer_student()
            model.set_weights(initial)
            epochs = text_job.CONFIG["student_epochs"]
            steps = -(-len(x) // text_job.CONFIG["batch_size"]) * epochs
            fitted = model
            if make_terms is None:
                model.compile(
                    optimizer=text_job._optimizer(steps), metrics=[
                        "accuracy"],
                    loss=keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True))
            else:
                fitted = keras_kd.Distiller(teacher, model,
                                            terms=make_terms())
                fitted.compile(optimizer=text_job._optimizer(steps),
                               metrics=["accuracy"], alpha=alpha)
            fitted.fit(text_job.batches(x, y, shuffle_seed=seed),
                       validation_data=text_job.batches(
                           *data["validation"]), epochs=epochs, verbose=0,
                       callbacks=[text_job._best_weights()])
            value = text_job.accuracy(model, data["test"])
            table.setdefault(name, []).append(value)
            seconds.setdefault(name, []).append(time.time() - started)
            print(f"seed {seed} {name:24s} {100 * value:.2f}% "
                  f"({seconds[name][-1]:.0f} s)", flush=True)
    return table, seconds


def print_table(table, seconds, seeds):
    names = list(table)
    base = statistics.mean(table["alone"]) if "alone" in table else None
    kd = (statistics.mean(table["soft_targets"])
          if "soft_targets" in table else None)
    print("\n| method | " + " | ".join(f"seed {s}" for s in range(seeds))
          + " | mean ± std | vs alone | vs soft targets | s / run |")
    print("|---|" + "---:|" * (seeds + 4))
    for name in names:
        values = table[name]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        mean = statistics.mean(values)
        print(f"| {name} | "
              + " | ".join(f"{100 * v:.2f}" for v in values)
              + f" | {100 * mean:.2f} ± {100 * std:.2f}% | "
              + (f"{100 * (mean - base):+.2f} pt" if base is not None
                 else "") + " | "
              + (f"{100 * (mean - kd):+.2f} pt" if kd is not None else "")
              + f" | {statistics.mean(seconds[name]):.0f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--task", default="fashion_mnist",
                        choices=["fashion_mnist", "text"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--methods", default=None)
    parser.add_argument("--teacher", default=TEACHER)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="benchmarks/methods")
    args = parser.parse_args(argv)
    if args.task == "text":
        os.makedirs(args.out, exist_ok=True)
        table, seconds = run_text(args)
        with open(os.path.join(args.out, "results_text.json"), "w") as f:
            json.dump({"accuracy": table, "seconds": seconds,
                       "config": vars(args)}, f, indent=2)
        print_table(table, seconds, args.seeds)
        plot(table, os.path.join(args.out, "methods_text.png"))
        return 0
    teacher = load_teacher(args.teacher)
    all_recipes = recipes(teacher)
    names = args.methods.split(",") if args.methods else list(all_recipes)
    unknown = set(names) - set(all_recipes)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; known: "
                     f"{sorted(all_recipes)}")
    train_ds, _, test = datasets.load(
        "fashion_mnist", batch_size=CONFIG["batch_size"],
        validation_split=CONFIG["validation_split"], data_dir=args.data_dir)
    x, y = datasets.as_numpy(train_ds)
    x, y = x[:args.train], y[:args.train]
    NUM_EXAMPLES[0] = len(x)
    os.makedirs(args.out, exist_ok=True)
    table, seconds = {n: [] for n in names}, {n: [] for n in names}
    for seed in range(args.seeds):
        keras.utils.set_random_seed(seed)
        INITIAL[seed] = student().get_weights()
        # Labels with each image's index: CRD's memory keys.
        data = (tf.data.Dataset.from_tensor_slices(
            (x, {"y": y, "index": np.arange(len(x))}))
                .shuffle(len(x), seed=seed).batch(CONFIG["batch_size"])
                .prefetch(8))
        for name in names:
            value, took = train(name, all_recipes[name], seed, teacher, data,
                                test, args.epochs)
            table[name].append(value)
            seconds[name].append(took)
            print(f"seed {seed} {name:24s} {100 * value:.2f}% "
                  f"({took:.0f} s)", flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"accuracy": table, "seconds": seconds,
                   "config": vars(args)}, f, indent=2)
    print_table(table, seconds, args.seeds)
    if "alone" in table:
        plot(table, os.path.join(args.out, "methods.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
