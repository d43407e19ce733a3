"""
Title: CIFAR-10: ResNet teacher → small CNN student with KD + attention transfer
Description: The classic setting of Hinton et al. (2015) and Zagoruyko &
    Komodakis (2017), for users with a GPU and internet access.

## What this does

1. Loads CIFAR-10 through `keras_kd_examples.datasets.load` (TFDS
   downloads it once).
2. Trains a ResNet teacher (or loads one with `--teacher`).
3. Trains a small CNN student from scratch and, from the same initial
   weights, with `keras_kd.Distiller` (soft targets at T=4, alpha=0.1, and
   attention transfer between the three stage outputs, β/2 = 500).
4. Prints the accuracy of all three and writes `results.json` into
   `saved_models/cifar10/`.

The defaults need a GPU (about an hour); `--smoke` runs the whole path on
TFDS mock data in seconds (that is how the tests run it).
"""

import argparse
import contextlib
import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd_examples.models import cnn_student  # noqa: E402
from keras_kd_examples.models import resnet_teacher  # noqa: E402
from keras_kd_examples.io import write_text_atomic  # noqa: E402
from keras_kd_examples import datasets  # noqa: E402

"""
## Configuration
"""

CONFIG = {
    "teacher_widths": (64, 128, 256),
    "teacher_blocks": 2,
    "student_widths": (32, 64, 128),
    "teacher_epochs": 60,
    "student_epochs": 60,
    "batch_size": 128,
    "learning_rate": 2e-3,
    "temperature": 4.0,
    "alpha": 0.1,
    "attention_weight": 500.0,
    "attention_pairs": [(f"stage{i}_out", f"stage{i}_out") for i in (1, 2, 3)],
}
SMOKE = {"teacher_widths": (8, 8, 8), "teacher_blocks": 1,
         "student_widths": (4, 4, 4), "teacher_epochs": 1,
         "student_epochs": 1, "batch_size": 8}


def cosine_adamw(steps, learning_rate):
    return keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=max(1, steps)), weight_decay=5e-4)


def sparse_ce():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def train_teacher(config, train, val):
    teacher = resnet_teacher(input_shape=(32, 32, 3),
                             widths=config["teacher_widths"],
                             blocks_per_stage=config["teacher_blocks"])
    steps = int(train.cardinality()) * config["teacher_epochs"]
    teacher.compile(optimizer=cosine_adamw(steps, config["learning_rate"]),
                    loss=sparse_ce(), metrics=["accuracy"])
    teacher.fit(train, validation_data=val,
                epochs=config["teacher_epochs"], verbose=2)
    return teacher


def run(config, teacher_path, out_dir, smoke):
    train, val, test = datasets.load(
        "cifar10", batch_size=config["batch_size"], validation_split=0.1,
        augment=True)
    if smoke:
        train, val, test = train.take(3), val.take(1), test.take(2)
    if teacher_path:
        teacher = keras.models.load_model(teacher_path)
    else:
        print("\n== Teacher ==")
        teacher = train_teacher(config, train, val)

    def student():
        keras.utils.set_random_seed(0)
        return cnn_student(input_shape=(32, 32, 3),
                           widths=config["student_widths"])

    steps = int(train.cardinality()) * config["student_epochs"]
    print("\n== Student from scratch ==")
    scratch = student()
    scratch.compile(optimizer=cosine_adamw(steps, config["learning_rate"]),
                    loss=sparse_ce(), metrics=["accuracy"])
    scratch.fit(train, validation_data=val, epochs=config["student_epochs"],
                verbose=2)

    print("\n== Student distilled (KD + AT) ==")
    distiller = keras_kd.Distiller(teacher, student(),
                                   attention_pairs=config["attention_pairs"])
    distiller.compile(optimizer=cosine_adamw(steps, config["learning_rate"]),
                      metrics=["accuracy"], alpha=config["alpha"],
                      temperature=config["temperature"],
                      attention_weight=config["attention_weight"])
    distiller.fit(train, validation_data=val,
                  epochs=config["student_epochs"], verbose=2)

    results = {}
    for name, model in (("teacher", teacher), ("student_scratch", scratch),
                        ("student_distilled", distiller.student)):
        model.compile(loss=sparse_ce(), metrics=["accuracy"])
        results[f"{name}_accuracy"] = model.evaluate(test, verbose=0)[1]
        results[f"{name}_params"] = model.count_params()
    results["smoke"] = smoke
    os.makedirs(out_dir, exist_ok=True)
    write_text_atomic(os.path.join(out_dir, "results.json"),
                      json.dumps(results, indent=2) + "\n")
    print("\n| model | parameters | test accuracy |\n|---|---:|---:|")
    for name in ("teacher", "student_scratch", "student_distilled"):
        print(f"| {name} | {results[name + '_params']:,} | "
              f"{100 * results[name + '_accuracy']:.2f}% |")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="CIFAR-10 ResNet → CNN distillation with KD + AT.")
    parser.add_argument("--teacher", default=None,
                        help="a trained teacher .keras (else one is trained)")
    parser.add_argument("--out-dir", default="saved_models/cifar10")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny models on TFDS mock data")
    args = parser.parse_args(argv)
    config = dict(CONFIG, **(SMOKE if args.smoke else {}))
    context = contextlib.nullcontext()
    if args.smoke:
        import tensorflow_datasets as tfds

        context = tfds.testing.mock_data(num_examples=48)
    with context:
        return run(config, args.teacher, args.out_dir, args.smoke)


if __name__ == "__main__":
    main()
