"""FSP: the flow of solution procedure between two layers."""

import keras
from keras import ops

from keras_kd.terms.term import Term
from keras_kd.utils.validation import check_non_negative
from keras_kd.utils.validation import check_one_of


@keras.saving.register_keras_serializable(package="keras_kd")
class FSP(Term):
    """FSP matrices: the student learns how the teacher's features flow
    from one layer to the next.

    For feature maps `F1 (h, w, m)` and `F2 (h, w, n)` of two layers of
    one network, `G = (1 / hw) Σ_{s,t} F1[s, t, :]ᵀ F2[s, t, :]`, an
    `m × n` matrix per example (the larger map is max-pooled to the smaller
    first, as torchdistill does). The loss per example is
    `Σ_pairs λ ‖G_t − G_s‖²_F`, the paper's Eq. 2. `mode="code"` is
    torchdistill's `FSPLoss`: the sum of the column norms `Σ_j ‖(G_t −
    G_s)[:, j]‖₂` in place of the squared Frobenius norm (the same value as
    torchdistill). Per example: `sample_weight` is honoured. Channels must
    agree between teacher and student (`m_t = m_s`, `n_t = n_s`).

    Reference: Yim, Joo, Bae & Kim, "A Gift from Knowledge Distillation:
    Fast Optimization, Network Minimization and Transfer Learning", CVPR
    2017.

    Args:
        pairs: list of `((teacher_first, teacher_second), (student_first,
            student_second)[, weight])`.
        mode: `"paper"` or `"code"`.
        weight, name: as for every term (name `"fsp"`).

    Example:

    ```python
    term = keras_kd.terms.FSP([(("t_block1", "t_block2"),
                                ("s_block1", "s_block2"))])
    ```
    """

    def __init__(self, pairs, mode="paper", weight=None, name="fsp",
                 **kwargs):
        super().__init__(weight=weight, name=name, **kwargs)
        self.pairs = _parse(pairs)
        self.mode = check_one_of("mode", mode, ("paper", "code"))

    def teacher_taps(self):
        return list(dict.fromkeys(
            path for (first, second), _, _ in self.pairs
            for path in (first, second)))

    def student_taps(self):
        return list(dict.fromkeys(
            path for _, (first, second), _ in self.pairs
            for path in (first, second)))

    def compute_loss(self, teacher, student, sample_weight=None):
        total = None
        for (t_first, t_second), (s_first, s_second), weight in self.pairs:
            difference = (
                fsp_matrix(ops.stop_gradient(teacher[t_first]),
                           ops.stop_gradient(teacher[t_second]))
                - fsp_matrix(student[s_first], student[s_second]))
            if self.mode == "paper":
                value = ops.sum(ops.square(difference), axis=(1, 2))
            else:
                value = ops.sum(ops.sqrt(ops.sum(ops.square(difference),
                                                 axis=1)), axis=1)
            value = weight * value
            total = value if total is None else total + value
        return total

    def get_config(self):
        config = super().get_config()
        config.update({"pairs": [[list(t), list(s), w]
                                 for t, s, w in self.pairs],
                       "mode": self.mode})
        return config


def fsp_matrix(first, second):
    """`(batch, m, n)` FSP matrices of channels-last maps `(b, h, w, m)`
    and `(b, h', w', n)`."""
    first = ops.cast(first, "float32")
    second = ops.cast(second, "float32")
    first, second = _same_size(first, second)
    batch = ops.shape(first)[0]
    first = ops.reshape(first, (batch, -1, first.shape[-1]))
    second = ops.reshape(second, (batch, -1, second.shape[-1]))
    area = ops.cast(ops.shape(first)[1], "float32")
    return ops.matmul(ops.transpose(first, (0, 2, 1)), second) / area


def _same_size(first, second):
    if len(first.shape) != 4 or len(second.shape) != 4:
        raise ValueError(
            "FSP takes feature maps (batch, height, width, channels). "
            f"Received shapes {tuple(first.shape)} and "
            f"{tuple(second.shape)}.")
    height = min(first.shape[1], second.shape[1])
    width = min(first.shape[2], second.shape[2])

    def pool(x):
        if x.shape[1] == height and x.shape[2] == width:
            return x
        if x.shape[1] % height or x.shape[2] % width:
            raise ValueError(
                f"FSP pools the larger map to the smaller one; "
                f"{tuple(x.shape[1:3])} is not a multiple of "
                f"{(height, width)}.")
        size = (x.shape[1] // height, x.shape[2] // width)
        return ops.max_pool(x, size, strides=size, padding="valid")

    return pool(first), pool(second)


def _parse(pairs):
    parsed = []
    for entry in pairs or ():
        if not isinstance(entry, (list, tuple)) or len(entry) not in (2, 3):
            raise ValueError(
                "Argument `pairs` of FSP takes ((teacher_first, "
                "teacher_second), (student_first, student_second)[, "
                f"weight]) entries. Received: {entry!r}")
        teacher, student = entry[0], entry[1]
        weight = check_non_negative("pairs weight",
                                    entry[2] if len(entry) == 3 else 1.0)
        for side in (teacher, student):
            if not (isinstance(side, (list, tuple)) and len(side) == 2
                    and all(isinstance(p, str) and p for p in side)):
                raise ValueError(
                    "Each side of an FSP pair names two layers. Received: "
                    f"{entry!r}")
        parsed.append((tuple(teacher), tuple(student), weight))
    if not parsed:
        raise ValueError("Argument `pairs` of FSP must name at least one "
                         f"pair. Received: pairs={pairs!r}")
    return parsed
