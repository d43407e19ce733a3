"""The FitNets hint loss."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_kd")
class HintMSE(keras.losses.Loss):
    """FitNets hint loss: mean squared error over positions and channels.

    `loss(teacher_feature, projected_student_feature)` of equal shapes
    `(B, ...)`; per example the mean over all non-batch axes, then the batch
    mean. Reference: Romero et al., "FitNets: Hints for Thin Deep Nets",
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
        return ops.mean(ops.reshape(squared, (ops.shape(squared)[0], -1)),
                        axis=-1)
