"""The single-pass `Distiller`: hard labels plus a sum of distillation terms.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_kd import precompute as teacher_values
from keras_kd.capture import LayerCapture
from keras_kd.layer_pairs import pairs_to_config
from keras_kd.layer_pairs import parse_pairs
from keras_kd.layer_pairs import split_teacher_path
from keras_kd.layer_paths import find_layer
from keras_kd.layer_paths import split_index
from keras_kd.losses.soft_target_kd import SoftTargetKD
from keras_kd.terms.attention_maps import AttentionMapTerm
from keras_kd.terms.attention_transfer import AttentionTransferTerm
from keras_kd.terms.hints import HintTerm
from keras_kd.terms.loss_term import as_loss
from keras_kd.terms.soft_targets import SoftTargetTerm
from keras_kd.terms.soft_targets import normalized_weights
from keras_kd.terms.term import TapValues
from keras_kd.terms.term import as_term_list
from keras_kd.utils import compat
from keras_kd.utils.validation import check_non_negative
from keras_kd.utils.validation import check_positive
from keras_kd.utils.validation import check_unit_interval


@keras.saving.register_keras_serializable(package="keras_kd")
class Distiller(keras.Model):
    """Distils frozen teacher(s) into a student in one pass per step.

    Each training step runs every teacher once (inference mode) and the
    student once (training mode); with precomputed teacher values
    (`distiller.precompute`) it does not run the teachers at all. The
    tapped layers of any model — Functional, Sequential or subclassed,
    nested at any depth, keras-hub encoders included — are read during
    those same passes (`keras_kd.capture`), so BatchNorm statistics update
    once, dropout draws one mask for all loss terms, and the step costs
    about one teacher inference plus one ordinary student step. The loss is

    ```
    loss = alpha · student_loss(y, s)
         + Σ_terms weight · (1 − alpha if the term mixes with labels) · term
    ```

    with these terms by default (`keras_kd.terms`):

    - `SoftTargetTerm` (logged `distillation_loss`, already × T²), scaled
      by `1 − alpha`;
    - `attention_pairs` of feature maps: `AttentionTransferTerm`
      (`attention_loss`); of two `keras.layers.MultiHeadAttention` layers:
      `AttentionMapTerm` on their attention probabilities (logged
      `attention_loss`, or `attention_map_loss` beside feature-map pairs);
      both weighted by `attention_weight` and their per-pair weights;
    - `hint_pairs`: `HintTerm` (`hint_loss`, weighted by `hint_weight`),
      whose connectors live in the Distiller: `distiller.student` keeps
      exactly its own parameters and saves without them;
    - any `terms=[...]` you add (`keras_kd.terms.Term` subclasses), logged
      `f"{term.name}_loss"`.

    Layer paths reach anything: `"backbone/block2_out"`, a sublayer held by
    a layer or subclassed model (`"bert/transformer_layer_3/
    self_attention_layer"`), an element of a tuple output (`"lstm[0]"`);
    `"i:path"` names teacher `i`. Features that carry a Keras mask
    (`Embedding(mask_zero=True)` upstream) are compared over valid
    positions only.

    References: Hinton et al., "Distilling the Knowledge in a Neural
    Network", 2015; Zagoruyko & Komodakis, "Paying More Attention to
    Attention", ICLR 2017; Romero et al., "FitNets: Hints for Thin Deep
    Nets", ICLR 2015; Wang et al., "MiniLM", NeurIPS 2020.

    Args:
        teacher: a trained `keras.Model` that outputs logits, or a list of
            them. Teachers are frozen (`trainable = False`) and always called
            with `training=False`.
        student: the `keras.Model` to train; it must output logits for the
            same number of classes as the teacher.
        attention_pairs: optional list of `(teacher_layer, student_layer)` or
            `(teacher_layer, student_layer, weight)`: two layers whose
            outputs are channels-last maps `(B, H, W, C)` or `(B, T, C)`
            (channel counts and spatial sizes may differ), or two
            `MultiHeadAttention` layers with the same query and key lengths.
        hint_pairs: optional list of `(teacher_layer, student_layer[,
            weight])` of features of the same rank: vectors `(B, C)`,
            sequences `(B, T, C)` or maps `(B, H, W, C)`.
        teacher_weights: with several teachers, their weights in the soft
            target average (normalised to sum 1; equal by default).
        terms: optional list of further `keras_kd.terms.Term` objects. A
            `SoftTargetTerm` here replaces the default one.
        name: name of the Distiller model.

    Example:

    ```python
    import keras
    import keras_kd

    def cnn(width, name):
        inputs = keras.Input((28, 28, 1))
        x = keras.layers.Conv2D(width, 3, activation="relu", name="conv")(
            inputs
        )
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)

    teacher, student = cnn(64, "teacher"), cnn(8, "student")
    distiller = keras_kd.Distiller(
        teacher, student, attention_pairs=[("conv", "conv")],
        hint_pairs=[("conv", "conv")],
    )
    distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1,
                      temperature=4.0)
    # distiller.fit(x_train, y_train, epochs=3)
    # distiller.student.save("student.keras")
    ```
    """

    def __init__(self, teacher, student, attention_pairs=None,
                 hint_pairs=None, teacher_weights=None, terms=None,
                 name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        teachers = _as_teacher_list(teacher)
        for each in teachers:
            _check_models(each, student)
        self.teacher_weights = normalized_weights(
            teacher_weights, len(teachers)) or [1.0 / len(teachers)] * len(
                teachers)
        self.attention_pairs = parse_pairs(attention_pairs, "attention_pairs",
                                           len(teachers))
        self.hint_pairs = parse_pairs(hint_pairs, "hint_pairs", len(teachers))
        self.teachers = teachers
        self.student = student
        for each in teachers:
            each.trainable = False
            _check_logits(each, "teacher")
        _check_logits(student, "student")
        for each in teachers:
            _check_num_classes(each, student)

        # Non-trainable variables, so callbacks can change them between
        # epochs even inside a compiled (`jit_compile=True`) step. The
        # default terms share them.
        custom = as_term_list(terms)
        soft = [t for t in custom if isinstance(t, SoftTargetTerm)]
        self.temperature = (soft[0].temperature if soft
                            else self._scalar("temperature", 3.0))
        self.alpha = self._scalar("alpha", 0.1)
        self.attention_weight = self._scalar("attention_weight", 500.0)
        self.hint_weight = self._scalar("hint_weight", 1.0)

        self._custom_terms = custom
        self.terms = self._default_terms(custom) + custom
        _check_term_names(self.terms)
        self._requests = self._teacher_requests()
        self._student_taps = list(dict.fromkeys(
            tap for term in self.terms
            for side, _, tap in term.taps() if side == "student"))
        # Paths are resolved now: an unknown one fails before training.
        LayerCapture(student, self._student_taps, "student")

        self._loss_tracker_total = keras.metrics.Mean(name="loss")
        self._student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self._term_trackers = [keras.metrics.Mean(name=f"{term.name}_loss")
                               for term in self.terms]
        self.student_loss_fn = None
        self._terms_built = False
        spec = _input_spec([student] + teachers)
        if spec is not None:
            self._build_terms(spec)
            self.built = True

    @property
    def teacher(self):
        """The first (with one teacher, the only) teacher."""
        return self.teachers[0]

    @property
    def connectors(self):
        """The trainable connectors of the hint terms."""
        return [c for term in self.terms if isinstance(term, HintTerm)
                for c in term.connectors]

    def _scalar(self, name, value):
        return self.add_weight(
            name=name, shape=(), trainable=False, dtype="float32",
            initializer=keras.initializers.Constant(value))

    def _default_terms(self, custom):
        terms = []
        if not any(isinstance(t, SoftTargetTerm) for t in custom):
            terms.append(SoftTargetTerm(
                temperature=self.temperature,
                teacher_weights=self.teacher_weights, name="distillation"))
        maps, features = [], []
        for pair in self.attention_pairs:
            kinds = [
                isinstance(find_layer(model, split_index(path)[0], side),
                           keras.layers.MultiHeadAttention)
                for model, path, side in (
                    (self.teachers[pair.teacher_index], pair.teacher_layer,
                     "teacher"),
                    (self.student, pair.student_layer, "student"))]
            if kinds[0] != kinds[1]:
                raise ValueError(
                    "An attention pair must name two MultiHeadAttention "
                    "layers or two layers with feature maps, not one of "
                    f"each. Received: teacher layer '{pair.teacher_layer}' "
                    f"({_kind(kinds[0])}) and student layer "
                    f"'{pair.student_layer}' ({_kind(kinds[1])})")
            (maps if kinds[0] else features).append(pair)
        if features:
            terms.append(AttentionTransferTerm(
                pairs_to_config(features), weight=self.attention_weight,
                name="attention"))
        if maps:
            terms.append(AttentionMapTerm(
                pairs_to_config(maps), weight=self.attention_weight,
                name="attention_map" if features else "attention"))
        if self.hint_pairs:
            terms.append(HintTerm(pairs_to_config(self.hint_pairs),
                                  weight=self.hint_weight, name="hint"))
        return terms

    def _teacher_requests(self):
        """What the terms read from the teachers, keyed for storage."""
        requests, seen = [], set()
        for term in self.terms:
            for path in term.teacher_taps():
                index, layer_path = split_teacher_path(
                    path, len(self.teachers), f"{term.name} term")
                tap = [t for side, i, t in term.taps()
                       if side == "teacher" and i == index
                       and t.path == layer_path][0]
                key = teacher_values.storage_key(
                    index, layer_path, term.teacher_signature(path))
                if key not in seen:
                    seen.add(key)
                    requests.append(teacher_values.TeacherRequest(
                        key, index, tap,
                        _Prepare(term, path)))
        for index, teacher in enumerate(self.teachers):
            taps = [r.tap for r in requests if r.teacher_index == index]
            LayerCapture(teacher, taps, "teacher")  # resolves paths now
        return requests

    def _term_keys(self, term):
        """`{path as the term names it: storage key}` of a term."""
        keys = {}
        for path in term.teacher_taps():
            index, layer_path = split_teacher_path(path, len(self.teachers),
                                                   term.name)
            keys[path] = teacher_values.storage_key(
                index, layer_path, term.teacher_signature(path))
        return keys

    def _build_terms(self, spec):
        """Traces one symbolic pass to learn the tapped shapes, then builds
        every term (checks, connectors) before any training."""

        def probe(x):
            for model in [self.student] + self.teachers:
                if not model.built:
                    # Keras builds a subclassed model by calling it once
                    # more: not inside a capture.
                    model(x, training=False)
            logits, values, _ = teacher_values.forward_teachers(
                self.teachers, self._raw_requests(), x)
            student_logits, student, _ = self._student_pass(x, False)
            return logits, values, student_logits, student

        try:
            _, teacher, _, student = compat.compute_output_spec(probe, spec)
        except ValueError as e:
            if "incompatible with the layer" not in str(e):
                raise
            raise ValueError(
                "Teacher and student must accept the same inputs: the "
                "Distiller gives both the same batch. Received inputs "
                f"{keras.tree.map_structure(lambda t: t.shape, spec)} that "
                f"one of them rejects: {e}") from e
        for term in self.terms:
            if term.built:
                continue
            teacher_shapes = {}
            for path in term.teacher_taps():
                index, layer_path = split_teacher_path(
                    path, len(self.teachers), term.name)
                teacher_shapes[path] = tuple(teacher[_raw_key(
                    index, layer_path, term.tap_kind)].shape)
            student_shapes = {path: tuple(student[path].shape)
                              for path in term.student_taps()}
            term.build(teacher_shapes, student_shapes)
        self._terms_built = True

    def _raw_requests(self):
        """Unprepared requests of every tapped teacher layer (for shapes)."""
        raw = {}
        for request in self._requests:
            key = _raw_key(request.teacher_index, request.tap.path,
                           request.tap.kind)
            raw[key] = teacher_values.TeacherRequest(
                key, request.teacher_index, request.tap, _identity)
        return list(raw.values())

    def build(self, input_shape):
        # Subclassed models: the terms are built from the first batch, in
        # `call` (Keras traces it symbolically before training).
        pass

    def compile(
        self,
        optimizer="adam",
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha=0.1,
        temperature=None,
        attention_weight=500.0,
        attention_loss_fn=None,
        hint_weight=1.0,
        hint_loss_fn=None,
        attention_map_loss_fn=None,
        **kwargs,
    ):
        """Configures the Distiller for training.

        Args:
            optimizer: optimizer name or instance. Wrapped in a
                `keras.optimizers.LossScaleOptimizer` when the student
                computes in float16.
            metrics: metrics computed on the student's logits.
            student_loss_fn: hard-label loss on logits. Defaults to
                `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`.
            distillation_loss_fn: the soft-target loss, see
                `keras_kd.terms.SoftTargetTerm`: defaults to
                `keras_kd.losses.SoftTargetKD`, used as given (its reduction
                and subclass `call` too) with the Distiller's temperature;
                any other loss (`keras.losses.KLDivergence()`,
                `"kl_divergence"`, a function) is given the softened
                probabilities and multiplied by `T²`.
            alpha: weight of the hard-label loss, in [0, 1]; the soft targets
                get `1 − alpha`.
            temperature: softening temperature `T > 0`. Defaults to the
                temperature of a `SoftTargetKD` given as
                `distillation_loss_fn`, else 3.
            attention_weight: `≥ 0`, multiplies the attention terms. The
                default 500 is β/2 with the paper's β = 1000 for
                `AttentionTransfer(mode="code")`.
            attention_loss_fn: loss of each attention pair of feature maps.
                Defaults to `keras_kd.losses.AttentionTransfer()`.
            hint_weight: `≥ 0`, multiplies the hint term.
            hint_loss_fn: loss between each teacher feature and the
                connector's output. Defaults to `keras_kd.losses.HintMSE()`.
            attention_map_loss_fn: loss of each attention pair of
                `MultiHeadAttention` layers, given attention probabilities.
                Defaults to `keras_kd.losses.AttentionMapKD(mode="kl")`.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, ...). `loss` is not accepted: use
                `student_loss_fn`.
        """
        if "loss" in kwargs:
            raise TypeError(
                "`Distiller.compile` does not take `loss`: pass the hard-label "
                "loss as `student_loss_fn`. Received: "
                f"loss={kwargs['loss']!r}"
            )
        temperature = _resolve_temperature(temperature, distillation_loss_fn)
        alpha = check_unit_interval("alpha", alpha)
        attention_weight = check_non_negative(
            "attention_weight", attention_weight
        )
        hint_weight = check_non_negative("hint_weight", hint_weight)
        self.student_loss_fn = as_loss(
            student_loss_fn
            or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "student_loss_fn",
        )
        given = {
            SoftTargetTerm: (distillation_loss_fn, "distillation_loss_fn"),
            AttentionTransferTerm: (attention_loss_fn, "attention_loss_fn"),
            AttentionMapTerm: (attention_map_loss_fn,
                               "attention_map_loss_fn"),
            HintTerm: (hint_loss_fn, "hint_loss_fn"),
        }
        for term in self.terms:
            loss, argument = given.get(type(term), (None, None))
            if term in self._custom_terms and loss is None:
                continue  # your own term keeps its own loss
            if argument is not None:
                term.loss_fn = as_loss(loss or term.default_loss(),
                                       argument)
        self._requests = self._teacher_requests()

        optimizer = keras.optimizers.get(optimizer)
        if _computes_in_float16(self.student) and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self._kd_compile_args = {
            "optimizer": optimizer,
            "metrics": metrics,
            "student_loss_fn": student_loss_fn,
            "distillation_loss_fn": distillation_loss_fn,
            "alpha": alpha,
            "temperature": temperature,
            "attention_weight": attention_weight,
            "attention_loss_fn": attention_loss_fn,
            "hint_weight": hint_weight,
            "hint_loss_fn": hint_loss_fn,
            "attention_map_loss_fn": attention_map_loss_fn,
            **kwargs,
        }
        self.temperature.assign(temperature)
        self.alpha.assign(alpha)
        self.attention_weight.assign(attention_weight)
        self.hint_weight.assign(hint_weight)

    def get_compile_config(self):
        if not self.compiled:
            return {}
        return keras.saving.serialize_keras_object(self._kd_compile_args)

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        metrics = [self._loss_tracker_total, self._student_loss_tracker,
                   *self._term_trackers]
        if getattr(self, "_compile_metrics", None) is not None:
            metrics.append(self._compile_metrics)
        return metrics

    def call(self, inputs, training=None):
        if not self._terms_built:
            self._build_terms(keras.tree.map_structure(
                lambda t: keras.KerasTensor(t.shape, t.dtype), inputs))
        return self.student(inputs, training=training)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras's own fails under MultiWorkerMirroredStrategy (#20585).
        return compat.symbolic_build_multi_worker(
            self, super()._maybe_symbolic_build, iterator, data_batch)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_labels(y, "y")
        validation = kwargs.get("validation_data")
        if isinstance(validation, tuple) and len(validation) >= 2:
            self._check_labels(validation[1], "validation_data")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_labels(y, "y")
        return super().evaluate(x, y, *args, **kwargs)

    def _check_labels(self, y, argument):
        """Integer labels in arrays must index the student's classes; a
        graph error deep in the loss would say much less."""
        if not isinstance(y, (np.ndarray, list)):
            return
        labels = np.asarray(y)
        classes = _num_classes(self.student) or _num_classes(self.teacher)
        if classes is None or labels.size == 0 or not np.issubdtype(
                labels.dtype, np.integer):
            return
        if labels.min() < 0 or labels.max() >= classes:
            raise ValueError(
                f"Argument `{argument}` must hold integer class labels in "
                f"[0, {classes}) for a student with {classes} classes. "
                f"Received labels from {labels.min()} to {labels.max()}.")

    def precompute(self, dataset, batch_size=256, in_memory=True,
                   directory=None, top_k=None, shard_size=16384, verbose=1):
        """Runs the teachers once over `dataset` and stores what the terms
        need, keyed by layer path and term (see
        `keras_kd.precompute_teacher`, whose arguments these are).

        Example:

        ```python
        train = distiller.precompute(unbatched_train)
        distiller.fit(train.shuffle(10_000).batch(128), epochs=10)
        ```
        """
        return teacher_values.run_teachers(
            self.teachers, dataset, self._requests, batch_size=batch_size,
            in_memory=in_memory, directory=directory, top_k=top_k,
            shard_size=shard_size, verbose=verbose)

    def _teacher_pass(self, x, y):
        """Labels, teacher logits and prepared values, stored or live."""
        if isinstance(y, dict) and (teacher_values.TEACHER_LOGITS in y or
                                    teacher_values.TEACHER_TOP_K in y):
            logits, values = teacher_values.stored_values(
                y, self._requests, len(self.teachers))
            return y[teacher_values.LABELS], logits, values, {}
        logits, values, masks = teacher_values.forward_teachers(
            self.teachers, self._requests, x)
        return y, logits, values, masks

    def _student_pass(self, x, training):
        if not self._student_taps:
            return self.student(x, training=training), {}, {}
        with LayerCapture(self.student, self._student_taps,
                          "student") as capture:
            logits = self.student(x, training=training)
        captured = capture.result()
        return (logits, {t.path: v.value for t, v in captured.items()},
                {t.path: v.mask for t, v in captured.items()})

    def compute_losses(self, y, teacher_logits, teacher, teacher_masks,
                       student_logits, student, student_masks,
                       sample_weight=None):
        """Every loss of one step, float32 scalars keyed by log name.

        Like every Keras loss, each is divided by the number of replicas
        under a `tf.distribute` strategy, so that summing gradients over
        replicas averages them.
        """
        student_logits = ops.cast(student_logits, "float32")
        student_loss = self.student_loss_fn(y, student_logits,
                                            sample_weight=sample_weight)
        alpha = ops.cast(self.alpha, "float32")
        total = alpha * student_loss
        losses = {"student_loss": student_loss}
        for term in self.terms:
            keys = self._term_keys(term)
            value = term.compute_loss(
                TapValues({p: teacher[k] for p, k in keys.items()},
                          {p: teacher_masks.get(k) for p, k in keys.items()},
                          teacher_logits),
                TapValues({p: student[p] for p in term.student_taps()},
                          {p: student_masks[p] for p in term.student_taps()},
                          student_logits),
                sample_weight=sample_weight)
            value = ops.cast(value, "float32")
            if len(value.shape) == 1:
                value = term.reduce(value, sample_weight)
            elif len(value.shape) != 0:
                raise ValueError(
                    f"Term '{term.name}' must return a scalar or per-example "
                    f"values (batch,). Received shape {tuple(value.shape)}")
            factor = ops.cast(term.weight, "float32")
            if term.mixes_with_labels:
                factor = factor * (1.0 - alpha)
            total += factor * value
            losses[f"{term.name}_loss"] = value
        losses["loss"] = total
        return losses

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._check_compiled()
        y, teacher_logits, teacher, teacher_masks = self._teacher_pass(x, y)
        with tf.GradientTape() as tape:
            logits, student, student_masks = self._student_pass(x, True)
            teacher_logits = teacher_values.dense_teacher_logits(
                teacher_logits, logits.shape[-1], self.temperature)
            losses = self.compute_losses(
                y, teacher_logits, teacher, teacher_masks, logits, student,
                student_masks, sample_weight)
            scaled_loss = self.optimizer.scale_loss(losses["loss"])
        # Read after the forward pass: a subclassed student builds in it.
        variables = self.student.trainable_variables + [
            v for term in self.terms for v in term.trainable_variables]
        gradients = tape.gradient(scaled_loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return _reducible_logs(
            self._update_metrics(x, y, logits, losses, sample_weight))

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._check_compiled()
        y, teacher_logits, teacher, teacher_masks = self._teacher_pass(x, y)
        logits, student, student_masks = self._student_pass(x, False)
        teacher_logits = teacher_values.dense_teacher_logits(
            teacher_logits, logits.shape[-1], self.temperature)
        losses = self.compute_losses(
            y, teacher_logits, teacher, teacher_masks, logits, student,
            student_masks, sample_weight)
        return _reducible_logs(
            self._update_metrics(x, y, logits, losses, sample_weight))

    def _update_metrics(self, x, y, student_logits, losses, sample_weight):
        batch_size = ops.shape(student_logits)[0]
        # Undo the per-replica scaling of the losses for logging.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for tracker in [self._loss_tracker_total,
                        self._student_loss_tracker, *self._term_trackers]:
            tracker.update_state(losses[tracker.name] * replicas,
                                 sample_weight=batch_size)
        return self.compute_metrics(
            x, y, student_logits, sample_weight=sample_weight
        )

    def _check_compiled(self):
        if self.student_loss_fn is None:
            raise ValueError(
                "You must call `Distiller.compile()` before `fit()` or "
                "`evaluate()`."
            )

    def get_config(self):
        config = super().get_config()
        teachers = [keras.saving.serialize_keras_object(t)
                    for t in self.teachers]
        config.update(
            {
                "teacher": teachers[0] if len(teachers) == 1 else teachers,
                "student": keras.saving.serialize_keras_object(self.student),
                "attention_pairs": pairs_to_config(self.attention_pairs),
                "hint_pairs": pairs_to_config(self.hint_pairs),
                "teacher_weights": (list(self.teacher_weights)
                                    if len(teachers) > 1 else None),
                "terms": [keras.saving.serialize_keras_object(t)
                          for t in self._custom_terms] or None,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        teacher = config["teacher"]
        config["teacher"] = (
            [keras.saving.deserialize_keras_object(t) for t in teacher]
            if isinstance(teacher, list)
            else keras.saving.deserialize_keras_object(teacher)
        )
        config["student"] = keras.saving.deserialize_keras_object(
            config["student"]
        )
        for key in ("attention_pairs", "hint_pairs"):
            config[key] = [tuple(p) for p in config.get(key) or []]
        if config.get("terms"):
            config["terms"] = [keras.saving.deserialize_keras_object(t)
                               for t in config["terms"]]
        return cls(**config)


class _Prepare:
    """`term.prepare_teacher(path, ·)` as a one-argument function."""

    def __init__(self, term, path):
        self.term, self.path = term, path

    def __call__(self, value):
        return self.term.prepare_teacher(self.path, value)


def _identity(value):
    return value


def _raw_key(index, path, kind):
    return f"{index}:{path}|raw {kind}"


def _kind(is_attention):
    return "MultiHeadAttention" if is_attention else "feature map"


def _input_spec(models):
    """Symbolic inputs from the first Functional/Sequential model, if any."""
    for model in models:
        if not compat.is_graph_model(model):
            continue
        try:
            inputs = model.input
        except (AttributeError, ValueError):
            continue
        return keras.tree.map_structure(
            lambda t: keras.KerasTensor(t.shape, t.dtype), inputs)
    return None


def _resolve_temperature(temperature, distillation_loss_fn):
    own = (distillation_loss_fn.temperature
           if isinstance(distillation_loss_fn, SoftTargetKD) else None)
    if temperature is None:
        return own if own is not None else 3.0
    temperature = check_positive("temperature", temperature)
    if own is not None and own != temperature:
        raise ValueError(
            "The `SoftTargetKD` given as `distillation_loss_fn` has "
            f"temperature={own}, but `compile` received "
            f"temperature={temperature}. The Distiller's `temperature` "
            "governs; make them agree (or leave `temperature` out).")
    return temperature


def _check_term_names(terms):
    names = [term.name for term in terms]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"Each term of a Distiller needs its own name (its loss is "
            f"logged as '<name>_loss'). Received the names {names}; "
            f"repeated: {duplicates}")


def _as_teacher_list(teacher):
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [
        teacher]
    if not teachers:
        raise ValueError(
            "Argument `teacher` must be a keras.Model or a non-empty list of "
            f"them. Received: teacher={teacher!r}"
        )
    if len({id(t) for t in teachers}) != len(teachers):
        raise ValueError(
            "Argument `teacher` lists the same model more than once. "
            f"Received: {[t.name for t in teachers]}"
        )
    return teachers


def _check_models(teacher, student):
    for argument, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"Argument `{argument}` must be a `keras.Model`. Received: "
                f"{argument}={model!r} (of type {type(model).__name__})"
            )
    if teacher is student:
        raise ValueError(
            "Arguments `teacher` and `student` must be different model "
            f"objects. Received the same model '{teacher.name}' for both."
        )


def _output_layer(model):
    """The leaf layer producing a Functional/Sequential model's output."""
    while isinstance(model, keras.Model):
        if isinstance(model, keras.Sequential):
            if not model.layers:
                return None
            model = model.layers[-1]
            continue
        if not compat.is_graph_model(model) or len(model.outputs) != 1:
            return None
        model = compat.producing_layer(model.outputs[0])
        if model is None:
            return None
    return model


