"""Compression figures on real Fashion-MNIST, printed against the targets.

1. Twin parity: max |diff| between Keras 3 models and their tf_keras twins
   over a battery (CNN with SeparableConv2D/Concatenate, a nested model, an
   MHA block). Target <= 1e-4.
2. A float student (76k parameters by default, `--widths`; the shipped
   distilled student is not needed: one is trained here for `--epochs`) is
   exported as float32 and as dense int8 (post-training), with per-channel
   scales (the default) and per-tensor scales. Targets: int8 within 0.3 pt
   of float; >= 3.5x smaller (met from ~40k parameters: see 5).
3. The same student pruned so that 75% of all its weights are zero (the
   other layers to 76.5%; the stem and the classifier, 2% of the weights,
   kept dense) + sparsity-preserving QAT int8, with
   distillation-aware fine-tuning (the shipped teacher when present, else
   the dense float student teaches its compressed self). Targets: within
   1.0 pt of the dense float student; gzip <= 1/8 of the float32 file.
4. LiteRT p50 latency per example: int8 <= float32, for the student and
   layer by layer. The result depends on the CPU: with int8 dot-product
   instructions (x86 VNNI, ARM dotprod) int8 wins; without them XNNPACK's
   int8 convolutions are no faster than float32 (the line names them).
5. The int8/float32 size ratio against parameter count: a `.tflite` carries
   a few KB of fixed overhead (graph, per-channel scales and int64 zero
   points), so the ratio approaches 4 only for larger models.
6. Sequence students (`--sequences`, or alone with `--sequences-only`): an
   LSTM and a one-block transformer over token ids, trained briefly on a
   synthetic task (the label is the most frequent of three marker tokens,
   sequences padded to 32 tokens), exported as float32, dynamic and int8:
   size raw and gzipped, argmax agreement with Keras on 1,000 test
   sequences, LiteRT p50 per sequence. Targets: agreement >= 97%; dynamic
   and int8 files <= 0.6x the float32 file; builtins only.

Usage:
    python benchmarks/compression_figures.py [--epochs 4] [--prune-epochs 2]
    python benchmarks/compression_figures.py --widths 16,32,64   # a 24k student
    python benchmarks/compression_figures.py --sequences-only    # section 6
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

from keras_kd import compression  # noqa: E402
from keras_kd.compression.tflite_eval import _latency_p50  # noqa: E402
from keras_kd.compression.tflite_eval import _litert  # noqa: E402
from keras_kd.compression.tflite_eval import read_tflite  # noqa: E402
from keras_kd_examples.models import cnn_student  # noqa: E402
from keras_kd_examples import datasets  # noqa: E402
from keras_kd_examples.cli import description  # noqa: E402

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


def _latency_ms(path):
    """LiteRT p50 per example, timed as `evaluate_tflite` times it."""
    litert, _ = _litert()
    data = read_tflite(path)
    shape = litert.Interpreter(model_content=data).get_input_details()[0][
        "shape"][1:]
    examples = list(np.random.default_rng(0).uniform(
        0, 1, (300,) + tuple(shape)).astype("float32"))
    return _latency_p50(litert, data, examples)


def _float_and_int8(model, out_dir, name):
    rng = np.random.default_rng(0)
    representative = rng.uniform(
        0, 1, (64,) + tuple(model.input_shape[1:])).astype("float32")
    return (compression.export_tflite(
                model, os.path.join(out_dir, f"{name}_f32.tflite")),
            compression.export_tflite(
                model, os.path.join(out_dir, f"{name}_int8.tflite"),
                quantization="int8", representative_data=representative))


def layer_latencies():
    """Float32 vs int8 LiteRT latency of single layers at student sizes."""
    layers = keras.layers
    cases = {
        "Conv2D 3x3, 1->16 @28x28": ((28, 28, 1), layers.Conv2D(
            16, 3, padding="same", activation="relu")),
        "Conv2D 3x3, 16->32 @14x14": ((14, 14, 16), layers.Conv2D(
            32, 3, padding="same", activation="relu")),
        "Conv2D 3x3, 32->64 @7x7": ((7, 7, 32), layers.Conv2D(
            64, 3, padding="same", activation="relu")),
        "MaxPooling2D @28x28x16": ((28, 28, 16), layers.MaxPooling2D()),
        "Dense 64->10": ((64,), layers.Dense(10)),
    }
    rows = []
    with tempfile.TemporaryDirectory() as out_dir:
        for i, (name, (shape, layer)) in enumerate(cases.items()):
            inputs = keras.Input(shape)
            f32, int8 = _float_and_int8(keras.Model(inputs, layer(inputs)),
                                        out_dir, f"layer{i}")
            rows.append((name, _latency_ms(f32), _latency_ms(int8)))
    return rows


def size_ratios():
    """float32 / int8 `.tflite` bytes for students of growing size."""
    rows = []
    with tempfile.TemporaryDirectory() as out_dir:
        for widths in ((16, 32, 64), (32, 64, 96), (32, 64, 128)):
            model = cnn_student(widths=widths)
            f32, int8 = _float_and_int8(model, out_dir, "w" + "_".join(
                map(str, widths)))
            rows.append((model.count_params(), os.path.getsize(f32),
                         os.path.getsize(int8)))
    return rows


def cpu_features():
    """Whether this CPU has int8 dot-product instructions (x86 VNNI)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith(("flags", "Features"))), [])
    except OSError:
        return "CPU flags unknown"
    vnni = sorted(f for f in flags if "vnni" in f or f in ("asimddp",))
    return "int8 dot-product: " + (", ".join(vnni) if vnni else "none")


