"""Layer paths: Functional, Sequential, subclassed and attribute sublayers."""

import keras
import pytest
from conftest import bert_classifier
from conftest import make_nested_teacher

from keras_kd.layer_paths import find_layer
from keras_kd.layer_paths import layer_paths
from keras_kd.layer_paths import split_index


def test_nested_functional_and_sequential():
    teacher = make_nested_teacher()
    assert find_layer(teacher, "backbone/relu1") is teacher.get_layer(
        "backbone").get_layer("relu1")
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(
        2, name="d")], name="seq")
    outer = keras.Sequential([keras.Input((3,)), inner])
    assert find_layer(outer, "seq/d") is inner.get_layer("d")


def test_keras_hub_sublayers_by_name_and_by_attribute():
    model = bert_classifier(2, 2, 16, "teacher")
    encoder = model.get_layer("teacher_backbone").get_layer(
        "transformer_layer_1")
    for path in ("teacher_backbone/transformer_layer_1/self_attention_layer",
                 "teacher_backbone/transformer_layer_1/_self_attention_layer"):
        assert find_layer(model, path) is encoder._self_attention_layer
    assert ("teacher_backbone/transformer_layer_1/self_attention_layer"
            in layer_paths(model))


def test_unknown_path_lists_the_closest_ones():
    with pytest.raises(ValueError, match=r"Unknown teacher layer "
                                         r"'backbone/relu'.*Closest names: "
                                         r"\['backbone/relu1'"):
        find_layer(make_nested_teacher(), "backbone/relu", "teacher")


@pytest.mark.parametrize("path,expected", [
    ("lstm", ("lstm", None)), ("lstm[0]", ("lstm", 0)),
    ("a/b[sequence_output]", ("a/b", "sequence_output"))])
def test_split_index(path, expected):
    assert split_index(path) == expected
