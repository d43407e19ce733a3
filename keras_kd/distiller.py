"""The single-pass `Distiller`: soft targets + hard labels + attention maps."""

import math

import keras
import tensorflow as tf
from keras import ops
from keras.src.backend import set_keras_mask

from keras_kd.losses.hint_mse import HintMSE
from keras_kd.hints import check_hint_shapes
from keras_kd.hints import make_connector
from keras_kd.hints import match_feature_size
from keras_kd.layer_pairs import pairs_to_config
from keras_kd.layer_pairs import parse_pairs
from keras_kd.layer_taps import as_list
from keras_kd.layer_taps import is_attention_probability_tap
from keras_kd.layer_taps import tap_model
from keras_kd.layer_taps import tap_teachers
from keras_kd.losses.attention_map_kd import AttentionMapKD
from keras_kd.losses.attention_map_kd import check_same_lengths
from keras_kd.losses.attention_transfer import AttentionTransfer
from keras_kd.losses.soft_target_kd import SoftTargetKD
from keras_kd.losses.soft_target_kd import soft_target_kd
from keras_kd.precompute import LABELS
from keras_kd.precompute import TEACHER_HINTS
from keras_kd.precompute import TEACHER_LOGITS
from keras_kd.precompute import TEACHER_MAPS
from keras_kd.utils.validation import check_non_negative
from keras_kd.utils.validation import check_positive
from keras_kd.utils.validation import check_unit_interval


