"""DIST: relations between predictions, inter- and intra-class."""

import keras
from keras import ops

from keras_kd.terms.logit_term import LogitTerm
from keras_kd.utils.validation import check_non_negative
from keras_kd.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_kd")
class DIST(LogitTerm):
    """DIST: the student matches the teacher's predictions up to scale and
    shift, by Pearson correlation, per example and per class.

    With `P = softmax(t/τ)` and `Q = softmax(s/τ)` (batch × classes),
    `inter = 1 − mean_i ρ(P_i, Q_i)` over the rows and `intra = 1 −
    mean_c ρ(P_·c, Q_·c)` over the columns, `ρ` the Pearson correlation
    (the cosine of centred vectors, each norm at least `eps`); the loss is
    `τ² (β · inter + γ · intra)`, as torchdistill's `DISTLoss` computes it
    (the same value). Batch-relational (the intra-class part): the value
    is one scalar per batch and `sample_weight` does not enter.

    Reference: Huang, You, Wang, Qian & Xu, "Knowledge Distillation from A
    Stronger Teacher", NeurIPS 2022 (β = γ = 1, τ = 1 on ImageNet; τ = 4
    on CIFAR-100).

    Args:
        beta: `β ≥ 0`, the inter-class weight.
        gamma: `γ ≥ 0`, the intra-class weight.
        temperature: `τ > 0`.
        eps: `> 0`, the least norm in the correlation.
        weight, name: as for every term (name `"dist"`).

    Example:

    ```python
    terms = [keras_kd.terms.DIST(temperature=4.0)]
    ```
    """

    def __init__(self, beta=1.0, gamma=1.0, temperature=1.0, eps=1e-8,
                 weight=None, name="dist", **kwargs):
        super().__init__(weight=weight, name=name, **kwargs)
        self.beta = check_non_negative("beta", beta)
        self.gamma = check_non_negative("gamma", gamma)
        self.temperature = check_positive("temperature", temperature)
        self.eps = check_positive("eps", eps)

    def compute_loss(self, teacher, student, sample_weight=None):
        return self.reduce(super().compute_loss(teacher, student))

    def logit_loss(self, teacher, student, labels):
        tau = self.temperature
        p = ops.softmax(ops.stop_gradient(teacher) / tau, axis=-1)
        q = ops.softmax(student / tau, axis=-1)
        inter = 1.0 - ops.mean(_pearson(q, p, self.eps))
        intra = 1.0 - ops.mean(_pearson(ops.transpose(q), ops.transpose(p),
                                        self.eps))
        return tau ** 2 * (self.beta * inter + self.gamma * intra)

    def get_config(self):
        config = super().get_config()
        config.update({"beta": self.beta, "gamma": self.gamma,
                       "temperature": self.temperature, "eps": self.eps})
        return config


def _pearson(a, b, eps):
    a = a - ops.mean(a, axis=1, keepdims=True)
    b = b - ops.mean(b, axis=1, keepdims=True)
    norm_a = ops.sqrt(ops.maximum(ops.sum(ops.square(a), axis=1), eps * eps))
    norm_b = ops.sqrt(ops.maximum(ops.sum(ops.square(b), axis=1), eps * eps))
    return ops.sum(a * b, axis=1) / (norm_a * norm_b)
