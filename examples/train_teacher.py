"""
Title: Train the Fashion-MNIST teacher that the main job distils from
Description: A small ResNet with augmentation and a cosine schedule; writes
    `saved_models/fashion_mnist/teacher.keras` and its record.

## What this does

1. Loads Fashion-MNIST with `keras_kd_examples.datasets.load` (offline
   from Debian's `dataset-fashion-mnist` when TFDS cannot download),
   holding out 5,000 training images for validation.
2. Trains `keras_kd_examples.models.resnet_teacher()` with random crops and
   flips (`--no-augment`: on the plain images, for a last low-rate cycle),
   AdamW and a cosine learning-rate decay, keeping the weights of the best
   validation epoch. `--resume` starts a new cycle from a saved teacher;
   with a larger `--blocks-per-stage` than it has, the new blocks start as
   identities (`keras_kd_examples.models.deepen_resnet`), so the deeper teacher
   starts at the saved one's accuracy. `--mixed-precision` trains in
   bfloat16 (about 2x faster on CPUs with AVX512-BF16); the saved teacher
   is float32 either way.
3. Evaluates on the 10,000 test images and writes the model (atomically)
   plus `teacher.json` with its accuracy, parameters and training settings.

Run `python examples/train_teacher.py --help`; `--quick` trains one short
epoch on a subset (a smoke run, not a usable teacher).
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_kd_examples.models import count_blocks_per_stage  # noqa: E402
from keras_kd_examples.models import deepen_resnet  # noqa: E402
from keras_kd_examples.models import resnet_teacher  # noqa: E402
from keras_kd_examples.io import atomic_path  # noqa: E402
from keras_kd_examples.io import write_text_atomic  # noqa: E402
from keras_kd_examples import datasets  # noqa: E402

"""
## Configuration
"""

CONFIG = {
    "epochs": 12,
    "batch_size": 128,
    "learning_rate": 3e-3,
    "weight_decay": 5e-4,
    "validation_split": 5000 / 60000,
    "widths": (32, 64, 128),
    "blocks_per_stage": 1,
}
OUTPUT = "saved_models/fashion_mnist/teacher.keras"


def build_teacher(blocks_per_stage):
    return resnet_teacher(widths=CONFIG["widths"],
                          blocks_per_stage=blocks_per_stage)


def float32_copy(teacher, blocks_per_stage):
    """The teacher under the float32 policy, the one that is saved.

    It shares the trained teacher's optimizer, whose variables have the same
    shapes, so the saved file holds the optimizer state as it always did.
    """
    keras.mixed_precision.set_global_policy("float32")
    copy = build_teacher(blocks_per_stage)
    copy.set_weights(teacher.get_weights())
    copy.compile(
        optimizer=teacher.optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    return copy


def main():
    parser = argparse.ArgumentParser(
        description="Train the Fashion-MNIST ResNet teacher.")
    parser.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    parser.add_argument("--output", default=OUTPUT)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--learning-rate", type=float,
                        default=CONFIG["learning_rate"])
    parser.add_argument("--resume", default=None,
                        help="start from the weights of this .keras teacher "
                             "(a second cosine cycle) instead of from "
                             "scratch")
    parser.add_argument("--checkpoint", default=None,
                        help="where to keep the best epoch's weights "
                             "(.weights.h5); a temporary file by default")
    parser.add_argument("--no-augment", action="store_true",
                        help="train on the images as they are (for a last "
                             "low-rate cycle: the augmented teacher fits "
                             "only ~95%% of the plain training images)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initial weights and the shuffling "
                             "(a second teacher for an ensemble)")
    parser.add_argument("--blocks-per-stage", type=int,
                        default=CONFIG["blocks_per_stage"],
                        help="residual blocks per stage; with --resume "
                             "from a teacher with fewer, its blocks are "
                             "kept and the new ones start as identities")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="train in bfloat16 (mixed_bfloat16 policy); "
                             "the saved teacher is float32")
    parser.add_argument("--quick", action="store_true",
                        help="one epoch on 20 batches: a smoke run")
    args = parser.parse_args()
    if args.blocks_per_stage < 1:
        parser.error("argument --blocks-per-stage: must be at least 1, "
                     f"got {args.blocks_per_stage}")
    folder = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(folder, exist_ok=True)

    train, val, test = datasets.load(
        "fashion_mnist", batch_size=CONFIG["batch_size"],
        validation_split=CONFIG["validation_split"],
        augment=not args.no_augment,
        data_dir=args.data_dir)
    epochs = args.epochs
    if args.quick:
        train, val, epochs = train.take(20), val.take(5), 1
    steps = int(train.cardinality()) * epochs

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(args.seed)
    teacher = build_teacher(args.blocks_per_stage)
    history = []
    if args.resume:
        resumed = keras.models.load_model(args.resume)
        blocks = count_blocks_per_stage(resumed)
        if blocks > args.blocks_per_stage:
            parser.error(f"argument --blocks-per-stage: {args.resume} has "
                         f"{blocks} blocks per stage, more than "
                         f"{args.blocks_per_stage}")
        if blocks < args.blocks_per_stage:
            resumed = deepen_resnet(resumed, args.blocks_per_stage)
        teacher.set_weights(resumed.get_weights())
        with open(os.path.splitext(args.resume)[0] + ".json") as f:
            previous = json.load(f)
        history = previous.get("resumed_from", []) + [
            {k: previous[k] for k in ("epochs", "test_accuracy")}
            | {"learning_rate": previous["config"]["learning_rate"],
               "augment": previous["config"].get("augment", True),
               "blocks_per_stage": previous["config"].get(
                   "blocks_per_stage", 1)}]
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate, decay_steps=steps)
    teacher.compile(
        optimizer=keras.optimizers.AdamW(schedule,
                                         weight_decay=CONFIG["weight_decay"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        best = args.checkpoint or os.path.join(tmp, "best.weights.h5")
        teacher.fit(train, validation_data=val, epochs=epochs, verbose=2,
                    callbacks=[keras.callbacks.ModelCheckpoint(
                        best, monitor="val_accuracy", save_best_only=True,
                        save_weights_only=True)])
        teacher.load_weights(best)
    minutes = (time.time() - start) / 60
    if args.mixed_precision:
        teacher = float32_copy(teacher, args.blocks_per_stage)
    _, test_accuracy = teacher.evaluate(test, verbose=0)
    print(f"\nTeacher: {teacher.count_params():,} parameters, test accuracy "
          f"{100 * test_accuracy:.2f}% after {epochs} epochs "
          f"({minutes:.1f} min).")

    with atomic_path(args.output) as tmp_path:
        teacher.save(tmp_path + ".keras")
        os.replace(tmp_path + ".keras", tmp_path)
    record = {
        "test_accuracy": test_accuracy,
        "parameters": teacher.count_params(),
        "epochs": epochs,
        "train_minutes": round(minutes, 1),
        "quick": args.quick,
        "config": {k: list(v) if isinstance(v, tuple) else v
                   for k, v in CONFIG.items()}
        | {"learning_rate": args.learning_rate, "epochs": epochs,
           "augment": not args.no_augment, "seed": args.seed,
           "blocks_per_stage": args.blocks_per_stage,
           "mixed_precision": args.mixed_precision},
        "resumed_from": history,
        "made_by": "examples/train_teacher.py",
    }
    write_text_atomic(os.path.splitext(args.output)[0] + ".json",
                      json.dumps(record, indent=2) + "\n")
    print(f"Wrote {args.output} ({os.path.getsize(args.output) / 1e6:.2f} "
          "MB)")


if __name__ == "__main__":
    main()