@keras.saving.register_keras_serializable(package="keras_kd")
class Distiller(keras.Model):
    """Distils frozen teacher(s) into a student in one pass per step.

    Each training step runs every teacher once (inference mode) and the
    student once (training mode); with data from
    `keras_kd.precompute_teacher` it does not run the teachers at all. That
    single student pass yields the logits *and* every tapped intermediate
    layer, so BatchNorm statistics update once, dropout draws one mask for
    all loss terms, and the step costs about one teacher inference plus one
    ordinary student step. The loss is

    ```
    loss = alpha · student_loss(y, s)
         + (1 − alpha) · distillation_loss          # already × T²
         + attention_weight · Σ_attention_pairs w_i · AT_i
         + hint_weight · Σ_hint_pairs w_j · MSE(t_j, connector_j(s_j))
    ```

    - Attention pairs of feature maps use `AttentionTransfer`; pairs of
      `keras.layers.MultiHeadAttention` layers use `AttentionMapKD` on the
      attention probabilities `(batch, heads, query, key)`, captured in the
      same pass without rebuilding the model (head counts may differ;
      padding masks are respected).
    - Hint pairs (FitNets) project the student feature with a trainable
      connector (1×1 `Conv2D` for maps, `Dense` for vectors and sequences)
      that lives in the Distiller: `distiller.student` keeps exactly its own
      parameters and saves without it.
    - With several teachers the soft targets are the weighted average
      `Σ_i w_i softmax(t_i/T)`; a layer path names the first teacher, or
      teacher `i` with the prefix `"i:"` (`"1:block2_out"`).

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
            `(teacher_layer, student_layer, weight)`. Either two layers whose
            outputs are channels-last maps of rank 4 `(B, H, W, C)` or rank 3
            `(B, T, C)` (channel counts may differ; spatial sizes are matched
            as in `keras_kd.losses.AttentionTransfer`), or two
            `MultiHeadAttention` layers with the same query and key lengths.
            Names may reach into nested models with `/`
            (`"backbone/block2_out"`). Layer pairs need Functional or
            Sequential models.
        hint_pairs: optional list of `(teacher_layer, student_layer[,
            weight])` of features of the same rank: vectors `(B, C)`,
            sequences `(B, T, C)` or maps `(B, H, W, C)`; spatial sizes are
            matched by area resizing.
        teacher_weights: with several teachers, their weights in the soft
            target average (normalised to sum 1; equal by default).
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
                 hint_pairs=None, teacher_weights=None, name="distiller",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        teachers = _as_teacher_list(teacher)
        for each in teachers:
            _check_models(each, student)
        self.teacher_weights = _check_teacher_weights(teacher_weights,
                                                      len(teachers))
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

        pairs = self.attention_pairs + self.hint_pairs
        # `_teacher_slots`: where each pair's teacher value sits in its
        # teacher's tap outputs.
        teacher_taps, self._teacher_slots = tap_teachers(
            teachers, [(p.teacher_index, p.teacher_layer) for p in pairs]
        )
        student_taps = (
            tap_model(student, [p.student_layer for p in pairs], "student")
            if pairs else student
        )
        self._attention_kinds = _check_attention_pairs(
            self.attention_pairs, teacher_taps, self._teacher_slots,
            student_taps
        )
        self.connectors = _make_connectors(
            self.hint_pairs, teacher_taps,
            self._teacher_slots[len(self.attention_pairs):], student_taps,
            len(self.attention_pairs),
        )
        # Kept out of Keras' tracking: they share every layer and weight with
        # `teachers`/`student`, which are the tracked, saved objects.
        object.__setattr__(self, "_teacher_taps", teacher_taps)
        object.__setattr__(self, "_student_taps", student_taps)

        # Non-trainable variables, so callbacks can change them between
        # epochs even inside a compiled (`jit_compile=True`) step.
        self.temperature = self._scalar("temperature", 3.0)
        self.alpha = self._scalar("alpha", 0.1)
        self.attention_weight = self._scalar("attention_weight", 500.0)
        self.hint_weight = self._scalar("hint_weight", 1.0)

        self._loss_tracker_total = keras.metrics.Mean(name="loss")
        self._student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self._distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        self._attention_loss_tracker = keras.metrics.Mean(
            name="attention_loss"
        )
        self._hint_loss_tracker = keras.metrics.Mean(name="hint_loss")
        self.student_loss_fn = None
        self.distillation_loss_fn = None
        self.attention_loss_fn = None
        self.attention_map_loss_fn = None
        self.hint_loss_fn = None
        if all(each.built for each in teachers) and student.built:
            self.built = True

    @property
    def teacher(self):
        """The first (with one teacher, the only) teacher."""
        return self.teachers[0]

    def _scalar(self, name, value):
        return self.add_weight(
            name=name,
            shape=(),
            initializer=keras.initializers.Constant(value),
            trainable=False,
            dtype="float32",
        )

    def compile(
        self,
        optimizer="adam",
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha=0.1,
        temperature=3.0,
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
            distillation_loss_fn: defaults to
                `keras_kd.losses.SoftTargetKD(temperature)`, computed from
                logits. Any other loss (a `keras.losses.Loss`, a function or a
                name such as `"kl_divergence"`) is given the temperature-
                softened *probabilities* `softmax(t/T)`, `softmax(s/T)` and its
                value is multiplied by `T²`, so
                `keras.losses.KLDivergence()` gives the default's value.
            alpha: weight of the hard-label loss, in [0, 1]; the soft targets
                get `1 − alpha`.
            temperature: softening temperature `T > 0`.
            attention_weight: `≥ 0`, multiplies the attention loss. The
                default 500 is β/2 with the paper's β = 1000 for
                `AttentionTransfer(mode="code")`.
            attention_loss_fn: loss applied to each attention pair of
                feature maps. Defaults to
                `keras_kd.losses.AttentionTransfer(p=2, mode="code")`.
            hint_weight: `≥ 0`, multiplies the hint loss.
            hint_loss_fn: loss between each teacher feature and the
                connector's output on the student feature. Defaults to the
                mean squared error over all positions and channels.
            attention_map_loss_fn: loss applied to each attention pair of
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
        temperature = check_positive("temperature", temperature)
        alpha = check_unit_interval("alpha", alpha)
        attention_weight = check_non_negative(
            "attention_weight", attention_weight
        )
        hint_weight = check_non_negative("hint_weight", hint_weight)
        if distillation_loss_fn is None:
            distillation_loss_fn = SoftTargetKD(temperature)
        elif isinstance(distillation_loss_fn, SoftTargetKD) and (
            distillation_loss_fn.temperature != temperature
        ):
            raise ValueError(
                "The `SoftTargetKD` given as `distillation_loss_fn` has "
                f"temperature={distillation_loss_fn.temperature}, but "
                f"`compile` received temperature={temperature}. The "
                "Distiller's `temperature` governs; make them agree."
            )
        self.student_loss_fn = _as_loss(
            student_loss_fn
            or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "student_loss_fn",
        )
        self.distillation_loss_fn = _as_loss(
            distillation_loss_fn, "distillation_loss_fn"
        )
        self.attention_loss_fn = _as_loss(
            attention_loss_fn or AttentionTransfer(), "attention_loss_fn"
        )
        self.attention_map_loss_fn = _as_loss(
            attention_map_loss_fn or AttentionMapKD(mode="kl"),
            "attention_map_loss_fn",
        )
        self.hint_loss_fn = _as_loss(hint_loss_fn or HintMSE(),
                                     "hint_loss_fn")
        # Our own loss takes logits; anything else gets probabilities.
        self._kd_from_logits = isinstance(
            self.distillation_loss_fn, SoftTargetKD
        )
        self._logits_kd = _VariableTemperatureKD(self.temperature)

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
        metrics = [
            self._loss_tracker_total,
            self._student_loss_tracker,
            self._distillation_loss_tracker,
        ]
        if self.attention_pairs:
            metrics.append(self._attention_loss_tracker)
        if self.hint_pairs:
            metrics.append(self._hint_loss_tracker)
        if getattr(self, "_compile_metrics", None) is not None:
            metrics.append(self._compile_metrics)
        return metrics

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def _compute_losses(self, y, teacher, student, sample_weight=None):
        """All loss terms from one teacher and one student pass.

        Args:
            y: hard labels.
            teacher: dict with `logits` (one tensor per teacher), `maps` (the
                teacher value of each attention pair) and `hints` (of each
                hint pair).
            student: dict with `logits`, `maps`, `masks` (the query mask of
                each attention pair of MultiHeadAttention layers, else
                `None`) and `hints`.
            sample_weight: optional per-example weights.

        Returns:
            Dict with `loss`, `student_loss`, `distillation_loss`,
            `attention_loss` and `hint_loss` (zero without such pairs),
            float32 scalars. Like every Keras loss, each is divided by the
            number of replicas under a `tf.distribute` strategy, so that
            summing gradients over replicas averages them.
        """
        student_logits = ops.cast(student["logits"], "float32")
        temperature = ops.cast(self.temperature, "float32")
        teacher_logits = self._soft_target_logits(teacher["logits"],
                                                  temperature)
        if teacher_logits.shape[-1] != student_logits.shape[-1]:
            # Only reachable with subclassed models, checked at trace time.
            raise ValueError(
                "Teacher and student must output logits for the same number "
                f"of classes. Received: teacher logits of shape "
                f"{tuple(teacher_logits.shape)} and student logits of shape "
                f"{tuple(student_logits.shape)}"
            )
        student_loss = self.student_loss_fn(
            y, student_logits, sample_weight=sample_weight
        )
        if self._kd_from_logits:
            distillation_loss = self._logits_kd(
                teacher_logits, student_logits, sample_weight=sample_weight
            )
        else:
            distillation_loss = self.distillation_loss_fn(
                ops.softmax(teacher_logits / temperature, axis=-1),
                ops.softmax(student_logits / temperature, axis=-1),
                sample_weight=sample_weight,
            ) * ops.square(temperature)
        attention_loss = ops.zeros((), "float32")
        for pair, kind, teacher_map, student_map, mask in zip(
            self.attention_pairs, self._attention_kinds, teacher["maps"],
            student["maps"], student["masks"]
        ):
            if kind == _PROBABILITIES:
                student_map = ops.cast(student_map, "float32")
                set_keras_mask(student_map, ops.cast(mask, "bool"))
                value = self.attention_map_loss_fn(
                    teacher_map, student_map, sample_weight=sample_weight
                )
            else:
                value = self.attention_loss_fn(
                    teacher_map, student_map, sample_weight=sample_weight
                )
            attention_loss += pair.weight * value
        hint_loss = ops.zeros((), "float32")
        for pair, connector, teacher_feature, student_feature in zip(
            self.hint_pairs, self.connectors, teacher["hints"],
            student["hints"]
        ):
            teacher_feature, projected = match_feature_size(
                ops.cast(teacher_feature, "float32"),
                connector(ops.cast(student_feature, "float32")),
            )
            hint_loss += pair.weight * self.hint_loss_fn(
                teacher_feature, projected, sample_weight=sample_weight
            )
        alpha = ops.cast(self.alpha, "float32")
        loss = (
            alpha * student_loss
            + (1.0 - alpha) * distillation_loss
            + ops.cast(self.attention_weight, "float32") * attention_loss
            + ops.cast(self.hint_weight, "float32") * hint_loss
        )
        return {
            "loss": loss,
            "student_loss": student_loss,
            "distillation_loss": distillation_loss,
            "attention_loss": attention_loss,
            "hint_loss": hint_loss,
        }

    def _soft_target_logits(self, teacher_logits, temperature):
        """Logits whose `softmax(·/T)` are the (averaged) soft targets.

        One teacher: its logits. Several: `T · log Σ_i w_i softmax(t_i/T)`,
        so the soft targets are the weighted average of the teachers'
        temperature-softened distributions, computed in log space.
        """
        if len(teacher_logits) == 1:
            return ops.cast(teacher_logits[0], "float32")
        log_probs = [
            ops.log_softmax(ops.cast(t, "float32") / temperature, axis=-1)
            + _log_weight(w)
            for t, w in zip(teacher_logits, self.teacher_weights)
        ]
        return temperature * ops.logsumexp(ops.stack(log_probs), axis=0)

    def _teacher_values(self, x, y):
        """Labels and the teacher side of the losses, precomputed or live."""
        n_attention = len(self.attention_pairs)
        if isinstance(y, dict) and TEACHER_LOGITS in y:
            return y[LABELS], self._precomputed_values(y)
        outputs = [as_list(taps(x, training=False))
                   for taps in self._teacher_taps]
        values = [outputs[index][slot] for index, slot in self._teacher_slots]
        return y, {
            "logits": [each[0] for each in outputs],
            "maps": values[:n_attention],
            "hints": values[n_attention:],
        }

    def _precomputed_values(self, y):
        maps = list(y.get(TEACHER_MAPS, ()))
        hints = list(y.get(TEACHER_HINTS, ()))
        for stored, pairs, what, argument in (
            (maps, self.attention_pairs, "attention maps",
             "attention_layers"),
            (hints, self.hint_pairs, "hint features", "hint_layers"),
        ):
            if len(stored) != len(pairs):
                raise ValueError(
                    f"The precomputed teacher outputs carry {len(stored)} "
                    f"{what}, but the Distiller has {len(pairs)} "
                    f"{what.split()[0]} pairs. Pass `{argument}=[teacher "
                    "layer of each pair]` to `keras_kd.precompute_teacher`."
                )
        logits = y[TEACHER_LOGITS]
        teachers = len(self.teachers)
        if teachers == 1 and len(logits.shape) == 2:
            logits = [logits]
        elif len(logits.shape) == 3 and logits.shape[1] == teachers:
            logits = [logits[:, i] for i in range(teachers)]
        else:
            raise ValueError(
                f"The precomputed teacher logits have shape "
                f"{tuple(logits.shape)}, but the Distiller has {teachers} "
                "teacher(s). Precompute with the same list of teachers."
            )
        return {"logits": logits, "maps": maps, "hints": hints}

    def _student_values(self, x, training):
        outputs = as_list(self._student_taps(x, training=training))
        n_attention, n_hint = len(self.attention_pairs), len(self.hint_pairs)
        values = outputs[1:1 + n_attention + n_hint]
        masks = outputs[1 + n_attention + n_hint:]
        probability_paths = list(
            getattr(self._student_taps, "attention_probability_paths", [])
        )
        pair_masks = []
        for pair, kind in zip(self.attention_pairs, self._attention_kinds):
            pair_masks.append(
                masks[probability_paths.index(pair.student_layer)]
                if kind == _PROBABILITIES else None
            )
        return {
            "logits": outputs[0],
            "maps": values[:n_attention],
            "hints": values[n_attention:],
            "masks": pair_masks,
        }

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._check_compiled()
        y, teacher = self._teacher_values(x, y)
        with tf.GradientTape() as tape:
            student = self._student_values(x, training=True)
            losses = self._compute_losses(y, teacher, student, sample_weight)
            scaled_loss = self.optimizer.scale_loss(losses["loss"])
        # Read after the forward pass: a subclassed student builds in it.
        variables = self.student.trainable_variables + [
            v for connector in self.connectors
            for v in connector.trainable_variables
        ]
        gradients = tape.gradient(scaled_loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._update_metrics(x, y, student["logits"], losses,
                                    sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._check_compiled()
        y, teacher = self._teacher_values(x, y)
        student = self._student_values(x, training=False)
        losses = self._compute_losses(y, teacher, student, sample_weight)
        return self._update_metrics(x, y, student["logits"], losses,
                                    sample_weight)

    def _update_metrics(self, x, y, student_logits, losses, sample_weight):
        batch_size = ops.shape(student_logits)[0]
        # Undo the per-replica scaling of the losses for logging.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for tracker, key in (
            (self._loss_tracker_total, "loss"),
            (self._student_loss_tracker, "student_loss"),
            (self._distillation_loss_tracker, "distillation_loss"),
            (self._attention_loss_tracker, "attention_loss"),
            (self._hint_loss_tracker, "hint_loss"),
        ):
            tracker.update_state(
                losses[key] * replicas, sample_weight=batch_size
            )
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
        return cls(**config)


_PROBABILITIES = "probabilities"
_FEATURES = "features"


def _log_weight(weight):
    return math.log(weight) if weight > 0 else -math.inf


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


def _check_teacher_weights(weights, count):
    if weights is None:
        return [1.0 / count] * count
    if not isinstance(weights, (list, tuple)) or len(weights) != count:
        raise ValueError(
            f"Argument `teacher_weights` must list one weight per teacher "
            f"({count}). Received: teacher_weights={weights!r}"
        )
    weights = [check_non_negative("teacher_weights entry", w)
               for w in weights]
    total = sum(weights)
    if total <= 0:
        raise ValueError(
            "Argument `teacher_weights` must have a positive sum. Received: "
            f"teacher_weights={weights!r}"
        )
    return [w / total for w in weights]


def _tap_shape(taps, slot):
    return tuple(taps.outputs[slot].shape)


def _check_attention_pairs(pairs, teacher_taps, teacher_slots, student_taps):
    """The kind of each attention pair: attention probabilities or maps."""
    kinds = []
    for position, (pair, (index, slot)) in enumerate(
        zip(pairs, teacher_slots)
    ):
        taps = teacher_taps[index]
        teacher_probs = is_attention_probability_tap(taps, pair.teacher_layer)
        student_probs = is_attention_probability_tap(student_taps,
                                                     pair.student_layer)
        teacher_shape = _tap_shape(taps, slot)
        student_shape = _tap_shape(student_taps, 1 + position)
        if teacher_probs != student_probs:
            raise ValueError(
                "An attention pair must name two MultiHeadAttention layers "
                "or two layers with feature maps, not one of each. Received: "
                f"teacher layer '{pair.teacher_layer}' "
                f"({'MultiHeadAttention' if teacher_probs else 'feature map'})"
                f" and student layer '{pair.student_layer}' "
                f"({'MultiHeadAttention' if student_probs else 'feature map'})"
            )
        if teacher_probs:
            for path, shape in ((pair.teacher_layer, teacher_shape),
                                (pair.student_layer, student_shape)):
                if len(shape) != 4:
                    raise ValueError(
                        "Attention-map distillation supports "
                        "MultiHeadAttention over one sequence axis, with "
                        "probabilities (batch, heads, query, key). Received: "
                        f"layer '{path}' with probabilities of shape {shape}"
                    )
            check_same_lengths(
                teacher_shape, student_shape,
                where=f" (pair '{pair.teacher_layer}', "
                      f"'{pair.student_layer}')",
            )
            kinds.append(_PROBABILITIES)
            continue
        for path, shape, argument in (
            (pair.teacher_layer, teacher_shape, "teacher"),
            (pair.student_layer, student_shape, "student"),
        ):
            if len(shape) not in (3, 4):
                raise ValueError(
                    "Attention pairs need layers whose output is a "
                    "channels-last map of rank 4 (B, H, W, C) or rank 3 "
                    f"(B, T, C). Received: {argument} layer '{path}' with "
                    f"output shape {shape}"
                )
        kinds.append(_FEATURES)
    return kinds


def _make_connectors(pairs, teacher_taps, teacher_slots, student_taps,
                     offset):
    connectors = []
    for position, (pair, (index, slot)) in enumerate(
        zip(pairs, teacher_slots)
    ):
        teacher_shape = _tap_shape(teacher_taps[index], slot)
        student_shape = _tap_shape(student_taps, 1 + offset + position)
        check_hint_shapes(teacher_shape, student_shape, pair.teacher_layer,
                          pair.student_layer)
        connectors.append(make_connector(teacher_shape, student_shape,
                                         name=f"hint_connector_{position}"))
    return connectors


class _VariableTemperatureKD(keras.losses.Loss):
    """`SoftTargetKD` that reads `T` from the Distiller's variable."""

    def __init__(self, temperature):
        super().__init__(name="soft_target_kd")
        self.temperature = temperature

    def call(self, y_true, y_pred):
        return soft_target_kd(y_true, y_pred, self.temperature)


class _FunctionLoss(keras.losses.Loss):
    """Wraps a plain `fn(y_true, y_pred)` so it takes `sample_weight`."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def _as_loss(loss, argument):
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError as e:
            raise ValueError(
                f"Unknown loss for `{argument}`. Received: {argument}={loss!r}"
            ) from e
    if isinstance(loss, keras.losses.Loss):
        return loss
    if callable(loss):
        return _FunctionLoss(loss)
    raise TypeError(
        f"Argument `{argument}` must be a `keras.losses.Loss`, a loss name or "
        f"a callable. Received: {argument}={loss!r}"
    )


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
        outputs = getattr(model, "_outputs", None) or []
        if len(outputs) != 1:
            return None
        history = getattr(outputs[0], "_keras_history", None)
        if history is None:
            return None
        model = history.operation
    return model


def _check_logits(model, argument):
    if getattr(model, "outputs", None) and len(model.outputs) != 1:
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


def _num_classes(model):
    try:
        return model.outputs[0].shape[-1]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None  # Subclassed model: no symbolic output.


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
        for layer in model._flatten_layers()
    )
