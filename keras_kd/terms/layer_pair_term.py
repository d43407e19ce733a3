"""The base of terms on one teacher layer and one student layer."""

from keras_kd.terms.term import Term


class LayerPairTerm(Term):
    """A term that reads `teacher_layer` and `student_layer` (one each):
    the relational methods, VID, SRD and CRD.

    Args:
        teacher_layer: path of the teacher layer (`"i:path"` for teacher
            `i`).
        student_layer: path of the student layer.
        weight, name: as for every `Term`.
    """

    def __init__(self, teacher_layer, student_layer, weight=None, name=None,
                 **kwargs):
        super().__init__(weight=weight, name=name, **kwargs)
        for argument, value in (("teacher_layer", teacher_layer),
                                ("student_layer", student_layer)):
            if not isinstance(value, str) or not value:
                raise ValueError(
                    f"Argument `{argument}` of {type(self).__name__} must "
                    f"be a layer path. Received: {argument}={value!r}")
        self.teacher_layer = teacher_layer
        self.student_layer = student_layer

    def teacher_taps(self):
        return [self.teacher_layer]

    def student_taps(self):
        return [self.student_layer]

    def get_config(self):
        config = super().get_config()
        config.update({"teacher_layer": self.teacher_layer,
                       "student_layer": self.student_layer})
        return config