def _check_logits(model, argument):
    if compat.is_graph_model(model) and len(model.outputs) != 1:
        raise ValueError(
            f"The {argument} must have a single output of class logits. "
            f"Received: {argument} '{model.name}' with "
            f"{len(model.outputs)} outputs"
        )
    layer = _output_layer(model)
    if isinstance(layer, keras.layers.Softmax) or (
        getattr(layer, "activation", None) is keras.activations.softmax
    ):
        raise ValueError(
            f"The {argument} must output logits, but its output layer "
            f"'{layer.name}' applies a softmax. Remove the softmax (or use "
            f"activation=None) from {argument} '{model.name}'; the Distiller "
            "applies the temperature softmax itself."
        )


def _reducible_logs(logs):
    """Step logs Keras can reduce across workers.

    Under `MultiWorkerMirroredStrategy` Keras 3 reduces each returned value
    with `strategy.reduce("MEAN", value, axis=0)`, which fails for scalars
    ("Invalid reduction dimension 0", keras-team/keras#20585): they get
    that axis. Epoch logs and `History` come from the metrics themselves,
    as plain floats.
    """
    if isinstance(tf.distribute.get_strategy(),
                  tf.distribute.MultiWorkerMirroredStrategy):
        return {name: ops.reshape(value, (1,)) if len(value.shape) == 0
                else value for name, value in logs.items()}
    return logs


def _num_classes(model):
    if not compat.is_graph_model(model):
        return None  # Subclassed model: no symbolic output.
    return model.outputs[0].shape[-1]


def _check_num_classes(teacher, student):
    teacher_classes, student_classes = _num_classes(teacher), _num_classes(
        student
    )
    if (
        teacher_classes is not None
        and student_classes is not None
        and teacher_classes != student_classes
    ):
        raise ValueError(
            "Teacher and student must output logits for the same number of "
            f"classes. Received: teacher '{teacher.name}' with "
            f"{teacher_classes} classes and student '{student.name}' with "
            f"{student_classes} classes"
        )


def _computes_in_float16(model):
    return any(
        layer.dtype_policy.compute_dtype == "float16"
        for layer in compat.all_layers(model)
    )
