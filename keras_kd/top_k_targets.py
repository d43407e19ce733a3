"""Compact soft targets: the teacher's k most likely classes and the rest.

Storing a 1000-class teacher's logits for 1.28M images takes 5 GB of
float32. Large-scale offline distillation (FKD: Shen & Xing, "A Fast
Knowledge Distillation Framework for Visual Recognition", 2021) stores only
the top k. Here each example keeps the k largest log-probabilities
`log p_i` (at T = 1), their class indices, and one number for the remaining
mass `r = 1 − Σ_topk p_i`: every other class gets the same log-probability
`log(r / (C − k))`. `expand_top_k` turns that back into `C` pseudo-logits
whose softmax is exact on the top k and on the tail's total mass, so the
Distiller's soft-target term reads them as it reads logits, at any
temperature.

**Error bound (T = 1).** With the teacher distribution `q`, its top-k
reconstruction `q̃`, the tail's normalised shape `u` and the student's
log-probabilities `log s`, the soft-target loss changes by

    KL(q̃‖s) − KL(q‖s) = r·(H(u) − log(C − k)) − r·Σ_tail (ū_j − u_j) log s_j

(`ū` uniform), so `|ΔL| ≤ r·(log(C − k) + max_tail log s − min_tail log s)`:
it vanishes with the tail mass `r`. At `T > 1` the uniform tail
over-weights the tail (its mass there is at most `(C − k)^(1 − 1/T)` times
the true one), so the loss error grows with `T`;
`benchmarks/precompute_scale.py` measures it on teacher outputs
(`benchmarks/RESULTS.md`).

Example:

```python
compact = compact_top_k(teacher_logits, k=10)   # (batch, 10) x 2, (batch,)
logits = expand_top_k(compact, classes=1000)    # (batch, 1000)
```
"""

import math

from keras import ops

LOG_PROBS = "log_probs"
INDICES = "indices"
TAIL = "tail_log_prob"

# log p of a tail class is clamped here when the tail mass underflows.
_LOG_FLOOR = -80.0


def check_top_k(top_k, classes=None):
    """`top_k` as an int (or `None`); a clear error otherwise."""
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError("Argument `top_k` must be a positive integer or "
                         f"None. Received: top_k={top_k!r}")
    if classes is not None and top_k >= classes:
        raise ValueError(
            f"Argument `top_k` must be smaller than the number of classes "
            f"({classes}); store full logits with top_k=None. Received: "
            f"top_k={top_k}")
    return top_k


def compact_top_k(logits, k):
    """`{log_probs, indices, tail_log_prob}` of `logits` (`(..., C)`).

    `log_probs` and `indices` have shape `(..., k)`; `tail_log_prob` has
    shape `(...)`: the log-probability given to each of the `C − k` other
    classes.
    """
    logits = ops.cast(logits, "float32")
    classes = logits.shape[-1]
    check_top_k(k, classes)
    log_probs = ops.log_softmax(logits, axis=-1)
    values, indices = ops.top_k(log_probs, k, sorted=True)
    # log r = log(1 − Σ_topk p) = log(−expm1(logsumexp(top k))).
    top_mass = ops.logsumexp(values, axis=-1)
    log_tail = ops.log(ops.maximum(-ops.expm1(top_mass), 1e-37))
    tail = ops.maximum(log_tail - math.log(classes - k), _LOG_FLOOR)
    index_dtype = "int16" if classes <= 32767 else "int32"
    return {LOG_PROBS: values, INDICES: ops.cast(indices, index_dtype),
            TAIL: tail}


def expand_top_k(compact, classes):
    """Pseudo-logits `(..., classes)` from `compact_top_k`'s output.

    Their softmax equals the teacher's probabilities on the stored classes
    and spreads the remaining mass evenly over the others.
    """
    values = ops.cast(compact[LOG_PROBS], "float32")
    tail = ops.cast(compact[TAIL], "float32")[..., None]
    one_hot = ops.one_hot(ops.cast(compact[INDICES], "int32"), classes,
                          dtype="float32")  # (..., k, classes)
    return tail + ops.sum(one_hot * (values - tail)[..., None], axis=-2)


def is_top_k(value):
    return isinstance(value, dict) and set(value) == {LOG_PROBS, INDICES,
                                                      TAIL}
