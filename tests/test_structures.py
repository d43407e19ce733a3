"""Sparsity structures for `prune(structure=...)`."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_cnn

from keras_kd.compression import BlockSparsity
from keras_kd.compression import FineTuning
from keras_kd.compression import MByNSparsity
from keras_kd.compression import prune
from keras_kd.compression.structures import structure_arguments


def test_structures_map_to_tfmot_arguments_and_round_trip():
    assert structure_arguments(None) == {}
    assert structure_arguments(BlockSparsity(1, 4)) == {"block_size": (1, 4)}
    assert structure_arguments(MByNSparsity(2, 4)) == {
        "sparsity_m_by_n": (2, 4)}
    for structure in (BlockSparsity(2, 2), MByNSparsity(1, 4)):
        clone = type(structure).from_config(structure.get_config())
        assert structure_arguments(clone) == structure_arguments(structure)


@pytest.mark.parametrize("make,match", [
    (lambda: MByNSparsity(4, 2), "m=4, n=2"),
    (lambda: MByNSparsity(0, 4), "m=0"),
    (lambda: BlockSparsity(1, 2.5), "cols=2.5"),
])
def test_bad_structures_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_prune_refuses_a_bare_tuple_before_training():
    x = np.zeros((8, 12, 12, 1), "float32")
    train = tf.data.Dataset.from_tensor_slices((x, np.zeros(8, "int64")))
    with pytest.raises(TypeError, match=r"structure=\(2, 4\) of type tuple"):
        prune(make_cnn(8, "student"), train.batch(4), structure=(2, 4))
    with pytest.raises(TypeError, match="fine_tuning={'epochs': 1}"):
        prune(make_cnn(8, "student"), train.batch(4),
              fine_tuning={"epochs": 1})


def test_block_sparsity_zeroes_whole_blocks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 10, 64)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    pruned = prune(make_cnn(8, "student"), train, target_sparsity=0.5,
                   structure=BlockSparsity(1, 4),
                   fine_tuning=FineTuning(epochs=2, learning_rate=1e-3),
                   verbose=0)
    kernel = pruned.get_layer("logits").get_weights()[0]  # (8, 10)
    blocks = (kernel[:, :8] == 0).reshape(8, 2, 4)
    # Every 1x4 block is all zeros or all non-zeros, half of them zeros.
    assert np.all(blocks.all(-1) | ~blocks.any(-1))
    assert blocks.all(-1).mean() == pytest.approx(0.5, abs=0.1)
    # Convolutions (4-D kernels) are pruned weight by weight.
    conv = pruned.get_layer("conv2").get_weights()[0]
    assert np.mean(conv == 0) == pytest.approx(0.5, abs=0.05)


def test_a_structure_that_fixes_the_sparsity_refuses_another_target():
    """2:4 gives 50% zeros whatever the schedule says: asking for 75% with
    it is an error before any work, not a silent 50%."""
    from keras_kd.compression.pruning import _target_sparsity

    assert _target_sparsity(None, MByNSparsity(2, 4)) == 0.5
    assert _target_sparsity(None, MByNSparsity(1, 4)) == 0.75
    assert _target_sparsity(None, None) == 0.75
    assert _target_sparsity(0.6, BlockSparsity(1, 4)) == 0.6
    train = tf.data.Dataset.from_tensor_slices((
        np.zeros((8, 12, 12, 1), "float32"), np.zeros(8, "int32"))).batch(4)
    with pytest.raises(ValueError, match=r"fixes the sparsity at 0\.5.*"
                       r"target_sparsity=0\.75"):
        prune(make_cnn(8, "student"), train, target_sparsity=0.75,
              structure=MByNSparsity(2, 4), verbose=0)
