"""Sequence batches for causal LMs: next-token data and perplexity.

keras_kd's language-model tools pass *sequences*: a dict of `(batch,
steps)` arrays `{"token_ids", "padding_mask", "response_mask"}`, right
padded, where `response_mask` marks the tokens to learn (a teacher's
generation, a reference completion) and the other valid tokens are the
prompt. `generate_transfer_set` writes them, `OnPolicyDistiller` trains on
them, and `next_token_data` turns them into the `(x, y, sample_weight)`
that `Distiller.fit` and a plain `student.fit` take (keras-hub's own
preprocessor layout: `x` is `steps − 1` tokens, `y` the next ones).

Example:

```python
x, y, weights = keras_kd.lm.next_token_data(sequences)  # loss on responses
distiller.fit(x, y, sample_weight=weights, epochs=3)
keras_kd.lm.perplexity(student, x, y, weights)
```
"""

import math

import numpy as np

from keras_kd.lm.sampling import PADDING_MASK
from keras_kd.lm.sampling import RESPONSE_MASK
from keras_kd.lm.sampling import TOKEN_IDS
from keras_kd.lm.sampling import check_sequences
from keras_kd.utils.validation import check_one_of


def next_token_data(sequences, loss_on="response"):
    """`(x, y, sample_weight)` NumPy arrays from `sequences`.

    Args:
        sequences: `{"token_ids", "padding_mask"[, "response_mask"]}`.
        loss_on: `"response"` weighs only the labels that are response
            tokens; `"all"` every valid label (plain language modelling).
    """
    check_one_of("loss_on", loss_on, ("response", "all"))
    keys = (TOKEN_IDS, PADDING_MASK) + (
        (RESPONSE_MASK,) if loss_on == "response" else ())
    check_sequences(sequences, "sequences", keys)
    ids = np.asarray(sequences[TOKEN_IDS], "int32")
    valid = np.asarray(sequences[PADDING_MASK], bool)
    learn = valid if loss_on == "all" else np.logical_and(
        valid, np.asarray(sequences[RESPONSE_MASK], bool))
    x = {TOKEN_IDS: ids[:, :-1], PADDING_MASK: valid[:, :-1]}
    return x, ids[:, 1:], learn[:, 1:].astype("float32")


def perplexity(model, x, y, sample_weight=None, batch_size=32):
    """`exp` of the mean negative log-likelihood of the labels `y` under
    `model`'s logits on `x`, over the labels with weight > 0 (weighted);
    every label counts when `sample_weight` is `None`.

    The mean is over tokens, so `log2(perplexity) · tokens / bytes` is bits
    per byte (for a byte tokenizer: `log2(perplexity)`).
    """
    y = np.asarray(y)
    weights = (np.ones(y.shape, "float64") if sample_weight is None
               else np.asarray(sample_weight, "float64"))
    if weights.sum() <= 0:
        raise ValueError("Argument `sample_weight` weighs no label: "
                         "perplexity needs at least one.")
    total = 0.0
    for start in range(0, len(y), batch_size):  # memory: one batch
        rows = slice(start, start + batch_size)
        logits = np.asarray(model.predict_on_batch(
            {k: np.asarray(v)[rows] for k, v in x.items()}
            if isinstance(x, dict) else np.asarray(x)[rows]), "float64")
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        picked = np.take_along_axis(log_probs, y[rows][..., None], -1)
        total += float((picked[..., 0] * weights[rows]).sum())
    return math.exp(-total / weights.sum())
