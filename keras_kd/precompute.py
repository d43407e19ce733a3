"""Teacher values, live or stored: run the teachers once, train many epochs.

What a Distiller needs from its teachers is a list of `TeacherRequest`s: a
teacher, a tapped layer, and how the term that reads it prepares the value
(`term.prepare_teacher`). Each has a key, `"i:path|signature"`
(`"0:backbone/block2_out|attention_map(p=2.0)"`), under which precomputed
data stores it; a Distiller looks its values up by key, so data stored for
other layers, another `p` or another term is a clear error, never a silently
different loss.
"""

import collections

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_kd.capture import ATTENTION_PROBABILITIES
from keras_kd.capture import LayerCapture
from keras_kd.capture import Tap
from keras_kd.layer_pairs import split_teacher_path
from keras_kd.layer_paths import find_layer
from keras_kd.layer_paths import split_index
from keras_kd.terms.attention_transfer import compact_attention_map
from keras_kd.terms.attention_transfer import compact_signature
from keras_kd.utils.validation import check_positive

LABELS = "y"
TEACHER_LOGITS = "teacher_logits"
TEACHER_VALUES = "teacher_values"

TeacherRequest = collections.namedtuple(
    "TeacherRequest", ["key", "teacher_index", "tap", "prepare"])
TeacherRequest.__doc__ = """One teacher value a Distiller needs: its storage
`key`, the teacher, the `Tap`, and `prepare(value) -> stored value`."""


def storage_key(teacher_index, path, signature):
    """`"0:backbone/block2_out|attention_map(p=2.0)"`."""
    return f"{teacher_index}:{path}|{signature}"


def _identity(value):
    return value


def forward_teachers(teachers, requests, x):
    """One inference pass of every teacher.

    Returns:
        `(logits, values, masks)`: a list of logits (one per teacher), and
        dicts from request key to the prepared value and to its mask (or
        `None`).
    """
    logits, values, masks = [], {}, {}
    for index, teacher in enumerate(teachers):
        mine = [r for r in requests if r.teacher_index == index]
        if not mine:
            logits.append(teacher(x, training=False))
            continue
        taps = list(dict.fromkeys(r.tap for r in mine))
        with LayerCapture(teacher, taps, "teacher") as capture:
            logits.append(teacher(x, training=False))
        captured = capture.result()
        for request in mine:
            value, mask = captured[request.tap]
            values[request.key] = request.prepare(value)
            masks[request.key] = mask
    return logits, values, masks


def layer_requests(teachers, attention_layers=None, hint_layers=None,
                   p=2.0):
    """Requests of `precompute_teacher`'s layer arguments."""
    requests = []
    for path in attention_layers or []:
        index, layer_path = split_teacher_path(path, len(teachers),
                                               "attention_layers")
        layer = find_layer(teachers[index], split_index(layer_path)[0],
                           "teacher")
        if isinstance(layer, keras.layers.MultiHeadAttention):
            requests.append(TeacherRequest(
                storage_key(index, layer_path, ATTENTION_PROBABILITIES),
                index, Tap(layer_path, ATTENTION_PROBABILITIES), _identity))
        else:
            requests.append(TeacherRequest(
                storage_key(index, layer_path, compact_signature(p)), index,
                Tap(layer_path),
                lambda value: compact_attention_map(value, p)))
    for path in hint_layers or []:
        index, layer_path = split_teacher_path(path, len(teachers),
                                               "hint_layers")
        requests.append(TeacherRequest(
            storage_key(index, layer_path, "output"), index,
            Tap(layer_path), _identity))
    return requests


def precompute_teacher(teacher, dataset, batch_size=256,
                       attention_layers=None, hint_layers=None, p=2.0,
                       in_memory=True, verbose=1):
    """Runs `teacher` once over `dataset` and returns it with the outputs.

    `Distiller.fit` on the returned dataset (after `.shuffle().batch()`)
    never calls the teacher, so an epoch costs about one student epoch, and
    the losses equal those of a live teacher. This suits pipelines *without
    random augmentation*: the teacher saw each example exactly once.
    `Distiller.precompute(dataset)` does the same and knows which layers its
    terms need; this function names them by hand.

    With `attention_layers` (teacher layer paths of attention pairs), small
    values are stored instead of the full activations: for feature maps
    `(mean_c |A|^p)^(1/p)` with one channel, from which
    `AttentionTransfer(p=p)` recovers exactly the map of the full
    activation; for `MultiHeadAttention` layers their attention
    probabilities `(heads, query, key)`. `hint_layers` stores full teacher
    features, which can be large.

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
        "teacher_values": {key: value}})`, keys as `storage_key` makes them.

    Example:

    ```python
    train = keras_kd.precompute_teacher(teacher, unbatched_train,
                                        attention_layers=["stage2_out"])
    distiller.fit(train.shuffle(10000).batch(128), epochs=10)
    ```
    """
    p = check_positive("p", p)
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [
        teacher]
    requests = layer_requests(teachers, attention_layers, hint_layers, p)
    return run_teachers(teachers, dataset, requests, batch_size=batch_size,
                        in_memory=in_memory, verbose=verbose)


