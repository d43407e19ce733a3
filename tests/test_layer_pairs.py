"""Parsing of layer pairs and teacher-index prefixes."""

import pytest

from keras_kd.layer_pairs import LayerPair
from keras_kd.layer_pairs import pairs_to_config
from keras_kd.layer_pairs import parse_pairs
from keras_kd.layer_pairs import split_teacher_path


def test_pairs_round_trip_with_weights_and_teacher_prefixes():
    pairs = parse_pairs([("a", "b"), ("1:c/d", "e", 0.5)], "hint_pairs", 2)
    assert pairs == [LayerPair(0, "a", "b", 1.0),
                     LayerPair(1, "c/d", "e", 0.5)]
    assert parse_pairs(pairs_to_config(pairs), "hint_pairs", 2) == pairs


@pytest.mark.parametrize("path,expected", [
    ("stage2", (0, "stage2")), ("1:stage2", (1, "stage2")),
    ("a:b", (0, "a:b"))])
def test_split_teacher_path(path, expected):
    assert split_teacher_path(path, 2, "pairs") == expected


@pytest.mark.parametrize("pairs,error,match", [
    ("a", TypeError, "must be a list"),
    ([("a",)], ValueError, r"entry \('a',\)"),
    ([("a", 3)], ValueError, "entry"),
    ([("a", "b", -1)], ValueError, "must be >= 0"),
    ([("a", "b", float("nan"))], ValueError, "finite"),
    ([("2:a", "b")], ValueError, "Unknown teacher index 2.*2 teacher"),
])
def test_bad_pairs_name_the_argument(pairs, error, match):
    with pytest.raises(error, match=match):
        parse_pairs(pairs, "hint_pairs", 2)
