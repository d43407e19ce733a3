"""The single-pass `Distiller`: hard labels plus a sum of distillation terms.
"""

import keras
import numpy as np
from keras import ops

from keras_kd import labels as label_checks
from keras_kd import model_checks
from keras_kd import precompute as teacher_values
from keras_kd.capture import LayerCapture
from keras_kd.layer_pairs import parse_pairs
from keras_kd.tap_plan import TapPlan
from keras_kd.terms import shorthands
from keras_kd.terms.pair_term import masked
from keras_kd.terms.soft_targets import normalized_weights
from keras_kd.terms.term import as_term_list
from keras_kd.terms.term import check_term_names
from keras_kd.utils import compat
from keras_kd.utils.validation import check_bool
from keras_kd.utils.validation import check_unit_interval


def token_masks(values, masks, mask, steps):
    """`masks` with the token mask of sequence logits given to tapped
    `(batch, steps, features)` values that carry none (keras-hub decoder
    and encoder layers take `padding_mask` as an argument, not as a Keras
    mask), so hints between them average over valid tokens only."""
    if mask is None:
        return masks
    masks = dict(masks)
    for key, value in values.items():
        if key not in masks and len(value.shape) == 3 and (
                value.shape[1] == steps):
            masks[key] = mask
    return masks


@keras.saving.register_keras_serializable(package="keras_kd")
class Distiller(keras.Model):
    """Distils frozen teacher(s) into a student in one pass per step.

    Keras runs the step (`fit`, `evaluate`, any backend, `tf.distribute`,
    `keras.distribution`); the Distiller reads what its terms need from one
    student pass (training mode) and one pass of each teacher (inference
    mode; none after `precompute`), and sums

    ```
    loss = alpha · hard_label_loss(y, s)
         + Σ_terms weight · (1 − alpha if the term mixes with labels) · term
         + the student's own losses (regularizers, `add_loss`)
    ```

    Terms (`keras_kd.terms`) are the whole configuration: each owns its
    layer pairs, weight, loss and temperature, and logs
    `f"{term.name}_loss"`. `attention_pairs` and `hint_pairs` are
    shorthands for `AttentionTransferTerm` (feature maps, weight 500),
    `AttentionMapTerm` (`MultiHeadAttention` probabilities, weight 1) and
    `HintTerm` (weight 1); a `SoftTargetTerm` (`T = 3`) is there unless
    `terms` gives one (`keras_kd.terms.shorthands`). Layer paths reach
    nested layers, sublayers of keras-hub encoders, `"lstm[0]"`, and
    `"1:path"` of teacher 1.

    References: Hinton et al., "Distilling the Knowledge in a Neural
    Network", 2015; Zagoruyko & Komodakis, ICLR 2017; Romero et al.,
    "FitNets", ICLR 2015; Wang et al., "MiniLM", NeurIPS 2020.

    Args:
        teacher: a trained `keras.Model` that outputs logits, or a list;
            frozen, always run with `training=False`.
        student: the `keras.Model` to train (logits for the same classes).
        attention_pairs: `(teacher_layer, student_layer[, weight])` of
            feature maps or of two `MultiHeadAttention` layers.
        hint_pairs: `(teacher_layer, student_layer[, weight])` of features
            of the same rank.
        teacher_weights: weights of several teachers in the soft targets.
        terms: further `keras_kd.terms.Term` objects; a `SoftTargetTerm`
            here replaces the default one.
        check_logits: refuse models whose outputs on a probe batch look
            like probabilities (`False` for logits that do).
        name: name of the Distiller model.

    Example:

    ```python
    import keras
    import keras_kd

    def cnn(width, name):
        inputs = keras.Input((28, 28, 1))
        x = keras.layers.Conv2D(width, 3, activation="relu", name="conv")(
            inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)

    distiller = keras_kd.Distiller(
        cnn(64, "teacher"), cnn(8, "student"), attention_pairs=[("conv",
        "conv")], terms=[keras_kd.terms.SoftTargetTerm(temperature=4.0)])
    distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1)
    # distiller.fit(x_train, y_train, epochs=3)
    ```
    """

    def __init__(self, teacher, student, attention_pairs=None,
                 hint_pairs=None, teacher_weights=None, terms=None,
                 check_logits=True, name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        teachers = model_checks.as_teacher_list(teacher)
        for each in teachers:
            model_checks.check_models(each, student)
            each.trainable = False
        self.teachers, self.student = teachers, student
        self.check_logits = check_bool("check_logits", check_logits)
        pairs = [parse_pairs(p, a, len(teachers)) for p, a in (
            (attention_pairs, "attention_pairs"), (hint_pairs, "hint_pairs"))]
        self.terms = shorthands.default_terms(
            teachers, student, *pairs,
            normalized_weights(teacher_weights, len(teachers)),
            as_term_list(terms))
        check_term_names(self.terms)
        self.plan = TapPlan(self.terms, len(teachers))
        self.plan.resolve(teachers, student)
        self.alpha = self.add_weight(
            name="alpha", shape=(), trainable=False, dtype="float32",
            initializer=keras.initializers.Constant(0.1))
        self._student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self._term_trackers = [keras.metrics.Mean(name=f"{term.name}_loss")
                               for term in self.terms]
        self.student_loss_fn = None
        self._terms_built = self._logits_checked = False
        spec = model_checks.input_spec([student] + teachers)
        if spec is not None:
            self._build_terms(spec)
            self._check_outputs(model_checks.probe_batch(spec))
            self.built = True

    @property
    def teacher(self):
        """The first (with one teacher, the only) teacher."""
        return self.teachers[0]

    @property
    def temperature(self):
        """The soft-target term's temperature variable."""
        return shorthands.resolve_variables(self, "temperature")[0][0]

    @property
    def teacher_weights(self):
        """The soft-target term's teacher weights (normalised)."""
        term = [t for t in self.terms if t.mixes_with_labels][0]
        count = len(self.teachers)
        return term.teacher_weights or [1.0 / count] * count

    @property
    def connectors(self):
        """The trainable layers the terms own (hint connectors)."""
        return [layer for term in self.terms
                for layer in compat.direct_sublayers(term)]

    def _build_terms(self, spec):
        """Builds every term (checks, connectors) from the tapped shapes
        of one symbolic pass, before any training."""
        raw = self.plan.probe(self.teachers, self.student, spec)
        for term in self.terms:
            if not term.built:
                term.build(*self.plan.shapes(term, raw))
        self._terms_built = True

    def _check_outputs(self, batch):
        if self.check_logits and not self._logits_checked:
            model_checks.check_logits_by_value(
                [("teacher", t) for t in self.teachers]
                + [("student", self.student)], batch)
        self._logits_checked = True

    def build(self, input_shape):
        # Subclassed models: the terms are built from the first batch, in
        # `call` (Keras traces it symbolically before training).
        pass

    def call(self, inputs, training=None):
        """The student's logits and tapped values, from one pass:
        `{"logits", "values", "masks"}` (`predict` gives the logits)."""
        if not self._terms_built:
            self._build_terms(keras.tree.map_structure(
                lambda t: keras.KerasTensor(t.shape, t.dtype), inputs))
        with LayerCapture(self.student, self.plan.student_taps,
                          "student") as capture:
            logits = self.student(inputs, training=training)
        values, masks = self.plan.student_values(capture.result())
        return {"logits": logits, "values": values, "masks": masks}

    def compile(self, optimizer="adam", loss=None, metrics=None, alpha=0.1,
                student_loss_fn=None, **kwargs):
        """Configures training; shorthands left out change no term.

        Args:
            optimizer: wrapped in a `LossScaleOptimizer` for float16
                students.
            loss: the hard-label loss on the student's logits (see
                `keras_kd.labels`); `student_loss_fn` is its alias.
            metrics: metrics on the student's logits.
            alpha: weight of the hard-label loss, in [0, 1]; terms that
                mix with labels (soft targets) get `1 − alpha`.
            **kwargs: the term shorthands `temperature`, `attention_weight`,
                `hint_weight` (set the soft-target term's temperature, the
                attention and hint terms' weights), `distillation_loss_fn`,
                `attention_loss_fn`, `attention_map_loss_fn`,
                `hint_loss_fn` (replace their losses)
                (`keras_kd.terms.shorthands`); the rest go to
                `keras.Model.compile` (`jit_compile`, ...).
        """
        self.student_loss_fn = label_checks.student_loss(loss,
                                                         student_loss_fn)
        alpha = check_unit_interval("alpha", alpha)
        given = {name: kwargs.pop(name)
                 for name in shorthands.COMPILE_SHORTHANDS if name in kwargs}
        shorthands.apply_compile(self.terms, given)
        self.plan = TapPlan(self.terms, len(self.teachers))  # new losses
        optimizer = keras.optimizers.get(optimizer)
        if model_checks.computes_in_float16(self.student) and not isinstance(
                optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.alpha.assign(alpha)
        self._kd_compile_args = {"optimizer": optimizer, "metrics": metrics,
                                 "loss": loss or student_loss_fn,
                                 "alpha": alpha, **given, **kwargs}

    def get_compile_config(self):
        if not self.compiled:
            return {}
        return keras.saving.serialize_keras_object(self._kd_compile_args)

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        """The total loss of one step; updates the per-term trackers."""
        if self.student_loss_fn is None:
            raise ValueError("You must call `Distiller.compile()` before "
                             "`fit()` or `evaluate()`.")
        if y_pred is None:
            y_pred = self(x, training=training)
        own = [compat.scale_for_replicas(ops.sum(ops.cast(v, "float32")))
               for v in self.losses]  # read before the teachers run
        x, y, sample_weight, mask = self.loss_inputs(x, y, y_pred,
                                                     sample_weight)
        y, indices = teacher_values.split_example_index(y)
        labels, teacher = teacher_values.teacher_pass(
            self.teachers, self.plan.teacher_requests, x, y,
            len(y_pred["logits"].shape))
        logits = masked(ops.cast(y_pred["logits"], "float32"), mask)
        student = (logits, y_pred["values"],
                   token_masks(y_pred["values"], y_pred["masks"], mask,
                               logits.shape[1]))
        alpha = ops.cast(self.alpha, "float32")
        value = self.student_loss_fn(labels, logits,
                                     sample_weight=sample_weight)
        logged = [(self._student_loss_tracker, value)]
        total = alpha * self.hard_label_scale(y_pred) * value + sum(own)
        for term, tracker in zip(self.terms, self._term_trackers):
            value = term.reduced_loss(
                *self.plan.term_inputs(term, teacher, student, labels,
                                       indices),
                sample_weight=sample_weight)
            factor = ops.cast(term.weight, "float32")
            if term.mixes_with_labels:
                factor = factor * (1.0 - alpha)
            total = total + factor * value
            logged.append((tracker, value))
        for tracker, value in logged:
            tracker.update_state(compat.unscale_for_replicas(value),
                                 sample_weight=ops.shape(logits)[0])
        return total

    def loss_inputs(self, x, y, y_pred, sample_weight):
        """`(x, y, sample_weight, mask)` the losses of one step read:
        the batch, and the token mask of sequence logits
        (`keras_kd.labels.token_mask`). Subclasses that change the batch
        inside `call` (`keras_kd.lm.OnPolicyDistiller`) override it."""
        return x, y, sample_weight, label_checks.token_mask(
            x, y_pred["logits"])

    def hard_label_scale(self, y_pred):
        """A factor on the hard-label loss of this step (1 here; 0 in the
        on-policy steps of `keras_kd.lm.OnPolicyDistiller`, whose labels
        would be the student's own samples)."""
        return 1.0

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        y, _ = teacher_values.split_example_index(y)
        if isinstance(y, dict) and teacher_values.LABELS in y:
            y = y[teacher_values.LABELS]
        if isinstance(y_pred, dict):
            y_pred = y_pred["logits"]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def train_step(self, *args, **kwargs):
        return compat.reducible_logs(super().train_step(*args, **kwargs))

    def test_step(self, *args, **kwargs):
        return compat.reducible_logs(super().test_step(*args, **kwargs))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras's own fails under MultiWorkerMirroredStrategy (#20585).
        return compat.symbolic_build_multi_worker(
            self, super()._maybe_symbolic_build, iterator, data_batch)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_data(x, y, "y")
        validation = kwargs.get("validation_data")
        if isinstance(validation, tuple) and len(validation) >= 2:
            self._check_data(*validation[:2], "validation_data")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_data(x, y, "y")
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """The student's predictions (its logits)."""
        return self.student.predict(x, *args, **kwargs)

    def _check_data(self, x, y, argument):
        """Softmax outputs, labels the loss cannot take, stored teacher
        values the terms do not find: before training, not in a step."""
        if isinstance(x, (np.ndarray, list, dict)):
            self._check_outputs(keras.tree.map_structure(
                lambda v: np.asarray(v)[:4], x))
        label_checks.check_fit_data(self, x, y, argument)

    def precompute(self, dataset, batch_size=256, in_memory=True,
                   directory=None, top_k=None, shard_size=16384, verbose=1):
        """Runs the teachers once over `dataset` and stores what the terms
        need, keyed by the tap plan (see `keras_kd.precompute_teacher`,
        whose arguments these are).

        Example:

        ```python
        train = distiller.precompute(unbatched_train)
        distiller.fit(train.shuffle(10_000).batch(128), epochs=10)
        ```
        """
        return teacher_values.run_teachers(
            self.teachers, dataset, self.plan.teacher_requests,
            batch_size=batch_size, in_memory=in_memory, directory=directory,
            top_k=top_k, shard_size=shard_size, verbose=verbose)

    def get_config(self):
        config = super().get_config()
        teachers = [keras.saving.serialize_keras_object(t)
                    for t in self.teachers]
        config.update({
            "teacher": teachers[0] if len(teachers) == 1 else teachers,
            "student": keras.saving.serialize_keras_object(self.student),
            "terms": [keras.saving.serialize_keras_object(t)
                      for t in self.terms],
            "check_logits": self.check_logits})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        teacher = config["teacher"]
        config["teacher"] = (
            [keras.saving.deserialize_keras_object(t) for t in teacher]
            if isinstance(teacher, list)
            else keras.saving.deserialize_keras_object(teacher))
        for key in ("student", "terms"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
