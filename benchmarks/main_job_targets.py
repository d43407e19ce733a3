"""The main job's targets, judged against the figures it wrote.

`make demo` (`examples/fashion_mnist_distill.py`) writes
`saved_models/fashion_mnist/results.json`; this script reads it and prints
whether each target of the main job is met. The user's report shows results
only; targets are the project's, and live here.

Usage:
    python benchmarks/main_job_targets.py [--results PATH]
"""

import argparse
import json
import sys
from keras_kd_examples.cli import description

# What the main job aims for (the end-to-end issue): minimum accuracy of the
# distilled student, its minimum gain over the student alone, the largest
# student/teacher parameter ratio, and the largest accuracy drop of the int8
# and pruned int8 files from the float distilled student.
TARGETS = {"distilled_accuracy": 0.925, "gain": 0.005, "param_ratio": 0.1,
           "int8_drop": 0.01, "pruned_int8_drop": 0.015}


def check_targets(results, targets=TARGETS):
    """`(target, measured, met)` rows for the report, from `results`."""
    distilled = results["student_distilled_accuracy"]
    gain = distilled - results["student_scratch_accuracy"]
    ratio = results["student_params"] / results["teacher_params"]
    int8 = results["tflite_int8_accuracy"] - distilled
    pruned = results["tflite_pruned_int8_accuracy"] - distilled
    # ~1/10: 1/10.5 passes, 1/9.5 does not.
    ratio_limit = targets["param_ratio"] * 1.05
    return [
        (f"distilled student ≥ {100 * targets['distilled_accuracy']:.1f}%",
         f"{100 * distilled:.2f}%", distilled >= targets["distilled_accuracy"]),
        (f"distilled ≥ scratch + {100 * targets['gain']:.1f} pt",
         f"{100 * gain:+.2f} pt (one seed)", gain >= targets["gain"]),
        (f"student ≤ ~1/{1 / targets['param_ratio']:.0f} of the teacher's "
         "parameters", f"{ratio:.1%}", ratio <= ratio_limit),
        (f"int8 within {100 * targets['int8_drop']:.1f} pt of the float "
         "distilled student", f"{100 * int8:+.2f} pt",
         int8 >= -targets["int8_drop"]),
        (f"pruned int8 within {100 * targets['pruned_int8_drop']:.1f} pt",
         f"{100 * pruned:+.2f} pt", pruned >= -targets["pruned_int8_drop"]),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--results",
                        default="saved_models/fashion_mnist/results.json")
    args = parser.parse_args(argv)
    with open(args.results) as f:
        results = json.load(f)
    rows = check_targets(results)
    print(f"Targets of the main job ({args.results}):")
    for target, measured, met in rows:
        print(f"  {target:<55s} {measured:>22s}  "
              f"{'met' if met else 'MISSED'}")
    return 0 if all(met for _, _, met in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
