"""Language-model distillation over seeds: each method's test perplexity.

Loads the teacher of `examples/lm_distill.py` (`saved_models/lm/`), then
for each seed trains the byte-level student from that seed's initial
weights alone, by forward KL, reverse KL and on-policy GKD
(`keras_kd_examples.lm_job.METHODS`), and prints each run, mean ± std of
the test perplexity of the responses, and whether each method is below the
student alone on every seed. Nothing is tuned on the test split (the
recipe was fixed before this ran).

Aim (issue "Language models"): every method below the student alone on
every seed.

Usage:
    python benchmarks/lm_distillation_seeds.py [--seeds 3] [--epochs 3]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_kd_examples import lm_job  # noqa: E402
from keras_kd_examples.cli import description  # noqa: E402

TEACHER = "saved_models/lm/teacher.weights.h5"


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    start = time.time()
    data = lm_job.prepare()
    teacher = lm_job.teacher_model()
    teacher.load_weights(TEACHER)
    print(f"teacher: {lm_job.response_perplexity(teacher, data['test']):.3f}"
          f" ({teacher.count_params():,} parameters)", flush=True)
    runs = {method: [] for method in lm_job.METHODS}
    for seed in range(args.seeds):
        keras.utils.set_random_seed(seed)
        initial = lm_job.student_model().get_weights()
        for method in lm_job.METHODS:
            student = lm_job.train_student(
                method, teacher, data, args.epochs, initial_weights=initial,
                seed=seed, verbose=0)
            runs[method].append(lm_job.response_perplexity(student,
                                                           data["test"]))
        print(f"seed {seed}: " + ", ".join(
            f"{m} {runs[m][-1]:.3f}" for m in lm_job.METHODS), flush=True)
    met = True
    for method in lm_job.METHODS:
        values = runs[method]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        line = f"{method}: {statistics.mean(values):.3f} ± {spread:.3f}"
        if method != "alone":
            below = [v < a for v, a in zip(values, runs["alone"])]
            met &= all(below)
            gain = statistics.mean(a - v for v, a in zip(values,
                                                         runs["alone"]))
            verdict = "every seed below" if all(below) else "NOT every seed"
            line += f", {gain:+.3f} below alone, {verdict}"
        print(line, flush=True)
    print(f"{(time.time() - start) / 60:.1f} min; aim "
          f"{'met' if met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
