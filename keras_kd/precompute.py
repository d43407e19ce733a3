"""Offline distillation: run the teacher once, train many epochs without it."""

import numpy as np
import tensorflow as tf
from keras import ops

from keras_kd.layer_pairs import split_teacher_path
from keras_kd.layer_taps import as_list
from keras_kd.layer_taps import is_attention_probability_tap
from keras_kd.layer_taps import tap_teachers
from keras_kd.losses.attention_transfer import attention_map
from keras_kd.utils.validation import check_positive

TEACHER_LOGITS = "teacher_logits"
TEACHER_MAPS = "teacher_maps"
TEACHER_HINTS = "teacher_hints"
LABELS = "y"


def precompute_teacher(teacher, dataset, batch_size=256,
                       attention_layers=None, hint_layers=None, p=2.0,
                       in_memory=True, verbose=1):
    """Runs `teacher` once over `dataset` and returns it with the outputs.

    `Distiller.fit` on the returned dataset (after `.shuffle().batch()`)
    never calls the teacher, so an epoch costs about one student epoch, and
    the losses equal those of a live teacher. This suits pipelines *without
    random augmentation*: the teacher saw each example exactly once, as it is
    here.

    With `attention_layers` (teacher layer paths, in the order of the
    Distiller's `attention_pairs`), small per-pair values are stored instead
    of the full activations: for feature maps `(mean_c |A|^p)^(1/p)` with one
    channel, from which `AttentionTransfer(p=p)` recovers exactly the map of
    the full activation; for `MultiHeadAttention` layers their attention
    probabilities `(heads, query, key)`. `hint_layers` (in the order of
    `hint_pairs`) stores full teacher features, which can be large.

    Args:
        teacher: a Keras model that outputs logits, or a list of them for a
            multi-teacher Distiller (then logits are stored as
            `(teachers, classes)` per example, and layer paths may name a
            teacher with an index prefix, `"1:stage2_out"`).
        dataset: an *unbatched* `tf.data.Dataset` of `(x, y)` that yields the
            same order every time it is iterated (no shuffling before this
            call: shuffle the returned dataset instead).
        batch_size: batch size of the teacher's pass.
        attention_layers: optional teacher layer paths to store maps of.
        hint_layers: optional teacher layer paths to store features of.
        p: the attention exponent (that of the attention loss).
        in_memory: keep the inputs and labels in memory too, so that the
            returned dataset is a plain `from_tensor_slices` (an epoch then
            costs what a plain student epoch does). Set `False` when the
            inputs do not fit in memory: the stored outputs are then zipped
            with `dataset`, at some per-example cost.
        verbose: show a progress bar.

    Returns:
        An unbatched dataset of `(x, {"y": y, "teacher_logits": t,
        "teacher_maps": (m_1, ...), "teacher_hints": (h_1, ...)})` (maps
        and hints only when asked for).

    Example:

    ```python
    train = keras_kd.precompute_teacher(teacher, unbatched_train,
                                        attention_layers=["stage2_out"])
    distiller.fit(train.shuffle(10000).batch(128), epochs=10)
    ```
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "Argument `dataset` must be an unbatched tf.data.Dataset of "
            f"(x, y). Received: dataset of type {type(dataset).__name__}")
    if not (isinstance(dataset.element_spec, tuple)
            and len(dataset.element_spec) == 2):
        raise ValueError(
            "Argument `dataset` must yield (x, y) pairs. Received: dataset "
            f"with element_spec={dataset.element_spec}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or (
            batch_size < 1):
        raise ValueError("Argument `batch_size` must be a positive integer. "
                         f"Received: batch_size={batch_size!r}")
    p = check_positive("p", p)
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [
        teacher]
    attention = [split_teacher_path(path, len(teachers), "attention_layers")
                 for path in attention_layers or []]
    hints = [split_teacher_path(path, len(teachers), "hint_layers")
             for path in hint_layers or []]
    models, slots = tap_teachers(teachers, attention + hints)
    # Feature maps are stored as compact attention maps; MultiHeadAttention
    # probabilities and hint features as they are.
    compact = [
        not is_attention_probability_tap(models[index], path)
        for index, path in attention
    ]

    @tf.function
    def forward(x):
        outputs = [as_list(model(x, training=False)) for model in models]
        logits = [ops.cast(o[0], "float32") for o in outputs]
        logits = logits[0] if len(logits) == 1 else ops.stack(logits, axis=1)
        values = []
        for position, (index, slot) in enumerate(slots):
            value = ops.cast(outputs[index][slot], "float32")
            if position < len(compact) and compact[position]:
                value = ops.expand_dims(
                    ops.power(attention_map(value, p), 1.0 / p), -1)
            values.append(value)
        return [logits] + values

    from keras.utils import Progbar

    cardinality = int(dataset.cardinality())
    steps = (None if cardinality < 0
             else -(-cardinality // batch_size))
    progbar = Progbar(steps, verbose=verbose, unit_name="batch")
    collected = None
    inputs = []
    for step, (x, y) in enumerate(dataset.batch(batch_size)):
        outputs = [np.asarray(o) for o in forward(x)]
        if in_memory:
            inputs.append((np.asarray(x), np.asarray(y)))
        if collected is None:
            collected = [[] for _ in outputs]
        for bucket, output in zip(collected, outputs):
            bucket.append(output)
        progbar.update(step + 1)
    if collected is None:
        raise ValueError("Argument `dataset` is empty.")
    logits, *values = [np.concatenate(bucket) for bucket in collected]
    if not np.all(np.isfinite(logits)):
        raise ValueError("The teacher produced non-finite logits.")
    extras = {TEACHER_LOGITS: logits}
    if attention:
        extras[TEACHER_MAPS] = tuple(values[:len(attention)])
    if hints:
        extras[TEACHER_HINTS] = tuple(values[len(attention):])
    if in_memory:
        x_all = np.concatenate([x for x, _ in inputs])
        y_all = np.concatenate([y for _, y in inputs])
        return tf.data.Dataset.from_tensor_slices(
            (x_all, {LABELS: y_all, **extras}))
    outputs = tf.data.Dataset.from_tensor_slices(extras)
    # A parallel (still ordered) map: the restructuring is per example.
    return tf.data.Dataset.zip((dataset, outputs)).map(
        lambda pair, extra: (pair[0], {LABELS: pair[1], **extra}),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
