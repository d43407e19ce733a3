"""Teacher values, live or stored: run the teachers once, train many epochs.

What a Distiller needs from its teachers is its tap plan's list of
`TeacherRequest`s (`keras_kd.tap_plan`): a teacher, a tapped layer, and how
the term that reads it prepares the value (`term.prepare_teacher`). Each
has a key, `"i:path|kind|preparation"`
(`"0:backbone/block2_out|output|attention_map(p=2.0)"`), under which
precomputed data stores it; a Distiller looks its values up by key, so data
stored for other layers, another `p` or another term is a clear error,
never a silently different loss.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_kd.capture import LayerCapture
from keras_kd.layer_pairs import split_teacher_path
from keras_kd.layer_paths import find_layer
from keras_kd.layer_paths import split_index
from keras_kd.losses.attention_transfer import AttentionTransfer
from keras_kd.tap_plan import TapPlan
from keras_kd.teacher_store import StoreWriter
from keras_kd.teacher_store import open_teacher_store
from keras_kd.teacher_store import teacher_fingerprint
from keras_kd.terms.attention_transfer import AttentionTransferTerm
from keras_kd.terms.hints import HintTerm
from keras_kd.terms.shorthands import attention_term_class
from keras_kd.top_k_targets import check_top_k
from keras_kd.top_k_targets import LOG_PROBS
from keras_kd.top_k_targets import compact_top_k
from keras_kd.utils.validation import check_positive

LABELS = "y"
# Per-example indices beside the labels: `{"y": labels, "index": ids}`.
EXAMPLE_INDEX = "index"
TEACHER_LOGITS = "teacher_logits"
TEACHER_VALUES = "teacher_values"
TEACHER_TOP_K = "teacher_top_k"


def forward_teachers(teachers, requests, x):
    """One inference pass of every teacher.

    Returns:
        `(logits, values, masks)`: a list of logits (one per teacher), and
        dicts from request key to the prepared value and to its mask (keys
        without a mask are left out).
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
            if mask is not None:
                masks[request.key] = mask
    return logits, values, masks


def split_example_index(y):
    """`(labels, example indices or None)`: a batch's labels may be
    `{"y": labels, "index": example indices}` for terms that keep a memory
    per training example (`keras_kd.terms.CRD`)."""
    if isinstance(y, dict) and EXAMPLE_INDEX in y:
        rest = {k: v for k, v in y.items() if k != EXAMPLE_INDEX}
        if not is_stored(rest):
            rest = rest[LABELS]
        return rest, y[EXAMPLE_INDEX]
    return y, None


def teacher_pass(teachers, requests, x, y, logits_rank=None):
    """Labels and the teachers' `(logits, values, masks)`: stored in
    precomputed labels `y`, or from one live pass on `x`."""
    if is_stored(y):
        logits, values = stored_values(y, requests, len(teachers),
                                       logits_rank)
        return y[LABELS], (logits, values, {})
    return y, forward_teachers(teachers, requests, x)


def layer_requests(teachers, attention_layers=None, hint_layers=None,
                   p=2.0):
    """What the terms a Distiller builds for these teacher layers store.

    The terms are the ones `Distiller(attention_pairs=..., hint_pairs=...)`
    builds, so both store the same values under the same keys.
    """
    terms = []
    for position, path in enumerate(attention_layers or []):
        index, layer_path = split_teacher_path(path, len(teachers),
                                               "attention_layers")
        term_class = attention_term_class(
            find_layer(teachers[index], split_index(layer_path)[0],
                       "teacher"))
        loss = (AttentionTransfer(p=p)
                if term_class is AttentionTransferTerm else None)
        terms.append(term_class([(path, path)], loss_fn=loss,
                                name=f"attention_{position}"))
    for position, path in enumerate(hint_layers or []):
        terms.append(HintTerm([(path, path)], name=f"hint_{position}"))
    return TapPlan(terms, len(teachers)).teacher_requests


