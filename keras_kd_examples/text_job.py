"""The text example's recipe: tokens, augmentation, teachers, students and
their training, shared by `examples/text_distill.py` and
`benchmarks/text_distillation_seeds.py`.

Movie reviews (`load_reviews`) become token ids with
`keras.layers.TextVectorization` in a `tf.data` pipeline, outside the
models, so the exported `.tflite` takes token ids. Two teachers (a BiLSTM,
and a keras-hub transformer encoder) are trained from scratch; two students
(an LSTM and a one-block transformer) are trained alone and distilled from
the teachers' ensemble (`RECIPES`): soft targets + hard labels, and for
the transformer MiniLM-style attention-map KL between self-attention
layers. The LSTM student learns from an augmented transfer set (token
masking and n-gram sampling), labelled live by the teachers (Tang et al.,
"Distilling Task-Specific Knowledge from BERT into Simple Neural
Networks", 2019); attention transfer or hints from the BiLSTM's hidden
states did not help it (benchmarks/RESULTS.md, section 8b).

Example:

```python
from keras_kd_examples import text_job

data = text_job.prepare(seed=0)
teachers = text_job.train_teachers(data, epochs=4)
```
"""

import keras
import numpy as np
import tensorflow as tf

import keras_kd
from keras_kd_examples.datasets import load_reviews

CONFIG = {
    "vocabulary": 20000,
    "length": 48,
    "batch_size": 64,
    "teacher_epochs": 4,
    "student_epochs": 6,
    "learning_rate": 2e-3,
    "temperature": 2.0,
    "alpha": 0.3,
    "mask_rate": 0.1,
    "ngram_rate": 0.25,
    "max_ngram": 5,
}
OOV = 1  # TextVectorization's out-of-vocabulary id; 0 is padding


def prepare(name="rotten_tomatoes", path=None, seed=0, limit=None):
    """Token ids and labels per split, and the vocabulary.

    Returns:
        `{"train"|"validation"|"test": (ids int32 (n, length), labels),
        "vocabulary": [...]}`.
    """
    splits = load_reviews(name, path=path, seed=seed)
    if limit:
        splits = {k: (t[:limit], y[:limit]) for k, (t, y) in splits.items()}
    vectorize = keras.layers.TextVectorization(
        max_tokens=CONFIG["vocabulary"],
        output_sequence_length=CONFIG["length"])
    vectorize.adapt(tf.data.Dataset.from_tensor_slices(
        splits["train"][0]).batch(512))
    data = {"vocabulary": vectorize.get_vocabulary()}
    for split, (texts, labels) in splits.items():
        ids = tf.data.Dataset.from_tensor_slices(texts).batch(512).map(
            vectorize, num_parallel_calls=tf.data.AUTOTUNE)
        data[split] = (np.concatenate([np.asarray(b, "int32") for b in ids]),
                       np.asarray(labels, "int64"))
    return data


def augment(tokens, seeds):
    """Token masking and n-gram sampling of padded id rows `(batch, L)`.

    Each token is replaced by the OOV id with probability `mask_rate`; with
    probability `ngram_rate` a row is cut down to one random n-gram
    (1 ≤ n ≤ `max_ngram`) of its words (Tang et al. 2019).
    """
    tokens = tf.convert_to_tensor(tokens)
    batch, length = tf.shape(tokens)[0], tf.shape(tokens)[1]
    valid = tokens > 0
    masked = tf.where(
        valid & (tf.random.stateless_uniform(tf.shape(tokens), seeds[0])
                 < CONFIG["mask_rate"]), tf.cast(OOV, tokens.dtype), tokens)
    lengths = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
    n = tf.minimum(tf.random.stateless_uniform(
        [batch], seeds[1], 1, CONFIG["max_ngram"] + 1, tf.int32),
        tf.maximum(lengths, 1))
    start = tf.cast(tf.random.stateless_uniform([batch], seeds[2]) * tf.cast(
        tf.maximum(lengths - n + 1, 1), tf.float32), tf.int32)
    positions = tf.range(length)[None]
    source = tf.minimum(start[:, None] + positions, length - 1)
    ngram = tf.gather(masked, source, batch_dims=1) * tf.cast(
        positions < n[:, None], tokens.dtype)
    chosen = tf.random.stateless_uniform([batch], seeds[3]) < CONFIG[
        "ngram_rate"]
    return tf.where(chosen[:, None], ngram, masked)


def transfer_set(x, y, seed, batch_size):
    """Batches of each original example and one augmented view of it."""
    generator = tf.random.Generator.from_seed(seed)

    def with_views(xb, yb):
        views = augment(xb, tf.transpose(generator.make_seeds(4)))
        return tf.concat([xb, views], 0), tf.concat([yb, yb], 0)

    return (tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(x), seed=seed).batch(batch_size)
            # No control flow to convert; AutoGraph would only warn about
            # the closure over `generator`.
            .map(tf.autograph.experimental.do_not_convert(with_views))
            .prefetch(4))


def bilstm_teacher(units=128, width=128):
    inputs = keras.Input((CONFIG["length"],), dtype="int32", name="tokens")
    x = keras.layers.Embedding(CONFIG["vocabulary"], width, mask_zero=True,
                               name="embedding")(inputs)
    x = keras.layers.SpatialDropout1D(0.3)(x)
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(units, return_sequences=True), name="bilstm")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x),
                       name="bilstm_teacher")


