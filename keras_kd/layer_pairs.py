"""Parsing of layer pairs: `(teacher_layer, student_layer[, weight])`.

With several teachers, the teacher layer names the first teacher by default
and another one with an index prefix: `"1:block2_out"` is layer
`block2_out` of `teachers[1]`.
"""

import collections

from keras_kd.utils.validation import check_non_negative

LayerPair = collections.namedtuple(
    "LayerPair", ["teacher_index", "teacher_layer", "student_layer", "weight"]
)


def teacher_key(pair):
    """The teacher path as written, `"1:stage2"` or `"stage2"`."""
    if pair.teacher_index:
        return f"{pair.teacher_index}:{pair.teacher_layer}"
    return pair.teacher_layer


def split_teacher_path(path, num_teachers, argument):
    """`"1:stage2_out"` -> `(1, "stage2_out")`; `"stage2_out"` -> `(0, ...)`.

    Raises:
        ValueError: naming `argument`, for an index that is not a teacher.
    """
    prefix, sep, rest = path.partition(":")
    if not sep or not prefix.strip().isdigit():
        return 0, path
    index = int(prefix)
    if num_teachers is not None and index >= num_teachers:
        raise ValueError(
            f"Unknown teacher index {index} in `{argument}` entry "
            f"'{path}': the Distiller has {num_teachers} teacher(s), indexed "
            f"0 to {num_teachers - 1}."
        )
    return index, rest


def parse_pairs(pairs, argument, num_teachers=None):
    """Validates `pairs` and returns a list of `LayerPair`.

    Args:
        pairs: `None` or a list of 2- or 3-tuples of
            `(teacher_layer, student_layer[, weight])`.
        argument: the argument name for error messages (`"hint_pairs"`).
        num_teachers: number of teachers, to check `"i:layer"` prefixes
            (`None`: not checked here).
    """
    if pairs is not None and not isinstance(pairs, (list, tuple)):
        raise TypeError(
            f"Argument `{argument}` must be a list of (teacher_layer, "
            f"student_layer[, weight]) tuples. Received: {argument}={pairs!r}"
        )
    parsed = []
    for pair in pairs or []:
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) not in (2, 3)
            or not all(isinstance(name, str) for name in pair[:2])
        ):
            raise ValueError(
                f"Each entry of `{argument}` must be (teacher_layer, "
                "student_layer) or (teacher_layer, student_layer, weight). "
                f"Received: {argument} entry {pair!r}"
            )
        weight = pair[2] if len(pair) == 3 else 1.0
        weight = check_non_negative(f"weight of {argument} entry {pair!r}",
                                    weight)
        index, teacher_layer = split_teacher_path(pair[0], num_teachers,
                                                  argument)
        parsed.append(LayerPair(index, teacher_layer, pair[1], weight))
    return parsed


def pairs_to_config(pairs):
    """The inverse of `parse_pairs`, for `get_config`."""
    return [[teacher_key(p), p.student_layer, p.weight] for p in pairs]