def precompute_teacher(teacher, dataset, batch_size=256,
                       attention_layers=None, hint_layers=None, p=2.0,
                       in_memory=True, directory=None, top_k=None,
                       shard_size=16384, verbose=1):
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
        dataset: an *unbatched* `tf.data.Dataset` of `(x, y)` or `(x, y,
            sample_weight)` that yields the same order every time it is
            iterated (no shuffling before this call: shuffle the returned
            dataset instead). Sample weights stay the third element.
        batch_size: batch size of the teacher's pass.
        attention_layers: optional teacher layer paths to store maps of.
        hint_layers: optional teacher layer paths to store features of.
        p: the attention exponent (that of the attention loss).
        in_memory: keep the inputs and labels in memory too, so that the
            returned dataset is a plain `from_tensor_slices` (an epoch then
            costs what a plain student epoch does). Set `False` when the
            inputs do not fit in memory: the stored outputs are then zipped
            with `dataset`, at some per-example cost.
        directory: a folder to write the outputs to, in shards, instead of
            memory (`keras_kd.teacher_store`): inputs, labels and outputs
            are streamed back from disk, memory does not grow with the
            dataset, and an interrupted run resumes where it stopped when
            called again with the same arguments. `open_teacher_store`
            reopens it later without the teacher.
        top_k: store only the teacher's `top_k` largest log-probabilities
            per example, with their classes and the remaining mass, instead
            of all logits (`keras_kd.top_k_targets`, with its error bound:
            close at T = 1, far at T >= 2 unless k is large).
        shard_size: examples per shard file with `directory`.
        verbose: show a progress bar.

    Returns:
        An unbatched dataset of `(x, {"y": y, "teacher_logits": t,
        "teacher_values": {key: value}})`, keys as
        `keras_kd.tap_plan.key_string` makes them
        (`"teacher_top_k"`: `{"log_probs", "indices", "tail_log_prob"}`
        instead of `"teacher_logits"` with `top_k`).

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
                        in_memory=in_memory, directory=directory,
                        top_k=top_k, shard_size=shard_size, verbose=verbose)