def _check_dataset(dataset, teachers, batch_size):
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "Argument `dataset` must be an unbatched tf.data.Dataset of "
            f"(x, y). Received: dataset of type {type(dataset).__name__}")
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            "Argument `dataset` must yield (x, y) pairs. Received: dataset "
            f"with element_spec={spec}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or (
            batch_size < 1):
        raise ValueError("Argument `batch_size` must be a positive integer. "
                         f"Received: batch_size={batch_size!r}")
    inputs = getattr(teachers[0], "inputs", None) or []
    x_spec = spec[0]
    if len(inputs) == 1 and isinstance(x_spec, tf.TensorSpec) and (
            x_spec.shape.rank == len(inputs[0].shape)):
        raise ValueError(
            "Argument `dataset` must be unbatched: its inputs have shape "
            f"{tuple(x_spec.shape)}, the rank of a whole batch for teacher "
            f"'{teachers[0].name}' (input shape {tuple(inputs[0].shape)}). "
            "Call `dataset.unbatch()` first, or pass the dataset before "
            "`.batch()`.")


def run_teachers(teachers, dataset, requests, batch_size=256,
                 in_memory=True, verbose=1):
    """Stores every request's teacher values for `dataset`, keyed by key.

    See `precompute_teacher` for the arguments and the returned dataset.
    """
    _check_dataset(dataset, teachers, batch_size)

    @tf.function
    def forward(x):
        logits, values, _ = forward_teachers(teachers, requests, x)
        logits = [ops.cast(t, "float32") for t in logits]
        logits = logits[0] if len(logits) == 1 else ops.stack(logits, axis=1)
        return logits, {key: ops.cast(value, "float32")
                        for key, value in values.items()}

    cardinality = int(dataset.cardinality())
    steps = None if cardinality < 0 else -(-cardinality // batch_size)
    progbar = keras.utils.Progbar(steps, verbose=verbose, unit_name="batch")
    logits, values, inputs = [], collections.defaultdict(list), []
    for step, (x, y) in enumerate(dataset.batch(batch_size)):
        batch_logits, batch_values = forward(x)
        logits.append(np.asarray(batch_logits))
        for key, value in batch_values.items():
            values[key].append(np.asarray(value))
        if in_memory:
            inputs.append((keras.tree.map_structure(np.asarray, x),
                           np.asarray(y)))
        progbar.update(step + 1)
    if not logits:
        raise ValueError("Argument `dataset` is empty.")
    logits = np.concatenate(logits)
    if not np.all(np.isfinite(logits)):
        raise ValueError("The teacher produced non-finite logits.")
    extras = {TEACHER_LOGITS: logits}
    if values:
        extras[TEACHER_VALUES] = {key: np.concatenate(parts)
                                  for key, parts in values.items()}
    if in_memory:
        x_all = keras.tree.map_structure(
            lambda *parts: np.concatenate(parts), *[x for x, _ in inputs])
        y_all = np.concatenate([y for _, y in inputs])
        return tf.data.Dataset.from_tensor_slices(
            (x_all, {LABELS: y_all, **extras}))
    outputs = tf.data.Dataset.from_tensor_slices(extras)
    # A parallel (still ordered) map: the restructuring is per example.
    return tf.data.Dataset.zip((dataset, outputs)).map(
        lambda pair, extra: (pair[0], {LABELS: pair[1], **extra}),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def stored_values(y, requests, num_teachers):
    """Teacher logits and values from precomputed labels `y`.

    Raises:
        ValueError: naming the keys the Distiller needs and those stored,
            or the teacher counts, when they do not match.
    """
    logits = y[TEACHER_LOGITS]
    if num_teachers == 1 and len(logits.shape) == 2:
        logits = [logits]
    elif len(logits.shape) == 3 and logits.shape[1] == num_teachers:
        logits = [logits[:, i] for i in range(num_teachers)]
    else:
        raise ValueError(
            f"The precomputed teacher logits have shape "
            f"{tuple(logits.shape)}, but the Distiller has {num_teachers} "
            "teacher(s). Precompute with the same list of teachers.")
    stored = dict(y.get(TEACHER_VALUES, {}))
    needed = [r.key for r in requests]
    missing = [key for key in needed if key not in stored]
    if missing:
        raise ValueError(
            f"The precomputed teacher values do not hold what the "
            f"Distiller's terms need. Needed: {needed}; stored: "
            f"{sorted(stored)}; missing: {missing}. Precompute with "
            "`distiller.precompute(dataset)`, which stores exactly these.")
    return logits, {key: stored[key] for key in needed}
