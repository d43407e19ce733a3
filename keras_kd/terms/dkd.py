"""Decoupled knowledge distillation: target and non-target classes apart."""

import keras
from keras import ops

from keras_kd.terms.logit_term import LogitTerm
from keras_kd.terms.logit_term import target_mask
from keras_kd.utils.validation import check_non_negative
from keras_kd.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_kd")
class DKD(LogitTerm):
    """Decoupled KD: the KL of soft targets split into the target class
    (TCKD) and the non-target classes (NCKD), weighted separately.

    With `p = softmax(t/T)`, `q = softmax(s/T)` and `g` the target class:
    `TCKD = KL([p_g, 1 − p_g] ‖ [q_g, 1 − q_g])`, `NCKD = KL(p̂ ‖ q̂)` over
    the non-target classes renormalised, and the loss per example is
    `T² (α · TCKD + β · NCKD)`, as the authors' code computes it (the
    non-target softmax masks the target logit with −1000). Per example:
    `sample_weight` is honoured. The target class is the label, or the
    argmax of one-hot / soft labels. Warm-up (the authors ramp the loss
    over 20 epochs): a `keras_kd.callbacks` weight schedule on this term.

    Reference: Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge
    Distillation", CVPR 2022 (α = 1, β = 8, T = 4: their CIFAR-100
    setting; ImageNet uses β = 0.5, T = 1).

    Args:
        alpha: `α ≥ 0`, the TCKD weight.
        beta: `β ≥ 0`, the NCKD weight.
        temperature: `T > 0`.
        weight, name: as for every term (name `"dkd"`).

    Example:

    ```python
    distiller = keras_kd.Distiller(teacher, student,
                                   terms=[keras_kd.terms.DKD()])
    distiller.compile(optimizer="adam", alpha=1.0)  # CE + DKD, no KD term
    ```
    """

    needs_labels = True

    def __init__(self, alpha=1.0, beta=8.0, temperature=4.0, weight=None,
                 name="dkd", **kwargs):
        super().__init__(weight=weight, name=name, **kwargs)
        self.alpha = check_non_negative("alpha", alpha)
        self.beta = check_non_negative("beta", beta)
        self.temperature = check_positive("temperature", temperature)

    def logit_loss(self, teacher, student, labels):
        teacher = ops.stop_gradient(teacher)
        temperature = self.temperature
        gt = target_mask(labels, student.shape[-1])
        p = ops.softmax(teacher / temperature, axis=-1)
        q = ops.softmax(student / temperature, axis=-1)
        p_binary = _binary(p, gt)
        q_binary = _binary(q, gt)
        tckd = ops.sum(p_binary * (ops.log(ops.maximum(p_binary, 1e-30))
                                   - ops.log(q_binary)), axis=-1)
        log_p_other = ops.log_softmax(teacher / temperature - 1000.0 * gt,
                                      axis=-1)
        log_q_other = ops.log_softmax(student / temperature - 1000.0 * gt,
                                      axis=-1)
        nckd = ops.sum(ops.exp(log_p_other) * (log_p_other - log_q_other),
                       axis=-1)
        return temperature ** 2 * (self.alpha * tckd + self.beta * nckd)

    def get_config(self):
        config = super().get_config()
        config.update({"alpha": self.alpha, "beta": self.beta,
                       "temperature": self.temperature})
        return config


def _binary(probabilities, gt):
    target = ops.sum(probabilities * gt, axis=-1)
    other = ops.sum(probabilities * (1.0 - gt), axis=-1)
    return ops.stack([target, other], axis=-1)
