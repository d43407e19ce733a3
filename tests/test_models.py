"""The reference architectures: parameter counts, stage names and sizes."""

import keras
import numpy as np
import pytest

from keras_kd.capture import capture_outputs
from keras_kd_examples.models import cnn_student
from keras_kd_examples.models import count_blocks_per_stage
from keras_kd_examples.models import deepen_resnet
from keras_kd_examples.models import resnet_teacher


def test_main_job_student_is_a_tenth_of_the_teacher():
    # The shipped teacher: 1 block per stage (309,418 parameters), then
    # deepened to 2 (`deepen_resnet`).
    assert resnet_teacher().count_params() == 309_418
    teacher = resnet_teacher(blocks_per_stage=2)
    student = cnn_student(widths=(24, 48, 64), convs_per_stage=(1, 2, 1),
                          head="flatten")
    assert teacher.count_params() == 698_282
    # 216 + 10,368 + 20,736 + 27,648 conv weights, 2 × (24 + 48 + 48 + 64)
    # BN scales/offsets + 2 × 184 moving statistics, 576 × 10 + 10 logits.
    assert student.count_params() == 65_474
    assert student.count_params() <= teacher.count_params() / 10


def test_stage_outputs_match_the_teacher_resolutions():
    student = cnn_student(widths=(8, 8, 8), convs_per_stage=2)
    teacher = resnet_teacher(widths=(8, 8, 8))
    names = [f"stage{i}_out" for i in (1, 2, 3)]
    x = keras.random.normal((2, 28, 28, 1))
    for model in (student, teacher):
        _, taps = capture_outputs(model, names, x)
        shapes = [tuple(taps[name].shape[1:3]) for name in names]
        assert shapes == [(28, 28), (14, 14), (7, 7)]
    convs = [layer.name for layer in student.layers
             if isinstance(layer, keras.layers.Conv2D)]
    assert convs == ["stage1_1_conv", "stage1_conv", "stage2_1_conv",
                     "stage2_conv", "stage3_1_conv", "stage3_conv"]


def test_flatten_head_keeps_a_three_by_three_layout():
    student = cnn_student(widths=(4, 4, 6), head="flatten")
    assert student.get_layer("flatten").output.shape[-1] == 3 * 3 * 6


@pytest.mark.parametrize("kwargs, match", [
    ({"convs_per_stage": (1, 2)}, "convs_per_stage"),
    ({"convs_per_stage": 0}, "convs_per_stage"),
    ({"head": "max"}, "head='max'"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cnn_student(**kwargs)


def test_deepen_resnet_keeps_the_teachers_function():
    keras.utils.set_random_seed(0)
    teacher = resnet_teacher(widths=(8, 12, 16))
    # Non-trivial BatchNorm statistics, so that a wrong copy would show.
    for layer in teacher.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.1, mean + 0.2,
                               variance * 2.0])
    deeper = deepen_resnet(teacher, blocks_per_stage=2)
    x = np.random.RandomState(0).rand(4, 28, 28, 1).astype("float32")
    np.testing.assert_allclose(deeper(x, training=False),
                               teacher(x, training=False), atol=1e-5)
    assert deeper.count_params() == resnet_teacher(
        widths=(8, 12, 16), blocks_per_stage=2).count_params()
    assert deeper.count_params() > teacher.count_params()
    assert [count_blocks_per_stage(m) for m in (teacher, deeper)] == [1, 2]
    assert count_blocks_per_stage(cnn_student()) == 0
    assert [deeper.get_layer(f"stage{i}_out").output.shape[1]
            for i in (1, 2, 3)] == [28, 14, 7]
    # The new blocks start at zero but are trainable.
    gamma = deeper.get_layer("stage2_block1_b_bn").gamma
    assert gamma.trainable and not np.any(np.asarray(gamma))


@pytest.mark.parametrize("blocks, match", [
    (1, "larger than the teacher's 1"), (2.0, "blocks_per_stage=2.0")])
def test_deepen_resnet_bad_arguments(blocks, match):
    with pytest.raises(ValueError, match=match):
        deepen_resnet(resnet_teacher(widths=(8, 8, 8)), blocks)


def test_deepen_resnet_rejects_other_models():
    with pytest.raises(ValueError, match="built by `resnet_teacher`"):
        deepen_resnet(cnn_student(), 2)
