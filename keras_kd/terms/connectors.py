"""Connectors of hint terms: student features mapped to the teacher width."""

import keras

from keras_kd.utils.resize import match_to_smaller


def make_connector(teacher_shape, student_shape, name):
    """A built connector mapping a student feature to the teacher's width.

    A 1×1 `Conv2D` for maps `(B, H, W, C)`, a `Dense` for vectors `(B, C)`
    and sequences `(B, T, C)` (applied per position). It computes in float32
    whatever the student's dtype policy.

    Args:
        teacher_shape: shape of the teacher feature (batch dim included).
        student_shape: shape of the student feature, same rank.
        name: layer name.
    """
    rank = len(student_shape)
    channels = teacher_shape[-1]
    if rank == 4:
        connector = keras.layers.Conv2D(channels, 1, name=name,
                                        dtype="float32")
    else:
        connector = keras.layers.Dense(channels, name=name, dtype="float32")
    connector.build(tuple(student_shape))
    return connector


def check_hint_shapes(teacher_shape, student_shape, teacher_path,
                      student_path):
    """Raises a clear error when a hint pair cannot be matched."""
    t_rank, s_rank = len(teacher_shape), len(student_shape)
    if t_rank not in (2, 3, 4) or t_rank != s_rank:
        raise ValueError(
            "Hint pairs need teacher and student features of the same rank: "
            "vectors (B, C), sequences (B, T, C) or maps (B, H, W, C). "
            f"Received: teacher layer '{teacher_path}' with output shape "
            f"{tuple(teacher_shape)} and student layer '{student_path}' with "
            f"output shape {tuple(student_shape)}"
        )
    for shape, path in ((teacher_shape, teacher_path),
                        (student_shape, student_path)):
        if shape[-1] is None:
            raise ValueError(
                f"Hint pairs need a known channel count. Received: layer "
                f"'{path}' with output shape {tuple(shape)}"
            )


def pair_shapes(teacher_shapes, student_shapes, teacher_path, student_path):
    """`(teacher shape, student shape)` of one tapped pair, checked as hint
    pairs are (terms with a trainable part on the student side: hints, VID,
    SRD)."""
    teacher_shape = tuple(teacher_shapes[teacher_path])
    student_shape = tuple(student_shapes[student_path])
    check_hint_shapes(teacher_shape, student_shape, teacher_path,
                      student_path)
    return teacher_shape, student_shape


def match_feature_size(teacher_feature, student_feature):
    """Area-resizes the larger feature to the smaller spatial size.

    As for attention transfer: average pooling when sizes divide,
    area-weighted averaging otherwise; channels are untouched. Vectors are
    returned as they are.
    """
    return match_to_smaller(teacher_feature, student_feature, channels=True)
