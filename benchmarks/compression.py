"""Compression figures on real Fashion-MNIST, printed against the targets.

1. Twin parity: max |diff| between Keras 3 models and their tf_keras twins
   over a battery (CNN with SeparableConv2D/Concatenate, a nested model, an
   MHA block). Target <= 1e-4.
2. A float student (the shipped distilled student is not needed: one is
   trained here for `--epochs`) is exported as float32 and as dense int8
   (post-training). Targets: int8 within 0.3 pt of float; >= 3.5x smaller.
3. The same student pruned to 75% + sparsity-preserving QAT int8, with
   distillation-aware fine-tuning (the shipped teacher when present, else
   the dense float student teaches its compressed self). Targets: within
   1.0 pt of the dense float student; gzip <= 1/8 of the float32 file.
4. LiteRT p50 latency per example: int8 <= float32.

Usage:
    python benchmarks/compression.py [--epochs 4] [--prune-epochs 2]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd import compression  # noqa: E402
from keras_kd.models import cnn_student  # noqa: E402

TEACHER = "saved_models/fashion_mnist/teacher.keras"


def parity_battery():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    a = keras.layers.SeparableConv2D(8, 3, padding="same")(x)
    b = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.GlobalAveragePooling2D()(x)
    cnn = keras.Model(inputs, keras.layers.Dense(5)(x), name="cnn")

    inner = keras.Sequential([keras.Input((16, 16, 3)),
                              keras.layers.Conv2D(4, 3, activation="relu")],
                             name="inner")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(inner(inputs))
    nested = keras.Model(inputs, keras.layers.Dense(5)(x), name="nested")

    tokens = keras.Input((10,), dtype="int32")
    x = keras.layers.Embedding(30, 16)(tokens)
    y = keras.layers.LayerNormalization()(x)
    y = keras.layers.MultiHeadAttention(4, 4)(y, y)
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Add()([x, y]))
    mha = keras.Model(tokens, keras.layers.Dense(5)(x), name="mha")

    rng = np.random.default_rng(0)
    results = {}
    for model, x in ((cnn, rng.normal(size=(8, 16, 16, 3))),
                     (nested, rng.normal(size=(8, 16, 16, 3))),
                     (mha, rng.integers(0, 30, (8, 10)))):
        x = x.astype("int32" if x.dtype.kind == "i" else "float32")
        twin = compression.to_tf_keras(model)
        results[model.name] = float(np.max(np.abs(
            np.asarray(model(x)) - twin(x).numpy())))
    return results


def verdict(ok):
    return "OK" if ok else "MISSED"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--prune-epochs", type=int, default=2)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--teacher", default=TEACHER)
    args = parser.parse_args()

    print("1. Twin parity (max |diff|, target <= 1e-4):")
    for name, diff in parity_battery().items():
        print(f"   {name:8s} {diff:.2e} {verdict(diff <= 1e-4)}")

    train, _, test = keras_kd.datasets.load("fashion_mnist", batch_size=128,
                                            validation_split=0)
    keras.utils.set_random_seed(0)
    student = cnn_student()
    steps = int(train.cardinality()) * args.epochs
    student.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.
                                        CosineDecay(3e-3, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    start = time.time()
    student.fit(train, epochs=args.epochs, verbose=2)
    float_accuracy = student.evaluate(test, verbose=0)[1]
    print(f"\nFloat student: {student.count_params():,} parameters, "
          f"{100 * float_accuracy:.2f}% ({(time.time() - start) / 60:.1f} "
          "min)")
    if os.path.exists(args.teacher):
        teacher, source = keras.models.load_model(args.teacher), args.teacher
    else:
        teacher, source = student, "the dense float student itself"
    print(f"Fine-tuning distils from {source}.")

    with tempfile.TemporaryDirectory() as out_dir:
        report = compression.compress(
            student, train, teacher=teacher, val_data=test, sparsity=0.75,
            out_dir=out_dir, prune_epochs=args.prune_epochs,
            qat_epochs=args.qat_epochs, verbose=2)
        print("\n" + open(os.path.join(out_dir, "compression.md")).read())

    f32, int8, pruned = (report[k] for k in ("float32", "int8",
                                             "pruned_int8"))
    d_int8 = 100 * (int8["accuracy"] - float_accuracy)
    d_pruned = 100 * (pruned["accuracy"] - float_accuracy)
    shrink = f32["size_bytes"] / int8["size_bytes"]
    gzip_ratio = pruned["gzip_bytes"] / f32["size_bytes"]
    print("2. Dense int8 (post-training):")
    print(f"   accuracy {d_int8:+.2f} pt vs float (target >= -0.3) "
          f"{verdict(d_int8 >= -0.3)}")
    print(f"   {shrink:.2f}x smaller than float32 .tflite (target >= 3.5) "
          f"{verdict(shrink >= 3.5)}")
    print("3. 75% sparse + sparsity-preserving QAT int8, distillation-aware:")
    print(f"   accuracy {d_pruned:+.2f} pt vs dense float (target >= -1.0) "
          f"{verdict(d_pruned >= -1.0)}")
    print(f"   gzip {pruned['gzip_bytes'] / 1024:.1f} KB = "
          f"1/{1 / gzip_ratio:.1f} of the float32 .tflite "
          f"({f32['size_bytes'] / 1024:.1f} KB; target <= 1/8) "
          f"{verdict(gzip_ratio <= 1 / 8)}")
    print(f"   weight zeros read from the file: {pruned['sparsity']:.1%}")
    print("4. LiteRT p50 latency per example:")
    print(f"   float32 {f32['latency_ms_p50']:.3f} ms, int8 "
          f"{int8['latency_ms_p50']:.3f} ms, pruned int8 "
          f"{pruned['latency_ms_p50']:.3f} ms (target int8 <= float32) "
          f"{verdict(int8['latency_ms_p50'] <= f32['latency_ms_p50'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