def transformer(blocks, heads, width, name, dropout=0.1):
    """Token + position embeddings, keras-hub `TransformerEncoder` blocks
    named `block1`, `block2`, ..., mean-pooled, a Dense classifier."""
    import keras_hub

    inputs = keras.Input((CONFIG["length"],), dtype="int32", name="tokens")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        CONFIG["vocabulary"], CONFIG["length"], width, mask_zero=True,
        name="embedding")(inputs)
    for block in range(1, blocks + 1):
        x = keras_hub.layers.TransformerEncoder(
            2 * width, heads, dropout=dropout, name=f"block{block}")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x),
                       name=name)


def lstm_student(units=32, width=16):
    """An LSTM without masking (TFLite fuses it into its int8 sequence-LSTM
    kernel), max-pooled over time, so padding does not matter."""
    inputs = keras.Input((CONFIG["length"],), dtype="int32", name="tokens")
    x = keras.layers.Embedding(CONFIG["vocabulary"], width,
                               name="embedding")(inputs)
    x = keras.layers.LSTM(units, return_sequences=True, name="lstm")(x)
    x = keras.layers.GlobalMaxPooling1D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x),
                       name="lstm_student")


def transformer_student():
    return transformer(blocks=1, heads=2, width=32, name="transformer_student")


TEACHERS = {"bilstm": bilstm_teacher,
            "transformer": lambda: transformer(2, 4, 128,
                                               "transformer_teacher")}
STUDENTS = {"lstm": lstm_student, "transformer": transformer_student}
# What each student distils besides soft targets and hard labels: keyword
# arguments of `keras_kd.Distiller` ("distiller") and of its `compile`
# ("compile"), and whether the teachers label the augmented transfer set
# ("augment"). Pairs name teacher 0 of the student's ensemble. The LSTM
# learns from soft targets alone: attention transfer from the BiLSTM's
# 256-wide states (weight 20) cost it 2.7 pt on validation over 3 seeds
# (benchmarks/RESULTS.md, section 8b).
RECIPES = {
    "lstm": {"distiller": {}, "compile": {}, "augment": True},
    "transformer": {
        "augment": False,
        "distiller": {"attention_pairs": [("0:block2/_self_attention_layer",
                                           "block1/_self_attention_layer")]},
        "compile": {"attention_weight": 20.0}},
}
# The ensemble each student learns from, its pair teacher first.
ENSEMBLES = {"lstm": ("bilstm", "transformer"),
             "transformer": ("transformer", "bilstm")}


def _optimizer(steps):
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        CONFIG["learning_rate"], steps))


def _best_weights(monitor="val_accuracy"):
    return keras.callbacks.EarlyStopping(monitor=monitor, mode="max",
                                         patience=100,
                                         restore_best_weights=True)


def batches(x, y, batch_size=None, shuffle_seed=None):
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed)
    return ds.batch(batch_size or CONFIG["batch_size"]).prefetch(4)


def accuracy(model, data):
    x, y = data
    logits = model.predict(x, batch_size=512, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == y))


def train_teachers(data, epochs=None, seed=0, verbose=2):
    """Both teachers, each at its best validation epoch."""
    epochs = epochs or CONFIG["teacher_epochs"]
    teachers = {}
    for name, build in TEACHERS.items():
        keras.utils.set_random_seed(seed)
        model = build()
        steps = -(-len(data["train"][0]) // CONFIG["batch_size"]) * epochs
        model.compile(optimizer=_optimizer(steps), metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
        if verbose:
            print(f"== teacher: {name} ({model.count_params():,} "
                  "parameters) ==")
        model.fit(batches(*data["train"], shuffle_seed=seed),
                  validation_data=batches(*data["validation"]),
                  epochs=epochs, verbose=verbose,
                  callbacks=[_best_weights()])
        teachers[name] = model
    return teachers


def train_student(kind, data, teachers=None, epochs=None, seed=0,
                  initial_weights=None, verbose=2):
    """A student trained alone (`teachers=None`) or distilled from the
    ensemble of `teachers` (a dict as `train_teachers` returns), at its best
    validation epoch."""
    epochs = epochs or CONFIG["student_epochs"]
    keras.utils.set_random_seed(seed)
    student = STUDENTS[kind]()
    if initial_weights is not None:
        student.set_weights(initial_weights)
    x, y = data["train"]
    steps = -(-len(x) // CONFIG["batch_size"]) * epochs
    if teachers is None:
        student.compile(optimizer=_optimizer(steps), metrics=["accuracy"],
                        loss=keras.losses.SparseCategoricalCrossentropy(
                            from_logits=True))
        student.fit(batches(x, y, shuffle_seed=seed),
                    validation_data=batches(*data["validation"]),
                    epochs=epochs, verbose=verbose,
                    callbacks=[_best_weights()])
        return student
    ensemble = [teachers[name] for name in ENSEMBLES[kind]]
    recipe = RECIPES[kind]
    distiller = keras_kd.Distiller(ensemble, student, **recipe["distiller"])
    distiller.compile(optimizer=_optimizer(steps), metrics=["accuracy"],
                      alpha=CONFIG["alpha"],
                      temperature=CONFIG["temperature"], **recipe["compile"])
    train = (transfer_set(x, y, seed, CONFIG["batch_size"])
             if recipe["augment"] else batches(x, y, shuffle_seed=seed))
    distiller.fit(train, validation_data=batches(*data["validation"]),
                  epochs=epochs, verbose=verbose,
                  callbacks=[_best_weights()])
    return student
