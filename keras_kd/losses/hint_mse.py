"""The FitNets hint loss."""

import keras
from keras import ops

from keras_kd.utils import compat


@keras.saving.register_keras_serializable(package="keras_kd")
class HintMSE(keras.losses.Loss):
    """FitNets hint loss: mean squared error over positions and channels.

    `loss(teacher_feature, projected_student_feature)` of equal shapes
    `(B, ...)`; per example the mean over all non-batch axes, then the batch
    mean. When `y_pred` is a sequence `(B, T, C)` with a Keras mask, the
    mean runs over valid (example, position) pairs and all channels.
    Reference: Romero et al., "FitNets: Hints for Thin Deep Nets",
    ICLR 2015.

    Example:

    ```python
    import numpy as np
    from keras_kd.losses import HintMSE

    value = HintMSE()(np.ones((2, 4, 4, 8)), np.zeros((2, 4, 4, 8)))  # 1.0
    ```
    """

    def __init__(self, reduction="sum_over_batch_size", name="hint_mse",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        squared = ops.square(ops.cast(y_pred, "float32")
                             - ops.cast(y_true, "float32"))
        if compat.get_keras_mask(y_pred) is not None and len(
                squared.shape) == 3:
            # (B, T): Keras averages over the valid positions.
            return ops.mean(squared, axis=-1)
        return ops.mean(ops.reshape(squared, (ops.shape(squared)[0], -1)),
                        axis=-1)