def compiled(fn):
    """`fn` compiled by the backend: a `tf.function` on TensorFlow,
    `jax.jit` on JAX (the frozen teachers' weights become constants), as it
    is elsewhere."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return tf.function(fn)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _check_dataset(dataset, teachers, batch_size):
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "Argument `dataset` must be an unbatched tf.data.Dataset of "
            f"(x, y). Received: dataset of type {type(dataset).__name__}")
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) in (2, 3)):
        raise ValueError(
            "Argument `dataset` must yield (x, y) pairs or (x, y, "
            "sample_weight) triples. Received: dataset "
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
                 in_memory=True, directory=None, top_k=None,
                 shard_size=16384, verbose=1):
    """Stores every request's teacher values for `dataset`, keyed by key.

    See `precompute_teacher` for the arguments and the returned dataset.
    """
    _check_dataset(dataset, teachers, batch_size)
    top_k = check_top_k(top_k)
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or (
            shard_size < 1):
        raise ValueError("Argument `shard_size` must be a positive integer. "
                         f"Received: shard_size={shard_size!r}")
    logits_key = TEACHER_LOGITS if top_k is None else TEACHER_TOP_K

    def forward(x):
        logits, values, _ = forward_teachers(teachers, requests, x)
        logits = [ops.cast(t, "float32") for t in logits]
        logits = logits[0] if len(logits) == 1 else ops.stack(logits, axis=1)
        finite = ops.all(ops.isfinite(logits))
        if top_k is not None:
            logits = compact_top_k(logits, top_k)
        return logits, {key: ops.cast(value, "float32")
                        for key, value in values.items()}, finite

    forward = compiled(forward)

    def batches(data):
        """`(x, y, outputs, weights)` NumPy batches, outputs keyed as
        stored; `weights` is `()` or `(sample_weight,)`."""
        for x, y, *weights in data.batch(batch_size):
            x = keras.tree.map_structure(np.asarray, x)
            logits, values, finite = forward(x)
            if not bool(finite):
                raise ValueError("The teacher produced non-finite logits.")
            outputs = {logits_key: keras.tree.map_structure(np.asarray,
                                                            logits)}
            if values:
                outputs[TEACHER_VALUES] = {k: np.asarray(v)
                                           for k, v in values.items()}
            yield (keras.tree.map_structure(np.asarray, x), np.asarray(y),
                   outputs, tuple(np.asarray(w) for w in weights))

    cardinality = int(dataset.cardinality())
    steps = None if cardinality < 0 else -(-cardinality // batch_size)
    progbar = keras.utils.Progbar(steps, verbose=verbose, unit_name="batch")
    if directory is not None:
        return _run_to_store(teachers, dataset, requests, batches, progbar,
                             directory, top_k, shard_size, batch_size)
    parts = []
    for step, (x, y, outputs, weights) in enumerate(batches(dataset)):
        parts.append((x if in_memory else None, y if in_memory else None,
                      outputs, weights))
        progbar.update(step + 1)
    if not parts:
        raise ValueError("Argument `dataset` is empty.")

    def concatenate(*leaves):
        return np.concatenate(leaves)

    extras = keras.tree.map_structure(concatenate,
                                      *[part[2] for part in parts])
    if in_memory:
        x_all = keras.tree.map_structure(concatenate,
                                         *[part[0] for part in parts])
        y_all = np.concatenate([part[1] for part in parts])
        weights = tuple(np.concatenate(w) for w in zip(
            *[part[3] for part in parts]))
        return tf.data.Dataset.from_tensor_slices(
            (x_all, {LABELS: y_all, **extras}) + weights)
    outputs = tf.data.Dataset.zip((dataset, tf.data.Dataset.from_tensor_slices(
        extras)))
    # A parallel (still ordered) map: the restructuring is per example;
    # sample weights stay the third element.
    return outputs.map(
        lambda pair, extra: (pair[0], {LABELS: pair[1], **extra}) + pair[2:],
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _run_to_store(teachers, dataset, requests, batches, progbar, directory,
                  top_k, shard_size, batch_size):
    """Writes the teacher outputs into a store directory, resuming it."""
    signature = {"teachers": teacher_fingerprint(teachers),
                 "keys": sorted(r.key for r in requests), "top_k": top_k,
                 "examples": int(dataset.cardinality())}
    # Whole teacher batches per shard, so a resumed run batches the same.
    shard_size = max(1, -(-shard_size // batch_size)) * batch_size
    writer = StoreWriter(directory, signature, shard_size)
    if not writer.complete:
        done = writer.examples_done
        start = done // batch_size
        try:
            for step, (x, y, outputs, weights) in enumerate(
                    batches(dataset.skip(done)), start=start):
                writer.write((x, {LABELS: y, **outputs}) + weights, len(y))
                progbar.update(step + 1)
            writer.finish()
        except BaseException:
            writer.abandon()  # finished shards stay; a rerun resumes
            raise
    return open_teacher_store(directory)


def is_stored(y):
    """Whether labels `y` (values or specs) carry precomputed teachers."""
    return isinstance(y, dict) and (TEACHER_LOGITS in y or
                                    TEACHER_TOP_K in y)


def _stacked(rank, num_teachers, logits_rank):
    """Whether stored logits of `rank` hold several teachers on axis 1.

    One teacher's logits are stored as they are (`(batch, classes)`, or
    `(batch, steps, vocab)` for a language model); several teachers' are
    stacked on axis 1. With the student's `logits_rank` known the two are
    told apart; without it, rank 3 means stacked.
    """
    if logits_rank is not None:
        return rank == logits_rank + 1
    return rank == 3


def check_stored(y, requests, num_teachers, logits_rank=None):
    """Checks precomputed labels `y` (tensors or their specs) against what
    the Distiller's terms need, before any step runs.

    Args:
        logits_rank: the rank of the student's batched logits, if known.

    Raises:
        ValueError: naming the keys the Distiller needs and those stored,
            or the teacher counts, when they do not match.
    """
    top_k = y.get(TEACHER_TOP_K)
    stacked = y[TEACHER_LOGITS] if top_k is None else top_k[LOG_PROBS]
    rank = len(stacked.shape)
    several = _stacked(rank, num_teachers, logits_rank)
    if not ((num_teachers == 1 and not several and rank >= 2) or (
            several and num_teachers > 1
            and stacked.shape[1] == num_teachers)):
        raise ValueError(
            f"The precomputed teacher logits have shape "
            f"{tuple(stacked.shape)}, but the Distiller has {num_teachers} "
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


def stored_values(y, requests, num_teachers, logits_rank=None):
    """Teacher logits and values from precomputed labels `y` (checked by
    `check_stored`).

    Top-k targets come back as one dict per teacher; `SoftTargetTerm`
    expands them once the number of classes is known.
    """
    check_stored(y, requests, num_teachers, logits_rank)
    top_k = y.get(TEACHER_TOP_K)
    if num_teachers == 1:
        logits = [y[TEACHER_LOGITS] if top_k is None else dict(top_k)]
    else:
        logits = [y[TEACHER_LOGITS][:, i] if top_k is None else
                  {name: value[:, i] for name, value in top_k.items()}
                  for i in range(num_teachers)]
    stored = y.get(TEACHER_VALUES, {})
    return logits, {r.key: stored[r.key] for r in requests}
