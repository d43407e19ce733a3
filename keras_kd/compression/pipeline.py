"""`compress`: prune → QAT → TFLite → LiteRT evaluation, with a report."""

import json
import os
import shutil
import tempfile

from keras_kd.compression.fine_tune import FineTuning
from keras_kd.compression.pruning import prune
from keras_kd.compression.quantization import quantize
from keras_kd.compression.tflite_eval import evaluate_tflite
from keras_kd.compression.tflite_export import export_tflite
from keras_kd.utils.io import write_text_atomic
from keras_kd.utils.validation import check_bool
from keras_kd.utils.validation import check_one_of
from keras_kd.utils.validation import check_open_unit_interval
from keras_kd.utils.validation import check_unit_interval


def compress(
    student,
    train_data,
    *,
    teacher=None,
    val_data=None,
    sparsity=0.75,
    quantization="int8",
    out_dir="compressed",
    prune_epochs=2,
    qat_epochs=1,
    keep_dense=(),
    per_channel=True,
    accuracy_budget=0.01,
    candidates=("dynamic", "int8_weight_only", "int4_weight_only"),
    verbose=1,
):
    """The one-call path from a trained student to phone-ready files.

    Writes into `out_dir`:

    - `student_float32.tflite`: the dense float model (the reference),
    - `student_<quantization>.tflite`: dense, post-training quantized,
    - `student_<candidate>.tflite` for each of `candidates` (by default
      dynamic range, and int8 and int4 weight-only through
      ai-edge-quantizer, where it is installed): dense, more files for the
      recommendation to choose from,
    - `student_pruned_<quantization>.tflite`: pruned to `sparsity` with
      distillation-aware fine-tuning, then quantization-aware training that
      preserves the zeros (for `"int8"`; other quantizations skip QAT),
    - `compression.json` and `compression.md`: accuracy (on `val_data`),
      size raw and gzipped, weight sparsity read back from each file,
      LiteRT p50 latency, which path pruned and quantized the student, and
      the recommended file: the smallest (gzipped) one within
      `accuracy_budget` of float32's accuracy and not slower than float32
      (p50 at most 5% above, the noise of the measurement); float32 itself
      when no other qualifies, so the recommendation never loses.

    Everything is written first into a temporary folder beside `out_dir`
    and moved in only when all of it exists, the report last (after the
    previous run's report is removed): a run that fails leaves `out_dir`
    as it was, and a report in `out_dir` always describes the files beside
    it.

    Pruning and QAT run on one path (the report's `"path"` says which and
    why): TF-MOT on the tf_keras twin where the twin exists and TF-MOT's
    QAT takes it; Keras-native otherwise (`keras_kd.compression.native`:
    keras-hub transformers, custom layers, activations tf_keras cannot
    deserialize, MobileNetV3's operator layers). Should quantization-aware
    training itself fail, the pruned model is post-training quantized and
    `"skipped"` gives the reason.

    Args:
        student: trained Keras 3 (Functional/Sequential) or tf_keras model.
        train_data: `tf.data.Dataset` of `(x, y)` batches for fine-tuning and
            calibration (`x` a dict keyed by input name for multi-input
            students).
        teacher: optional Keras 3 teacher: fine-tuning then distils.
        val_data: `(x, y)` batches for the evaluation (default: train_data).
        sparsity: target fraction of zero weights, in (0, 1).
        quantization: `"int8"`, `"dynamic"` or `"float16"`.
        out_dir: output folder (created if its parent exists).
        prune_epochs, qat_epochs: fine-tuning epochs.
        keep_dense: names of layers `prune` leaves dense (see `prune`).
        per_channel: `False` gives the dense post-training quantized file
            one scale per tensor (smaller; see `export_tflite`). The pruned
            `"int8"` file comes from quantization-aware training, whose
            per-channel kernel scales it keeps either way.
        accuracy_budget: accuracy (a fraction, 0.01 = 1 pt) the
            recommended file may lose against float32, in [0, 1].
        candidates: more dense files to write and measure, each a
            quantization `export_tflite` takes other than `None`
            (`"dynamic"`, `"float16"`, `"int8_weight_only"`,
            `"int4_weight_only"`; `quantization` itself is written anyway);
            the weight-only ones are left out when ai-edge-quantizer is not
            installed.
        verbose: progress bars.

    Returns:
        The report as a dict: one entry per `.tflite` file.

    Example:

    ```python
    report = keras_kd.compression.compress(
        distiller.student, train_ds, teacher=teacher, val_data=test_ds,
        out_dir="saved_models/fashion_mnist",
    )
    ```
    """
    sparsity = check_open_unit_interval("sparsity", sparsity)
    check_one_of("quantization", quantization, ("int8", "dynamic", "float16"))
    check_bool("per_channel", per_channel)
    accuracy_budget = check_unit_interval("accuracy_budget", accuracy_budget)
    candidates = _check_candidates(candidates, quantization)
    for name, value in (("prune_epochs", prune_epochs),
                        ("qat_epochs", qat_epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or (
                value < 1):
            raise ValueError(f"Argument `{name}` must be an integer >= 1. "
                             f"Received: {name}={value!r}")
    prune_tuning = FineTuning(epochs=prune_epochs, learning_rate=3e-3)
    qat_tuning = FineTuning(epochs=qat_epochs, learning_rate=5e-4)
    out_dir = _prepare_out_dir(out_dir)
    stage = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.partial-",
                             dir=os.path.dirname(os.path.abspath(out_dir)))
    try:
        report = _compress_into(
            stage, student, train_data, teacher, val_data, sparsity,
            quantization, prune_tuning, qat_tuning, keep_dense, per_channel,
            accuracy_budget, candidates, verbose)
        _publish(stage, out_dir, REPORT_FILES)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


REPORT_FILES = ("compression.json", "compression.md")


def _publish(stage, out_dir, report_files):
    """Moves the staged files into `out_dir`: the old report out first,
    the new report last (each move is an atomic rename on one file
    system)."""
    for name in report_files:
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            os.remove(path)
    names = sorted(os.listdir(stage), key=lambda n: n in report_files)
    for name in names:
        os.replace(os.path.join(stage, name), os.path.join(out_dir, name))


def _compress_into(out_dir, student, train_data, teacher, val_data,
                   sparsity, quantization, prune_tuning, qat_tuning,
                   keep_dense, per_channel, accuracy_budget, candidates,
                   verbose):
    val_data = train_data if val_data is None else val_data
    files = {
        "float32": os.path.join(out_dir, "student_float32.tflite"),
        quantization: os.path.join(out_dir, f"student_{quantization}.tflite"),
        f"pruned_{quantization}": os.path.join(
            out_dir, f"student_pruned_{quantization}.tflite"),
    }
    representative = train_data if quantization == "int8" else None

    export_tflite(student, files["float32"])
    export_tflite(student, files[quantization], quantization=quantization,
                  representative_data=representative, per_channel=per_channel)
    # More dense candidates: int8 weights with float compute is the faster
    # file where int8 kernels are slow (LSTMs on x86, RESULTS §3b).
    for candidate in candidates:
        files[candidate] = os.path.join(out_dir,
                                        f"student_{candidate}.tflite")
        export_tflite(student, files[candidate], quantization=candidate,
                      per_channel=per_channel)
    qat = quantization == "int8"
    path, why = _choose_path(student, qat)
    pruned = prune(student, train_data, teacher=teacher,
                   target_sparsity=sparsity, keep_dense=keep_dense,
                   fine_tuning=prune_tuning, path=path, verbose=verbose)
    skipped_qat = None
    if qat:
        try:
            quantized = quantize(
                pruned, train_data, teacher=teacher, fine_tuning=qat_tuning,
                path=path, keep_dense=keep_dense if path == "keras" else (),
                verbose=verbose)
            export_tflite(quantized, files[f"pruned_{quantization}"],
                          quantization=quantization,
                          representative_data=representative)
        except Exception as e:  # QAT or its conversion failed: PTQ
            qat = False
            skipped_qat = f"{type(e).__name__}: {e}"
    if not qat:
        export_tflite(pruned, files[f"pruned_{quantization}"],
                      quantization=quantization,
                      representative_data=representative,
                      per_channel=per_channel)

    report = {
        name: {"file": os.path.basename(file),
               **evaluate_tflite(file, val_data)}
        for name, file in files.items()
    }
    report[f"pruned_{quantization}"]["path"] = path
    report["path"] = {"prune_and_quantize": path, "reason": why}
    if skipped_qat is not None:
        report["skipped"] = {"steps": ["quantize"], "reason": skipped_qat}
    report["recommended"] = recommend(report, accuracy_budget)
    write_text_atomic(os.path.join(out_dir, REPORT_FILES[0]),
                      json.dumps(report, indent=2) + "\n")
    write_text_atomic(os.path.join(out_dir, REPORT_FILES[1]),
                      compression_markdown(report, sparsity))
    return report


def file_entries(report):
    """`(name, entry)` of the report's measured `.tflite` files."""
    return [(name, entry) for name, entry in report.items()
            if isinstance(entry, dict) and "size_bytes" in entry]


# Latency measurements on a shared CPU vary by a few percent run to run.
_LATENCY_NOISE = 1.05


def recommend(report, accuracy_budget):
    """The smallest gzipped file within `accuracy_budget` of float32's
    accuracy whose p50 latency is at most 5% above float32's; float32 when
    none is."""
    base = report["float32"]
    candidates = [
        (name, entry) for name, entry in file_entries(report)
        if entry["accuracy"] >= base["accuracy"] - accuracy_budget - 1e-12
        and entry["latency_ms_p50"] <= _LATENCY_NOISE * base[
            "latency_ms_p50"]]
    name, entry = min(candidates, key=lambda item: item[1]["gzip_bytes"])
    return {
        "name": name, "file": entry["file"],
        "reason": (
            f"smallest file ({entry['gzip_bytes'] / 1024:.1f} KB gzipped) "
            f"within {100 * accuracy_budget:.1f} pt of float32's accuracy "
            "and not slower than float32"
            if name != "float32" else
            "no smaller file is within the accuracy budget and as fast as "
            "float32"),
        "accuracy_budget": accuracy_budget}


def compression_markdown(report, sparsity):
    """A markdown table of the `compress` report."""
    base = report["float32"]
    lines = [
        "# Compression report",
        "",
        f"Target sparsity {sparsity:.0%}. Accuracy on the evaluation data; "
        "latency is LiteRT's p50 per example (batch 1, default delegate).",
        "",
        "| file | accuracy | Δ vs float32 | size | gzipped | "
        "gzip vs float32 | weight zeros | p50 latency |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, entry in file_entries(report):
        lines.append(
            f"| {entry['file']} | {100 * entry['accuracy']:.2f}% | "
            f"{100 * (entry['accuracy'] - base['accuracy']):+.2f} pt | "
            f"{entry['size_bytes'] / 1024:.1f} KB | "
            f"{entry['gzip_bytes'] / 1024:.1f} KB | "
            f"{base['gzip_bytes'] / entry['gzip_bytes']:.1f}x smaller | "
            f"{entry['sparsity']:.1%} | {entry['latency_ms_p50']:.3f} ms |"
        )
    path = report.get("path")
    if path is not None:
        name = {"tfmot": "TF-MOT on the tf_keras twin",
                "keras": "Keras-native"}[path["prune_and_quantize"]]
        lines += ["", f"Pruned and quantized by: {name} ({path['reason']})."]
    if "skipped" in report:
        lines += ["", "Quantization-aware training was skipped (the pruned "
                  "model is post-training quantized): "
                  f"{report['skipped']['reason']}"]
    if "recommended" in report:
        chosen = report["recommended"]
        lines += ["", f"Recommended: **{chosen['file']}**: "
                  f"{chosen['reason']}."]
    return "\n".join(lines) + "\n"


def _check_candidates(candidates, quantization):
    from keras_kd.compression.tflite_export import QUANTIZATIONS

    if isinstance(candidates, str):
        candidates = (candidates,)
    candidates = tuple(candidates or ())
    allowed = [q for q in QUANTIZATIONS if q is not None]
    for candidate in candidates:
        if candidate not in allowed:
            raise ValueError(
                f"Argument `candidates` takes quantizations from {allowed}. "
                f"Received: candidates={candidates!r}")
    # `quantization`'s own file is written anyway.
    candidates = tuple(c for c in candidates if c != quantization)
    try:
        import ai_edge_quantizer  # noqa: F401
    except ImportError:
        candidates = tuple(c for c in candidates
                           if not c.endswith("_weight_only"))
    return tuple(dict.fromkeys(candidates))


def _choose_path(student, qat):
    """`("tfmot" | "keras", why)`: TF-MOT on the tf_keras twin where the
    twin exists and (for int8) TF-MOT's QAT takes it; Keras-native pruning
    and QAT otherwise, so that both steps run on the same path."""
    from keras_kd.compression.pruning import twin_failure
    from keras_kd.compression.quantization import tfmot_qat_failure

    reason = tfmot_qat_failure(student) if qat else twin_failure(student)
    if reason is None:
        return "tfmot", "the student has a tf_keras twin TF-MOT takes"
    return "keras", reason


def _prepare_out_dir(out_dir):
    out_dir = str(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(out_dir):
        if not os.path.isdir(parent):
            raise ValueError(
                "The parent folder of `out_dir` does not exist. Received: "
                f"out_dir={out_dir!r}"
            )
        try:
            os.makedirs(out_dir)
        except OSError as e:
            raise PermissionError(
                f"Cannot create `out_dir`. Received: out_dir={out_dir!r} ({e})"
            ) from e
    if not os.access(out_dir, os.W_OK):
        raise PermissionError(
            f"`out_dir` is not writable. Received: out_dir={out_dir!r}"
        )
    return out_dir
