"""Keras-native magnitude pruning: masks over any Keras 3 model's kernels.

Keras 3 has no pruning (keras-team/keras#23082) and TF-MOT takes only
tf_keras models. Here each kernel found by `weight_sites` gets a mask,
recomputed from weight magnitudes on the schedule's steps and applied
before every fine-tuning step and once at the end, so what comes back is
the same Keras 3 model class with zeros in its kernels: no wrappers to
strip. Works on every backend.

Reference: Zhu & Gupta, "To prune, or not to prune", 2017
(arXiv:1710.01878).

Example:

```python
from keras_kd.compression.native.masks import MagnitudeMasks

masks = MagnitudeMasks(weight_sites(student))
masks.update(0.5)   # half of each kernel's smallest weights
masks.apply()
```
"""

import keras
import numpy as np

from keras_kd.compression.structures import BlockSparsity
from keras_kd.compression.structures import MByNSparsity


class MagnitudeMasks:
    """One binary mask per kernel, chosen by magnitude layer by layer.

    Args:
        sites: `WeightSite`s (see `weight_sites`).
        structure: `None`, `BlockSparsity` or `MByNSparsity`, as `prune`
            takes it.
    """

    def __init__(self, sites, structure=None):
        self.sites = list(sites)
        self.structure = structure
        self.masks = [None] * len(self.sites)
        for site in self.sites:
            _check_structure(site, structure)

    @classmethod
    def of_zeros(cls, sites):
        """Masks that keep the zeros the kernels already have (QAT after
        pruning keeps them zero)."""
        masks = cls(sites)
        masks.masks = [
            keras.ops.convert_to_tensor(
                (keras.ops.convert_to_numpy(s.variable) != 0).astype(
                    s.variable.dtype))
            for s in masks.sites]
        return masks

    def update(self, sparsity):
        """Recomputes every mask for `sparsity` (a fraction in [0, 1))."""
        self.masks = [
            keras.ops.convert_to_tensor(
                _mask(keras.ops.convert_to_numpy(site.variable), sparsity,
                      site, self.structure).astype(site.variable.dtype))
            for site in self.sites]

    def apply(self):
        """Multiplies each kernel by its mask (where one was computed)."""
        for site, mask in zip(self.sites, self.masks):
            if mask is not None:
                site.variable.assign(site.variable * mask)


class PruningStep(keras.callbacks.Callback):
    """Updates the masks on the schedule's steps and applies them before
    every batch and at the end of training (what TF-MOT's wrappers and
    `UpdatePruningStep` do, here added by `prune` itself).

    Args:
        masks: a `MagnitudeMasks`.
        schedule: `step -> sparsity or None` (`schedules.native_schedule`),
            or `None` to keep the masks as they are.
    """

    def __init__(self, masks, schedule=None):
        super().__init__()
        self.masks = masks
        self.schedule = schedule
        self.step = 0

    def on_train_batch_begin(self, batch, logs=None):
        sparsity = None if self.schedule is None else self.schedule(self.step)
        if sparsity is not None:
            self.masks.update(sparsity)
        self.masks.apply()
        self.step += 1

    def on_train_end(self, logs=None):
        self.masks.apply()


def _check_structure(site, structure):
    if isinstance(structure, MByNSparsity):
        size = site.variable.shape[site.input_axis]
        if size % structure.n:
            raise ValueError(
                f"MByNSparsity({structure.m}, {structure.n}) groups weights "
                f"in runs of {structure.n} along the input channels, but "
                f"kernel '{site.path}' has {size} of them. Leave its layer "
                f"'{site.layer.name}' dense with `keep_dense`.")


def _mask(weights, sparsity, site, structure):
    magnitude = np.abs(weights.astype(np.float32))
    if isinstance(structure, MByNSparsity):
        return _m_by_n_mask(magnitude, site.input_axis, structure)
    if isinstance(structure, BlockSparsity) and magnitude.ndim == 2:
        return _block_mask(magnitude, sparsity, structure)
    return _smallest_out(magnitude, sparsity)


def _smallest_out(magnitude, sparsity):
    """Zeros for the `round(sparsity · size)` smallest entries, exactly."""
    flat = magnitude.reshape(-1)
    count = int(round(sparsity * flat.size))
    mask = np.ones(flat.size, dtype=bool)
    if count > 0:
        mask[np.argpartition(flat, count - 1)[:count]] = False
    return mask.reshape(magnitude.shape)


def _block_mask(magnitude, sparsity, structure):
    rows, cols = structure.rows, structure.cols
    height, width = magnitude.shape
    padded = np.zeros((-(-height // rows) * rows, -(-width // cols) * cols),
                      np.float32)
    padded[:height, :width] = magnitude
    blocks = padded.reshape(padded.shape[0] // rows, rows,
                            padded.shape[1] // cols, cols).mean(axis=(1, 3))
    keep = _smallest_out(blocks, sparsity)
    mask = np.repeat(np.repeat(keep, rows, axis=0), cols, axis=1)
    return mask[:height, :width]


def _m_by_n_mask(magnitude, axis, structure):
    """Keeps the `m` largest of every `n` consecutive weights along
    `axis`."""
    moved = np.moveaxis(magnitude, axis, -1)
    groups = moved.reshape(-1, structure.n)
    order = np.argsort(-groups, axis=1, kind="stable")
    keep = np.zeros_like(groups, dtype=bool)
    np.put_along_axis(keep, order[:, :structure.m], True, axis=1)
    return np.moveaxis(keep.reshape(moved.shape), -1, axis)
