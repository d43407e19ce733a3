"""Sparsity structures: which weights are pruned together.

`prune(structure=...)` takes one of these small objects; `None` prunes
weight by weight. They map onto TF-MOT's `prune_low_magnitude` arguments
(`block_size`, `sparsity_m_by_n`).

Example:

```python
from keras_kd.compression import MByNSparsity, prune

pruned = prune(student, train_ds, structure=MByNSparsity(2, 4))
```
"""


def _check_pair(name, first, second, first_name, second_name, strict):
    for arg, value in ((first_name, first), (second_name, second)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"Argument `{arg}` of {name} must be a positive integer. "
                f"Received: {arg}={value!r}")
    if strict and not first < second:
        raise ValueError(
            f"{name} needs {first_name} < {second_name}, e.g. (2, 4). "
            f"Received: {first_name}={first!r}, {second_name}={second!r}")


class BlockSparsity:
    """Prunes `(rows, cols)` blocks of each 2-D kernel (Dense layers)
    together, which sparse kernels on some accelerators can skip as a whole.
    TF-MOT supports blocks on 2-D kernels only: convolutions are pruned
    weight by weight.

    Args:
        rows, cols: the block shape, e.g. `(1, 4)`.
    """

    def __init__(self, rows, cols):
        _check_pair("BlockSparsity", rows, cols, "rows", "cols", False)
        self.rows, self.cols = rows, cols

    def prune_arguments(self):
        return {"block_size": (self.rows, self.cols)}

    def applies_to(self, layer):
        return any(len(w.shape) == 2 for w in layer.trainable_weights)

    def get_config(self):
        return {"rows": self.rows, "cols": self.cols}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"BlockSparsity({self.rows}, {self.cols})"


class MByNSparsity:
    """Keeps `m` of every `n` consecutive weights along the input channels
    (2:4 sparsity for sparse tensor cores and XNNPACK's sparse inference).
    It fixes the sparsity at `1 − m/n`: `prune`'s `target_sparsity` must
    be that value or left out.

    Reference: Mishra et al., "Accelerating Sparse Deep Neural Networks",
    2021 (arXiv:2104.08378).

    Args:
        m, n: keep `m` of every `n` weights, `0 < m < n`.
    """

    def __init__(self, m, n):
        _check_pair("MByNSparsity", m, n, "m", "n", True)
        self.m, self.n = m, n

    @property
    def fixed_sparsity(self):
        """`1 − m/n`: the only sparsity this structure gives."""
        return 1.0 - self.m / self.n

    def prune_arguments(self):
        return {"sparsity_m_by_n": (self.m, self.n)}

    def applies_to(self, layer):
        return True

    def get_config(self):
        return {"m": self.m, "n": self.n}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"MByNSparsity({self.m}, {self.n})"


def structure_arguments(structure, layer=None):
    """`prune_low_magnitude` keyword arguments for `prune(structure=...)`
    (for `layer`, when given: none where the structure does not apply)."""
    if structure is None:
        return {}
    if isinstance(structure, (BlockSparsity, MByNSparsity)):
        if layer is not None and not structure.applies_to(layer):
            return {}
        return structure.prune_arguments()
    raise TypeError(
        "Argument `structure` must be None, BlockSparsity(rows, cols) or "
        f"MByNSparsity(m, n). Received: structure={structure!r} of type "
        f"{type(structure).__name__}")