def verdict(ok):
    return "OK" if ok else "MISSED"


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--prune-epochs", type=int, default=2)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--teacher", default=TEACHER)
    parser.add_argument("--sparsity", type=float, default=0.765,
                        help="target sparsity of each pruned layer (0.765: "
                             "75%% of all the weights of the default "
                             "student, whose stem and classifier stay dense)")
    parser.add_argument("--widths", default="32,64,96",
                        help="the student's stage widths (cnn_student)")
    parser.add_argument("--keep-dense", default="stage1_conv,logits",
                        help="comma-separated layers left unpruned")
    parser.add_argument("--no-training", action="store_true",
                        help="only the figures that need no data: twin "
                             "parity, layer latencies, size ratios")
    parser.add_argument("--sequences", action="store_true",
                        help="also section 6, the sequence students")
    parser.add_argument("--sequences-only", action="store_true",
                        help="only section 6")
    args = parser.parse_args()
    if args.sequences_only:
        print_sequence_figures()
        return 0

    print("1. Twin parity (max |diff|, target <= 1e-4):")
    for name, diff in parity_battery().items():
        print(f"   {name:8s} {diff:.2e} {verdict(diff <= 1e-4)}")

    if args.no_training:
        print_layer_figures()
        return 0

    train, _, test = datasets.load("fashion_mnist", batch_size=128,
                                   validation_split=0)
    keras.utils.set_random_seed(0)
    student = cnn_student(widths=tuple(map(int, args.widths.split(","))))
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
            student, train, teacher=teacher, val_data=test,
            sparsity=args.sparsity,
            out_dir=out_dir, prune_epochs=args.prune_epochs,
            qat_epochs=args.qat_epochs,
            keep_dense=tuple(filter(None, args.keep_dense.split(","))),
            verbose=2)
        print("\n" + open(os.path.join(out_dir, "compression.md")).read())
        per_tensor = compression.evaluate_tflite(compression.export_tflite(
            student, os.path.join(out_dir, "student_int8_per_tensor.tflite"),
            quantization="int8", representative_data=train,
            per_channel=False), test)

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
    d_tensor = 100 * (per_tensor["accuracy"] - float_accuracy)
    shrink_tensor = f32["size_bytes"] / per_tensor["size_bytes"]
    print(f"   per-tensor scales (per_channel=False): accuracy "
          f"{d_tensor:+.2f} pt {verdict(d_tensor >= -0.3)}, "
          f"{shrink_tensor:.2f}x smaller {verdict(shrink_tensor >= 3.5)}")
    print(f"3. {args.sparsity:.0%} sparse (layers not in --keep-dense) + "
          "sparsity-preserving QAT int8, distillation-aware:")
    print(f"   accuracy {d_pruned:+.2f} pt vs dense float (target >= -1.0) "
          f"{verdict(d_pruned >= -1.0)}")
    print(f"   gzip {pruned['gzip_bytes'] / 1024:.1f} KB = "
          f"1/{1 / gzip_ratio:.1f} of the float32 .tflite "
          f"({f32['size_bytes'] / 1024:.1f} KB; target <= 1/8) "
          f"{verdict(gzip_ratio <= 1 / 8)}")
    print(f"   weight zeros read from the file: {pruned['sparsity']:.1%}")
    print(f"4. LiteRT p50 latency per example ({cpu_features()}):")
    print(f"   float32 {f32['latency_ms_p50']:.3f} ms, int8 "
          f"{int8['latency_ms_p50']:.3f} ms, pruned int8 "
          f"{pruned['latency_ms_p50']:.3f} ms (target int8 <= float32) "
          f"{verdict(int8['latency_ms_p50'] <= f32['latency_ms_p50'])}")
    print_layer_figures()
    if args.sequences:
        print_sequence_figures()
    return 0


