"""Epoch time of keras_kd's Distiller against its baselines, in one process.

Measures, on the same teacher, student and data:

- (a) a plain student `fit` (hard labels only),
- (b) the teacher's inference over the same data,
- (c) `keras_kd.Distiller`: soft targets + hard labels + attention transfer on
  two layer pairs,
- (d) `keras.distillation.Distiller` with
  `LogitsDistillation(loss=keras.losses.KLDivergence())` plus one
  `FeatureDistillation` per layer pair (given our `AttentionTransfer` as its
  loss so that the loss math is identical; only the step structure differs),

- (e) `keras_kd.Distiller` with soft targets only, against
- (f) `keras.distillation.Distiller` with `LogitsDistillation` only,

and prints the ratios. Targets: (c)/(d) <= 0.7 and (c) <= 1.1 * ((a) +
(b)); (e)/(f) <= 1.0. Each figure is the median epoch time after one
warm-up epoch. The script runs on the Keras backend it is given
(`KERAS_BACKEND=jax python benchmarks/step_time.py`; TensorFlow by
default).

`--models transformer` measures (a)-(c) on keras-hub BERT classifiers
(random init, no downloads): a 4-layer, 4-head, 128-wide teacher and a
2-layer, 2-head, 64-wide student, with soft targets plus MiniLM attention-map
distillation between self-attention layers inside the encoders. Target:
(c) <= 1.15 * ((a) + (b)).

Why (c)/(d) depends on the teacher: (d) runs the student forward twice per
step (once for the logits, once through a feature extractor), so it costs
about b + 2a against our b + a. The ratio is therefore lowest when the
student's training cost is comparable to the teacher's inference, and tends
to 1 as the teacher grows; both regimes are printed.

`--models lm` measures (a)-(c) on the keras-hub GPT-2 pair of the
language-model example (`keras_kd_examples.lm_job`: 838,656 and 72,768
parameters, 258 byte tokens, 96 per sequence): token-level forward KL +
next-token labels. Target: (c) <= 1.10 * ((a) + (b)).

`--models methods` measures each feature method of the method zoo (RKD,
PKT, CC on the pooled features, SP, VID, SRD, FSP on the block outputs,
CRD on the pooled features), each with soft targets + labels, on the CNN
pair of width `--teacher-widths[0]` and `--student-width`, against (a) +
(b). Target: <= 1.15 each.

Usage:
    python benchmarks/step_time.py [--samples 4096] [--epochs 4]
        [--teacher-widths 32 64] [--models cnn transformer methods]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd_examples.timing import PAIRS  # noqa: E402
from keras_kd_examples.timing import make_cnn  # noqa: E402
from keras_kd_examples.timing import timed_fit  # noqa: E402
from keras_kd_examples.timing import timed_inference  # noqa: E402
from keras_kd_examples.cli import description  # noqa: E402


def fresh_student(width, weights):
    student = make_cnn(width, "student", dropout=0.1)
    student.set_weights(weights)
    return student


def run(args, teacher_width):
    """Measures (a)-(d) for one teacher width and prints the ratios."""
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    teacher = make_cnn(teacher_width, "teacher")
    sw = args.student_width
    student_weights = make_cnn(sw, "student", dropout=0.1).get_weights()
    figures = {}

    student = fresh_student(sw, student_weights)
    student.compile(optimizer="adam", loss=keras.losses.
                    SparseCategoricalCrossentropy(from_logits=True))
    figures["a"] = timed_fit(student, x, y, args.epochs, args.batch_size)
    figures["b"] = timed_inference(teacher, x, args.epochs, args.batch_size)

    ours = keras_kd.Distiller(teacher, fresh_student(sw, student_weights),
                              attention_pairs=PAIRS)
    ours.compile(optimizer="adam", temperature=4.0)
    figures["c"] = timed_fit(ours, x, y, args.epochs, args.batch_size)

    theirs = keras.distillation.Distiller(
        teacher=teacher,
        student=fresh_student(sw, student_weights),
        distillation_losses=[
            keras.distillation.LogitsDistillation(
                temperature=4.0, loss=keras.losses.KLDivergence()),
            *[
                keras.distillation.FeatureDistillation(
                    loss=keras_kd.losses.AttentionTransfer(),
                    teacher_layer_name=t, student_layer_name=s)
                for t, s in PAIRS
            ],
        ],
        distillation_loss_weights=[0.9, 500.0, 500.0],
        student_loss_weight=0.1,
    )
    theirs.compile(optimizer="adam", loss=keras.losses.
                   SparseCategoricalCrossentropy(from_logits=True))
    figures["d"] = timed_fit(theirs, x, y, args.epochs, args.batch_size)
    figures["e"], figures["f"] = logits_only(
        teacher, lambda: fresh_student(sw, student_weights), x, y, args)

    labels = {
        "a": "plain student fit",
        "b": "teacher inference",
        "c": "keras_kd.Distiller (KD + AT, 2 pairs)",
        "d": "keras.distillation.Distiller (same losses)",
        "e": "keras_kd.Distiller (KD only)",
        "f": "keras.distillation.Distiller (KD only)",
    }
    print(f"\n[{keras.backend.backend()}] Epoch time, "
          f"{args.samples} samples, batch {args.batch_size}, "
          f"median of {args.epochs - 1} epochs after a warm-up; teacher "
          f"{teacher.count_params():,} params (width {teacher_width}), "
          f"student {make_cnn(sw, 's').count_params():,} params "
          f"(width {sw}):")
    for key, label in labels.items():
        print(f"  ({key}) {label:<45s} {figures[key]:7.3f} s")
    ratio_cd = figures["c"] / figures["d"]
    ratio_cab = figures["c"] / (figures["a"] + figures["b"])
    print(f"  (c)/(d)       = {ratio_cd:.2f}   (target <= 0.70) "
          f"{'OK' if ratio_cd <= 0.7 else 'MISSED'}")
    print(f"  (c)/((a)+(b)) = {ratio_cab:.2f}   (target <= 1.10) "
          f"{'OK' if ratio_cab <= 1.1 else 'MISSED'}")
    print_logits_ratio(figures)


def logits_only(teacher, fresh, x, y, args):
    """Epoch times of both Distillers with soft targets + labels only."""
    ours = keras_kd.Distiller(teacher, fresh())
    ours.compile(optimizer="adam", temperature=4.0)
    theirs = keras.distillation.Distiller(
        teacher=teacher, student=fresh(),
        distillation_losses=[keras.distillation.LogitsDistillation(
            temperature=4.0, loss=keras.losses.KLDivergence())],
        student_loss_weight=0.1)
    theirs.compile(optimizer="adam", loss=keras.losses.
                   SparseCategoricalCrossentropy(from_logits=True))
    return (timed_fit(ours, x, y, args.epochs, args.batch_size),
            timed_fit(theirs, x, y, args.epochs, args.batch_size))


def print_logits_ratio(figures):
    ratio = figures["e"] / figures["f"]
    print(f"  (e)/(f)       = {ratio:.2f}   (target <= 1.00) "
          f"{'OK' if ratio <= 1.0 else 'MISSED'}")


def print_against_ideal(labels, figures, target):
    """Each figure, and (c) against teacher inference + student step."""
    for key, label in labels.items():
        print(f"  ({key}) {label:<45s} {figures[key]:7.3f} s")
    ratio = figures["c"] / (figures["a"] + figures["b"])
    print(f"  (c)/((a)+(b)) = {ratio:.2f}   (target <= {target:.2f}) "
          f"{'OK' if ratio <= target else 'MISSED'}")


def bert(layers, heads, hidden, name, length):
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=1000, num_layers=layers, num_heads=heads,
        hidden_dim=hidden, intermediate_dim=4 * hidden,
        max_sequence_length=length, name=f"{name}_backbone")
    return keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=2, preprocessor=None,
        activation=None, name=name)


def run_transformer(args, length=64):
    """(a)-(c) for keras-hub BERT classifiers with attention maps."""
    rng = np.random.default_rng(0)
    samples = args.samples // 2
    ids = rng.integers(1, 1000, (samples, length)).astype("int32")
    lengths = rng.integers(length // 4, length + 1, (samples, 1))
    padding = np.arange(length)[None] < lengths
    ids[~padding] = 0
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
         "padding_mask": padding}
    y = rng.integers(0, 2, samples)
    teacher = bert(4, 4, 128, "teacher", length)
    weights = bert(2, 2, 64, "student", length).get_weights()

    def fresh():
        student = bert(2, 2, 64, "student", length)
        student.set_weights(weights)
        return student

    figures = {}
    student = fresh()
    student.compile(optimizer="adam", loss=keras.losses.
                    SparseCategoricalCrossentropy(from_logits=True))
    figures["a"] = timed_fit(student, x, y, args.epochs, args.batch_size)
    figures["b"] = timed_inference(teacher, x, args.epochs, args.batch_size)
    ours = keras_kd.Distiller(teacher, fresh(), attention_pairs=[(
        "teacher_backbone/transformer_layer_3/self_attention_layer",
        "student_backbone/transformer_layer_1/self_attention_layer")])
    ours.compile(optimizer="adam", temperature=4.0, attention_weight=1.0)
    figures["c"] = timed_fit(ours, x, y, args.epochs, args.batch_size)
    figures["e"], figures["f"] = logits_only(teacher, fresh, x, y, args)
    labels = {"a": "plain student fit", "b": "teacher inference",
              "c": "keras_kd.Distiller (KD + attention maps)",
              "e": "keras_kd.Distiller (KD only)",
              "f": "keras.distillation.Distiller (KD only)"}
    print(f"\n[{keras.backend.backend()}] keras-hub BERT, "
          f"epoch time, {samples} sequences of {length} "
          f"tokens (padded), batch {args.batch_size}, median of "
          f"{args.epochs - 1} epochs after a warm-up; teacher "
          f"{teacher.count_params():,} params, student "
          f"{fresh().count_params():,} params:")
    print_against_ideal(labels, figures, target=1.15)
    print_logits_ratio(figures)


def run_language_model(args, length=96):
    """(a)-(c) for keras-hub GPT-2 causal LMs: token-level soft targets
    (forward KL, T = 1) + next-token labels, padding masked."""
    from keras_kd_examples import lm_job

    rng = np.random.default_rng(0)
    samples = args.samples // 4
    ids = rng.integers(1, lm_job.VOCABULARY, (samples, length + 1))
    lengths = rng.integers(length // 2, length + 2, (samples, 1))
    valid = np.arange(length + 1)[None] < lengths
    ids = np.where(valid, ids, 0).astype("int32")
    x = {"token_ids": ids[:, :-1], "padding_mask": valid[:, :-1]}
    y, weights = ids[:, 1:], valid[:, 1:].astype("float32")
    keras.utils.set_random_seed(0)
    teacher = lm_job.teacher_model()
    initial = lm_job.student_model().get_weights()

    def fresh():
        student = lm_job.student_model()
        student.set_weights(initial)
        return student

    figures = {}
    student = fresh()
    student.compile(optimizer="adam", loss=keras.losses.
                    SparseCategoricalCrossentropy(from_logits=True))
    figures["a"] = timed_fit(student, x, y, args.epochs, args.batch_size,
                             sample_weight=weights)
    figures["b"] = timed_inference(teacher, x, args.epochs, args.batch_size)
    ours = keras_kd.Distiller(teacher, fresh(), terms=[
        keras_kd.terms.SoftTargetTerm(loss_fn=keras_kd.losses.SoftTargetKD(
            1.0))])
    ours.compile(optimizer="adam", alpha=0.5)
    figures["c"] = timed_fit(ours, x, y, args.epochs, args.batch_size,
                             sample_weight=weights)
    labels = {"a": "plain student fit", "b": "teacher inference",
              "c": "keras_kd.Distiller (token-level KD)"}
    print(f"\n[{keras.backend.backend()}] keras-hub GPT-2 (lm_job's "
          f"pair), epoch time, {samples} sequences of {length} tokens "
          f"(padded), vocabulary {lm_job.VOCABULARY}, batch "
          f"{args.batch_size}, median of {args.epochs - 1} epochs after a "
          f"warm-up; teacher {teacher.count_params():,} params, student "
          f"{student.count_params():,} params:")
    print_against_ideal(labels, figures, target=1.10)


def feature_methods(teacher, samples):
    """`name -> term factory` for the feature methods, on `make_cnn`
    pairs (block outputs and the pooled features)."""
    from keras_kd.terms.srd import teacher_head

    terms = keras_kd.terms
    pool = ("gap", "gap")
    maps = ("block3_out", "block3_out")
    return {
        "rkd": lambda: terms.RKD(*pool),
        "pkt": lambda: terms.PKT(*pool),
        "correlation_congruence": lambda: terms.CorrelationCongruence(
            *pool),
        "similarity_preserving": lambda: terms.SimilarityPreserving(*maps),
        "vid": lambda: terms.VID(*maps),
        "srd": lambda: terms.SRD(*maps, classifier=teacher_head(teacher,
                                                                maps[0])),
        "crd": lambda: terms.CRD(*pool, num_examples=samples),
    }


def run_methods(args):
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    labels = {"y": y, "index": np.arange(args.samples)}
    teacher = make_cnn(args.teacher_widths[0], "teacher")
    sw = args.student_width
    weights = make_cnn(sw, "student", dropout=0.1).get_weights()
    student = fresh_student(sw, weights)
    student.compile(optimizer="adam", loss=keras.losses.
                    SparseCategoricalCrossentropy(from_logits=True))
    figures = {"a": timed_fit(student, x, y, args.epochs, args.batch_size),
               "b": timed_inference(teacher, x, args.epochs,
                                    args.batch_size)}
    ideal = figures["a"] + figures["b"]
    print(f"\n[{keras.backend.backend()}] Feature methods, epoch time "
          f"({args.samples} samples, batch {args.batch_size}): (a) "
          f"{figures['a']:.3f} s + (b) {figures['b']:.3f} s = "
          f"{ideal:.3f} s")
    for name, make in feature_methods(teacher, args.samples).items():
        distiller = keras_kd.Distiller(
            teacher, fresh_student(sw, weights),
            terms=[keras_kd.terms.SoftTargetTerm(temperature=4.0), make()])
        distiller.compile(optimizer="adam")
        seconds = timed_fit(distiller, x, labels, args.epochs,
                            args.batch_size)
        ratio = seconds / ideal
        print(f"  {name:<24s} {seconds:7.3f} s  {ratio:.2f}x  (target "
              f"<= 1.15) {'OK' if ratio <= 1.15 else 'MISSED'}")


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=4,
                        help="epochs per variant; the first is a warm-up")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--student-width", type=int, default=16)
    parser.add_argument("--teacher-widths", type=int, nargs="+",
                        default=[32, 64],
                        help="one run per width: with the default student, "
                        "32 costs 4x its FLOPs and 64 costs 16x")
    parser.add_argument("--models", nargs="+", default=["cnn", "transformer"],
                        choices=["cnn", "transformer", "lm", "methods"])
    args = parser.parse_args()
    if "cnn" in args.models:
        for teacher_width in args.teacher_widths:
            run(args, teacher_width)
    if "transformer" in args.models:
        run_transformer(args)
    if "lm" in args.models:
        run_language_model(args)
    if "methods" in args.models:
        run_methods(args)


if __name__ == "__main__":
    main()
