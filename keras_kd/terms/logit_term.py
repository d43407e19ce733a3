"""The base of terms that read the teacher's and the student's logits."""

from keras import ops

from keras_kd.terms.term import Term
from keras_kd.top_k_targets import is_top_k


class LogitTerm(Term):
    """A term on `(batch, classes)` logits of one teacher and the student:
    `logit_loss(teacher, student, labels)` returns per-example values,
    which the Distiller averages with `sample_weight`.

    Several teachers, top-k teachers stored by `precompute`, and sequence
    logits are refused with a clear error: these methods were defined for
    one full teacher distribution per example.
    """

    #: Whether `logit_loss` needs the batch's labels.
    needs_labels = False

    def compute_loss(self, teacher, student, sample_weight=None):
        name = type(self).__name__
        if len(teacher.logits) != 1:
            raise ValueError(
                f"{name} distils from one teacher; received the logits of "
                f"{len(teacher.logits)}. For an ensemble use "
                "keras_kd.terms.SoftTargetTerm.")
        teacher_logits = teacher.logits[0]
        if is_top_k(teacher_logits):
            raise ValueError(
                f"{name} needs the teacher's full logits, not the top-k "
                "targets `precompute(top_k=...)` stored.")
        student_logits = ops.cast(student.logits, "float32")
        if len(student_logits.shape) != 2:
            raise ValueError(
                f"{name} takes (batch, classes) logits. Received student "
                f"logits of shape {tuple(student_logits.shape)}.")
        labels = student.labels
        if self.needs_labels and labels is None:
            raise ValueError(f"{name} needs the batch's labels.")
        return self.logit_loss(ops.cast(teacher_logits, "float32"),
                               student_logits, labels)

    def logit_loss(self, teacher, student, labels):
        """`(batch,)` values from float32 teacher and student logits."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `logit_loss`.")


def target_mask(labels, classes):
    """`(batch, classes)` one-hot of the target class: the label itself for
    integer labels, its argmax for one-hot, smoothed or mixed rows."""
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) >= 2 and labels.shape[-1] == classes:
        labels = ops.argmax(labels, axis=-1)
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    return ops.one_hot(labels, classes, dtype="float32")