def token_task(n, seed, length=32, vocabulary=1000):
    """Padded token ids; the label is the most frequent of three markers."""
    rng = np.random.default_rng(seed)
    x = rng.integers(4, vocabulary, (n, length)).astype("int32")
    y = rng.integers(0, 3, n).astype("int32")
    for row, label in zip(x, y):
        row[rng.choice(length // 2, 3, replace=False)] = label + 1
        row[rng.integers(length // 2, length + 1):] = 0
    return x, y


def sequence_student(kind, length=32, vocabulary=1000):
    inputs = keras.Input((length,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocabulary, 64)(inputs)
    if kind == "lstm":
        x = keras.layers.LSTM(64, return_sequences=True)(x)
    else:
        x = keras.layers.LayerNormalization()(keras.layers.Add()(
            [x, keras.layers.MultiHeadAttention(4, 16)(x, x)]))
        x = keras.layers.LayerNormalization()(keras.layers.Add()(
            [x, keras.layers.Dense(64)(keras.layers.Dense(
                128, activation="gelu")(x))]))
    x = keras.layers.GlobalMaxPooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x), name=kind)


def print_sequence_figures():
    from keras_kd.compression.tflite_eval import TFLiteRunner
    from keras_kd.compression.tflite_eval import operator_names

    print("6. Sequence students, float32 / dynamic / int8 .tflite "
          "(batch 1):")
    x_train, y_train = token_task(4000, 0)
    x_test, y_test = token_task(1000, 1)
    for kind in ("lstm", "transformer"):
        keras.utils.set_random_seed(0)
        model = sequence_student(kind)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
            from_logits=True), metrics=["accuracy"])
        model.fit(x_train, y_train, epochs=2, batch_size=64, verbose=0)
        expected = model.predict(x_test, verbose=0).argmax(-1)
        keras_accuracy = float(np.mean(expected == y_test))
        print(f"   {kind}: {model.count_params():,} parameters, Keras "
              f"accuracy {keras_accuracy:.2%}")
        sizes = {}
        with tempfile.TemporaryDirectory() as out_dir:
            for quantization in (None, "dynamic", "int8"):
                path = compression.export_tflite(
                    model, os.path.join(out_dir, f"{quantization}.tflite"),
                    quantization=quantization,
                    representative_data=x_train[:200])
                data = read_tflite(path)
                sizes[quantization] = len(data)
                flex = [op for op in operator_names(data)
                        if op.startswith("Flex")]
                runner = TFLiteRunner(data)
                predicted = runner.logits({"tokens": x_test}).argmax(-1)
                agreement = float(np.mean(predicted == expected))
                results = compression.evaluate_tflite(
                    path, (x_test[:300], y_test[:300]))
                ratio = len(data) / sizes[None]
                print(f"     {str(quantization or 'float32'):8s} "
                      f"{len(data) / 1024:7.1f} KB ({ratio:.2f}x float32 "
                      f"{verdict(quantization is None or ratio <= 0.6)}), "
                      f"gzip {results['gzip_bytes'] / 1024:6.1f} KB, "
                      f"agreement {agreement:.2%} "
                      f"{verdict(agreement >= 0.97)}, p50 "
                      f"{results['latency_ms_p50']:.3f} ms, builtins only "
                      f"{verdict(not flex)}")


def print_layer_figures():
    print("4b. LiteRT latency layer by layer (float32 ms / int8 ms):")
    for name, f32_ms, int8_ms in layer_latencies():
        print(f"   {name:28s} {f32_ms:.4f} / {int8_ms:.4f} "
              f"({int8_ms / f32_ms:.2f}x)")
    print("5. float32 / int8 .tflite size by parameter count:")
    for params, f32_bytes, int8_bytes in size_ratios():
        print(f"   {params:7,d} parameters: {f32_bytes / 1024:6.1f} KB / "
              f"{int8_bytes / 1024:5.1f} KB = {f32_bytes / int8_bytes:.2f}x "
              f"{verdict(f32_bytes / int8_bytes >= 3.5)}")


if __name__ == "__main__":
    sys.exit(main())
