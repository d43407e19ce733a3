"""Text distillation gain over seeds: each student alone and distilled.

Trains the two teachers of `examples/text_distill.py` once (seed 0), then
for each seed the LSTM and the transformer student from the same initial
weights, alone and distilled from the teachers' ensemble, and prints each
run, mean ± std and the gain on the test split (every model at its best
validation epoch; nothing is tuned on the test split).

Aim (issue "Text distillation on real reviews"): a positive mean gain with
every seed positive, for both students.

Usage:
    python benchmarks/text_distillation_seeds.py [--seeds 3]
        [--student-epochs 6] [--teacher-epochs 4] [--students lstm,transformer]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_kd_examples import text_job  # noqa: E402
from keras_kd_examples.timing import summary  # noqa: E402
from keras_kd_examples.cli import description  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--student-epochs", type=int,
                        default=text_job.CONFIG["student_epochs"])
    parser.add_argument("--teacher-epochs", type=int,
                        default=text_job.CONFIG["teacher_epochs"])
    parser.add_argument("--students", default="lstm,transformer")
    args = parser.parse_args()
    start = time.time()
    data = text_job.prepare(seed=0)
    teachers = text_job.train_teachers(data, epochs=args.teacher_epochs,
                                       verbose=0)
    for name, teacher in teachers.items():
        print(f"teacher {name}: {text_job.accuracy(teacher, data['test']):.2%}"
              f" ({teacher.count_params():,} parameters)", flush=True)
    all_positive = True
    for kind in args.students.split(","):
        alone, distilled = [], []
        for seed in range(args.seeds):
            keras.utils.set_random_seed(seed)
            init = text_job.STUDENTS[kind]().get_weights()
            a = text_job.accuracy(text_job.train_student(
                kind, data, epochs=args.student_epochs, seed=seed,
                initial_weights=init, verbose=0), data["test"])
            d = text_job.accuracy(text_job.train_student(
                kind, data, teachers, epochs=args.student_epochs, seed=seed,
                initial_weights=init, verbose=0), data["test"])
            alone.append(a)
            distilled.append(d)
            print(f"{kind} seed {seed}: alone {a:.2%}, distilled {d:.2%} "
                  f"({100 * (d - a):+.2f} pt)", flush=True)
        gains = [d - a for a, d in zip(alone, distilled)]
        positive = all(g > 0 for g in gains)
        all_positive &= positive and statistics.mean(gains) > 0
        print(f"{kind}: alone {summary(alone)}, distilled "
              f"{summary(distilled)}, gain "
              f"{100 * statistics.mean(gains):+.2f} pt "
              f"({'every seed positive' if positive else 'NOT every seed'})",
              flush=True)
    print(f"{(time.time() - start) / 60:.1f} min; aim "
          f"{'met' if all_positive else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
