"""The single-pass `Distiller`: soft targets + hard labels + attention maps."""

import keras
import tensorflow as tf
from keras import ops

from keras_kd.layer_taps import tap_model
from keras_kd.losses.attention_transfer import AttentionTransfer
from keras_kd.losses.soft_target_kd import SoftTargetKD
from keras_kd.losses.soft_target_kd import soft_target_kd
from keras_kd.precompute import LABELS
from keras_kd.precompute import TEACHER_LOGITS
from keras_kd.precompute import TEACHER_MAPS
from keras_kd.utils.validation import check_non_negative
from keras_kd.utils.validation import check_positive
from keras_kd.utils.validation import check_unit_interval


@keras.saving.register_keras_serializable(package="keras_kd")
class Distiller(keras.Model):
    """Distils a frozen teacher into a student in one pass per step.

    Each training step runs the teacher once (inference mode) and the student
    once (training mode); with data from `keras_kd.precompute_teacher` it
    does not run the teacher at all. That single student pass yields the logits *and*
    every tapped intermediate layer, so BatchNorm statistics update once,
    dropout draws one mask for all loss terms, and the step costs about one
    teacher inference plus one ordinary student step. The loss is

    ```
    loss = alpha · student_loss(y, s)
         + (1 − alpha) · distillation_loss          # already × T²
         + attention_weight · Σ_pairs w_i · AT(teacher_i, student_i)
    ```

    References: Hinton et al., "Distilling the Knowledge in a Neural
    Network", 2015; Zagoruyko & Komodakis, "Paying More Attention to
    Attention", ICLR 2017.

    Args:
        teacher: a trained `keras.Model` that outputs logits. It is frozen
            (`teacher.trainable = False`) and always called with
            `training=False`.
        student: the `keras.Model` to train; it must output logits for the
            same number of classes as the teacher.
        attention_pairs: optional list of `(teacher_layer, student_layer)` or
            `(teacher_layer, student_layer, weight)` naming layers whose
            outputs are channels-last maps of rank 4 `(B, H, W, C)` or rank 3
            `(B, T, C)`. Names may reach into nested models with `/`
            (`"backbone/block2_out"`). Channel counts may differ; spatial
            sizes are matched as in `keras_kd.losses.AttentionTransfer`.
            Layer pairs need Functional or Sequential models.
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
        teacher, student, attention_pairs=[("conv", "conv")]
    )
    distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1,
                      temperature=4.0)
    # distiller.fit(x_train, y_train, epochs=3)
    # distiller.student.save("student.keras")
    ```
    """

    def __init__(self, teacher, student, attention_pairs=None, name="distiller",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        _check_models(teacher, student)
        self.attention_pairs = _normalize_pairs(attention_pairs)
        self.teacher = teacher
        self.student = student
        teacher.trainable = False
        _check_logits(teacher, "teacher")
        _check_logits(student, "student")
        _check_num_classes(teacher, student)

        teacher_paths = [pair[0] for pair in self.attention_pairs]
        student_paths = [pair[1] for pair in self.attention_pairs]
        if self.attention_pairs:
            teacher_taps = tap_model(teacher, teacher_paths, "teacher")
            student_taps = tap_model(student, student_paths, "student")
            _check_map_ranks(teacher_taps, teacher_paths, "teacher")
            _check_map_ranks(student_taps, student_paths, "student")
        else:
            teacher_taps, student_taps = teacher, student
        # Kept out of Keras' tracking: they share every layer and weight with
        # `teacher`/`student`, which are the tracked, saved objects.
        object.__setattr__(self, "_teacher_taps", teacher_taps)
        object.__setattr__(self, "_student_taps", student_taps)

        # Non-trainable variables, so callbacks can change them between
        # epochs even inside a compiled (`jit_compile=True`) step.
        self.temperature = self._scalar("temperature", 3.0)
        self.alpha = self._scalar("alpha", 0.1)
        self.attention_weight = self._scalar("attention_weight", 500.0)

        self._loss_tracker_total = keras.metrics.Mean(name="loss")
        self._student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self._distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        self._attention_loss_tracker = keras.metrics.Mean(
            name="attention_loss"
        )
        self.student_loss_fn = None
        self.distillation_loss_fn = None
        self.attention_loss_fn = None
        if teacher.built and student.built:
            self.built = True

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
            attention_loss_fn: loss applied to each attention pair. Defaults
                to `keras_kd.losses.AttentionTransfer(p=2, mode="code")`.
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
            **kwargs,
        }
        self.temperature.assign(temperature)
        self.alpha.assign(alpha)
        self.attention_weight.assign(attention_weight)

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
        if getattr(self, "_compile_metrics", None) is not None:
            metrics.append(self._compile_metrics)
        return metrics

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def _compute_losses(self, y, teacher_outputs, student_outputs,
                       sample_weight=None):
        """All loss terms from one teacher and one student pass.

        Args:
            y: hard labels.
            teacher_outputs: `[teacher_logits, *teacher_maps]`.
            student_outputs: `[student_logits, *student_maps]`.
            sample_weight: optional per-example weights.

        Returns:
            Dict with `loss`, `student_loss`, `distillation_loss` and
            `attention_loss` (zero without attention pairs), float32 scalars.
            Like every Keras loss, each is divided by the number of replicas
            under a `tf.distribute` strategy, so that summing gradients over
            replicas averages them.
        """
        teacher_logits = ops.cast(teacher_outputs[0], "float32")
        student_logits = ops.cast(student_outputs[0], "float32")
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
        temperature = ops.cast(self.temperature, "float32")
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
        for (_, _, weight), teacher_map, student_map in zip(
            self.attention_pairs, teacher_outputs[1:], student_outputs[1:]
        ):
            attention_loss += weight * self.attention_loss_fn(
                teacher_map, student_map, sample_weight=sample_weight
            )
        alpha = ops.cast(self.alpha, "float32")
        loss = (
            alpha * student_loss
            + (1.0 - alpha) * distillation_loss
            + ops.cast(self.attention_weight, "float32") * attention_loss
        )
        return {
            "loss": loss,
            "student_loss": student_loss,
            "distillation_loss": distillation_loss,
            "attention_loss": attention_loss,
        }

    def _targets_and_teacher_outputs(self, x, y):
        """Labels and `[teacher_logits, *maps]`, precomputed or live."""
        if isinstance(y, dict) and TEACHER_LOGITS in y:
            maps = list(y.get(TEACHER_MAPS, ()))
            if len(maps) != len(self.attention_pairs):
                raise ValueError(
                    f"The precomputed teacher outputs carry {len(maps)} "
                    f"attention maps, but the Distiller has "
                    f"{len(self.attention_pairs)} attention pairs. Pass "
                    "`attention_layers=[teacher layer of each pair]` to "
                    "`keras_kd.precompute_teacher`."
                )
            return y[LABELS], [y[TEACHER_LOGITS], *maps]
        return y, _as_list(self._teacher_taps(x, training=False))

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._check_compiled()
        y, teacher_outputs = self._targets_and_teacher_outputs(x, y)
        with tf.GradientTape() as tape:
            student_outputs = _as_list(self._student_taps(x, training=True))
            losses = self._compute_losses(
                y, teacher_outputs, student_outputs, sample_weight
            )
            scaled_loss = self.optimizer.scale_loss(losses["loss"])
        # Read after the forward pass: a subclassed student builds in it.
        student_variables = self.student.trainable_variables
        gradients = tape.gradient(scaled_loss, student_variables)
        self.optimizer.apply_gradients(zip(gradients, student_variables))
        return self._update_metrics(x, y, student_outputs[0], losses,
                                    sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._check_compiled()
        y, teacher_outputs = self._targets_and_teacher_outputs(x, y)
        student_outputs = _as_list(self._student_taps(x, training=False))
        losses = self._compute_losses(
            y, teacher_outputs, student_outputs, sample_weight
        )
        return self._update_metrics(x, y, student_outputs[0], losses,
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
        config.update(
            {
                "teacher": keras.saving.serialize_keras_object(self.teacher),
                "student": keras.saving.serialize_keras_object(self.student),
                "attention_pairs": [list(p) for p in self.attention_pairs],
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["teacher"] = keras.saving.deserialize_keras_object(
            config["teacher"]
        )
        config["student"] = keras.saving.deserialize_keras_object(
            config["student"]
        )
        config["attention_pairs"] = [
            tuple(p) for p in config.get("attention_pairs") or []
        ]
        return cls(**config)


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


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


def _normalize_pairs(pairs):
    normalized = []
    for pair in pairs or []:
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) not in (2, 3)
            or not all(isinstance(name, str) for name in pair[:2])
        ):
            raise ValueError(
                "Each entry of `attention_pairs` must be (teacher_layer, "
                "student_layer) or (teacher_layer, student_layer, weight). "
                f"Received: attention_pairs entry {pair!r}"
            )
        weight = pair[2] if len(pair) == 3 else 1.0
        weight = check_non_negative(f"weight of attention pair {pair!r}", weight)
        normalized.append((pair[0], pair[1], weight))
    return normalized


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


def _check_map_ranks(taps, paths, argument):
    for path, tensor in zip(paths, taps.outputs[1:]):
        if len(tensor.shape) not in (3, 4):
            raise ValueError(
                f"Attention pairs need layers whose output is a channels-last "
                f"map of rank 4 (B, H, W, C) or rank 3 (B, T, C). Received: "
                f"{argument} layer '{path}' with output shape "
                f"{tuple(tensor.shape)}"
            )


def _computes_in_float16(model):
    return any(
        layer.dtype_policy.compute_dtype == "float16"
        for layer in model._flatten_layers()
    )
