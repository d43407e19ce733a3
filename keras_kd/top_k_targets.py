"""Compact soft targets: the teacher's k most likely classes and the rest.

Storing a 1000-class teacher's logits for 1.28M images takes 5 GB of
float32. Large-scale offline distillation (FKD: Shen & Xing, "A Fast
Knowledge Distillation Framework for Visual Recognition", 2021) stores only
the top k. Here each example keeps the k largest log-probabilities
`log p_i` (at T = 1), their class indices, and, for the `C − k` other
classes, one value per temperature of `TAIL_TEMPERATURES` (1, 2, 4, 8): the
power mean `t̄_T = T · log mean_tail exp(log p_j / T)`. `expand_top_k(...,
temperature=T)` gives `C` pseudo-logits whose `softmax(· / T)` is exact on
the top k and on the tail's total mass at that `T` (between grid points,
`t̄_T` is interpolated in `log T`), so the Distiller's soft-target term
reads them as it reads logits, temperature schedules included.

**Error bound.** With the teacher's soft targets `q` at `T`, their
reconstruction `q̃`, the tail's mass `r_T`, its normalised shape `u` and the
student's log-probabilities `log s` at `T`, the soft-target loss
(`T²·KL`) changes by `T²·[r_T·(H(u) − log(C − k)) − r_T·Σ_tail (ū_j − u_j)
log s_j]` (`ū` uniform), so

    |ΔL| ≤ T² · r_T · (log(C − k) + max_tail log s − min_tail log s)

which vanishes with the tail's mass. Only the tail's shape is lost, but at
`T > 1` the tail of many classes carries much of the soft targets' mass:
measured on a trained 1000-class teacher (`benchmarks/precompute_scale.py`,
`benchmarks/RESULTS.md`), top-10 changes the loss by 0.3% at T = 1 but by
7% at T = 2 and 42% at T = 4 (top-100: 0.02%, 1.4%, 17%). Use top-k with
T = 1 (as FKD does), or a larger k at higher temperatures.

Example:

```python
compact = compact_top_k(teacher_logits, k=10)  # (batch, 10) x 2, (batch, 4)
logits = expand_top_k(compact, classes=1000, temperature=4.0)
```
"""

import math

from keras import ops

LOG_PROBS = "log_probs"
INDICES = "indices"
TAIL = "tail_log_prob"

# Temperatures at which the tail's power mean is stored.
TAIL_TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
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
    shape `(..., len(TAIL_TEMPERATURES))`: the power mean `t̄_T` of the
    `C − k` other classes' log-probabilities at each temperature.
    """
    logits = ops.cast(logits, "float32")
    classes = logits.shape[-1]
    check_top_k(k, classes)
    log_probs = ops.log_softmax(logits, axis=-1)
    values, indices = ops.top_k(log_probs, k, sorted=True)
    tails = []
    for temperature in TAIL_TEMPERATURES:
        # Σ_tail exp(ℓ/T) = Σ_all − Σ_top, in logs without cancellation:
        # log Σ_all + log(1 − exp(log Σ_top − log Σ_all)).
        everything = ops.logsumexp(log_probs / temperature, axis=-1)
        top = ops.logsumexp(values / temperature, axis=-1)
        rest = everything + ops.log(ops.maximum(
            -ops.expm1(ops.minimum(top - everything, 0.0)), 1e-37))
        tails.append(ops.maximum(
            temperature * (rest - math.log(classes - k)), _LOG_FLOOR))
    index_dtype = "int16" if classes <= 32767 else "int32"
    return {LOG_PROBS: values, INDICES: ops.cast(indices, index_dtype),
            TAIL: ops.stack(tails, axis=-1)}


def tail_at(tails, temperature):
    """`t̄_T` from the stored grid, linear in `log T`, clamped at its ends."""
    grid = [math.log(t) for t in TAIL_TEMPERATURES]
    position = ops.clip(ops.log(ops.cast(temperature, "float32")), grid[0],
                        grid[-1])
    value = tails[..., 0]
    for i in range(1, len(grid)):
        weight = ops.clip((position - grid[i - 1]) / (grid[i] - grid[i - 1]),
                          0.0, 1.0)
        value = value + weight * (tails[..., i] - tails[..., i - 1])
    return value


def expand_top_k(compact, classes, temperature=1.0):
    """Pseudo-logits `(..., classes)` from `compact_top_k`'s output.

    Their `softmax(· / temperature)` equals the teacher's soft targets on
    the stored classes and spreads the tail's exact mass evenly over the
    others.
    """
    values = ops.cast(compact[LOG_PROBS], "float32")
    indices = ops.cast(compact[INDICES], "int32")
    tail = tail_at(ops.cast(compact[TAIL], "float32"), temperature)
    leading = ops.shape(values)[:-1]
    k = ops.shape(values)[-1]
    # Flatten any leading axes (sequences: `(batch, steps, k)`) and scatter
    # the k values into rows of tail values: one `(rows, classes)` tensor,
    # never a `(rows, k, classes)` one-hot.
    values, indices = ops.reshape(values, (-1, k)), ops.reshape(indices,
                                                                (-1, k))
    tail = ops.reshape(tail, (-1,))
    rows = ops.cumsum(ops.ones_like(indices), axis=0) - 1  # row of each
    positions = ops.stack([ops.reshape(rows, (-1,)),
                           ops.reshape(indices, (-1,))], axis=1)
    dense = ops.broadcast_to(ops.expand_dims(tail, 1),
                             (ops.shape(values)[0], classes))
    dense = ops.scatter_update(dense, positions, ops.reshape(values, (-1,)))
    return ops.reshape(dense, tuple(leading) + (classes,))


def is_top_k(value):
    return isinstance(value, dict) and set(value) == {LOG_PROBS, INDICES,
                                                      TAIL}
